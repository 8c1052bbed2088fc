/* ringrelay-queue's client side of the control socket. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/control_proto.h"
#include "tools/queue_tool.h"

/* Timeout of each send and receive. The daemon builds a reply within one
 * reactor turn, so this only ends a hung exchange. */
#define QUEUE_TOOL_IO_TIMEOUT_S 30

/* queue_tool_connect connects to the control socket. Returns the
 * descriptor, QUEUE_TOOL_NO_DAEMON when no daemon listens, or -2 after
 * printing an error. */
static int queue_tool_connect(const struct queue_tool *tool)
{
    struct timeval timeout = {.tv_sec = QUEUE_TOOL_IO_TIMEOUT_S};
    struct sockaddr_un addr;
    socklen_t len;
    int fd;

    if (control_socket_address(tool->queue_dir, &addr, &len) < 0) {
        queue_tool_fail(tool, QUEUE_TOOL_ERROR, "control socket path "
                        "%s/%s is too long for a unix socket",
                        tool->queue_dir, CONTROL_SOCKET_NAME);
        return -2;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        queue_tool_fail(tool, QUEUE_TOOL_ERROR, "socket failed: %s",
                        strerror(errno));
        return -2;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                   sizeof(timeout)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout,
                   sizeof(timeout)) < 0) {
        queue_tool_fail(tool, QUEUE_TOOL_ERROR, "setsockopt failed: %s",
                        strerror(errno));
        close(fd);
        return -2;
    }
    if (connect(fd, (const struct sockaddr *)&addr, len) == 0) {
        return fd;
    }
    if (errno == ENOENT || errno == ECONNREFUSED) {
        close(fd);
        return QUEUE_TOOL_NO_DAEMON;
    }
    queue_tool_fail(tool, QUEUE_TOOL_ERROR, "cannot connect to %s: %s%s",
                    addr.sun_path, strerror(errno),
                    errno == EACCES ? " (run as the daemon's user or root)"
                                    : "");
    close(fd);
    return -2;
}

static int queue_tool_send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* queue_tool_read_reply reads until the daemon closes. Returns the reply
 * (malloc'd, NUL-terminated) or NULL with errno set. */
static char *queue_tool_read_reply(int fd, size_t *out_len)
{
    char *reply = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&reply, &len);
    size_t received = 0;
    char buf[4096];
    ssize_t n;

    if (out == NULL) {
        return NULL;
    }
    while ((n = recv(fd, buf, sizeof(buf), 0)) != 0) {
        if (n < 0 && errno == EINTR) {
            continue;
        }

        /* A daemon that closes without reading the request, as it does
         * for a connection past its limit, makes the end of its reply
         * ECONNRESET instead of end-of-file. */
        if (n < 0 && errno == ECONNRESET && received > 0) {
            break;
        }
        if (n < 0) {
            int saved = errno;

            fclose(out);
            free(reply);
            errno = saved;
            return NULL;
        }
        if (fwrite(buf, 1, (size_t)n, out) != (size_t)n) {
            break;
        }
        received += (size_t)n;
    }
    if (ferror(out) != 0) {
        fclose(out);
        free(reply);
        errno = ENOMEM;
        return NULL;
    }
    if (fclose(out) != 0) {
        free(reply);
        return NULL;
    }
    *out_len = len;
    return reply;
}

/* queue_tool_print_reply prints the body after the status line: to
 * stdout when the daemon reports success or the error is JSON, else to
 * stderr with the program name. */
static int queue_tool_print_reply(const struct queue_tool *tool,
                                  const char *reply, size_t len)
{
    const char *lf = memchr(reply, '\n', len);
    size_t status_len = lf != NULL ? (size_t)(lf - reply) : len;
    const char *body = lf != NULL ? lf + 1 : reply + len;
    size_t body_len = len - (size_t)(body - reply);

    if (status_len == strlen(CONTROL_STATUS_OK) &&
        memcmp(reply, CONTROL_STATUS_OK, status_len) == 0) {
        fwrite(body, 1, body_len, stdout);
        return QUEUE_TOOL_OK;
    }
    if (status_len != strlen(CONTROL_STATUS_ERROR) ||
        memcmp(reply, CONTROL_STATUS_ERROR, status_len) != 0) {
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "invalid reply from "
                               "the daemon (%zu bytes)", len);
    }
    if (tool->json && body_len > 0 && body[0] != '{') {
        /* A reply sent before the request was read is text. */
        while (body_len > 0 && body[body_len - 1] == '\n') {
            body_len--;
        }
        return queue_tool_fail(tool, QUEUE_TOOL_ERROR, "%.*s",
                               (int)body_len, body);
    }
    if (tool->json) {
        fwrite(body, 1, body_len, stdout);
    } else {
        fprintf(stderr, "ringrelay-queue: %.*s", (int)body_len, body);
    }
    return QUEUE_TOOL_ERROR;
}

/* queue_tool_format_request writes the request line into buf. Returns
 * its length, or 0 after printing an error for an argument that cannot
 * go on one line. */
static size_t queue_tool_format_request(const struct queue_tool *tool,
                                        char *buf, size_t size)
{
    int n;

    for (const char *p = tool->arg; p != NULL && *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            queue_tool_fail(tool, QUEUE_TOOL_ERROR, "%s: invalid argument: "
                            "it contains a space or control character",
                            tool->command);
            return 0;
        }
    }
    n = snprintf(buf, size, "%s %s%s%s\n", tool->json ? "json" : "text",
                 tool->command, tool->arg != NULL ? " " : "",
                 tool->arg != NULL ? tool->arg : "");
    if (n < 0 || (size_t)n >= size) {
        queue_tool_fail(tool, QUEUE_TOOL_ERROR, "%s: argument too long",
                        tool->command);
        return 0;
    }
    return (size_t)n;
}

int queue_tool_ask_daemon(const struct queue_tool *tool)
{
    char request[CONTROL_MAX_REQUEST + 1];
    size_t request_len;
    char *reply = NULL;
    size_t reply_len = 0;
    int status = QUEUE_TOOL_ERROR;
    int fd;

    request_len = queue_tool_format_request(tool, request, sizeof(request));
    if (request_len == 0) {
        return QUEUE_TOOL_ERROR;
    }
    fd = queue_tool_connect(tool);
    if (fd < 0) {
        return fd == QUEUE_TOOL_NO_DAEMON ? fd : QUEUE_TOOL_ERROR;
    }

    if (queue_tool_send_all(fd, request, request_len) < 0) {
        int saved = errno;

        /* A daemon at its connection limit replies and closes at once,
         * so its reply may still be there to read. */
        reply = queue_tool_read_reply(fd, &reply_len);
        if (reply == NULL || reply_len == 0) {
            queue_tool_fail(tool, QUEUE_TOOL_ERROR, "send to the daemon "
                            "failed: %s", strerror(saved));
            goto out;
        }
        status = queue_tool_print_reply(tool, reply, reply_len);
        goto out;
    }
    reply = queue_tool_read_reply(fd, &reply_len);
    if (reply == NULL) {
        queue_tool_fail(tool, QUEUE_TOOL_ERROR, "reading the daemon's reply "
                        "failed: %s", strerror(errno));
        goto out;
    }
    status = queue_tool_print_reply(tool, reply, reply_len);

out:
    free(reply);
    close(fd);
    return status;
}

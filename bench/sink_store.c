#include "bench/sink_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sink_store {
    char *dir;
    int dir_fd;
    bool with_fsync;
    uint64_t next_number;  /* number of the next committed file */
    uint64_t tmp_counter;  /* makes temporary names unique */
};

void sink_message_init(struct sink_message *message, size_t max_len)
{
    memset(message, 0, sizeof(*message));
    message->max_len = max_len;
}

void sink_message_cleanup(struct sink_message *message)
{
    free(message->data);
    sink_message_init(message, message->max_len);
}

void sink_message_clear(struct sink_message *message)
{
    message->len = 0;
    message->line_start = false;
    message->raw = false;
}

/* Make room for extra more bytes, doubling to keep appends amortized. */
static int sink_message_reserve(struct sink_message *message, size_t extra)
{
    size_t need;
    size_t cap;
    char *data;

    if (extra > message->max_len - message->len) {
        return -1;
    }
    need = message->len + extra;
    if (need <= message->cap) {
        return 0;
    }

    cap = message->cap < 4096 ? 4096 : message->cap;
    while (cap < need) {
        cap *= 2;
    }
    data = realloc(message->data, cap);
    if (data == NULL) {
        return -1;
    }
    message->data = data;
    message->cap = cap;
    return 0;
}

static int sink_message_append(struct sink_message *message,
                               const char *data, size_t len)
{
    if (sink_message_reserve(message, len) < 0) {
        return -1;
    }
    memcpy(message->data + message->len, data, len);
    message->len += len;
    return 0;
}

static int sink_message_add_line(struct sink_message *message,
                                 const char *verb, const char *address)
{
    if (sink_message_append(message, verb, strlen(verb)) < 0
        || sink_message_append(message, address, strlen(address)) < 0
        || sink_message_append(message, ">\r\n", 3) < 0) {
        return -1;
    }
    return 0;
}

int sink_message_add_mail(struct sink_message *message, const char *sender)
{
    sink_message_clear(message);
    return sink_message_add_line(message, "MAIL FROM:<", sender);
}

int sink_message_add_rcpt(struct sink_message *message,
                          const char *recipient)
{
    return sink_message_add_line(message, "RCPT TO:<", recipient);
}

int sink_message_add_tls(struct sink_message *message, const char *version,
                         const char *cipher)
{
    if (sink_message_append(message, "TLS: ", 5) < 0
        || sink_message_append(message, version, strlen(version)) < 0
        || sink_message_append(message, " ", 1) < 0
        || sink_message_append(message, cipher, strlen(cipher)) < 0
        || sink_message_append(message, "\r\n", 2) < 0) {
        return -1;
    }
    return 0;
}

int sink_message_begin_body(struct sink_message *message)
{
    message->line_start = true;
    return sink_message_append(message, "\r\n", 2);
}

int sink_message_add_body(struct sink_message *message, const char *data,
                          size_t len)
{
    const char *end = data + len;

    if (message->raw) {
        return sink_message_append(message, data, len);
    }

    /* The stored content is never longer than the wire form, so one
     * reservation covers the whole chunk. */
    if (sink_message_reserve(message, len) < 0) {
        return -1;
    }
    while (data < end) {
        const char *newline;
        size_t run;

        /* RFC 5321 4.5.2: a receiver deletes the first period of a line
         * that starts with one. */
        if (message->line_start && *data == '.') {
            data++;
        }
        message->line_start = false;
        newline = memchr(data, '\n', (size_t)(end - data));
        run = newline == NULL ? (size_t)(end - data)
                              : (size_t)(newline + 1 - data);
        memcpy(message->data + message->len, data, run);
        message->len += run;
        data += run;
        message->line_start = newline != NULL;
    }
    return 0;
}

/* Return the number of a "<digits>.msg" name, or 0 for any other name. */
static uint64_t sink_store_name_number(const char *name)
{
    uint64_t number = 0;
    const char *p = name;

    while (*p >= '0' && *p <= '9') {
        if (number > (UINT64_MAX - 9) / 10) {
            return 0;
        }
        number = number * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p == name || strcmp(p, ".msg") != 0) {
        return 0;
    }
    return number;
}

/* Report whether name is a temporary name of sink_store_write or
 * sink_store_check_writable: "tmp-" and a PID. */
static bool sink_store_is_tmp_name(const char *name)
{
    return strncmp(name, "tmp-", 4) == 0 && name[4] >= '0'
           && name[4] <= '9';
}

/* Find the highest file number already in the store, and remove the
 * temporary files that a sink killed mid-write (SIGKILL, a crash) left
 * behind. No other sink may use the directory, so none of them is still
 * being written. */
static int sink_store_scan(struct sink_store *store)
{
    struct dirent *entry;
    uint64_t highest = 0;
    uint64_t removed = 0;
    DIR *dir;
    int fd;

    fd = dup(store->dir_fd);
    if (fd < 0) {
        return -errno;
    }
    dir = fdopendir(fd);
    if (dir == NULL) {
        int err = errno;

        close(fd);
        return -err;
    }

    errno = 0;
    while ((entry = readdir(dir)) != NULL) {
        uint64_t number = sink_store_name_number(entry->d_name);

        if (number > highest) {
            highest = number;
        }
        if (sink_store_is_tmp_name(entry->d_name)) {
            if (unlinkat(store->dir_fd, entry->d_name, 0) < 0) {
                fprintf(stderr, "sink: removing the stale temporary file "
                        "%s/%s failed: %s\n", store->dir, entry->d_name,
                        strerror(errno));
            } else {
                removed++;
            }
        }
        errno = 0;
    }
    int err = errno;

    closedir(dir);
    if (removed > 0) {
        fprintf(stderr, "sink: removed %" PRIu64 " stale temporary files "
                "from the store %s\n", removed, store->dir);
    }
    store->next_number = highest + 1;
    return -err;
}

/* Create and remove a temporary file, so that a directory the process
 * cannot write fails at start, before the sink replies 451 to every
 * message. Returns 0 or -errno. */
static int sink_store_check_writable(const struct sink_store *store)
{
    char name[64];
    int fd;
    int rc = 0;

    snprintf(name, sizeof(name), "tmp-%ld-check", (long)getpid());
    fd = openat(store->dir_fd, name,
                O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -errno;
    }
    if (close(fd) < 0) {
        rc = -errno;
    }
    if (unlinkat(store->dir_fd, name, 0) < 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

int sink_store_open(const char *dir, bool with_fsync,
                    struct sink_store **out)
{
    struct sink_store *store;
    int rc;

    store = calloc(1, sizeof(*store));
    if (store == NULL || (store->dir = strdup(dir)) == NULL) {
        fprintf(stderr, "sink: out of memory opening store\n");
        free(store);
        return -ENOMEM;
    }
    store->with_fsync = with_fsync;
    store->dir_fd = -1;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        fprintf(stderr, "sink: cannot create store directory %s: %s\n",
                dir, strerror(-rc));
        goto fail;
    }
    store->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (store->dir_fd < 0) {
        rc = -errno;
        fprintf(stderr, "sink: cannot open store directory %s: %s\n",
                dir, strerror(-rc));
        goto fail;
    }
    rc = sink_store_scan(store);
    if (rc < 0) {
        fprintf(stderr, "sink: cannot list store directory %s: %s\n",
                dir, strerror(-rc));
        goto fail;
    }
    rc = sink_store_check_writable(store);
    if (rc < 0) {
        fprintf(stderr, "sink: cannot write in store directory %s: "
                "creating a test file failed: %s\n", dir, strerror(-rc));
        goto fail;
    }
    *out = store;
    return 0;

fail:
    sink_store_free(store);
    return rc;
}

void sink_store_free(struct sink_store *store)
{
    if (store == NULL) {
        return;
    }
    if (store->dir_fd >= 0 && close(store->dir_fd) < 0) {
        fprintf(stderr, "sink: closing store directory %s: %s\n",
                store->dir, strerror(errno));
    }
    free(store->dir);
    free(store);
}

bool sink_store_with_fsync(const struct sink_store *store)
{
    return store->with_fsync;
}

const char *sink_store_dir(const struct sink_store *store)
{
    return store->dir;
}

static int sink_store_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int sink_store_write(struct sink_store *store,
                     const struct sink_message *message,
                     struct sink_store_file *file)
{
    int rc;

    snprintf(file->tmp_name, sizeof(file->tmp_name), "tmp-%ld-%" PRIu64,
             (long)getpid(), ++store->tmp_counter);
    file->fd = openat(store->dir_fd, file->tmp_name,
                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (file->fd < 0) {
        return -errno;
    }
    rc = sink_store_write_all(file->fd, message->data, message->len);
    if (rc < 0) {
        sink_store_discard(store, file);
    }
    return rc;
}

int sink_store_commit(struct sink_store *store, struct sink_store_file *file,
                      uint64_t *number)
{
    char name[32];
    int rc = 0;

    /* close() can report a delayed write error (NFS, quota), so a failing
     * close fails the message. */
    if (close(file->fd) < 0) {
        rc = -errno;
    }
    file->fd = -1;
    if (rc == 0) {
        /* 12 digits hold 10^12 - 1 messages, far more than a run
         * sends, so the names sort by number as text. */
        snprintf(name, sizeof(name), "%012" PRIu64 ".msg",
                 store->next_number);
        if (renameat(store->dir_fd, file->tmp_name, store->dir_fd,
                     name) < 0) {
            rc = -errno;
        }
    }
    if (rc < 0) {
        sink_store_discard(store, file);
        return rc;
    }
    *number = store->next_number++;
    return 0;
}

void sink_store_discard(struct sink_store *store,
                        struct sink_store_file *file)
{
    if (file->fd >= 0 && close(file->fd) < 0) {
        fprintf(stderr, "sink: closing %s/%s: %s\n", store->dir,
                file->tmp_name, strerror(errno));
    }
    file->fd = -1;
    if (unlinkat(store->dir_fd, file->tmp_name, 0) < 0 && errno != ENOENT) {
        fprintf(stderr, "sink: removing %s/%s: %s\n", store->dir,
                file->tmp_name, strerror(errno));
    }
}

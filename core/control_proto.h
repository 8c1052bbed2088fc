/* The control socket's wire protocol, shared by the daemon and
 * ringrelay-queue.
 *
 * A client connects to the unix stream socket CONTROL_SOCKET_NAME inside
 * the queue directory and sends one request line, "FORMAT COMMAND [ARG]"
 * ended by LF, where FORMAT is "text" or "json". The daemon replies with
 * a status line, "ok" or "error", then the body, and closes the
 * connection. An error body is one line of text, or with "json" a JSON
 * object {"error": "..."}. */
#ifndef RINGRELAY_CORE_CONTROL_PROTO_H
#define RINGRELAY_CORE_CONTROL_PROTO_H

#include <sys/socket.h>
#include <sys/un.h>

#define CONTROL_SOCKET_NAME "control"

/* Maximum request line in bytes, LF included. */
#define CONTROL_MAX_REQUEST 256

#define CONTROL_STATUS_OK "ok"
#define CONTROL_STATUS_ERROR "error"

#include <stdbool.h>

/* control_id_valid reports whether id has the queue ID form: 16 hex
 * digits, either case. */
bool control_id_valid(const char *id);

/* control_socket_address fills addr with the socket path inside
 * queue_dir. Fails with ENAMETOOLONG when the path does not fit in
 * sun_path (108 bytes on Linux, NUL included). */
int control_socket_address(const char *queue_dir, struct sockaddr_un *addr,
                           socklen_t *len);

#endif

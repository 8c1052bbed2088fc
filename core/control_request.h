/* One control request: parsing the line and running the command on the
 * queue and the outbound engine. Private to the control socket. */
#ifndef RINGRELAY_CORE_CONTROL_REQUEST_H
#define RINGRELAY_CORE_CONTROL_REQUEST_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

struct daemon;

/* control_request_run runs the request line (without its LF) for the
 * user uid and writes the whole reply, status line first, to out. */
void control_request_run(struct daemon *daemon, const char *line, uid_t uid,
                         FILE *out);

/* control_reply_error writes an error reply in the request's format. */
void control_reply_error(FILE *out, bool json, const char *message);

#endif

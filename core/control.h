/* Control socket: the unix stream socket in the queue directory that
 * ringrelay-queue talks to (protocol in core/control_proto.h). Only the
 * daemon's own user and root may use it. */
#ifndef RINGRELAY_CORE_CONTROL_H
#define RINGRELAY_CORE_CONTROL_H

struct daemon;
struct control;

/* control_new creates the socket in the daemon's queue directory and
 * starts accepting. A socket file left by a daemon that did not stop
 * cleanly is replaced, and one that still accepts connections is an
 * error. Returns NULL after logging why. */
struct control *control_new(struct daemon *daemon);

/* control_stop accepts no more connections and closes open ones. */
void control_stop(struct control *control);

/* control_free closes and unlinks the socket; NULL is accepted. Call it
 * after reactor_shutdown(). */
void control_free(struct control *control);

#endif

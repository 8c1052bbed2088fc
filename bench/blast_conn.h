/* One client connection of the load generator: an SMTP session that
 * sends the messages its run hands it, one transaction after another,
 * then QUITs. The object is reused for every connection of its slot. */
#ifndef RINGRELAY_BENCH_BLAST_CONN_H
#define RINGRELAY_BENCH_BLAST_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/blast_run.h"

struct blast_conn;

/* blast_conn_new creates the connection object of slot index. Returns
 * NULL when out of memory. */
struct blast_conn *blast_conn_new(struct blast_run *run, unsigned index);

/* blast_conn_open opens the socket and starts connecting. The connection
 * will start at most quota messages; with reserved, they are its share
 * of --messages, and fail with it. first, if not NULL, is a message the
 * run already handed out, sent first (it counts toward quota). On
 * failure the connection counts as failed with its work, and its slot
 * is returned to the run at once. */
void blast_conn_open(struct blast_conn *conn, uint64_t quota, bool reserved,
                     const struct blast_msg *first);

/* blast_conn_give hands msg to an idle connection (one in run->idle). */
void blast_conn_give(struct blast_conn *conn, const struct blast_msg *msg);

/* blast_conn_quit makes an idle connection QUIT: no message will come. */
void blast_conn_quit(struct blast_conn *conn);

/* blast_conn_free closes the socket if still open and frees conn; NULL
 * is accepted. Call it after reactor_free(), or once the connection has
 * closed. */
void blast_conn_free(struct blast_conn *conn);

#endif

/* The network side of one delivery attempt: next-hop lookup, connection
 * to each MX address in turn (or to an address literal's IP), and the SMTP
 * client session. Private to the
 * outbound engine. */
#ifndef RINGRELAY_CORE_OUTBOUND_CONN_H
#define RINGRELAY_CORE_OUTBOUND_CONN_H

struct outbound_job;

/* outbound_conn_begin runs one attempt for the job's queued recipients;
 * it ends by calling outbound_job_finished(). */
void outbound_conn_begin(struct outbound_job *job);

/* outbound_conn_abandon closes the job's socket without callbacks, for
 * teardown after the reactor stopped. */
void outbound_conn_abandon(struct outbound_job *job);

#endif

/* Bounces and delay warnings of the outbound engine. The recipients of
 * one job that failed or were delayed in an attempt are collected. At
 * the end of the attempt one delivery status report (RFC 3464) about all
 * of them is queued to the sender, as a new message from the null
 * reverse path that is delivered like any other. Private to the outbound
 * engine. */
#ifndef RINGRELAY_CORE_OUTBOUND_BOUNCE_H
#define RINGRELAY_CORE_OUTBOUND_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/smtp_dsn_report.h"

struct outbound_bounce;
struct outbound_job;

/* outbound_bounce_note adds recipient index of the job's message to the
 * next report, with status "X.Y.Z" and the last reply text. It skips,
 * and logs, a recipient whose NOTIFY= excludes the action: a failure
 * needs FAILURE or no NOTIFY, a delay needs DELAY or no NOTIFY. */
void outbound_bounce_note(struct outbound_job *job, size_t index,
                          enum smtp_dsn_action action, const char *status,
                          const char *reply);

/* outbound_bounce_claim_warning returns true the first time it is called
 * for recipient index of the job, and false afterwards. The mark is in
 * memory only. */
bool outbound_bounce_claim_warning(struct outbound_job *job, size_t index);

/* outbound_bounce_send queues one report about the recipients noted
 * since the last call, and clears the list. While another job of the
 * message has an attempt in flight, it hands them to that job instead,
 * so one attempt over several domains makes one report. A message with
 * the null sender gets no report, and that is logged. Failures are
 * logged and lose the report, not the original. */
void outbound_bounce_send(struct outbound_job *job);

/* outbound_bounce_free frees what the job collected; NULL is accepted. */
void outbound_bounce_free(struct outbound_bounce *bounce);

#endif

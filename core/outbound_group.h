/* Grouping by MX set: before the jobs of a message are made, the MX
 * hosts of each recipient domain that is delivered by MX are looked up.
 * Domains with the same MX hosts in the same preference order get one
 * destination, "mx:" followed by the host names (see outbound_dest.h),
 * so their recipients share connections and transactions. Private to
 * the outbound engine.
 *
 * A domain keeps its own name as destination when its lookup fails, it
 * has no MX records (implicit MX), a route or the smarthost applies, or
 * the destinations configuration names it: the operator's limits for that
 * domain win over sharing. */
#ifndef RINGRELAY_CORE_OUTBOUND_GROUP_H
#define RINGRELAY_CORE_OUTBOUND_GROUP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/mx_set_name.h"

struct config;
struct dns_mx_result;
struct outbound;
struct outbound_dest;
struct outbound_group;
struct queue_msg;
struct smtp_mailbox;

/* The prefix of the names of destinations shared by MX set. */
#define OUTBOUND_GROUP_PREFIX MX_SET_NAME_PREFIX

/* outbound_group_wanted reports whether mailbox's domain is delivered by
 * MX and may share a destination with other domains. */
bool outbound_group_wanted(const struct config *config,
                           const struct smtp_mailbox *mailbox);

/* outbound_group_start looks up the MX sets of the domains of msg's
 * recipients index[0..count) that outbound_group_wanted() accepts; once
 * every lookup has answered, it makes their jobs with
 * outbound_make_jobs(). keep (may be NULL) is a destination that keeps a
 * reference until then, so that its breaker state survives a job that is
 * grouped again. Returns 1 when the lookups started, 0 when no recipient
 * needs one (the caller makes the jobs), -1 when out of memory (the same,
 * without grouping). */
int outbound_group_start(struct outbound *outbound, struct queue_msg *msg,
                         const size_t *index, size_t count,
                         struct outbound_dest *keep);

/* outbound_group_key writes the destination name that the MX lookup
 * result of domain gives: the MX-set name, or "" when the domain keeps
 * its own name. */
void outbound_group_key(const struct config *config, const char *domain,
                        const struct dns_mx_result *result, char *key,
                        size_t size);

/* outbound_group_rename replaces dest_name, the destination of mailbox
 * by its domain, with the shared MX-set name that group found, if any. */
void outbound_group_rename(const struct outbound_group *group,
                           const struct smtp_mailbox *mailbox,
                           char *dest_name, size_t size);

/* outbound_group_failed reports whether group's MX lookup of mailbox's
 * domain failed temporarily, so that its first attempt defers without
 * the same lookup again. */
bool outbound_group_failed(const struct outbound_group *group,
                           const struct smtp_mailbox *mailbox);

/* outbound_group_due_now reports whether an operator's flush asked for
 * group's recipients while their lookups ran. */
bool outbound_group_due_now(const struct outbound_group *group);

/* outbound_group_flush marks the groups of msg (every group when msg is
 * NULL) as flushed and returns how many it marked. */
size_t outbound_group_flush(struct outbound *outbound,
                            const struct queue_msg *msg);

/* outbound_group_lists reports whether a group waiting for its lookups
 * lists recipient index of msg. */
bool outbound_group_lists(struct outbound *outbound,
                          const struct queue_msg *msg, size_t index);

/* outbound_group_free_all cancels every lookup and frees every group,
 * before the jobs and destinations are freed. */
void outbound_group_free_all(struct outbound *outbound);

#endif

/* SMTP AUTH of inbound sessions: password checks on the worker thread,
 * the delay of failure replies and the limit of failed attempts. */
#ifndef RINGRELAY_CORE_INBOUND_AUTH_H
#define RINGRELAY_CORE_INBOUND_AUTH_H

#include <stdbool.h>

#include "core/inbound_session.h"

/* inbound_auth_hook is the auth hook of struct smtp_server_hooks; ctx is
 * the inbound session. */
void inbound_auth_hook(void *ctx, const char *mechanism, const char *user,
                       const char *password);

/* inbound_auth_failed_hook is the auth_failed hook of struct
 * smtp_server_hooks: it logs an exchange that ended before a password
 * check. */
void inbound_auth_failed_hook(void *ctx, const char *mechanism,
                              const char *user, const char *reason);

/* inbound_auth_delay_over sends the reply to a failed AUTH once the
 * session timer ended its delay: 535, or 421 after auth_max_failures
 * failures. The caller then calls inbound_session_answered(). */
void inbound_auth_delay_over(struct inbound_session *session);

/* inbound_auth_pending is true while an AUTH reply is still to come, so
 * a client that half-closed after AUTH gets it before the close. */
bool inbound_auth_pending(const struct inbound_session *session);

/* inbound_auth_cancel drops the password check in the worker, for a
 * session that is being freed. */
void inbound_auth_cancel(struct inbound_session *session);

#endif

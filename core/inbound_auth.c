/* SMTP AUTH for inbound sessions: the auth hook hands the credentials to
 * the password worker (core/auth_worker.h), and its result comes back on
 * the reactor thread. A success gets its reply at once. A failure is
 * logged, and its reply waits on the session timer for 1 s, then 2 s, 4 s
 * and at most 8 s, so a client guesses slowly without blocking the
 * reactor. The failure number auth_max_failures gets 421 4.7.0 in place
 * of 535, and the session closes. */
#include "core/inbound_auth.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth_users.h"
#include "core/auth_worker.h"
#include "core/config.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/reactor.h"
#include "proto/smtp_server.h"

/* The delay of the first failure reply; each later one doubles it, up to
 * eight times as long. */
#define INBOUND_AUTH_DELAY_MS 1000u

/* auth_log logs the result of an AUTH attempt, with the user name as
 * the client sent it (left out when none was decoded) and never the
 * password. reason is NULL for a success. */
static void auth_log(const struct inbound_session *s, const char *reason)
{
    char quoted[2 * sizeof(s->auth_user) + 8];
    char user[sizeof(quoted) + 8] = "";

    if (s->auth_user[0] != '\0') {
        log_quote(quoted, sizeof(quoted), s->auth_user,
                  strlen(s->auth_user));
        snprintf(user, sizeof(user), " user=%s", quoted);
    }
    if (reason == NULL) {
        log_info("session=%" PRIu64 " event=auth-ok client=%s%s "
                 "mechanism=%s", s->id, s->client_ip, user,
                 s->auth_mechanism);
        return;
    }
    log_warning("session=%" PRIu64 " event=auth-failed client=%s%s "
                "mechanism=%s failures=%u reason=\"%s\"", s->id,
                s->client_ip, user, s->auth_mechanism, s->auth_failures,
                reason);
}

/* auth_checked runs on the reactor thread with the worker's result. The
 * reply to a failure goes out only when the delay timer fires. */
static void auth_checked(struct auth_check *check)
{
    struct inbound_session *s = check->owner;
    struct reactor *reactor = inbound_daemon(s->inbound)->reactor;
    bool ok = check->ok;
    bool disabled = check->disabled;
    uint64_t delay_ms;

    s->auth_check = NULL;
    free(check);
    if (s->closing) {
        auth_log(s, "session closed before the check ended");
        inbound_session_answered(s);
        return;
    }
    if (ok) {
        auth_log(s, NULL);
        smtp_server_auth_done(s->smtp, true, NULL);
        inbound_session_answered(s);
        return;
    }
    s->auth_failures++;
    auth_log(s, disabled ? "user is disabled" : "invalid credentials");
    delay_ms = INBOUND_AUTH_DELAY_MS << (s->auth_failures - 1 < 3
                                             ? s->auth_failures - 1
                                             : 3);
    s->auth_delay = true;
    reactor_timer_set(reactor, &s->timer, delay_ms);
}

void inbound_auth_delay_over(struct inbound_session *s)
{
    const struct config *config = inbound_daemon(s->inbound)->config;
    char reply[SMTP_REPLY_MAX];

    s->auth_delay = false;
    if (s->auth_failures < config->auth_max_failures) {
        smtp_server_auth_done(s->smtp, false, NULL);
    } else {
        log_warning("session=%" PRIu64 " event=reject client=%s "
                    "reason=\"too many failed AUTH attempts\" max=%u",
                    s->id, s->client_ip, config->auth_max_failures);
        snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: too many "
                 "failed authentication attempts, closing connection",
                 config->hostname);
        smtp_server_auth_done(s->smtp, false, reply);
    }
}

/* auth_queue_full replies 454 to an attempt that found the password
 * queue at a cap. It is not counted toward auth_max_failures, because
 * the client may be one of many behind the same address. */
static void auth_queue_full(struct inbound_session *s, int rc)
{
    if (rc == AUTH_WORKER_CLIENT_FULL) {
        auth_log(s, "too many pending checks from this address");
    } else {
        auth_log(s, "too many pending checks");
    }
    smtp_server_auth_done(s->smtp, false, "454 4.7.0 Temporary "
                          "authentication failure, try again later");
}

void inbound_auth_hook(void *ctx, const char *mechanism, const char *user,
                       const char *password)
{
    struct inbound_session *s = ctx;
    struct daemon *daemon = inbound_daemon(s->inbound);
    struct auth_check *check = calloc(1, sizeof(*check));
    int rc;

    snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
    s->auth_mechanism = mechanism;
    if (check == NULL) {
        log_error("session=%" PRIu64 " error=\"out of memory for an AUTH "
                  "check\"", s->id);
        auth_log(s, "out of memory");
        smtp_server_auth_done(s->smtp, false, "454 4.7.0 Temporary "
                              "authentication failure, try again later");
        return;
    }
    check->done = auth_checked;
    check->owner = s;
    snprintf(check->hash, sizeof(check->hash), "%s",
             auth_users_hash(daemon->auth_users, user, &check->known,
                             &check->disabled));
    snprintf(check->client, sizeof(check->client), "%s", s->client_ip);
    snprintf(check->password, sizeof(check->password), "%s", password);
    rc = auth_worker_submit(daemon->auth_worker, check,
                            daemon->config->auth_max_pending,
                            daemon->config->auth_max_pending_per_ip);
    if (rc != 0) {
        explicit_bzero(check->password, sizeof(check->password));
        free(check);
        auth_queue_full(s, rc);
        return;
    }
    s->auth_check = check;
}

void inbound_auth_failed_hook(void *ctx, const char *mechanism,
                              const char *user, const char *reason)
{
    struct inbound_session *s = ctx;

    snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
    s->auth_mechanism = mechanism;
    auth_log(s, reason);
}

bool inbound_auth_pending(const struct inbound_session *s)
{
    return (s->auth_check != NULL || s->auth_delay) &&
           !smtp_server_closing(s->smtp);
}

void inbound_auth_cancel(struct inbound_session *s)
{
    if (s->auth_check != NULL) {
        auth_worker_cancel(inbound_daemon(s->inbound)->auth_worker,
                           s->auth_check);
        s->auth_check = NULL;
        auth_log(s, "session closed before the check ended");
    }
}

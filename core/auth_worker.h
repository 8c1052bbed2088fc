/* One thread that checks SMTP AUTH passwords off the reactor thread.
 *
 * A yescrypt or bcrypt check takes milliseconds of CPU, which would stall
 * every session if the reactor ran it. The reactor thread submits a
 * check and the worker runs crypt_rn(). The result comes back through an
 * eventfd that the reactor reads, and the done callback runs on the
 * reactor thread. Checks run one at a time in submission order. The
 * queue is capped overall and per client address, so one client cannot
 * delay every other login by queueing slow hashes. */
#ifndef RINGRELAY_CORE_AUTH_WORKER_H
#define RINGRELAY_CORE_AUTH_WORKER_H

#include <netinet/in.h>
#include <stdbool.h>

#include "core/auth_users.h"
#include "proto/smtp_sasl.h"

struct auth_worker;
struct reactor;

/* auth_check: one password check, owned by the worker from submission
 * until done() runs or, after auth_worker_cancel(), until the worker
 * frees it. */
struct auth_check {
    void (*done)(struct auth_check *check);
    void *owner;
    /* A copy, so a SIGHUP may replace the users table meanwhile. */
    char hash[AUTH_USERS_HASH_MAX + 1];
    char password[SMTP_SASL_NAME_MAX + 1];
    char client[INET6_ADDRSTRLEN]; /* the client's address, for the cap */
    bool known;            /* the user exists; a dummy hash otherwise */
    bool disabled;         /* the user is disabled; a dummy hash */
    bool ok;               /* result: known, enabled, password matched */
    bool cancelled;        /* private: the owner went away */
    struct auth_check *next; /* private */
};

/* auth_worker_new starts the thread and arms the eventfd read. Returns
 * NULL after logging the error. */
struct auth_worker *auth_worker_new(struct reactor *reactor);

/* Results of auth_worker_submit() besides 0. */
enum {
    AUTH_WORKER_FULL = -1,        /* max_queued checks are waiting */
    AUTH_WORKER_CLIENT_FULL = -2, /* max_per_client from check->client */
};

/* auth_worker_submit queues check; its done() runs later on the reactor
 * thread, never inside this call. Returns 0, or AUTH_WORKER_FULL or
 * AUTH_WORKER_CLIENT_FULL when the queue is at a cap; the caller then
 * still owns check. */
int auth_worker_submit(struct auth_worker *worker, struct auth_check *check,
                       unsigned max_queued, unsigned max_per_client);

/* auth_worker_cancel drops check: done() will not run. A check that the
 * thread has not started is freed at once and never hashed; one being
 * hashed is freed by the worker. Call it from the reactor thread only. */
void auth_worker_cancel(struct auth_worker *worker, struct auth_check *check);

/* auth_worker_free stops and joins the thread and frees the checks still
 * queued without calling done(). Call it after reactor_shutdown(), which
 * ends the eventfd read. NULL is accepted. */
void auth_worker_free(struct auth_worker *worker);

#endif

#include "bench/blast_run.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>

#include "bench/bench_stats.h"
#include "bench/blast_conn.h"
#include "proto/smtp_address.h"
#include "tls/tls_context.h"

#define BLAST_NS_PER_S UINT64_C(1000000000)
#define BLAST_NS_PER_MS UINT64_C(1000000)

/* Arm timer to fire at the monotonic time at_ns or just after. Timer
 * delays count from the reactor's clock of the current turn, which lags
 * behind the real clock (before reactor_run, by the whole setup), so the
 * delay is taken from that clock: the timer is never early. */
static void blast_run_arm_at(struct blast_run *run,
                             struct reactor_timer *timer, uint64_t at_ns)
{
    uint64_t at_ms = (at_ns + BLAST_NS_PER_MS - 1) / BLAST_NS_PER_MS;
    uint64_t now_ms = reactor_now_ms(run->reactor);

    reactor_timer_set(run->reactor, timer, at_ms > now_ms ? at_ms - now_ms
                                                          : 0);
}

/* The due time of message index (0-based) in open loop, as an offset
 * from the start. In a double it is within about a nanosecond for
 * offsets up to 2^53 ns, about 104 days. */
static uint64_t blast_run_due_offset(const struct blast_run *run,
                                     uint64_t index)
{
    return (uint64_t)((double)index * 1e9 / (double)run->options->rate);
}

/* How many messages are due at now in open loop. */
static uint64_t blast_run_due_count(const struct blast_run *run)
{
    uint64_t elapsed = run->now_ns - run->start_ns;
    uint64_t due = (uint64_t)((double)elapsed * (double)run->options->rate
                              / 1e9) + 1;

    return due < run->total ? due : run->total;
}

/* Whether a message can be handed out now. */
static bool blast_run_available(const struct blast_run *run)
{
    if (run->stopping || run->issued >= run->total) {
        return false;
    }
    return !run->open_loop || run->issued < blast_run_due_count(run);
}

uint64_t blast_run_requested(const struct blast_run *run)
{
    /* A closed-loop --duration has no schedule, so a message handed out
     * but dropped when the time was up was never part of the run. */
    if (run->total == UINT64_MAX) {
        return run->issued - run->results.not_started;
    }
    return run->total;
}

uint64_t blast_run_wall_us(const struct blast_run *run, uint64_t ns)
{
    return run->start_wall_us + (ns - run->start_ns) / 1000u;
}

/* Quota of messages for a new connection of slot. */
static uint64_t blast_run_quota(const struct blast_run *run, unsigned slot)
{
    uint64_t per = run->options->per_connection;

    if (run->shares) {
        return run->total / run->conn_count
               + (slot < run->total % run->conn_count ? 1 : 0);
    }
    return per != 0 ? per : UINT64_MAX;
}

bool blast_run_take(struct blast_run *run, struct blast_msg *msg)
{
    if (!blast_run_available(run)) {
        return false;
    }
    msg->seq = ++run->issued;
    msg->start_ns = run->open_loop
                        ? run->start_ns
                              + blast_run_due_offset(run, msg->seq - 1)
                        : run->now_ns;
    if (run->issued == run->total) {
        /* Idle connections will get nothing more: the refill hook makes
         * them QUIT. */
        reactor_defer(run->reactor, &run->refill_hook);
    }
    return true;
}

bool blast_run_more_later(const struct blast_run *run)
{
    return run->open_loop && !run->stopping && run->issued < run->total;
}

/* Whether a free slot could still be given work, now or later. */
static bool blast_run_has_work(const struct blast_run *run)
{
    if (run->shares || run->stopping) {
        return false;
    }
    return run->issued < run->total;
}

/* Hand the messages available now to idle connections, then to new
 * connections in free slots. A connection that fails at once returns its
 * slot at once, so a budget limits the opens to one per free slot in a
 * turn. The refill hook tries again in the next turn. */
static void blast_run_dispatch(struct blast_run *run)
{
    unsigned budget = run->free_count;

    if (run->shares) {
        return;
    }
    while (blast_run_available(run)) {
        struct blast_msg msg;
        unsigned slot;

        if (run->idle_count > 0) {
            struct blast_conn *c = run->idle[run->idle_count - 1];

            blast_run_take(run, &msg);
            blast_conn_give(c, &msg);
            continue;
        }
        if (budget == 0 || run->free_count == 0) {
            break;
        }
        budget--;
        slot = run->free_slots[--run->free_count];
        blast_run_take(run, &msg);
        blast_conn_open(run->conns[slot], blast_run_quota(run, slot), false,
                        &msg);
    }
}

/* --idle: open the next slots while fewer than BLAST_HOLD_CONNECTING_MAX
 * connections are on their way to being held. A connection that fails
 * at once returns its slot through the refill hook, so this does not
 * recurse. */
static void blast_run_open_holds(struct blast_run *run)
{
    while (run->hold && !run->stopping && run->hold_next < run->conn_count
           && run->active - run->idle_count < BLAST_HOLD_CONNECTING_MAX) {
        blast_conn_open(run->conns[run->hold_next++], 0, false, NULL);
    }
}

/* Dispatch the messages available now. Once every message is handed out,
 * make the idle connections QUIT. Stop the reactor when no connection is
 * open and none will be. */
static void blast_run_settle(struct blast_run *run)
{
    blast_run_open_holds(run);
    blast_run_dispatch(run);
    if ((!run->hold && run->issued >= run->total) || run->stopping) {
        while (run->idle_count > 0) {
            blast_conn_quit(run->idle[run->idle_count - 1]);
        }
    }
    /* Slots that gave up leave nothing to wait for, so when all have
     * given up the run ends even with work left. */
    if (run->active == 0 && run->retrying == 0
        && run->free_count + run->dead_count == run->conn_count
        && (!blast_run_has_work(run) || run->free_count == 0)) {
        reactor_stop(run->reactor);
    }
}

static void blast_run_on_refill(struct reactor_hook *hook)
{
    struct blast_run *run = hook->owner;

    run->now_ns = bench_monotonic_ns();
    blast_run_settle(run);
}

void blast_run_conn_closed(struct blast_run *run, unsigned slot)
{
    run->free_slots[run->free_count++] = slot;
    reactor_defer(run->reactor, &run->refill_hook);
}

bool blast_run_holding(const struct blast_run *run)
{
    return run->hold && !run->stopping;
}

void blast_run_conn_held(struct blast_run *run)
{
    struct blast_results *results = &run->results;

    if (run->idle_count > results->held_max) {
        results->held_max = run->idle_count;
    }
    if (run->idle_count == run->conn_count && results->all_held_ns == 0) {
        results->all_held_ns = run->now_ns;
    }
    reactor_defer(run->reactor, &run->refill_hook);
}

void blast_run_conn_dead(struct blast_run *run)
{
    run->dead_count++;
    reactor_defer(run->reactor, &run->refill_hook);
}

uint64_t blast_run_progress(const struct blast_run *run)
{
    const struct blast_results *r = &run->results;

    return r->accepted + bench_code_tally_total(&r->rejected) + r->failed
           - r->given_up;
}

void blast_run_record_body(struct blast_run *run, int code,
                           uint64_t latency_ns, size_t bytes, unsigned rcpts)
{
    struct blast_results *results = &run->results;

    bench_code_tally_add(&results->body_codes, code);
    bench_histogram_record(&results->data, latency_ns);
    bench_histogram_record(&run->second_data, latency_ns);
    results->last_reply_ns = run->now_ns;
    if (code >= 200 && code < 300) {
        results->accepted++;
        results->bytes_accepted += bytes;
        results->accepted_rcpts += rcpts;
    } else {
        bench_code_tally_add(&results->rejected, code);
    }
}

/* Close the interval that ends at now: append it to the series. */
static int blast_run_close_interval(struct blast_run *run, uint64_t now)
{
    const struct blast_results *results = &run->results;
    struct blast_second *entry;
    double seconds = (double)(now - run->tick_ns) / 1e9;

    if (run->series_len == run->series_cap) {
        size_t cap = run->series_cap == 0 ? 64 : run->series_cap * 2;
        struct blast_second *grown = realloc(run->series,
                                             cap * sizeof(*grown));

        if (grown == NULL) {
            return -1;
        }
        run->series = grown;
        run->series_cap = cap;
    }
    entry = &run->series[run->series_len++];
    *entry = (struct blast_second){
        .t = (double)(now - run->start_ns) / 1e9,
        .sent = results->sent - run->tick_base.sent,
        .accepted = results->accepted - run->tick_base.accepted,
        .bytes = results->bytes_accepted - run->tick_base.bytes,
        .failed = results->failed - run->tick_base.failed,
        .data_replies = run->second_data.count,
        .data_p50_ns = bench_histogram_percentile(&run->second_data, 50),
        .data_p90_ns = bench_histogram_percentile(&run->second_data, 90),
        .data_p99_ns = bench_histogram_percentile(&run->second_data, 99),
        .data_p999_ns = bench_histogram_percentile(&run->second_data,
                                                   99.9),
    };
    entry->rate = bench_rate((double)entry->accepted, seconds);
    run->tick_ns = now;
    run->tick_base = (struct blast_second){
        .sent = results->sent,
        .accepted = results->accepted,
        .bytes = results->bytes_accepted,
        .failed = results->failed,
    };
    bench_histogram_init(&run->second_data);
    return 0;
}

static void blast_run_print_progress(const struct blast_run *run,
                                     const struct blast_second *entry)
{
    fprintf(stderr,
            "blast: elapsed=%.0fs sent=%" PRIu64 " accepted=%" PRIu64
            " rate=%.0f/s rejected=%" PRIu64 " failed=%" PRIu64
            " conn_failures=%" PRIu64 "\n",
            entry->t, run->results.sent, run->results.accepted, entry->rate,
            bench_code_tally_total(&run->results.rejected),
            run->results.failed, run->results.connection_failures);
}

static void blast_run_on_tick(struct reactor_timer *timer)
{
    struct blast_run *run = timer->owner;
    uint64_t now = bench_monotonic_ns();
    const struct blast_second *entry;
    uint64_t next;

    if (blast_run_close_interval(run, now) < 0) {
        fprintf(stderr, "blast: out of memory for the per-second series\n");
        return;
    }
    entry = &run->series[run->series_len - 1];
    if (run->hold) {
        fprintf(stderr,
                "blast: elapsed=%.0fs held=%u opened=%" PRIu64
                " closed_by_server=%" PRIu64 " conn_failures=%" PRIu64 "\n",
                entry->t, run->idle_count, run->results.connections_opened,
                run->results.idle_closed, run->results.connection_failures);
    } else {
        blast_run_print_progress(run, entry);
    }

    /* The next tick is due at the next whole second of the run. */
    next = ((now - run->start_ns) / BLAST_NS_PER_S + 1) * BLAST_NS_PER_S
           + run->start_ns;
    blast_run_arm_at(run, timer, next);
}

/* Open loop: hand out what is due, then sleep until the next due time.
 * Timers have millisecond resolution, so a message goes out up to a
 * millisecond after its due time. Its latencies count from the due time,
 * so that delay is part of them. */
static void blast_run_on_pacer(struct reactor_timer *timer)
{
    struct blast_run *run = timer->owner;
    uint64_t next;

    run->now_ns = bench_monotonic_ns();
    blast_run_settle(run);
    if (run->issued >= run->total || run->stopping) {
        return;
    }
    /* The next message is due after now, so this cannot spin. */
    next = run->start_ns
           + blast_run_due_offset(run, blast_run_due_count(run));
    blast_run_arm_at(run, timer, next);
}

/* Issue no more messages. With --idle, count the connections held now
 * (settle then QUITs them) and give their QUIT replies BLAST_RUN_DRAIN_S,
 * which an interrupt arms anyway. */
static void blast_run_stop(struct blast_run *run, bool arm_drain)
{
    if (run->stopping) {
        return;
    }
    run->stopping = true;
    if (!run->hold) {
        return;
    }
    run->results.held_at_end = run->idle_count;
    /* Slots never opened are free, so that the run can end. */
    while (run->hold_next < run->conn_count) {
        run->free_slots[run->free_count++] = run->hold_next++;
    }
    if (arm_drain) {
        blast_run_arm_at(run, &run->drain_timer,
                         run->now_ns + BLAST_RUN_DRAIN_S * BLAST_NS_PER_S);
    }
}

static void blast_run_on_deadline(struct reactor_timer *timer)
{
    struct blast_run *run = timer->owner;

    run->now_ns = bench_monotonic_ns();
    blast_run_stop(run, true);
    blast_run_settle(run);
}

static void blast_run_on_drain(struct reactor_timer *timer)
{
    struct blast_run *run = timer->owner;

    run->drain_expired = true;
    reactor_stop(run->reactor);
}

void blast_run_interrupt(struct blast_run *run, int signo)
{
    if (run->interrupted != 0) {
        return;
    }
    run->interrupted = signo != 0 ? signo : -1;
    run->now_ns = bench_monotonic_ns();
    blast_run_stop(run, false);
    blast_run_arm_at(run, &run->drain_timer,
                     run->now_ns + BLAST_RUN_DRAIN_S * BLAST_NS_PER_S);
    blast_run_settle(run);
}

static void blast_run_on_timeout(struct reactor_timer *timer)
{
    struct blast_run *run = timer->owner;

    run->timed_out = true;
    reactor_stop(run->reactor);
}

/* Warn when --size is below the header that blast writes, because each
 * message is then that header alone and larger than --size. */
static void blast_run_warn_small_size(struct blast_run *run,
                                      const struct blast_header_fields *sample)
{
    const struct blast_body *body = blast_message_body(&run->message, 1);
    char header[BLAST_HEADER_MAX];
    size_t header_len;

    if (body->len > 0) {
        return;
    }
    header_len = blast_message_header(&run->message, body, sample, header);
    if (run->options->size < header_len) {
        fprintf(stderr, "blast: warning: --size %" PRIu64 " is below the "
                "%zu-byte header, so each message is about %zu bytes of "
                "header and no body\n", run->options->size, header_len,
                header_len);
    }
}

/* Build the message bodies. Returns 0, -1 after printing why, or -2
 * after printing why --body-dir cannot be used. */
static int blast_run_messages(struct blast_run *run)
{
    const struct blast_options *o = run->options;
    char error[512];
    char sender[SMTP_PATH_MAX];
    char recipient[SMTP_PATH_MAX];
    /* A sample from the end of the run, whose sequence numbers have the
     * most digits. */
    uint64_t seq = run->total == UINT64_MAX ? 1000000 : run->total;
    struct blast_template_vars vars = {.seq = seq, .rcpt = 1, .domain = 1};
    struct blast_header_fields sample = {
        .seq = seq,
        /* 16 digits, as every time from 2001 to 2286 has. */
        .sent_us = UINT64_C(1000000000000000),
        .rcpts = run->rcpts,
        .from = sender,
        .to = recipient,
    };
    size_t len;

    if (o->body_dir != NULL) {
        size_t skipped;

        if (blast_message_init_dir(&run->message, o->body_dir, &skipped,
                                   error, sizeof(error)) < 0) {
            fprintf(stderr, "blast: invalid --body-dir \"%s\": %s; expected "
                            "a directory of message files\n",
                    o->body_dir, error);
            return -2;
        }
        if (skipped > 0) {
            fprintf(stderr, "blast: warning: --body-dir \"%s\": skipped %zu "
                            "files that do not start with a header line "
                            "(Name: value)\n", o->body_dir, skipped);
        }
        return 0;
    }
    /* The options parser has checked that both expansions fit. */
    blast_template_expand(o->from, &vars, sender, sizeof(sender), &len);
    blast_template_expand(o->to, &vars, recipient, sizeof(recipient), &len);
    if (blast_message_init_synthetic(&run->message, o->helo,
                                     (size_t)o->size, &sample) < 0) {
        fprintf(stderr, "blast: out of memory building the message\n");
        return -1;
    }
    blast_run_warn_small_size(run, &sample);
    return 0;
}

/* blast_run_setup_tls makes the client context of --starttls and the
 * AUTH PLAIN line of --auth (RFC 4616: authzid empty, then user and
 * password, NUL-separated). Returns 0 or -1 after printing why. */
static int blast_run_setup_tls(struct blast_run *run,
                               const struct blast_options *opts)
{
    struct tls_context_options tls_options = {
        .role = TLS_ROLE_CLIENT,
        .min_version = TLS_VERSION_1_2,
    };
    uint8_t plain[2 * BLAST_AUTH_PART_MAX + 2];
    size_t user_len;
    size_t pass_len;
    size_t len;
    char err[512];

    if (opts->starttls
        && tls_context_new(&run->tls, &tls_options, err, sizeof(err)) < 0) {
        fprintf(stderr, "blast: TLS: %s\n", err);
        return -1;
    }
    if (opts->auth == NULL) {
        return 0;
    }
    user_len = (size_t)(strchr(opts->auth, ':') - opts->auth);
    pass_len = strlen(opts->auth + user_len + 1);
    plain[0] = '\0';
    memcpy(plain + 1, opts->auth, user_len);
    plain[1 + user_len] = '\0';
    memcpy(plain + 2 + user_len, opts->auth + user_len + 1, pass_len);
    len = snprintf(run->auth_line, sizeof(run->auth_line), "AUTH PLAIN ");
    len += EVP_EncodeBlock((uint8_t *)run->auth_line + len, plain,
                           2 + user_len + pass_len);
    snprintf(run->auth_line + len, sizeof(run->auth_line) - len, "\r\n");
    return 0;
}

int blast_run_init(struct blast_run *run, const struct blast_options *opts)
{
    uint64_t count = opts->connections;
    int rc;

    run->options = opts;
    snprintf(run->ehlo_line, sizeof(run->ehlo_line), "EHLO %s\r\n",
             opts->helo);
    snprintf(run->helo_line, sizeof(run->helo_line), "HELO %s\r\n",
             opts->helo);
    if (blast_run_setup_tls(run, opts) < 0) {
        return -1;
    }
    blast_template_init(&run->from, opts->from);
    blast_template_init(&run->to, opts->to);
    run->rcpts = (unsigned)opts->rcpts;
    run->open_loop = opts->rate != 0;
    run->total = opts->messages;
    if (opts->duration_s != 0) {
        run->total = run->open_loop ? opts->duration_s * opts->rate
                                    : UINT64_MAX;
    }
    run->hold = opts->idle;
    if (run->hold) {
        run->total = 0;
    }
    run->shares = !run->open_loop && opts->duration_s == 0
                  && opts->per_connection == 0;
    if (run->shares && count > run->total) {
        count = run->total;
    }
    bench_histogram_init(&run->results.connect);
    bench_histogram_init(&run->results.mail);
    bench_histogram_init(&run->results.rcpt);
    bench_histogram_init(&run->results.data);
    bench_histogram_init(&run->second_data);

    rc = run->hold ? 0 : blast_run_messages(run);
    if (rc < 0) {
        return rc;
    }
    run->conns = calloc(count, sizeof(*run->conns));
    run->free_slots = calloc(count, sizeof(*run->free_slots));
    run->idle = calloc(count, sizeof(*run->idle));
    if (run->conns == NULL || run->free_slots == NULL || run->idle == NULL) {
        fprintf(stderr, "blast: out of memory for %" PRIu64
                        " connections\n", count);
        return -1;
    }
    run->conn_count = (unsigned)count;
    for (unsigned i = 0; i < run->conn_count; i++) {
        run->conns[i] = blast_conn_new(run, i);
        if (run->conns[i] == NULL) {
            fprintf(stderr, "blast: out of memory for %" PRIu64
                            " connections\n", count);
            return -1;
        }
        /* Slot 0 on top, so connections open in slot order. */
        run->free_slots[i] = run->conn_count - 1 - i;
    }
    run->free_count = run->conn_count;

    rc = reactor_new(&run->reactor, NULL);
    if (rc < 0) {
        fprintf(stderr, "blast: creating the reactor failed: %s\n",
                strerror(-rc));
        return -1;
    }
    run->timeout_timer = (struct reactor_timer){
        .fire = blast_run_on_timeout, .owner = run};
    run->deadline_timer = (struct reactor_timer){
        .fire = blast_run_on_deadline, .owner = run};
    run->pacer_timer = (struct reactor_timer){.fire = blast_run_on_pacer,
                                              .owner = run};
    run->tick_timer = (struct reactor_timer){.fire = blast_run_on_tick,
                                             .owner = run};
    run->drain_timer = (struct reactor_timer){.fire = blast_run_on_drain,
                                              .owner = run};
    run->refill_hook = (struct reactor_hook){.run = blast_run_on_refill,
                                             .owner = run};
    return 0;
}

int blast_run_execute(struct blast_run *run)
{
    const struct blast_options *o = run->options;
    int rc;

    run->start_ns = bench_monotonic_ns();
    run->start_wall_us = bench_wall_us();
    run->now_ns = run->start_ns;
    run->tick_ns = run->start_ns;
    blast_run_arm_at(run, &run->timeout_timer,
                     run->start_ns + o->timeout_s * BLAST_NS_PER_S);
    blast_run_arm_at(run, &run->tick_timer, run->start_ns + BLAST_NS_PER_S);
    /* In open loop every message is due before the duration ends; the
     * deadline drops those still waiting for a free connection. */
    if (o->duration_s != 0) {
        blast_run_arm_at(run, &run->deadline_timer,
                         run->start_ns + o->duration_s * BLAST_NS_PER_S);
    }

    if (run->shares) {
        run->free_count = 0;
        for (unsigned i = 0; i < run->conn_count; i++) {
            blast_conn_open(run->conns[i], blast_run_quota(run, i), true,
                            NULL);
        }
    } else if (run->hold) {
        run->free_count = 0;
        blast_run_open_holds(run);
    } else if (run->open_loop) {
        blast_run_on_pacer(&run->pacer_timer);
    } else {
        blast_run_dispatch(run);
    }
    rc = reactor_run(run->reactor);
    run->end_ns = bench_monotonic_ns();
    if (rc < 0) {
        fprintf(stderr, "blast: the reactor failed: %s\n", strerror(-rc));
        return -1;
    }
    if (run->end_ns > run->tick_ns
        && blast_run_close_interval(run, run->end_ns) < 0) {
        fprintf(stderr, "blast: out of memory for the per-second series\n");
    }
    return 0;
}

void blast_run_cleanup(struct blast_run *run)
{
    /* Connections may still have operations in flight after a timeout;
     * the reactor abandons them before their memory is released. */
    reactor_free(run->reactor);
    if (run->conns != NULL) {
        for (unsigned i = 0; i < run->conn_count; i++) {
            blast_conn_free(run->conns[i]);
        }
    }
    free(run->conns);
    free(run->free_slots);
    free(run->idle);
    free(run->series);
    blast_message_cleanup(&run->message);
    tls_context_unref(run->tls);
}

/* Queue reports: list, show and stats as text or JSON. Sizes are bytes
 * of the stored body, times are wall clock seconds. */
#include "core/queue_report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/queue.h"
#include "core/queue_admin.h"
#include "core/queue_report_escape.h"

/* Maximum header bytes that queue_report_show() writes. */
#define QUEUE_REPORT_HEADER_MAX (64u * 1024)

static const char *queue_report_state(const struct queue_rcpt *rcpt)
{
    switch (rcpt->state) {
    case QUEUE_RCPT_QUEUED:
        if (rcpt->held) {
            return "held";
        }
        return rcpt->attempts > 0 ? "deferred" : "queued";
    case QUEUE_RCPT_DELIVERED:
        return "delivered";
    case QUEUE_RCPT_BOUNCED:
        return "bounced";
    case QUEUE_RCPT_DELETED:
        return "deleted";
    }
    return "unknown";
}

/* queue_report_finish turns a stream error into -1 with errno set. */
static int queue_report_finish(FILE *out)
{
    if (fflush(out) != 0 || ferror(out)) {
        if (errno == 0) {
            errno = EIO;
        }
        return -1;
    }
    return 0;
}

/* queue_report_text_word writes text as one word of a report line: like
 * queue_report_text(), with tabs and the bytes in also written as "\xHH"
 * too. */
static void queue_report_text_word(FILE *out, const char *text,
                                   const char *also)
{
    const char *p = text;

    while (*p != '\0') {
        size_t run = strcspn(p, also);

        run = strcspn(p, "\t") < run ? strcspn(p, "\t") : run;
        queue_report_text(out, p, run);
        p += run;
        if (*p != '\0') {
            fprintf(out, "\\x%02X", (unsigned char)*p);
            p++;
        }
    }
}

/* queue_report_text_field writes an optional string field, "-" when it is
 * empty, escaping the bytes in also. */
static void queue_report_text_field(FILE *out, const char *text,
                                    const char *also)
{
    if (text == NULL || text[0] == '\0') {
        fputc('-', out);
        return;
    }
    queue_report_text_word(out, text, also);
}

static void queue_report_text_addr(FILE *out, const char *address)
{
    /* A quoted local part may hold '>', so only the last one is bare. */
    fputc('<', out);
    queue_report_text_word(out, address, " >");
    fputc('>', out);
}

/* queue_report_json_time writes "name": epoch, "name_iso": "...", with 0
 * (due now, for next_attempt) written as an ISO value of null. */
static void queue_report_json_time(FILE *out, const char *name, time_t t)
{
    char iso[QUEUE_REPORT_ISO_MAX];

    fprintf(out, "\"%s\":%lld,\"%s_iso\":", name, (long long)t, name);
    if (t == 0) {
        fputs("null", out);
        return;
    }
    queue_report_iso_time(iso, sizeof(iso), t);
    queue_report_json_str(out, iso);
}

static void queue_report_text_next(FILE *out, time_t next)
{
    char iso[QUEUE_REPORT_ISO_MAX];

    if (next == 0) {
        fputs("now", out);
        return;
    }
    queue_report_iso_time(iso, sizeof(iso), next);
    fputs(iso, out);
}

static const char *const queue_report_notify_names[] = {
    "SUCCESS", "FAILURE", "DELAY", "NEVER",
};

static void queue_report_notify(FILE *out, unsigned notify, bool json)
{
    bool first = true;

    for (size_t bit = 0; bit < 4; bit++) {
        if ((notify & (1u << bit)) == 0) {
            continue;
        }
        fputs(first ? "" : ",", out);
        fprintf(out, json ? "\"%s\"" : "%s", queue_report_notify_names[bit]);
        first = false;
    }
    if (first && !json) {
        fputs("-", out);
    }
}

/* ---- list ------------------------------------------------------------ */

/* queue_report_text_rcpt writes the indented line start that list and
 * show share: address, state, attempts and next attempt. */
static void queue_report_text_rcpt(FILE *out, const struct queue_rcpt *rcpt)
{
    fputs("    ", out);
    queue_report_text_addr(out, rcpt->address);
    fprintf(out, " %s attempts=%" PRIu32 " next=", queue_report_state(rcpt),
            rcpt->attempts);

    /* A final recipient has no next attempt, and a held one none until
     * its release, whatever time the journal kept for it. */
    if (rcpt->state != QUEUE_RCPT_QUEUED || rcpt->held) {
        fputc('-', out);
        return;
    }
    queue_report_text_next(out, rcpt->next_attempt);
}

/* queue_report_waits calls wait_fn for recipient index of msg and
 * returns whether it waits for a breaker. A final or held recipient, or
 * a NULL wait_fn, gets false without a call. */
static bool queue_report_waits(const struct queue_msg *msg, size_t index,
                               queue_report_wait_fn wait_fn, void *wait_arg,
                               struct queue_report_wait *wait)
{
    const struct queue_rcpt *rcpt = &msg->rcpts[index];

    memset(wait, 0, sizeof(*wait));
    if (wait_fn == NULL || rcpt->state != QUEUE_RCPT_QUEUED || rcpt->held) {
        return false;
    }
    wait_fn(wait_arg, msg, index, wait);
    return wait->breaker;
}

static void queue_report_list_text_msg(FILE *out, const struct queue_msg *msg,
                                       time_t now,
                                       queue_report_wait_fn wait_fn,
                                       void *wait_arg)
{
    char age[32];

    queue_report_age(age, sizeof(age), (long long)(now - msg->arrival));
    fprintf(out, "%-16s %10zu %9s ", msg->id, msg->body_len, age);
    queue_report_text_addr(out, msg->sender);
    if (queue_msg_in_flight(msg)) {
        fputs(" (delivery under way)", out);
    }
    fputc('\n', out);

    for (size_t i = 0; i < msg->rcpt_count; i++) {
        struct queue_report_wait wait;

        queue_report_text_rcpt(out, &msg->rcpts[i]);
        if (queue_report_waits(msg, i, wait_fn, wait_arg, &wait)) {
            fputs(" waiting=breaker probe=", out);
            queue_report_text_next(out, wait.probe);
        }
        fputc('\n', out);
    }
}

static void queue_report_json_rcpt(FILE *out, const struct queue_rcpt *rcpt)
{
    fputs("{\"address\":", out);
    queue_report_json_str(out, rcpt->address);
    fprintf(out, ",\"state\":\"%s\",\"attempts\":%" PRIu32 ",",
            queue_report_state(rcpt), rcpt->attempts);
    if (rcpt->state != QUEUE_RCPT_QUEUED || rcpt->held) {
        fputs("\"next_attempt\":null,\"next_attempt_iso\":null", out);
        return;
    }
    queue_report_json_time(out, "next_attempt", rcpt->next_attempt);
}

/* queue_report_json_msg writes the fields list and show share, without
 * the braces; show adds its own to each recipient when show is set, and
 * list adds the wait that wait_fn reports when that is not NULL. */
static void queue_report_json_msg(FILE *out, const struct queue_msg *msg,
                                  time_t now, bool show,
                                  queue_report_wait_fn wait_fn,
                                  void *wait_arg)
{
    fprintf(out, "\"id\":\"%s\",\"size\":%zu,", msg->id, msg->body_len);
    queue_report_json_time(out, "arrival", msg->arrival);
    fprintf(out, ",\"age_seconds\":%lld,\"in_flight\":%s,\"sender\":",
            (long long)(now - msg->arrival),
            queue_msg_in_flight(msg) ? "true" : "false");
    queue_report_json_str(out, msg->sender);
    fputs(",\"recipients\":[", out);
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &msg->rcpts[i];
        struct queue_report_wait wait;

        fputs(i > 0 ? "," : "", out);
        queue_report_json_rcpt(out, rcpt);
        if (queue_report_waits(msg, i, wait_fn, wait_arg, &wait)) {
            fputs(",\"waiting\":\"breaker\",", out);
            queue_report_json_time(out, "probe", wait.probe);
        }
        if (show) {
            fputs(",\"notify\":[", out);
            queue_report_notify(out, rcpt->dsn_notify, true);
            fputs("],\"orcpt\":", out);
            queue_report_json_str(out, rcpt->orcpt);
            fputs(",\"last_error\":", out);
            queue_report_json_str(out, rcpt->last_error);
        }
        fputc('}', out);
    }
    fputc(']', out);
}

int queue_report_list(struct queue *queue, FILE *out,
                      enum queue_report_format format)
{
    return queue_report_list_waits(queue, out, format, NULL, NULL);
}

int queue_report_list_waits(struct queue *queue, FILE *out,
                            enum queue_report_format format,
                            queue_report_wait_fn wait_fn, void *wait_arg)
{
    time_t now = time(NULL);
    size_t count = 0;

    errno = 0;
    if (format == QUEUE_REPORT_JSON) {
        fputs("{\"messages\":[", out);
    } else {
        fprintf(out, "%-16s %10s %9s %s\n", "ID", "SIZE", "AGE", "SENDER");
    }

    for (struct queue_msg *msg = queue_first(queue); msg != NULL;
         msg = queue_next(queue, msg)) {
        if (format == QUEUE_REPORT_JSON) {
            fputs(count > 0 ? "," : "", out);
            fputc('{', out);
            queue_report_json_msg(out, msg, now, false, wait_fn, wait_arg);
            fputc('}', out);
        } else {
            queue_report_list_text_msg(out, msg, now, wait_fn, wait_arg);
        }
        count++;
    }

    if (format == QUEUE_REPORT_JSON) {
        fprintf(out, "],\"count\":%zu}\n", count);
    } else {
        fprintf(out, "%zu messages\n", count);
    }
    return queue_report_finish(out);
}

/* ---- show ------------------------------------------------------------ */

/* queue_report_header_len returns the length of the header section of
 * msg's body, up to and including the empty line that ends it, or the
 * whole body when there is none, and stores it in *full. The returned
 * length is at most QUEUE_REPORT_HEADER_MAX, which is what a report
 * shows. */
static size_t queue_report_header_len(const struct queue_msg *msg,
                                      size_t *full)
{
    size_t len = msg->body_len;
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (msg->body[i] != '\n') {
            continue;
        }
        if (i == start || (i == start + 1 && msg->body[start] == '\r')) {
            len = i + 1;
            break;
        }
        start = i + 1;
    }

    *full = len;
    return len > QUEUE_REPORT_HEADER_MAX ? QUEUE_REPORT_HEADER_MAX : len;
}

/* queue_report_text_headers writes each header line indented by four
 * spaces, so no line of the message can pass for a line of the report.
 * A line of the wire form that starts with a stuffed dot loses it. */
static void queue_report_text_headers(FILE *out, const struct queue_msg *msg,
                                      size_t len)
{
    bool stuffed = (msg->flags & QUEUE_ENV_BINARYMIME) == 0;
    size_t start = 0;

    while (start < len) {
        const char *line = msg->body + start;
        const char *lf = memchr(line, '\n', len - start);
        size_t line_len = lf != NULL ? (size_t)(lf - line) : len - start;
        size_t visible_len = line_len;

        start += line_len + (lf != NULL ? 1 : 0);
        if (visible_len > 0 && line[visible_len - 1] == '\r') {
            visible_len--;
        }
        if (stuffed && visible_len > 0 && line[0] == '.') {
            line++;
            visible_len--;
        }
        fputs("    ", out);
        queue_report_text(out, line, visible_len);
        fputc('\n', out);
    }
}

static const char *queue_report_ret_name(enum queue_dsn_ret ret)
{
    switch (ret) {
    case QUEUE_DSN_RET_FULL:
        return "FULL";
    case QUEUE_DSN_RET_HDRS:
        return "HDRS";
    case QUEUE_DSN_RET_UNSET:
        break;
    }
    return NULL;
}

static void queue_report_show_text(FILE *out, const struct queue_msg *msg)
{
    const char *ret = queue_report_ret_name(msg->dsn_ret);
    char iso[QUEUE_REPORT_ISO_MAX];
    size_t full;
    size_t len = queue_report_header_len(msg, &full);

    queue_report_iso_time(iso, sizeof(iso), msg->arrival);
    fprintf(out, "id: %s\narrival: %s (%lld)\nsize: %zu bytes\nsender: ",
            msg->id, iso, (long long)msg->arrival, msg->body_len);
    queue_report_text_addr(out, msg->sender);
    fprintf(out, "\nflags:%s%s%s%s%s\n",
            (msg->flags & QUEUE_ENV_8BITMIME) ? " 8BITMIME" : "",
            (msg->flags & QUEUE_ENV_SMTPUTF8) ? " SMTPUTF8" : "",
            (msg->flags & QUEUE_ENV_BINARYMIME) ? " BINARYMIME" : "",
            (msg->flags & QUEUE_ENV_DSN) ? " DSN" : "",
            (msg->flags & ~QUEUE_ENV_AUTH) == 0 ? " -" : "");
    fprintf(out, "dsn_ret: %s\nenvid: ", ret != NULL ? ret : "-");
    queue_report_text_field(out, msg->envid, " ");
    fputs("\nauth_user: ", out);
    queue_report_text_field(out, msg->auth_user, " ");

    fputs("\nrecipients:\n", out);
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &msg->rcpts[i];

        queue_report_text_rcpt(out, rcpt);
        fputs(" notify=", out);
        queue_report_notify(out, rcpt->dsn_notify, false);
        fputs(" orcpt=", out);
        queue_report_text_field(out, rcpt->orcpt, " ");
        fputs("\n        last_error: ", out);
        queue_report_text_field(out, rcpt->last_error, "");
        fputc('\n', out);
    }

    if (full > len) {
        fprintf(out, "headers (%zu bytes, the first %zu shown):\n", full,
                len);
    } else {
        fprintf(out, "headers (%zu bytes):\n", len);
    }
    queue_report_text_headers(out, msg, len);
}

static void queue_report_show_json(FILE *out, const struct queue_msg *msg)
{
    const char *ret = queue_report_ret_name(msg->dsn_ret);
    size_t full;
    size_t len = queue_report_header_len(msg, &full);

    fputc('{', out);
    queue_report_json_msg(out, msg, time(NULL), true, NULL, NULL);
    fprintf(out, ",\"flags\":{\"8bitmime\":%s,\"smtputf8\":%s,"
            "\"binarymime\":%s,\"dsn\":%s}",
            (msg->flags & QUEUE_ENV_8BITMIME) ? "true" : "false",
            (msg->flags & QUEUE_ENV_SMTPUTF8) ? "true" : "false",
            (msg->flags & QUEUE_ENV_BINARYMIME) ? "true" : "false",
            (msg->flags & QUEUE_ENV_DSN) ? "true" : "false");
    fputs(",\"dsn_ret\":", out);
    queue_report_json_str(out, ret);
    fputs(",\"envid\":", out);
    queue_report_json_str(out, msg->envid);
    fputs(",\"auth_user\":", out);
    queue_report_json_str(out, msg->auth_user);

    /* The wire form goes out as stored, dot-stuffing included, so a
     * script sees the exact bytes. */
    fprintf(out, ",\"headers_size\":%zu,\"headers_truncated\":%s,"
            "\"headers\":", full, full > len ? "true" : "false");
    queue_report_json(out, msg->body, len);
    fputs("}\n", out);
}

int queue_report_show(struct queue *queue, const char *id, FILE *out,
                      enum queue_report_format format)
{
    struct queue_msg *msg = queue_find(queue, id);

    if (msg == NULL) {
        return -1;
    }
    errno = 0;
    if (format == QUEUE_REPORT_JSON) {
        queue_report_show_json(out, msg);
    } else {
        queue_report_show_text(out, msg);
    }
    return queue_report_finish(out);
}

/* ---- stats ----------------------------------------------------------- */

enum queue_report_count {
    QUEUE_COUNT_QUEUED,
    QUEUE_COUNT_DEFERRED,
    QUEUE_COUNT_HELD,
    QUEUE_COUNT_DELIVERED,
    QUEUE_COUNT_BOUNCED,
    QUEUE_COUNT_DELETED,
    QUEUE_COUNT_MAX,
};

static const char *const queue_report_count_names[QUEUE_COUNT_MAX] = {
    "queued", "deferred", "held", "delivered", "bounced", "deleted",
};

/* queue_report_domain: one destination domain, lower case, and its
 * recipients still QUEUED. */
struct queue_report_domain {
    char *name;
    size_t count;
};

static int queue_report_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int queue_report_compare_domains(const void *a, const void *b)
{
    const struct queue_report_domain *x = a;
    const struct queue_report_domain *y = b;

    if (x->count != y->count) {
        return x->count < y->count ? 1 : -1;
    }
    return strcmp(x->name, y->name);
}

/* queue_report_domain_of returns a lower-case copy of the part after the
 * last '@' of address, "" when it has none. */
static char *queue_report_domain_of(const char *address)
{
    const char *at = strrchr(address, '@');
    char *copy = strdup(at != NULL ? at + 1 : "");

    for (char *p = copy; p != NULL && *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    return copy;
}

/* queue_report_collect counts recipients by state into counts and stores
 * the domains of QUEUED recipients, malloc'd, in *names. */
static int queue_report_collect(struct queue *queue, size_t *counts,
                                size_t *messages, char ***names,
                                size_t *name_count)
{
    size_t capacity = 0;

    *names = NULL;
    *name_count = 0;
    for (struct queue_msg *msg = queue_first(queue); msg != NULL;
         msg = queue_next(queue, msg)) {
        (*messages)++;
        for (size_t i = 0; i < msg->rcpt_count; i++) {
            const struct queue_rcpt *rcpt = &msg->rcpts[i];
            const char *state = queue_report_state(rcpt);

            for (size_t c = 0; c < QUEUE_COUNT_MAX; c++) {
                if (strcmp(state, queue_report_count_names[c]) == 0) {
                    counts[c]++;
                }
            }
            if (rcpt->state != QUEUE_RCPT_QUEUED) {
                continue;
            }
            if (*name_count == capacity) {
                size_t grown = capacity == 0 ? 64 : capacity * 2;
                char **bigger = realloc(*names, grown * sizeof(**names));

                if (bigger == NULL) {
                    return -1;
                }
                *names = bigger;
                capacity = grown;
            }
            (*names)[*name_count] = queue_report_domain_of(rcpt->address);
            if ((*names)[*name_count] == NULL) {
                return -1;
            }
            (*name_count)++;
        }
    }
    return 0;
}

/* queue_report_group sorts names and turns runs of one name into domains
 * ordered by count, largest first. The domains borrow the names. */
static struct queue_report_domain *queue_report_group(char **names,
                                                      size_t count,
                                                      size_t *groups)
{
    struct queue_report_domain *domains;

    *groups = 0;
    domains = malloc((count > 0 ? count : 1) * sizeof(*domains));
    if (domains == NULL) {
        return NULL;
    }
    qsort(names, count, sizeof(*names), queue_report_compare_names);
    for (size_t i = 0; i < count; i++) {
        if (*groups > 0 && strcmp(domains[*groups - 1].name, names[i]) == 0) {
            domains[*groups - 1].count++;
            continue;
        }
        domains[*groups].name = names[i];
        domains[*groups].count = 1;
        (*groups)++;
    }
    qsort(domains, *groups, sizeof(*domains), queue_report_compare_domains);
    return domains;
}

static void queue_report_stats_text(FILE *out, const size_t *counts,
                                    size_t messages,
                                    const struct queue_report_domain *domains,
                                    size_t groups)
{
    fprintf(out, "messages: %zu\nrecipients by state:\n", messages);
    for (size_t c = 0; c < QUEUE_COUNT_MAX; c++) {
        fprintf(out, "    %-10s %zu\n", queue_report_count_names[c],
                counts[c]);
    }
    fputs("undelivered recipients (queued, deferred or held) by "
          "domain:\n", out);
    for (size_t i = 0; i < groups; i++) {
        fprintf(out, "    %10zu ", domains[i].count);
        if (domains[i].name[0] == '\0') {
            fputs("(no domain)", out);
        } else {
            queue_report_text(out, domains[i].name,
                              strlen(domains[i].name));
        }
        fputc('\n', out);
    }
}

static void queue_report_stats_json(FILE *out, const size_t *counts,
                                    size_t messages,
                                    const struct queue_report_domain *domains,
                                    size_t groups)
{
    fprintf(out, "{\"messages\":%zu,\"recipients\":{", messages);
    for (size_t c = 0; c < QUEUE_COUNT_MAX; c++) {
        fprintf(out, "%s\"%s\":%zu", c > 0 ? "," : "",
                queue_report_count_names[c], counts[c]);
    }
    fputs("},\"queued_by_domain\":[", out);
    for (size_t i = 0; i < groups; i++) {
        fputs(i > 0 ? ",{\"domain\":" : "{\"domain\":", out);
        queue_report_json_str(out, domains[i].name);
        fprintf(out, ",\"recipients\":%zu}", domains[i].count);
    }
    fputs("]}\n", out);
}

int queue_report_stats(struct queue *queue, FILE *out,
                       enum queue_report_format format)
{
    size_t counts[QUEUE_COUNT_MAX] = { 0 };
    struct queue_report_domain *domains = NULL;
    size_t messages = 0;
    char **names = NULL;
    size_t name_count = 0;
    size_t groups = 0;
    int rc = -1;

    if (queue_report_collect(queue, counts, &messages, &names,
                             &name_count) != 0) {
        goto out;
    }
    domains = queue_report_group(names, name_count, &groups);
    if (domains == NULL) {
        goto out;
    }

    errno = 0;
    if (format == QUEUE_REPORT_JSON) {
        queue_report_stats_json(out, counts, messages, domains, groups);
    } else {
        queue_report_stats_text(out, counts, messages, domains, groups);
    }
    rc = queue_report_finish(out);

out:
    for (size_t i = 0; i < name_count; i++) {
        free(names[i]);
    }
    free(names);
    free(domains);
    return rc;
}

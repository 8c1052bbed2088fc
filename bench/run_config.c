#include "bench/run_config.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Descriptors nftw may keep open while it walks the queue directory. */
#define RUN_WALK_FDS 16

static int run_join(char *out, const char *dir, const char *name)
{
    int len = snprintf(out, RUN_PATH_MAX, "%s/%s", dir, name);

    return len < 0 || len >= RUN_PATH_MAX ? -1 : 0;
}

int run_workdir_create(struct run_workdir *workdir)
{
    const char *tmp = getenv("TMPDIR");
    int len;

    if (tmp == NULL || tmp[0] == '\0') {
        tmp = "/tmp";
    }
    len = snprintf(workdir->dir, sizeof(workdir->dir),
                   "%s/ringrelay-bench-run.XXXXXX", tmp);
    if (len < 0 || (size_t)len >= sizeof(workdir->dir)) {
        fprintf(stderr, "run: TMPDIR \"%s\" is too long\n", tmp);
        return -1;
    }
    if (mkdtemp(workdir->dir) == NULL) {
        fprintf(stderr, "run: creating a directory in %s failed: %s\n",
                tmp, strerror(errno));
        return -1;
    }
    if (run_join(workdir->relay_config, workdir->dir, "relay.conf") < 0
        || run_join(workdir->queue_dir, workdir->dir, "queue") < 0
        || run_join(workdir->blast_stats, workdir->dir, "blast.stats") < 0
        || run_join(workdir->blast_log, workdir->dir, "blast.log") < 0
        || run_join(workdir->sink_stats, workdir->dir, "sink.stats") < 0
        || run_join(workdir->sink_log, workdir->dir, "sink.log") < 0
        || run_join(workdir->relay_log, workdir->dir, "relay.log") < 0) {
        fprintf(stderr, "run: the path %s is too long\n", workdir->dir);
        (void)run_workdir_remove(workdir);
        return -1;
    }
    return 0;
}

static int run_remove_entry(const char *path, const struct stat *info,
                            int type, struct FTW *walk)
{
    (void)info;
    (void)type;
    (void)walk;
    if (remove(path) != 0) {
        fprintf(stderr, "run: removing %s failed: %s\n", path,
                strerror(errno));
        return -1;
    }
    return 0;
}

int run_workdir_remove(const struct run_workdir *workdir)
{
    if (nftw(workdir->dir, run_remove_entry, RUN_WALK_FDS,
             FTW_DEPTH | FTW_PHYS) != 0) {
        fprintf(stderr, "run: removing %s failed: %s\n", workdir->dir,
                errno != 0 ? strerror(errno) : "see above");
        return -1;
    }
    return 0;
}

/* The largest value that ringrelay accepts for its connection limits. */
#define RUN_RELAY_MAX_CONNECTIONS 100000u

/* Append a quoted UCL string to buf at *used, escaping '"' and '\'. */
static int run_append_string(char *buf, size_t size, size_t *used,
                             const char *value)
{
    if (*used + 1 >= size) {
        return -1;
    }
    buf[(*used)++] = '"';
    for (const char *p = value; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return -1;
        }
        if ((*p == '"' || *p == '\\') && *used + 1 < size) {
            buf[(*used)++] = '\\';
        }
        if (*used + 1 >= size) {
            return -1;
        }
        buf[(*used)++] = *p;
    }
    if (*used + 1 >= size) {
        return -1;
    }
    buf[(*used)++] = '"';
    buf[*used] = '\0';
    return 0;
}

static int run_append_raw(char *buf, size_t size, size_t *used,
                          const char *text)
{
    int len = snprintf(buf + *used, size - *used, "%s", text);

    if (len < 0 || (size_t)len >= size - *used) {
        return -1;
    }
    *used += (size_t)len;
    return 0;
}

static int run_append_key(char *buf, size_t size, size_t *used,
                          const char *key, const char *value)
{
    int len = snprintf(buf + *used, size - *used, "%s = ", key);

    if (len < 0 || (size_t)len >= size - *used) {
        return -1;
    }
    *used += (size_t)len;
    if (run_append_string(buf, size, used, value) < 0) {
        return -1;
    }
    len = snprintf(buf + *used, size - *used, ";\n");
    if (len < 0 || (size_t)len >= size - *used) {
        return -1;
    }
    *used += (size_t)len;
    return 0;
}

/* Append the UCL list key = ["value", ...]; to buf at *used. */
static int run_append_list(char *buf, size_t size, size_t *used,
                           const char *key, const char *const *values,
                           size_t count)
{
    int len = snprintf(buf + *used, size - *used, "%s = [", key);

    if (len < 0 || (size_t)len >= size - *used) {
        return -1;
    }
    *used += (size_t)len;
    for (size_t i = 0; i < count; i++) {
        if ((i > 0 && run_append_raw(buf, size, used, ", ") < 0)
            || run_append_string(buf, size, used, values[i]) < 0) {
            return -1;
        }
    }
    return run_append_raw(buf, size, used, "];\n");
}

static int run_append_number(char *buf, size_t size, size_t *used,
                             const char *key, unsigned value)
{
    int len = snprintf(buf + *used, size - *used, "%s = %u;\n", key, value);

    if (len < 0 || (size_t)len >= size - *used) {
        return -1;
    }
    *used += (size_t)len;
    return 0;
}

/* Append the next hop: the sink as smarthost, or MX lookups through
 * settings->resolver, whose zone points the domains at the sink. */
static int run_append_next_hop(char *buf, size_t size, size_t *used,
                               const struct run_relay_settings *settings)
{
    if (settings->resolver == NULL) {
        return run_append_key(buf, size, used, "smarthost",
                              settings->smarthost);
    }
    if (run_append_key(buf, size, used, "resolver", settings->resolver) < 0) {
        return -1;
    }
    return run_append_raw(buf, size, used, "mx_allow_loopback = true;\n");
}

/* The loopback networks blast connects from, whichever address family
 * --listen has. Outside relay_networks the relay rejects every recipient
 * of another domain and delays its greeting. */
static const char *const run_relay_networks[] = {"127.0.0.0/8", "::1/128"};

int run_config_format(const struct run_relay_settings *settings,
                      const char *queue_dir, char *buf, size_t size)
{
    size_t used = 0;

    if (size == 0) {
        return -1;
    }
    buf[0] = '\0';
    if (run_append_key(buf, size, &used, "listen", settings->listen) < 0
        || run_append_key(buf, size, &used, "queue_dir", queue_dir) < 0
        || run_append_next_hop(buf, size, &used, settings) < 0
        || (settings->durability != NULL
            && run_append_key(buf, size, &used, "durability",
                              settings->durability) < 0)
        /* One log line per message would cost the relay more than the
         * benchmark measures. */
        || run_append_key(buf, size, &used, "log_level", "warning") < 0
        || run_append_list(buf, size, &used, "relay_networks",
                           run_relay_networks,
                           sizeof(run_relay_networks)
                               / sizeof(run_relay_networks[0])) < 0
        /* Every blast connection comes from one loopback address, so
         * the relay's connection limits are raised to their maximum. */
        || run_append_number(buf, size, &used, "max_connections",
                             RUN_RELAY_MAX_CONNECTIONS) < 0
        || run_append_number(buf, size, &used, "max_connections_per_ip",
                             RUN_RELAY_MAX_CONNECTIONS) < 0) {
        return -1;
    }
    return 0;
}

int run_config_write(const struct run_workdir *workdir,
                     const struct run_relay_settings *settings)
{
    char text[3 * RUN_PATH_MAX];
    FILE *file;
    int rc = 0;

    if (run_config_format(settings, workdir->queue_dir, text,
                          sizeof(text)) < 0) {
        fprintf(stderr, "run: cannot write a relay configuration for "
                "listen \"%s\", smarthost \"%s\": a value is too long or "
                "has a control character\n", settings->listen,
                settings->smarthost);
        return -1;
    }
    file = fopen(workdir->relay_config, "w");
    if (file == NULL) {
        fprintf(stderr, "run: creating %s failed: %s\n",
                workdir->relay_config, strerror(errno));
        return -1;
    }
    if (fputs(text, file) == EOF) {
        rc = -1;
    }
    if (fclose(file) != 0) {
        rc = -1;
    }
    if (rc < 0) {
        fprintf(stderr, "run: writing %s failed: %s\n",
                workdir->relay_config, strerror(errno));
    }
    return rc;
}

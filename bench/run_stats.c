#include "bench/run_stats.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A stats file has a few dozen short lines; anything longer is not one. */
#define RUN_STATS_FILE_MAX 65536
#define RUN_STATS_VALUE_MAX 64

static struct run_stats_entry *run_stats_find(struct run_stats *stats,
                                              const char *key)
{
    for (size_t i = 0; i < stats->count; i++) {
        if (strcmp(stats->entries[i].key, key) == 0) {
            return &stats->entries[i];
        }
    }
    return NULL;
}

/* Parse "key=value" in line[0..len) into key and *value. Returns 0 or
 * -1 for a malformed line. */
static int run_stats_parse_line(const char *line, size_t len,
                                char key[RUN_STATS_KEY_MAX], double *value)
{
    const char *equals = memchr(line, '=', len);
    char text[RUN_STATS_VALUE_MAX];
    size_t key_len;
    size_t value_len;
    char *end;

    if (equals == NULL) {
        return -1;
    }
    key_len = (size_t)(equals - line);
    value_len = len - key_len - 1;
    if (key_len == 0 || key_len >= RUN_STATS_KEY_MAX || value_len == 0
        || value_len >= sizeof(text)) {
        return -1;
    }
    memcpy(key, line, key_len);
    key[key_len] = '\0';
    memcpy(text, equals + 1, value_len);
    text[value_len] = '\0';
    errno = 0;
    *value = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(*value)
        || text[0] == ' ' || text[0] == '\t') {
        return -1;
    }
    return 0;
}

static void run_stats_add(struct run_stats *stats, const char *line,
                          size_t len)
{
    struct run_stats_entry *entry;
    char key[RUN_STATS_KEY_MAX];
    double value;

    if (run_stats_parse_line(line, len, key, &value) < 0) {
        stats->invalid_lines++;
        return;
    }
    entry = run_stats_find(stats, key);
    if (entry == NULL) {
        if (stats->count == RUN_STATS_MAX_ENTRIES) {
            stats->invalid_lines++;
            return;
        }
        entry = &stats->entries[stats->count++];
        memcpy(entry->key, key, sizeof(entry->key));
    }
    entry->value = value;
}

void run_stats_parse_text(const char *text, size_t len,
                          struct run_stats *stats)
{
    size_t start = 0;

    stats->count = 0;
    stats->invalid_lines = 0;
    while (start < len) {
        const char *newline = memchr(text + start, '\n', len - start);
        size_t end = newline ? (size_t)(newline - text) : len;
        size_t line_len = end - start;

        if (line_len > 0 && text[start + line_len - 1] == '\r') {
            line_len--;
        }
        if (line_len > 0) {
            run_stats_add(stats, text + start, line_len);
        }
        start = end + 1;
    }
}

int run_stats_read_file(const char *path, struct run_stats *stats)
{
    char *text = NULL;
    size_t len = 0;
    int saved_errno = 0;
    int rc = -1;
    FILE *file;

    file = fopen(path, "r");
    if (file == NULL) {
        return -1;
    }
    text = malloc(RUN_STATS_FILE_MAX);
    if (text == NULL) {
        saved_errno = errno;
        goto out;
    }
    len = fread(text, 1, RUN_STATS_FILE_MAX, file);
    if (ferror(file)) {
        saved_errno = EIO;
        goto out;
    }
    if (len == RUN_STATS_FILE_MAX) {
        saved_errno = EFBIG;
        goto out;
    }
    run_stats_parse_text(text, len, stats);
    rc = 0;

out:
    free(text);
    if (fclose(file) != 0 && rc == 0) {
        saved_errno = errno;
        rc = -1;
    }
    if (rc < 0) {
        errno = saved_errno;
    }
    return rc;
}

bool run_stats_get(const struct run_stats *stats, const char *key,
                   double *value)
{
    for (size_t i = 0; i < stats->count; i++) {
        if (strcmp(stats->entries[i].key, key) == 0) {
            *value = stats->entries[i].value;
            return true;
        }
    }
    return false;
}

double run_stats_value(const struct run_stats *stats, const char *key,
                       double fallback)
{
    double value = fallback;

    run_stats_get(stats, key, &value);
    return value;
}

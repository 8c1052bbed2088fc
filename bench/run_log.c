#include "bench/run_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void run_log_show_tail(const char *name, const char *path)
{
    char line[512];
    long start = 0;
    long size;
    FILE *log = fopen(path, "r");

    if (log == NULL) {
        return;
    }
    fprintf(stderr, "run: end of the %s log (%s):\n", name, path);
    /* The last 2 KiB; the first line shown may be cut. */
    if (fseek(log, 0, SEEK_END) == 0 && (size = ftell(log)) > 2048) {
        start = size - 2048;
    }
    if (fseek(log, start, SEEK_SET) != 0) {
        fprintf(stderr, "run: seeking in %s failed: %s\n", path,
                strerror(errno));
    }
    while (fgets(line, sizeof(line), log) != NULL) {
        fprintf(stderr, "  %s", line);
    }
    if (fclose(log) != 0) {
        fprintf(stderr, "run: closing %s failed: %s\n", path,
                strerror(errno));
    }
}

int run_log_forward(int fd, const char *path)
{
    char buf[4096];
    ssize_t got;

    while ((got = read(fd, buf, sizeof(buf))) > 0) {
        if (fwrite(buf, 1, (size_t)got, stderr) != (size_t)got) {
            break;
        }
    }
    if (got < 0 && errno != EINTR) {
        fprintf(stderr, "run: reading %s failed: %s\n", path,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Store in line the last non-empty line of the log at path that does
 * not contain skip (NULL: skip none). */
static void run_log_last_matching(const char *path, const char *skip,
                                  char *line, size_t size)
{
    char text[512];
    FILE *log = fopen(path, "r");

    line[0] = '\0';
    if (log == NULL) {
        return;
    }
    while (fgets(text, sizeof(text), log) != NULL) {
        text[strcspn(text, "\r\n")] = '\0';
        if (text[0] != '\0'
            && (skip == NULL || strstr(text, skip) == NULL)) {
            snprintf(line, size, "%s", text);
        }
    }
    if (fclose(log) != 0) {
        fprintf(stderr, "run: closing %s failed: %s\n", path,
                strerror(errno));
    }
}

void run_log_last_line(const char *path, char *line, size_t size)
{
    run_log_last_matching(path, NULL, line, size);
}

void run_log_last_error(const char *path, char *line, size_t size)
{
    run_log_last_matching(path, " elapsed=", line, size);
}

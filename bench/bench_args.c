#include "bench/bench_args.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bench_parse_u64(const char *command, const char *option,
                    const char *text, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    unsigned long long value;
    char *end;

    /* strtoull accepts a sign and wraps "-1" to a huge value, so only
     * plain digit strings are let through. */
    if (text[0] < '0' || text[0] > '9') {
        goto invalid;
    }
    errno = 0;
    value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max) {
        goto invalid;
    }
    *out = value;
    return 0;

invalid:
    fprintf(stderr,
            "%s: invalid value \"%s\" for --%s: expected an integer "
            "from %" PRIu64 " to %" PRIu64 "\n",
            command, text, option, min, max);
    return -1;
}

int bench_check_output_path(const char *command, const char *option,
                            const char *path)
{
    struct stat info;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int rc = 0;

    if (fd >= 0) {
        if (close(fd) != 0 || unlink(path) != 0) {
            rc = -1;
        }
    } else if (errno != EEXIST) {
        rc = -1;
    } else if (stat(path, &info) != 0) {
        rc = -1;
    } else if (S_ISDIR(info.st_mode)) {
        errno = EISDIR;
        rc = -1;
    } else if (access(path, W_OK) != 0) {
        rc = -1;
    }
    if (rc < 0) {
        fprintf(stderr, "%s: cannot write the --%s file %s: %s\n",
                command, option, path, strerror(errno));
    }
    return rc;
}

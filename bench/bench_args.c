#include "bench/bench_args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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

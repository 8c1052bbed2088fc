#include "core/mx_set_name.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int mx_set_host_before(const void *a, const void *b)
{
    const struct mx_set_host *x = a;
    const struct mx_set_host *y = b;

    if (x->rank != y->rank) {
        return x->rank < y->rank ? -1 : 1;
    }
    return strcasecmp(x->name, y->name);
}

bool mx_set_name_write(struct mx_set_host *hosts, size_t count, char *out,
                       size_t size)
{
    size_t used = strlen(MX_SET_NAME_PREFIX);

    if (size == 0) {
        return false;
    }
    out[0] = '\0';
    if (used >= size) {
        return false;
    }
    qsort(hosts, count, sizeof(hosts[0]), mx_set_host_before);

    memcpy(out, MX_SET_NAME_PREFIX, used + 1);
    for (size_t i = 0; i < count; i++) {
        const char *sep = "";
        int n;

        if (i > 0) {
            sep = hosts[i].rank == hosts[i - 1].rank ? "," : ";";
        }
        n = snprintf(out + used, size - used, "%s%s", sep, hosts[i].name);
        if (n < 0 || (size_t)n >= size - used) {
            out[0] = '\0';
            return false;
        }
        used += (size_t)n;
    }
    for (char *p = out; *p != '\0'; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    return true;
}

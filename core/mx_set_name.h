/* MX-set names: the destination name of the domains whose MX records
 * name the same hosts in the same order. The relay builds them from MX
 * lookups (outbound_group.c), and the configuration check builds them
 * from `destinations` names to find those the relay would spell
 * otherwise (config_dest_name.c), so both use this one writer. */
#ifndef RINGRELAY_CORE_MX_SET_NAME_H
#define RINGRELAY_CORE_MX_SET_NAME_H

#include <stdbool.h>
#include <stddef.h>

/* The prefix of every MX-set name. */
#define MX_SET_NAME_PREFIX "mx:"

/* The size of an MX-set name with its NUL. A domain whose set would need
 * a longer name keeps its own name as destination. */
#define MX_SET_NAME_SIZE 320

/* One host of an MX set. Only the order and the equality of ranks count:
 * an MX preference value, or the position of a preference level. */
struct mx_set_host {
    const char *name;
    unsigned long rank;
};

/* mx_set_name_write sorts hosts by rank, then by name without case, and
 * writes the prefix and the names in lower case into out, with "," between
 * hosts of equal rank and ";" before a host of a higher rank. Returns
 * false, with out "", when the name needs more than size bytes. */
bool mx_set_name_write(struct mx_set_host *hosts, size_t count, char *out,
                       size_t size);

#endif

/* Answer cache keyed by (name, type), with lifetimes from the answers'
 * TTLs and a bounded number of entries (least recently used evicted).
 *
 * Times are monotonic milliseconds from the caller, so the cache reads no
 * clock of its own. Return convention: 0 or a negative errno. */
#ifndef RINGRELAY_DNS_CACHE_H
#define RINGRELAY_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/dns_packet.h"

struct dns_cache;

int dns_cache_new(struct dns_cache **out, size_t max_entries);

/* dns_cache_free releases every entry; NULL is accepted. */
void dns_cache_free(struct dns_cache *cache);

/* dns_cache_put stores answer for (name, type) until now_ms plus its TTL,
 * replacing an older entry. Only RECORDS, NODATA, NXDOMAIN and CNAME
 * answers with a TTL above zero are stored; others are ignored and
 * return 0. */
int dns_cache_put(struct dns_cache *cache, const char *name, uint16_t type,
                  const struct dns_answer *answer, uint64_t now_ms);

/* dns_cache_get copies the live entry for (name, type) into answer, with
 * the TTL that remains. Returns false when there is none. */
bool dns_cache_get(struct dns_cache *cache, const char *name, uint16_t type,
                   uint64_t now_ms, struct dns_answer *answer);

/* dns_cache_count returns the number of entries, expired ones included. */
size_t dns_cache_count(const struct dns_cache *cache);

#endif

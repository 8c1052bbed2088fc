#include "dns/dns_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Entries sit in a hash chain and in a recency list whose head is the
 * most recently used. records contains exactly count records. */
struct dns_cache_entry {
    struct dns_cache_entry *chain_next;
    struct dns_cache_entry *lru_prev;
    struct dns_cache_entry *lru_next;
    uint64_t expires_ms;
    enum dns_answer_status status;
    uint16_t type;
    bool authenticated;
    uint8_t cname_hops;
    size_t skipped;
    size_t count;
    struct dns_record *records;
    char name[DNS_NAME_TEXT_MAX];
};

struct dns_cache {
    struct dns_cache_entry **buckets;
    size_t bucket_count; /* a power of two */
    size_t count;
    size_t max_entries;
    struct dns_cache_entry *lru_head;
    struct dns_cache_entry *lru_tail;
};

/* FNV-1a over the name and the type. Names are stored lower case by the
 * resolver, so equal keys hash alike. */
static size_t dns_cache_hash(const struct dns_cache *cache, const char *name,
                             uint16_t type)
{
    uint64_t hash = 14695981039346656037u;

    for (const char *p = name; *p != '\0'; p++) {
        hash = (hash ^ (unsigned char)*p) * 1099511628211u;
    }
    hash = (hash ^ type) * 1099511628211u;
    return (size_t)hash & (cache->bucket_count - 1);
}

int dns_cache_new(struct dns_cache **out, size_t max_entries)
{
    struct dns_cache *cache;
    size_t buckets = 16;

    if (max_entries == 0) {
        return -EINVAL;
    }
    while (buckets < max_entries && buckets < SIZE_MAX / 2) {
        buckets *= 2;
    }

    cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        return -ENOMEM;
    }
    cache->buckets = calloc(buckets, sizeof(*cache->buckets));
    if (cache->buckets == NULL) {
        free(cache);
        return -ENOMEM;
    }
    cache->bucket_count = buckets;
    cache->max_entries = max_entries;
    *out = cache;
    return 0;
}

static void dns_cache_lru_unlink(struct dns_cache *cache,
                                 struct dns_cache_entry *entry)
{
    if (entry->lru_prev != NULL) {
        entry->lru_prev->lru_next = entry->lru_next;
    } else {
        cache->lru_head = entry->lru_next;
    }
    if (entry->lru_next != NULL) {
        entry->lru_next->lru_prev = entry->lru_prev;
    } else {
        cache->lru_tail = entry->lru_prev;
    }
    entry->lru_prev = NULL;
    entry->lru_next = NULL;
}

static void dns_cache_lru_push(struct dns_cache *cache,
                               struct dns_cache_entry *entry)
{
    entry->lru_next = cache->lru_head;
    if (cache->lru_head != NULL) {
        cache->lru_head->lru_prev = entry;
    } else {
        cache->lru_tail = entry;
    }
    cache->lru_head = entry;
}

/* dns_cache_remove unlinks entry from its chain and the list, and frees
 * it. */
static void dns_cache_remove(struct dns_cache *cache,
                             struct dns_cache_entry *entry)
{
    size_t slot = dns_cache_hash(cache, entry->name, entry->type);
    struct dns_cache_entry **link = &cache->buckets[slot];

    while (*link != NULL && *link != entry) {
        link = &(*link)->chain_next;
    }
    if (*link == entry) {
        *link = entry->chain_next;
    }
    dns_cache_lru_unlink(cache, entry);
    cache->count--;
    free(entry->records);
    free(entry);
}

void dns_cache_free(struct dns_cache *cache)
{
    if (cache == NULL) {
        return;
    }
    while (cache->lru_head != NULL) {
        dns_cache_remove(cache, cache->lru_head);
    }
    free(cache->buckets);
    free(cache);
}

static struct dns_cache_entry *dns_cache_find(const struct dns_cache *cache,
                                              const char *name, uint16_t type)
{
    size_t slot = dns_cache_hash(cache, name, type);
    struct dns_cache_entry *entry = cache->buckets[slot];

    while (entry != NULL) {
        if (entry->type == type && strcmp(entry->name, name) == 0) {
            return entry;
        }
        entry = entry->chain_next;
    }
    return NULL;
}

static bool dns_cache_storable(const struct dns_answer *answer)
{
    switch (answer->status) {
    case DNS_ANSWER_RECORDS:
    case DNS_ANSWER_NODATA:
    case DNS_ANSWER_NXDOMAIN:
    case DNS_ANSWER_CNAME:
        return answer->ttl > 0;
    default:
        return false;
    }
}

int dns_cache_put(struct dns_cache *cache, const char *name, uint16_t type,
                  const struct dns_answer *answer, uint64_t now_ms)
{
    struct dns_cache_entry *entry;
    struct dns_cache_entry *old;
    size_t slot;

    if (!dns_cache_storable(answer) || strlen(name) >= DNS_NAME_TEXT_MAX) {
        return 0;
    }

    entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        return -ENOMEM;
    }
    if (answer->count > 0) {
        entry->records = malloc(answer->count * sizeof(*entry->records));
        if (entry->records == NULL) {
            free(entry);
            return -ENOMEM;
        }
        memcpy(entry->records, answer->records,
               answer->count * sizeof(*entry->records));
    }
    strcpy(entry->name, name);
    entry->type = type;
    entry->status = answer->status;
    entry->authenticated = answer->authenticated;
    entry->cname_hops = answer->cname_hops;
    entry->skipped = answer->skipped;
    entry->count = answer->count;
    entry->expires_ms = now_ms + (uint64_t)answer->ttl * 1000u;

    /* The new entry replaces an old one of the same key, and the least
     * recently used entry makes room when the cache is full. */
    old = dns_cache_find(cache, name, type);
    if (old != NULL) {
        dns_cache_remove(cache, old);
    }
    if (cache->count >= cache->max_entries && cache->lru_tail != NULL) {
        dns_cache_remove(cache, cache->lru_tail);
    }

    slot = dns_cache_hash(cache, name, type);
    entry->chain_next = cache->buckets[slot];
    cache->buckets[slot] = entry;
    dns_cache_lru_push(cache, entry);
    cache->count++;
    return 0;
}

bool dns_cache_get(struct dns_cache *cache, const char *name, uint16_t type,
                   uint64_t now_ms, struct dns_answer *answer)
{
    struct dns_cache_entry *entry = dns_cache_find(cache, name, type);
    uint64_t remaining_ms;

    if (entry == NULL) {
        return false;
    }
    if (entry->expires_ms <= now_ms) {
        dns_cache_remove(cache, entry);
        return false;
    }

    dns_cache_lru_unlink(cache, entry);
    dns_cache_lru_push(cache, entry);

    remaining_ms = entry->expires_ms - now_ms;
    answer->status = entry->status;
    answer->ttl = (uint32_t)((remaining_ms + 999u) / 1000u);
    answer->authenticated = entry->authenticated;
    answer->cname_hops = entry->cname_hops;
    answer->skipped = entry->skipped;
    answer->count = entry->count;
    if (entry->count > 0) {
        memcpy(answer->records, entry->records,
               entry->count * sizeof(*entry->records));
    }
    return true;
}

size_t dns_cache_count(const struct dns_cache *cache)
{
    return cache->count;
}

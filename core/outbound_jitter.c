#include "core/outbound_jitter.h"

/* FNV-1a over the queue ID, then over the attempt number's four bytes.
 * The queue IDs of messages that arrive together differ only in their
 * last digits, and the multiplications after those digits still spread
 * them over the whole interval (see test_outbound_jitter.c). */
double outbound_retry_jitter(const char *queue_id, uint32_t attempt)
{
    uint64_t hash = 14695981039346656037u;

    for (const unsigned char *p = (const unsigned char *)queue_id;
         *p != '\0'; p++) {
        hash = (hash ^ *p) * 1099511628211u;
    }
    for (unsigned shift = 0; shift < 32; shift += 8) {
        hash = (hash ^ ((attempt >> shift) & 0xffu)) * 1099511628211u;
    }

    /* The top 53 bits fill a double's mantissa exactly. */
    return (double)(hash >> 11) / 9007199254740992.0;
}

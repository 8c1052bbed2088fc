/* On-disk layout of the queue store: segment header, region header and
 * envelope encoding. All integers are little-endian.
 *
 * A segment file starts with a 64-byte segment header:
 *
 *   off size field
 *     0    4 magic "RRSG"
 *     4    2 format version (1)
 *     6    2 zero
 *     8    8 segment number (the NNNNNNNN of its name seg-NNNNNNNN)
 *    16    8 file size in bytes
 *    24    8 nonce: random, repeated in every region header of the file
 *    32    4 CRC32C of bytes 0..31
 *    36   28 zero
 *
 * Regions follow back to back from offset 64, each a multiple of 64 bytes
 * long. A region starts with a 64-byte region header:
 *
 *   off size field
 *     0    4 magic "RRQR"
 *     4    2 format version (1)
 *     6    2 flags: 0x1 committed, 0x2 abandoned
 *     8    8 region length in bytes, header included
 *    16    8 segment nonce
 *    24    8 queue ID
 *    32    8 arrival time, seconds since the Unix epoch (signed)
 *    40    8 body length in bytes
 *    48    4 envelope length in bytes
 *    52    4 CRC32C, see below
 *    56    8 record length: 64 + envelope length + body length
 *
 * then the envelope, then the body (wire form, or the raw octets when the
 * envelope flags hold QUEUE_ENV_BINARYMIME), then unused bytes up to the
 * region length. The envelope is:
 *
 *   u32 envelope flags (QUEUE_ENV_*)
 *   u32 recipient count (at least 1)
 *   u16 sender length, sender bytes ("" is the null reverse path)
 *   per recipient: u16 length, address bytes
 *
 * and, only when the flags have QUEUE_ENV_DSN (0x8), the DSN fields of
 * RFC 3461 with ENVID and ORCPT xtext-decoded:
 *
 *   u16 RET (enum queue_dsn_ret: 0 none, 1 FULL, 2 HDRS)
 *   u16 ENVID length, ENVID bytes ("" when none)
 *   per recipient: u16 NOTIFY bits (QUEUE_DSN_NOTIFY_*, 0 when none),
 *                  u16 ORCPT length, ORCPT bytes ("addr-type;address",
 *                  "" when none)
 *
 * A record without the flag has no DSN fields, so records written before
 * DSN support still read back. An older reader rejects the flag and
 * drops such records as invalid_envelope. Then, only when the flags have
 * QUEUE_ENV_AUTH (0x10):
 *
 *   u16 length, bytes of the SMTP AUTH user that submitted the message
 *
 * with the same rule for records without the flag and older readers.
 * Strings contain no NUL byte.
 *
 * The record CRC32C runs over the envelope, then the body, then the 64
 * header bytes with the CRC field zeroed. The header comes last so a
 * writer can extend the CRC as body bytes arrive.
 *
 * Header, magic, region length and nonce are written when a region is
 * reserved, so a scanner can walk from region to region; the first offset
 * without a valid header (wrong magic, version or nonce) ends the data of
 * the segment. A region's length changes only while it is the last region
 * of its segment, so any later region that reached disk was synced after
 * that change. The nonce keeps body bytes, which senders control, from
 * being taken for a region header.
 *
 * The journal file is a sequence of 32-byte entries:
 *
 *   off size field
 *     0    4 magic "RRJE"
 *     4    4 recipient index
 *     8    8 queue ID
 *    16    8 time, seconds since the Unix epoch (signed): the time of
 *             the change, but the time of the next attempt in a
 *             QUEUE_JOURNAL_DEFERRED entry
 *    24    2 recipient state: 1 DELIVERED, 2 BOUNCED, 3 DEFERRED,
 *             4 DELETED, 5 HELD, 6 RELEASED
 *    26    2 delivery attempts so far; 0 (written before the count
 *             existed) reads back as 1
 *    28    4 CRC32C of bytes 0..27
 *
 * DELIVERED, BOUNCED and DELETED are final: recovery ignores every later
 * entry of that recipient. A DEFERRED entry stores the next-attempt time
 * itself, not the change time, so recovery keeps the jitter of the
 * schedule and needs no copy of the backoff formula. HELD and RELEASED
 * set and clear an operator's hold on a recipient that stays queued;
 * RELEASED also makes it due at once. Recovery takes the attempt count
 * from DEFERRED and final entries only. Readers that do not know a state
 * warn about the entry and skip it, so an older reader retries a
 * deferred recipient at once, delivers a held one and keeps a deleted
 * one queued.
 *
 * Compaction (core/queue_compact.c) replaces the journal with the
 * entries recovery needs, by rename(2) of a synced journal.new. It covers
 * every message whose record is still in a segment. A finished recipient
 * gets one final entry. A queued recipient gets its last DEFERRED entry
 * if it was attempted, then a HELD entry if it is held. Rewritten final
 * and HELD entries carry the compaction time. */
#ifndef RINGRELAY_CORE_QUEUE_RECORD_H
#define RINGRELAY_CORE_QUEUE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/queue.h"

#define QUEUE_FORMAT_VERSION 1u
#define QUEUE_SEGMENT_MAGIC 0x47535252u /* "RRSG" */
#define QUEUE_REGION_MAGIC 0x52515252u  /* "RRQR" */
#define QUEUE_SEGMENT_HEADER_LEN 64u
#define QUEUE_REGION_HEADER_LEN 64u
#define QUEUE_REGION_ALIGN 64u

#define QUEUE_JOURNAL_MAGIC 0x454a5252u /* "RRJE" */
#define QUEUE_JOURNAL_ENTRY_LEN 32u

/* Journal state of a recipient that is still queued after a failed
 * attempt. In memory such a recipient stays QUEUE_RCPT_QUEUED. */
#define QUEUE_JOURNAL_DEFERRED 3u

/* Operator holds: a HELD entry keeps a QUEUED recipient from delivery,
 * a later RELEASED entry makes it due at once. A deleted recipient gets
 * QUEUE_RCPT_DELETED (4), a final state like DELIVERED. In memory a held
 * recipient is QUEUE_RCPT_QUEUED with held set. */
#define QUEUE_JOURNAL_HELD 5u
#define QUEUE_JOURNAL_RELEASED 6u

#define QUEUE_REGION_COMMITTED 0x1u
#define QUEUE_REGION_ABANDONED 0x2u

/* Maximum address length in bytes (the envelope stores a u16). */
#define QUEUE_ADDRESS_MAX 65535u

struct queue_segment_header {
    uint64_t number;
    uint64_t size;     /* bytes */
    uint64_t nonce;
};

struct queue_region_header {
    uint16_t flags;        /* QUEUE_REGION_* */
    uint64_t region_len;   /* bytes, header included */
    uint64_t nonce;
    uint64_t id;
    int64_t arrival;       /* seconds since the epoch */
    uint64_t body_len;
    uint32_t envelope_len;
    uint32_t crc;
    uint64_t record_len;
};

struct queue_journal_entry {
    uint64_t id;
    uint32_t rcpt;
    uint16_t state;     /* enum queue_rcpt_state or QUEUE_JOURNAL_DEFERRED */
    uint16_t attempts;  /* delivery attempts so far, at least 1 decoded */
    int64_t time;       /* seconds since the epoch; next attempt when
                         * DEFERRED, else the time of the change */
};

/* Decoded envelope sizes, from queue_envelope_check(). */
struct queue_envelope_info {
    uint32_t flags;
    uint32_t rcpt_count;
    size_t string_bytes; /* sender and recipients, each with its NUL */
};

static inline uint64_t queue_align_up(uint64_t value, uint64_t align)
{
    return (value + align - 1) / align * align;
}

void queue_segment_header_encode(uint8_t *out,
                                 const struct queue_segment_header *header);

/* queue_segment_header_decode returns 0, or -1 when magic, version or CRC
 * do not match. */
int queue_segment_header_decode(const uint8_t *in,
                                struct queue_segment_header *header);

/* queue_segment_header_problem returns why the header at in does not
 * decode ("bad_magic", "unknown_version", "header_checksum_mismatch"),
 * or NULL when it does. */
const char *queue_segment_header_problem(const uint8_t *in);

void queue_journal_entry_encode(uint8_t *out,
                                const struct queue_journal_entry *entry);

/* queue_journal_entry_decode returns 0, or -1 when magic or CRC do not
 * match. */
int queue_journal_entry_decode(const uint8_t *in,
                               struct queue_journal_entry *entry);

void queue_region_header_encode(uint8_t *out,
                                const struct queue_region_header *header);

/* queue_region_header_decode returns 0, or -1 when magic or version do not
 * match. Nothing else is checked. */
int queue_region_header_decode(const uint8_t *in,
                               struct queue_region_header *header);

/* queue_region_crc_finish folds the header (with its CRC field taken as
 * zero) into crc, the CRC32C of envelope and body, and returns the record
 * CRC. */
uint32_t queue_region_crc_finish(uint32_t crc,
                                 const struct queue_region_header *header);

/* queue_envelope_encoded_len returns the encoded size of env, or 0 with
 * errno EINVAL when env cannot be stored (no recipients, an address that
 * is too long or contains a NUL byte, unknown flags). */
size_t queue_envelope_encoded_len(const struct queue_envelope *env);

/* queue_envelope_encode writes env to out, which has room for
 * queue_envelope_encoded_len(env) bytes. */
void queue_envelope_encode(uint8_t *out, const struct queue_envelope *env);

/* queue_envelope_check validates len bytes of an encoded envelope and
 * fills info. Returns 0, or -1 when the bytes are not a valid envelope. */
int queue_envelope_check(const uint8_t *in, size_t len,
                         struct queue_envelope_info *info);

/* queue_envelope_decode copies the strings of a checked envelope into
 * strings (info->string_bytes long) as NUL-terminated strings, points the
 * sender, ENVID and msg->rcpts[i] addresses and ORCPTs at them, and sets
 * every recipient QUEUED. msg->rcpts has room for every recipient.
 * Without DSN fields, ENVID and ORCPTs are "" and RET and NOTIFY 0. */
void queue_envelope_decode(const uint8_t *in, char *strings,
                           struct queue_msg *msg);

#endif

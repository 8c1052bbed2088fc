#include "core/queue_record.h"

#include <errno.h>
#include <string.h>

#include "core/crc32c.h"

#define QUEUE_ENV_KNOWN_FLAGS                                        \
    (QUEUE_ENV_8BITMIME | QUEUE_ENV_SMTPUTF8 | QUEUE_ENV_BINARYMIME |  \
     QUEUE_ENV_DSN | QUEUE_ENV_AUTH)

#define QUEUE_DSN_NOTIFY_KNOWN                                       \
    (QUEUE_DSN_NOTIFY_SUCCESS | QUEUE_DSN_NOTIFY_FAILURE |           \
     QUEUE_DSN_NOTIFY_DELAY | QUEUE_DSN_NOTIFY_NEVER)

/* Stands in for the DSN strings and the AUTH user of a record without
 * those fields. */
static const char queue_no_dsn_text[] = "";

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

void queue_segment_header_encode(uint8_t *out,
                                 const struct queue_segment_header *header)
{
    memset(out, 0, QUEUE_SEGMENT_HEADER_LEN);
    put_le32(out, QUEUE_SEGMENT_MAGIC);
    put_le16(out + 4, QUEUE_FORMAT_VERSION);
    put_le64(out + 8, header->number);
    put_le64(out + 16, header->size);
    put_le64(out + 24, header->nonce);
    put_le32(out + 32, crc32c_update(0, out, 32));
}

int queue_segment_header_decode(const uint8_t *in,
                                struct queue_segment_header *header)
{
    if (get_le32(in) != QUEUE_SEGMENT_MAGIC ||
        get_le16(in + 4) != QUEUE_FORMAT_VERSION ||
        get_le32(in + 32) != crc32c_update(0, in, 32)) {
        return -1;
    }

    header->number = get_le64(in + 8);
    header->size = get_le64(in + 16);
    header->nonce = get_le64(in + 24);
    return 0;
}

const char *queue_segment_header_problem(const uint8_t *in)
{
    if (get_le32(in) != QUEUE_SEGMENT_MAGIC) {
        return "bad_magic";
    }
    if (get_le16(in + 4) != QUEUE_FORMAT_VERSION) {
        return "unknown_version";
    }
    if (get_le32(in + 32) != crc32c_update(0, in, 32)) {
        return "header_checksum_mismatch";
    }
    return NULL;
}

void queue_journal_entry_encode(uint8_t *out,
                                const struct queue_journal_entry *entry)
{
    memset(out, 0, QUEUE_JOURNAL_ENTRY_LEN);
    put_le32(out, QUEUE_JOURNAL_MAGIC);
    put_le32(out + 4, entry->rcpt);
    put_le64(out + 8, entry->id);
    put_le64(out + 16, (uint64_t)entry->time);
    put_le16(out + 24, entry->state);
    put_le16(out + 26, entry->attempts);
    put_le32(out + 28, crc32c_update(0, out, 28));
}

int queue_journal_entry_decode(const uint8_t *in,
                               struct queue_journal_entry *entry)
{
    if (get_le32(in) != QUEUE_JOURNAL_MAGIC ||
        get_le32(in + 28) != crc32c_update(0, in, 28)) {
        return -1;
    }

    entry->rcpt = get_le32(in + 4);
    entry->id = get_le64(in + 8);
    entry->time = (int64_t)get_le64(in + 16);
    entry->state = get_le16(in + 24);
    entry->attempts = get_le16(in + 26);
    if (entry->attempts == 0) {
        entry->attempts = 1;
    }
    return 0;
}

void queue_region_header_encode(uint8_t *out,
                                const struct queue_region_header *header)
{
    put_le32(out, QUEUE_REGION_MAGIC);
    put_le16(out + 4, QUEUE_FORMAT_VERSION);
    put_le16(out + 6, header->flags);
    put_le64(out + 8, header->region_len);
    put_le64(out + 16, header->nonce);
    put_le64(out + 24, header->id);
    put_le64(out + 32, (uint64_t)header->arrival);
    put_le64(out + 40, header->body_len);
    put_le32(out + 48, header->envelope_len);
    put_le32(out + 52, header->crc);
    put_le64(out + 56, header->record_len);
}

int queue_region_header_decode(const uint8_t *in,
                               struct queue_region_header *header)
{
    if (get_le32(in) != QUEUE_REGION_MAGIC ||
        get_le16(in + 4) != QUEUE_FORMAT_VERSION) {
        return -1;
    }

    header->flags = get_le16(in + 6);
    header->region_len = get_le64(in + 8);
    header->nonce = get_le64(in + 16);
    header->id = get_le64(in + 24);
    header->arrival = (int64_t)get_le64(in + 32);
    header->body_len = get_le64(in + 40);
    header->envelope_len = get_le32(in + 48);
    header->crc = get_le32(in + 52);
    header->record_len = get_le64(in + 56);
    return 0;
}

uint32_t queue_region_crc_finish(uint32_t crc,
                                 const struct queue_region_header *header)
{
    struct queue_region_header copy = *header;
    uint8_t bytes[QUEUE_REGION_HEADER_LEN];

    copy.crc = 0;
    queue_region_header_encode(bytes, &copy);
    return crc32c_update(crc, bytes, sizeof(bytes));
}

static bool queue_address_valid(const char *address, size_t *len)
{
    /* strnlen bounds the scan, so a longer string is rejected without
     * walking all of it. */
    *len = strnlen(address, QUEUE_ADDRESS_MAX + 1);
    return *len <= QUEUE_ADDRESS_MAX;
}

static const char *queue_text_or_empty(const char *text)
{
    return text != NULL ? text : queue_no_dsn_text;
}

/* queue_dsn_encoded_len adds the DSN fields of env to *total. Returns
 * false when they cannot be stored. */
static bool queue_dsn_encoded_len(const struct queue_envelope *env,
                                  size_t *total)
{
    size_t len;

    if (env->dsn_rcpts == NULL || (unsigned)env->dsn_ret > 2 ||
        !queue_address_valid(queue_text_or_empty(env->envid), &len)) {
        return false;
    }
    *total += 4 + len;

    for (size_t i = 0; i < env->rcpt_count; i++) {
        const struct queue_dsn_rcpt *dsn = &env->dsn_rcpts[i];

        if ((dsn->notify & ~QUEUE_DSN_NOTIFY_KNOWN) != 0 ||
            !queue_address_valid(queue_text_or_empty(dsn->orcpt), &len)) {
            return false;
        }
        *total += 4 + len;
    }
    return true;
}

size_t queue_envelope_encoded_len(const struct queue_envelope *env)
{
    size_t total = 8;
    size_t len;

    if (env->rcpt_count == 0 || env->rcpt_count > UINT32_MAX ||
        (env->flags & ~QUEUE_ENV_KNOWN_FLAGS) != 0 || env->sender == NULL ||
        !queue_address_valid(env->sender, &len)) {
        errno = EINVAL;
        return 0;
    }
    total += 2 + len;

    for (size_t i = 0; i < env->rcpt_count; i++) {
        if (env->rcpts[i] == NULL ||
            !queue_address_valid(env->rcpts[i], &len)) {
            errno = EINVAL;
            return 0;
        }
        total += 2 + len;
    }
    if ((env->flags & QUEUE_ENV_DSN) != 0 &&
        !queue_dsn_encoded_len(env, &total)) {
        errno = EINVAL;
        return 0;
    }
    if ((env->flags & QUEUE_ENV_AUTH) != 0) {
        if (env->auth_user == NULL ||
            !queue_address_valid(env->auth_user, &len)) {
            errno = EINVAL;
            return 0;
        }
        total += 2 + len;
    }
    return total;
}

static uint8_t *queue_address_encode(uint8_t *out, const char *address)
{
    size_t len = strlen(address);

    put_le16(out, (uint16_t)len);
    memcpy(out + 2, address, len);
    return out + 2 + len;
}

void queue_envelope_encode(uint8_t *out, const struct queue_envelope *env)
{
    put_le32(out, env->flags);
    put_le32(out + 4, (uint32_t)env->rcpt_count);
    out = queue_address_encode(out + 8, env->sender);

    for (size_t i = 0; i < env->rcpt_count; i++) {
        out = queue_address_encode(out, env->rcpts[i]);
    }
    if ((env->flags & QUEUE_ENV_DSN) != 0) {
        put_le16(out, (uint16_t)env->dsn_ret);
        out = queue_address_encode(out + 2,
                                   queue_text_or_empty(env->envid));
        for (size_t i = 0; i < env->rcpt_count; i++) {
            const struct queue_dsn_rcpt *dsn = &env->dsn_rcpts[i];

            put_le16(out, (uint16_t)dsn->notify);
            out = queue_address_encode(out + 2,
                                       queue_text_or_empty(dsn->orcpt));
        }
    }
    if ((env->flags & QUEUE_ENV_AUTH) != 0) {
        queue_address_encode(out, env->auth_user);
    }
}

/* queue_address_check consumes one encoded string from *in. Returns its
 * length, or -1 when it runs past end or contains a NUL byte. */
static long queue_address_check(const uint8_t **in, const uint8_t *end)
{
    size_t len;

    if (end - *in < 2) {
        return -1;
    }
    len = get_le16(*in);
    if ((size_t)(end - *in - 2) < len || memchr(*in + 2, 0, len) != NULL) {
        return -1;
    }

    *in += 2 + len;
    return (long)len;
}

/* queue_tagged_check consumes a u16 tag no greater than max, then one
 * string. Returns the string length, or -1 when either is invalid. */
static long queue_tagged_check(const uint8_t **in, const uint8_t *end,
                               uint16_t max)
{
    if (end - *in < 2 || get_le16(*in) > max) {
        return -1;
    }
    *in += 2;
    return queue_address_check(in, end);
}

/* queue_dsn_check validates the DSN fields of an envelope whose
 * addresses end at *in, and adds their strings to info->string_bytes. */
static int queue_dsn_check(const uint8_t **in, const uint8_t *end,
                           struct queue_envelope_info *info)
{
    long len = queue_tagged_check(in, end, QUEUE_DSN_RET_HDRS);

    if (len < 0) {
        return -1;
    }
    info->string_bytes += (size_t)len + 1;

    for (uint64_t i = 0; i < info->rcpt_count; i++) {
        len = queue_tagged_check(in, end, QUEUE_DSN_NOTIFY_KNOWN);
        if (len < 0) {
            return -1;
        }
        info->string_bytes += (size_t)len + 1;
    }
    return 0;
}

int queue_envelope_check(const uint8_t *in, size_t len,
                         struct queue_envelope_info *info)
{
    const uint8_t *end = in + len;
    long address_len;

    if (len < 8) {
        return -1;
    }
    info->flags = get_le32(in);
    info->rcpt_count = get_le32(in + 4);
    if (info->rcpt_count == 0 ||
        (info->flags & ~QUEUE_ENV_KNOWN_FLAGS) != 0) {
        return -1;
    }
    in += 8;

    /* The sender and every recipient: rcpt_count + 1 addresses. */
    info->string_bytes = 0;
    for (uint64_t i = 0; i <= info->rcpt_count; i++) {
        address_len = queue_address_check(&in, end);
        if (address_len < 0) {
            return -1;
        }
        info->string_bytes += (size_t)address_len + 1;
    }
    if ((info->flags & QUEUE_ENV_DSN) != 0 &&
        queue_dsn_check(&in, end, info) < 0) {
        return -1;
    }
    if ((info->flags & QUEUE_ENV_AUTH) != 0) {
        address_len = queue_address_check(&in, end);
        if (address_len < 0) {
            return -1;
        }
        info->string_bytes += (size_t)address_len + 1;
    }

    return in == end ? 0 : -1;
}

static const uint8_t *queue_address_decode(const uint8_t *in, char **strings,
                                           const char **address)
{
    size_t len = get_le16(in);

    memcpy(*strings, in + 2, len);
    (*strings)[len] = '\0';
    *address = *strings;
    *strings += len + 1;
    return in + 2 + len;
}

void queue_envelope_decode(const uint8_t *in, char *strings,
                           struct queue_msg *msg)
{
    uint32_t flags = get_le32(in);
    uint32_t count = get_le32(in + 4);
    struct queue_rcpt *rcpts = msg->rcpts;

    msg->dsn_ret = QUEUE_DSN_RET_UNSET;
    msg->envid = queue_no_dsn_text;
    msg->auth_user = queue_no_dsn_text;
    in = queue_address_decode(in + 8, &strings, &msg->sender);
    for (uint32_t i = 0; i < count; i++) {
        in = queue_address_decode(in, &strings, &rcpts[i].address);
        rcpts[i].dsn_notify = 0;
        rcpts[i].orcpt = queue_no_dsn_text;
        rcpts[i].state = QUEUE_RCPT_QUEUED;
        rcpts[i].attempts = 0;
        rcpts[i].next_attempt = 0;
    }
    if ((flags & QUEUE_ENV_DSN) != 0) {
        msg->dsn_ret = (enum queue_dsn_ret)get_le16(in);
        in = queue_address_decode(in + 2, &strings, &msg->envid);
        for (uint32_t i = 0; i < count; i++) {
            rcpts[i].dsn_notify = get_le16(in);
            in = queue_address_decode(in + 2, &strings, &rcpts[i].orcpt);
        }
    }
    if ((flags & QUEUE_ENV_AUTH) != 0) {
        queue_address_decode(in, &strings, &msg->auth_user);
    }
}

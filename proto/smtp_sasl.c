/* SASL PLAIN and LOGIN exchanges and strict base64 (RFC 4648 section 4). */
#include "proto/smtp_sasl.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* "Username:" and "Password:" in base64, the LOGIN prompts that clients
 * expect. */
#define SASL_LOGIN_USER_PROMPT "VXNlcm5hbWU6"
#define SASL_LOGIN_PASSWORD_PROMPT "UGFzc3dvcmQ6"

/* A PLAIN message: authzid, authcid and password with two NULs. */
#define SASL_PLAIN_MAX (3 * SMTP_SASL_NAME_MAX + 2)

/* Base64 characters of the longest message any mechanism takes; a longer
 * response is malformed whether or not it decodes. */
#define SASL_BASE64_MAX ((SASL_PLAIN_MAX + 2) / 3 * 4)

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* base64_quantum decodes the 4 characters at in into out and returns how
 * many bytes they carry (1 to 3), or -1. last is true for the final
 * quantum, the only one that may have padding. */
static int base64_quantum(const char *in, bool last, unsigned char *out)
{
    int values[4];
    int pad = 0;
    unsigned long bits = 0;

    for (int i = 0; i < 4; i++) {
        values[i] = base64_value(in[i]);
        if (in[i] == '=' && last && i >= 2) {
            pad++;
            values[i] = 0;
        } else if (values[i] < 0 || pad > 0) {
            return -1;
        }
        bits = bits << 6 | (unsigned long)values[i];
    }
    /* Canonical form: bits below the last byte must be zero (section
     * 3.5), so each byte string has exactly one encoding. */
    if ((pad == 1 && (bits & 0xff) != 0) ||
        (pad == 2 && (bits & 0xffff) != 0)) {
        return -1;
    }
    out[0] = (unsigned char)(bits >> 16);
    out[1] = (unsigned char)(bits >> 8);
    out[2] = (unsigned char)bits;
    return 3 - pad;
}

long smtp_base64_decode(const char *text, size_t len, unsigned char *out,
                        size_t size)
{
    size_t used = 0;

    if (len % 4 != 0) {
        return -1;
    }
    for (size_t pos = 0; pos < len; pos += 4) {
        unsigned char bytes[3];
        int n = base64_quantum(text + pos, pos + 4 == len, bytes);

        if (n < 0 || used + (size_t)n > size) {
            return -1;
        }
        memcpy(out + used, bytes, (size_t)n);
        used += (size_t)n;
    }
    return (long)used;
}

size_t smtp_base64_encode(const unsigned char *data, size_t len, char *out,
                          size_t size)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t used = 0;

    if (size < (len + 2) / 3 * 4 + 1) {
        return 0;
    }
    for (size_t pos = 0; pos < len; pos += 3) {
        size_t left = len - pos;
        uint32_t bits = (uint32_t)data[pos] << 16;

        if (left > 1) {
            bits |= (uint32_t)data[pos + 1] << 8;
        }
        if (left > 2) {
            bits |= data[pos + 2];
        }
        out[used++] = alphabet[(bits >> 18) & 0x3f];
        out[used++] = alphabet[(bits >> 12) & 0x3f];
        out[used++] = left > 1 ? alphabet[(bits >> 6) & 0x3f] : '=';
        out[used++] = left > 2 ? alphabet[bits & 0x3f] : '=';
    }
    out[used] = '\0';
    return used;
}

int smtp_sasl_mech_parse(const char *name, size_t len,
                         enum smtp_sasl_mech *mech)
{
    if (len == 5 && strncasecmp(name, "PLAIN", 5) == 0) {
        *mech = SMTP_SASL_PLAIN;
        return 0;
    }
    if (len == 5 && strncasecmp(name, "LOGIN", 5) == 0) {
        *mech = SMTP_SASL_LOGIN;
        return 0;
    }
    return -1;
}

const char *smtp_sasl_mech_name(enum smtp_sasl_mech mech)
{
    return mech == SMTP_SASL_PLAIN ? "PLAIN" : "LOGIN";
}

/* sasl_copy_name stores a user name or password. It must be 1 to
 * SMTP_SASL_NAME_MAX bytes without control bytes: a NUL would cut the C
 * string, and CR or LF have no place in a name that goes to logs. */
static int sasl_copy_name(char *dest, const unsigned char *src, size_t len)
{
    if (len == 0 || len > SMTP_SASL_NAME_MAX) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (src[i] < 0x20 || src[i] == 0x7f) {
            return -1;
        }
    }
    memcpy(dest, src, len);
    dest[len] = '\0';
    return 0;
}

/* sasl_plain splits "[authzid] NUL authcid NUL passwd" (RFC 4616
 * section 2). */
static enum smtp_sasl_result sasl_plain(struct smtp_sasl *sasl,
                                        const unsigned char *msg,
                                        size_t len)
{
    const unsigned char *first = memchr(msg, '\0', len);
    const unsigned char *second;
    size_t authzid_len;
    size_t user_len;

    if (first == NULL) {
        return SMTP_SASL_MALFORMED;
    }
    second = memchr(first + 1, '\0', len - (size_t)(first + 1 - msg));
    if (second == NULL) {
        return SMTP_SASL_MALFORMED;
    }
    authzid_len = (size_t)(first - msg);
    user_len = (size_t)(second - first - 1);
    if (sasl_copy_name(sasl->user, first + 1, user_len) < 0 ||
        sasl_copy_name(sasl->password, second + 1,
                       len - (size_t)(second + 1 - msg)) < 0) {
        return SMTP_SASL_MALFORMED;
    }
    if (authzid_len != 0 &&
        (authzid_len != user_len || memcmp(msg, first + 1, user_len) != 0)) {
        return SMTP_SASL_AUTHZID;
    }
    return SMTP_SASL_DONE;
}

/* sasl_decode decodes one response; "=" and "" are the empty response. */
static long sasl_decode(const char *text, size_t len, unsigned char *out,
                        size_t size)
{
    if (len == 1 && text[0] == '=') {
        return 0;
    }
    return smtp_base64_decode(text, len, out, size);
}

static enum smtp_sasl_result sasl_take(struct smtp_sasl *sasl,
                                       const char *text, size_t len)
{
    unsigned char msg[SASL_PLAIN_MAX];
    enum smtp_sasl_result result = SMTP_SASL_MALFORMED;
    long n;

    if (len > SASL_BASE64_MAX) {
        return SMTP_SASL_MALFORMED;
    }
    n = sasl_decode(text, len, msg, sizeof(msg));
    if (n < 0) {
        return SMTP_SASL_BAD_BASE64;
    }
    sasl->step++;
    if (sasl->mech == SMTP_SASL_PLAIN) {
        result = sasl_plain(sasl, msg, (size_t)n);
    } else if (sasl->step == 1 &&
               sasl_copy_name(sasl->user, msg, (size_t)n) == 0) {
        sasl->challenge = SASL_LOGIN_PASSWORD_PROMPT;
        result = SMTP_SASL_CHALLENGE;
    } else if (sasl->step == 2 &&
               sasl_copy_name(sasl->password, msg, (size_t)n) == 0) {
        result = SMTP_SASL_DONE;
    }
    explicit_bzero(msg, sizeof(msg));
    return result;
}

enum smtp_sasl_result smtp_sasl_start(struct smtp_sasl *sasl,
                                      enum smtp_sasl_mech mech,
                                      const char *initial, size_t len)
{
    smtp_sasl_clear(sasl);
    sasl->mech = mech;
    if (initial != NULL) {
        return sasl_take(sasl, initial, len);
    }
    /* PLAIN sends its whole message after an empty challenge. */
    sasl->challenge = mech == SMTP_SASL_PLAIN ? "" : SASL_LOGIN_USER_PROMPT;
    return SMTP_SASL_CHALLENGE;
}

enum smtp_sasl_result smtp_sasl_step(struct smtp_sasl *sasl,
                                     const char *response, size_t len)
{
    if (len == 1 && response[0] == '*') {
        return SMTP_SASL_CANCELLED;
    }
    return sasl_take(sasl, response, len);
}

void smtp_sasl_clear(struct smtp_sasl *sasl)
{
    /* explicit_bzero, because a plain memset of memory that is not read
     * again may be removed by the compiler. */
    explicit_bzero(sasl, sizeof(*sasl));
}

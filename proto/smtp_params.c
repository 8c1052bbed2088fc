/* The ESMTP parameter table and the one loop that applies it. Adding a
 * parameter is one row and one value parser. */
#include "proto/smtp_params.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp_chars.h"
#include "proto/smtp_server_internal.h"

/* The longest SIZE= value: 20 digits hold any uint64_t. */
#define SMTP_SIZE_DIGITS_MAX 20

/* A reply quotes at most this many bytes of a parameter. */
#define SMTP_PARAM_QUOTE_MAX 80

#define SMTP_PARAM_UNSUPPORTED "555 5.5.4"
#define SMTP_PARAM_SYNTAX "501 5.5.4"

struct smtp_param {
    const char *keyword;
    unsigned verbs;        /* smtp_param_verb bits */
    unsigned extension;    /* smtp_server_extension bits: one must be
                            * offered */
    bool takes_value;      /* KEYWORD=value, else a bare KEYWORD */
    const char *invalid;   /* reply and enhanced code for a bad value */

    /* parse applies value[0..len) (NULL and 0 for a bare keyword);
     * offered holds the smtp_server_extension bits on offer. Returns
     * NULL, or the reason the value is invalid. */
    const char *(*parse)(const char *value, size_t len, unsigned offered,
                         struct smtp_param_values *values);
};

static const char *param_size(const char *value, size_t len, unsigned offered,
                              struct smtp_param_values *values);
static const char *param_body(const char *value, size_t len, unsigned offered,
                              struct smtp_param_values *values);
static const char *param_smtputf8(const char *value, size_t len,
                                  unsigned offered,
                                  struct smtp_param_values *values);
static const char *param_ret(const char *value, size_t len, unsigned offered,
                             struct smtp_param_values *values);
static const char *param_envid(const char *value, size_t len, unsigned offered,
                               struct smtp_param_values *values);
static const char *param_notify(const char *value, size_t len, unsigned offered,
                                struct smtp_param_values *values);
static const char *param_orcpt(const char *value, size_t len, unsigned offered,
                               struct smtp_param_values *values);
static const char *param_auth(const char *value, size_t len, unsigned offered,
                              struct smtp_param_values *values);

/* SIZE, BODY and SMTPUTF8 keep 555 for a bad value, as before the table
 * existed. The DSN rows reply 501 with the reason. */
static const struct smtp_param smtp_params[] = {
    {"SIZE", SMTP_PARAM_MAIL, SMTP_EXT_SIZE, true, SMTP_PARAM_UNSUPPORTED,
     param_size},
    {"BODY", SMTP_PARAM_MAIL, SMTP_EXT_8BITMIME | SMTP_EXT_BINARYMIME,
     true, SMTP_PARAM_UNSUPPORTED, param_body},
    {"SMTPUTF8", SMTP_PARAM_MAIL, SMTP_EXT_SMTPUTF8, false,
     SMTP_PARAM_UNSUPPORTED, param_smtputf8},
    {"RET", SMTP_PARAM_MAIL, SMTP_EXT_DSN, true, SMTP_PARAM_SYNTAX,
     param_ret},
    {"ENVID", SMTP_PARAM_MAIL, SMTP_EXT_DSN, true, SMTP_PARAM_SYNTAX,
     param_envid},
    {"NOTIFY", SMTP_PARAM_RCPT, SMTP_EXT_DSN, true, SMTP_PARAM_SYNTAX,
     param_notify},
    {"ORCPT", SMTP_PARAM_RCPT, SMTP_EXT_DSN, true, SMTP_PARAM_SYNTAX,
     param_orcpt},
    {"AUTH", SMTP_PARAM_MAIL, SMTP_EXT_AUTH, true, SMTP_PARAM_SYNTAX,
     param_auth},
};

#define SMTP_PARAM_COUNT (sizeof(smtp_params) / sizeof(smtp_params[0]))

/* The repeat check keeps one bit per row. */
_Static_assert(SMTP_PARAM_COUNT <= 32, "too many ESMTP parameters");

int smtp_parse_size(const char *text, size_t len, uint64_t *size)
{
    uint64_t value = 0;

    if (len == 0 || len > SMTP_SIZE_DIGITS_MAX) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        uint64_t digit = (uint64_t)(text[i] - '0');

        if (!smtp_char_is(text[i], SMTP_CHAR_DIGIT) ||
            value > (UINT64_MAX - digit) / 10) {
            return -1;
        }
        value = value * 10 + digit;
    }
    *size = value;
    return 0;
}

unsigned smtp_extensions_offered(unsigned disabled)
{
    /* AUTH depends on the session, see smtp_session_offered(). */
    unsigned offered = ~disabled & ~(unsigned)SMTP_EXT_AUTH;

    /* RFC 3030: a BINARYMIME body can only be sent with BDAT. */
    if ((disabled & SMTP_EXT_CHUNKING) != 0) {
        offered &= ~(unsigned)SMTP_EXT_BINARYMIME;
    }
    return offered;
}

unsigned smtp_session_offered(const struct smtp_server *s)
{
    unsigned offered;

    if (!s->esmtp) {
        return 0;
    }
    offered = smtp_extensions_offered(s->opts->disabled_extensions);
    if (smtp_auth_offered(s)) {
        offered |= SMTP_EXT_AUTH;
    }
    return offered;
}

static bool value_is(const char *value, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(value, word, len) == 0;
}

static const char *param_size(const char *value, size_t len, unsigned offered,
                              struct smtp_param_values *values)
{
    (void)offered;
    if (smtp_parse_size(value, len, &values->mail.size) < 0) {
        return "expected a number of octets";
    }
    return NULL;
}

static const char *param_body(const char *value, size_t len, unsigned offered,
                              struct smtp_param_values *values)
{
    /* RFC 6152 defines 7BIT and 8BITMIME, RFC 3030 adds BINARYMIME; a
     * value exists only while an extension that defines it is offered. */
    if (value_is(value, len, "7BIT")) {
        values->mail.body = SMTP_BODY_7BIT;
        return NULL;
    }
    if (value_is(value, len, "8BITMIME") &&
        (offered & SMTP_EXT_8BITMIME) != 0) {
        values->mail.body = SMTP_BODY_8BITMIME;
        return NULL;
    }
    if (value_is(value, len, "BINARYMIME") &&
        (offered & SMTP_EXT_BINARYMIME) != 0) {
        values->mail.body = SMTP_BODY_BINARYMIME;
        return NULL;
    }
    if ((offered & SMTP_EXT_8BITMIME) == 0) {
        return "expected 7BIT or BINARYMIME";
    }
    if ((offered & SMTP_EXT_BINARYMIME) == 0) {
        return "expected 7BIT or 8BITMIME";
    }
    return "expected 7BIT, 8BITMIME or BINARYMIME";
}

static const char *param_smtputf8(const char *value, size_t len,
                                  unsigned offered,
                                  struct smtp_param_values *values)
{
    (void)offered;
    (void)value;
    (void)len;
    values->mail.smtputf8 = true;
    return NULL;
}

static const char *param_ret(const char *value, size_t len, unsigned offered,
                             struct smtp_param_values *values)
{
    (void)offered;
    if (value_is(value, len, "FULL")) {
        values->mail.ret = SMTP_DSN_RET_FULL;
        return NULL;
    }
    if (value_is(value, len, "HDRS")) {
        values->mail.ret = SMTP_DSN_RET_HDRS;
        return NULL;
    }
    return "expected FULL or HDRS";
}

static const char *param_envid(const char *value, size_t len, unsigned offered,
                               struct smtp_param_values *values)
{
    (void)offered;
    char *envid = values->mail.envid;

    if (len > SMTP_ENVID_MAX) {
        return "longer than 100 characters";
    }
    long decoded = smtp_xtext_decode(value, len, envid, SMTP_ENVID_MAX + 1);

    if (decoded < 0) {
        envid[0] = '\0';
        return smtp_xtext_error_reason(decoded);
    }
    return NULL;
}

static const char *param_notify(const char *value, size_t len, unsigned offered,
                                struct smtp_param_values *values)
{
    (void)offered;
    return smtp_dsn_parse_notify(value, len, &values->rcpt.notify);
}

/* param_orcpt parses addr-type ";" xtext, where addr-type is an atom
 * such as rfc822 or utf-8, and stores it with the address decoded. The
 * \x{...} escapes of a utf-8 address (RFC 6533) are checked and kept as
 * sent. NOTE: raw UTF-8 in ORCPT is rejected, even with SMTPUTF8. */
static const char *param_orcpt(const char *value, size_t len, unsigned offered,
                               struct smtp_param_values *values)
{
    (void)offered;
    char *orcpt = values->rcpt.orcpt;
    size_t type_len = 0;
    const char *reason = NULL;
    long decoded;

    if (len > SMTP_ORCPT_MAX) {
        return "longer than 500 characters";
    }
    while (type_len < len &&
           smtp_char_is(value[type_len], SMTP_CHAR_ATEXT)) {
        type_len++;
    }
    if (type_len == 0 || type_len == len || value[type_len] != ';') {
        return "expected addr-type;address";
    }
    if (type_len + 1 == len) {
        return "the address is empty";
    }

    memcpy(orcpt, value, type_len + 1);
    decoded = smtp_xtext_decode(value + type_len + 1, len - type_len - 1,
                                orcpt + type_len + 1,
                                SMTP_ORCPT_MAX + 1 - type_len - 1);
    if (decoded == SMTP_XTEXT_INVALID) {
        orcpt[0] = '\0';
        return "the address is invalid xtext";
    }
    if (decoded < 0) {
        orcpt[0] = '\0';
        return smtp_xtext_error_reason(decoded);
    }

    if (type_len == 5 && strncasecmp(value, "utf-8", 5) == 0) {
        reason = smtp_dsn_check_utf8_addr(orcpt + type_len + 1);
    }
    if (reason != NULL) {
        orcpt[0] = '\0';
    }
    return reason;
}

/* param_auth parses AUTH=xtext (RFC 4954 section 5), whose decoded value
 * is "<>" or a mailbox. */
static const char *param_auth(const char *value, size_t len, unsigned offered,
                              struct smtp_param_values *values)
{
    char *auth = values->mail.auth;
    struct smtp_mailbox mailbox;
    long decoded;

    (void)offered;
    decoded = smtp_xtext_decode(value, len, auth, SMTP_AUTH_PARAM_MAX + 1);
    if (decoded < 0) {
        auth[0] = '\0';
        return smtp_xtext_error_reason(decoded);
    }
    if (strcmp(auth, "<>") != 0 &&
        smtp_mailbox_split(auth, false, &mailbox) != SMTP_PATH_OK) {
        auth[0] = '\0';
        return "expected <> or a mailbox such as user@example.com";
    }
    return NULL;
}

static const struct smtp_param *param_find(const char *keyword, size_t len,
                                           unsigned *index)
{
    for (unsigned i = 0; i < SMTP_PARAM_COUNT; i++) {
        if (value_is(keyword, len, smtp_params[i].keyword)) {
            *index = i;
            return &smtp_params[i];
        }
    }
    return NULL;
}

static const char *verb_name(enum smtp_param_verb verb)
{
    return verb == SMTP_PARAM_RCPT ? "RCPT" : "MAIL";
}

/* One esmtp-param as found in the command line. */
struct param_item {
    const char *text;       /* keyword, "=" and value */
    size_t len;
    size_t keyword_len;
    const char *value;      /* NULL without "=" */
    size_t value_len;
    bool well_formed;       /* matches esmtp-param */
};

/* scan_item reads the item at text[pos..len) up to the next blank. */
static size_t scan_item(const char *text, size_t pos, size_t len,
                        struct param_item *item)
{
    size_t start = pos;

    while (pos < len && smtp_char_is(text[pos], SMTP_CHAR_LDH)) {
        pos++;
    }
    item->text = text + start;
    item->keyword_len = pos - start;
    item->value = NULL;
    item->value_len = 0;
    if (pos < len && text[pos] == '=') {
        pos++;
        item->value = text + pos;
        while (pos < len && smtp_char_is(text[pos], SMTP_CHAR_XVALUE)) {
            pos++;
        }
        item->value_len = (size_t)(text + pos - item->value);
    }

    /* RFC 5321: esmtp-keyword starts with a letter or digit, and an
     * esmtp-value has at least one character. */
    item->well_formed = item->keyword_len > 0 && text[start] != '-' &&
                        (item->value == NULL || item->value_len > 0) &&
                        (pos == len ||
                         smtp_char_is(text[pos], SMTP_CHAR_BLANK));
    while (pos < len && !smtp_char_is(text[pos], SMTP_CHAR_BLANK)) {
        pos++;
    }
    item->len = pos - start;
    return pos;
}

/* quote_length returns how much of the item a reply may quote: at most
 * SMTP_PARAM_QUOTE_MAX bytes, up to the first byte that is not printable
 * ASCII, so a reply never carries 8-bit or control bytes. */
static int quote_length(const struct param_item *item)
{
    size_t len = 0;

    while (len < item->len && len < SMTP_PARAM_QUOTE_MAX &&
           item->text[len] > ' ' && item->text[len] <= '~') {
        len++;
    }
    return (int)len;
}

/* apply_item checks one item against the table. Returns 0, or -1 after
 * queueing the error reply. */
static int apply_item(struct smtp_server *s, enum smtp_param_verb verb,
                      const struct param_item *item, unsigned *seen,
                      struct smtp_param_values *values)
{
    int quoted = quote_length(item);
    const char *name = verb_name(verb);
    unsigned offered = smtp_session_offered(s);
    const struct smtp_param *param;
    const char *reason;
    unsigned index = 0;

    if (!item->well_formed) {
        smtp_server_reject(s, "555 5.5.4 Error: invalid %s parameter "
                           "syntax: %.*s", name, quoted, item->text);
        return -1;
    }
    param = param_find(item->text, item->keyword_len, &index);
    if (param == NULL || (param->verbs & (unsigned)verb) == 0) {
        smtp_server_reject(s, "555 5.5.4 Error: unsupported %s parameter: "
                           "%.*s", name, quoted, item->text);
        return -1;
    }
    if ((offered & param->extension) == 0) {
        smtp_server_reject(s, "555 5.5.4 Error: %s parameter not offered: "
                           "%.*s", name, quoted, item->text);
        return -1;
    }
    if ((*seen & (1u << index)) != 0) {
        smtp_server_reject(s, "555 5.5.4 Error: repeated %s parameter: "
                           "%.*s", name, quoted, item->text);
        return -1;
    }
    *seen |= 1u << index;

    if (param->takes_value != (item->value != NULL)) {
        smtp_server_reject(s, "555 5.5.4 Error: %s parameter %s %s: %.*s",
                           name, param->keyword,
                           param->takes_value ? "needs a value"
                                              : "takes no value",
                           quoted, item->text);
        return -1;
    }
    reason = param->parse(item->value, item->value_len, offered, values);
    if (reason != NULL) {
        smtp_server_reject(s, "%s Error: invalid %s parameter %.*s: %s",
                           param->invalid, name, quoted, item->text,
                           reason);
        return -1;
    }
    return 0;
}

int smtp_params_parse(struct smtp_server *s, enum smtp_param_verb verb,
                      const char *text, size_t len,
                      struct smtp_param_values *values)
{
    unsigned seen = 0;
    size_t pos = 0;

    while (pos < len) {
        struct param_item item;

        pos = scan_item(text, pos, len, &item);
        if (apply_item(s, verb, &item, &seen, values) < 0) {
            return -1;
        }
        while (pos < len && smtp_char_is(text[pos], SMTP_CHAR_BLANK)) {
            pos++;
        }
    }

    /* RFC 4954 section 5: AUTH= from a client that did not authenticate
     * counts as AUTH=<>. */
    if (values->mail.auth[0] != '\0' && !s->authenticated) {
        memcpy(values->mail.auth, "<>", 3);
    }
    return 0;
}

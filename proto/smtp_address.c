#include "proto/smtp_address.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp_chars.h"

/* RFC 5321 section 4.5.3.1: size limits of the parts of an address. */
#define SMTP_LOCAL_PART_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_LABEL_MAX 63

/* Longest IPv6 address text: eight groups with an embedded IPv4 tail. */
#define SMTP_IPV6_TEXT_MAX 45

/* A cursor over text[pos..len). utf8 allows UTF-8 in local parts and
 * domain labels (RFC 6531); without it an 8-bit byte ends the parse with
 * SMTP_PATH_8BIT. kind and ip describe the last domain scanned. */
struct scanner {
    const char *text;
    size_t pos;
    size_t len;
    bool utf8;
    enum smtp_domain_kind kind;
    unsigned char ip[16];
};

static bool scan_at(const struct scanner *sc, char c)
{
    return sc->pos < sc->len && sc->text[sc->pos] == c;
}

static bool scan_class(const struct scanner *sc, unsigned classes)
{
    return sc->pos < sc->len && smtp_char_is(sc->text[sc->pos], classes);
}

/* scan_misplaced returns the result for a byte that the grammar does not
 * allow at the cursor. An 8-bit byte is SMTP_PATH_8BIT only without
 * SMTPUTF8. With it, the byte is a syntax error, because RFC 6531 allows
 * no UTF-8 in address literals and quoted-pairs. */
static enum smtp_path_result scan_misplaced(const struct scanner *sc)
{
    return scan_class(sc, SMTP_CHAR_8BIT) && !sc->utf8 ? SMTP_PATH_8BIT
                                                       : SMTP_PATH_SYNTAX;
}

/* utf8_sequence returns the length of the well-formed non-ASCII UTF-8
 * sequence (RFC 3629) at s[0..avail), or 0 when there is none. */
static size_t utf8_sequence(const unsigned char *s, size_t avail)
{
    size_t need;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 3;
        low = s[0] == 0xe0 ? 0xa0 : 0x80;
        high = s[0] == 0xed ? 0x9f : 0xbf;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 4;
        low = s[0] == 0xf0 ? 0x90 : 0x80;
        high = s[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (avail < need || s[1] < low || s[1] > high) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return need;
}

/* scan_8bit consumes one UTF-8 character at the cursor, which holds an
 * 8-bit byte. */
static enum smtp_path_result scan_8bit(struct scanner *sc)
{
    const unsigned char *at = (const unsigned char *)sc->text + sc->pos;
    size_t n;

    if (!sc->utf8) {
        return SMTP_PATH_8BIT;
    }
    n = utf8_sequence(at, sc->len - sc->pos);
    if (n == 0) {
        return SMTP_PATH_SYNTAX;
    }
    sc->pos += n;
    return SMTP_PATH_OK;
}

/* scan_label consumes one sub-domain: Let-dig [Ldh-str], or a U-label
 * when utf8 is on. */
static enum smtp_path_result scan_label(struct scanner *sc)
{
    size_t start = sc->pos;
    enum smtp_path_result rc;

    if (!scan_class(sc, SMTP_CHAR_ALPHA | SMTP_CHAR_DIGIT |
                            SMTP_CHAR_8BIT)) {
        return SMTP_PATH_SYNTAX;
    }
    while (scan_class(sc, SMTP_CHAR_LDH | SMTP_CHAR_8BIT)) {
        if (scan_class(sc, SMTP_CHAR_LDH)) {
            sc->pos++;
            continue;
        }
        rc = scan_8bit(sc);
        if (rc != SMTP_PATH_OK) {
            return rc;
        }
    }

    /* NOTE: a U-label is only checked to be well-formed UTF-8, not
     * against the IDNA2008 rules. */
    if (sc->text[sc->pos - 1] == '-') {
        return SMTP_PATH_SYNTAX;
    }
    if (sc->pos - start > SMTP_LABEL_MAX) {
        return SMTP_PATH_TOO_LONG;
    }
    return SMTP_PATH_OK;
}

static enum smtp_path_result scan_domain_name(struct scanner *sc)
{
    size_t start = sc->pos;
    enum smtp_path_result rc;

    for (;;) {
        rc = scan_label(sc);
        if (rc != SMTP_PATH_OK) {
            return rc;
        }
        if (!scan_at(sc, '.')) {
            break;
        }
        sc->pos++;
    }
    if (sc->pos - start > SMTP_DOMAIN_MAX) {
        return SMTP_PATH_TOO_LONG;
    }
    sc->kind = SMTP_DOMAIN_NAME;
    return SMTP_PATH_OK;
}

/* ipv4_literal_valid checks IPv4-address-literal: Snum 3("." Snum), each
 * Snum 1 to 3 digits with a value up to 255, and stores the four values
 * in ip. Leading zeros are decimal, as RFC 5321 defines Snum. */
static bool ipv4_literal_valid(const char *text, size_t len,
                               unsigned char ip[4])
{
    size_t pos = 0;

    for (int part = 0; part < 4; part++) {
        unsigned value = 0;
        size_t digits = 0;

        if (part > 0) {
            if (pos >= len || text[pos] != '.') {
                return false;
            }
            pos++;
        }
        while (pos < len && smtp_char_is(text[pos], SMTP_CHAR_DIGIT) &&
               digits < 3) {
            value = value * 10 + (unsigned)(text[pos] - '0');
            digits++;
            pos++;
        }
        if (digits == 0 || value > 255) {
            return false;
        }
        ip[part] = (unsigned char)value;
    }
    return pos == len;
}

/* ipv6_groups_valid checks a rule of RFC 5321 section 4.1.3 that
 * inet_pton() does not: "::" stands for at least two zero groups, so at
 * most 6 groups, or 4 before an IPv4 tail, may appear beside it. */
static bool ipv6_groups_valid(const char *text)
{
    bool ipv4_tail = strchr(text, '.') != NULL;
    size_t groups = 0;

    if (strstr(text, "::") == NULL) {
        return true;
    }
    for (size_t i = 0; text[i] != '\0'; i++) {
        if (text[i] != ':' && (i == 0 || text[i - 1] == ':')) {
            groups++;
        }
    }

    /* The IPv4 tail was counted as one group. */
    if (ipv4_tail) {
        return groups - 1 <= 4;
    }
    return groups <= 6;
}

/* ipv6_literal_valid checks the text after "IPv6:" and stores the
 * address in ip, in network byte order. */
static bool ipv6_literal_valid(const char *text, size_t len,
                               unsigned char ip[16])
{
    char copy[SMTP_IPV6_TEXT_MAX + 1];
    struct in6_addr addr;

    if (len == 0 || len > SMTP_IPV6_TEXT_MAX) {
        return false;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (inet_pton(AF_INET6, copy, &addr) != 1 || !ipv6_groups_valid(copy)) {
        return false;
    }
    memcpy(ip, &addr, sizeof(addr));
    return true;
}

/* scan_address_literal consumes "[" IPv4 or "IPv6:" IPv6 "]". A
 * General-address-literal is rejected because IANA has registered no
 * standardized tag other than IPv6. */
static enum smtp_path_result scan_address_literal(struct scanner *sc)
{
    size_t start;
    size_t len;
    const char *body;

    if (!scan_at(sc, '[')) {
        return SMTP_PATH_SYNTAX;
    }
    sc->pos++;
    start = sc->pos;
    while (scan_class(sc, SMTP_CHAR_DCONTENT)) {
        sc->pos++;
    }
    if (!scan_at(sc, ']')) {
        return scan_misplaced(sc);
    }
    body = sc->text + start;
    len = sc->pos - start;
    sc->pos++;

    if (len > 5 && strncasecmp(body, "IPv6:", 5) == 0) {
        sc->kind = SMTP_DOMAIN_IPV6;
        return ipv6_literal_valid(body + 5, len - 5, sc->ip)
                   ? SMTP_PATH_OK
                   : SMTP_PATH_SYNTAX;
    }
    sc->kind = SMTP_DOMAIN_IPV4;
    return ipv4_literal_valid(body, len, sc->ip) ? SMTP_PATH_OK
                                                 : SMTP_PATH_SYNTAX;
}

static enum smtp_path_result scan_domain(struct scanner *sc)
{
    if (scan_at(sc, '[')) {
        return scan_address_literal(sc);
    }
    return scan_domain_name(sc);
}

/* scan_source_route consumes A-d-l ":" (At-domain *("," At-domain)),
 * which RFC 5321 says to accept and ignore. */
static enum smtp_path_result scan_source_route(struct scanner *sc)
{
    enum smtp_path_result rc;

    for (;;) {
        if (!scan_at(sc, '@')) {
            return SMTP_PATH_SYNTAX;
        }
        sc->pos++;
        rc = scan_domain_name(sc);
        if (rc != SMTP_PATH_OK) {
            return rc;
        }
        if (!scan_at(sc, ',')) {
            break;
        }
        sc->pos++;
    }
    if (!scan_at(sc, ':')) {
        return SMTP_PATH_SYNTAX;
    }
    sc->pos++;
    return SMTP_PATH_OK;
}

/* scan_quoted_string consumes DQUOTE *QcontentSMTP DQUOTE. */
static enum smtp_path_result scan_quoted_string(struct scanner *sc)
{
    enum smtp_path_result rc;

    sc->pos++;
    for (;;) {
        if (scan_at(sc, '"')) {
            sc->pos++;
            return SMTP_PATH_OK;
        }
        if (scan_at(sc, '\\')) {
            sc->pos++;
            if (!scan_at(sc, ' ') && !scan_class(sc, SMTP_CHAR_XVALUE |
                                                        SMTP_CHAR_DCONTENT)) {
                return scan_misplaced(sc);
            }
            sc->pos++;
        } else if (scan_class(sc, SMTP_CHAR_QTEXT)) {
            sc->pos++;
        } else if (scan_class(sc, SMTP_CHAR_8BIT)) {
            rc = scan_8bit(sc);
            if (rc != SMTP_PATH_OK) {
                return rc;
            }
        } else {
            return SMTP_PATH_SYNTAX;
        }
    }
}

/* scan_dot_string consumes Atom *("." Atom). */
static enum smtp_path_result scan_dot_string(struct scanner *sc)
{
    enum smtp_path_result rc;

    for (;;) {
        size_t atom_start = sc->pos;

        while (scan_class(sc, SMTP_CHAR_ATEXT | SMTP_CHAR_8BIT)) {
            if (scan_class(sc, SMTP_CHAR_ATEXT)) {
                sc->pos++;
                continue;
            }
            rc = scan_8bit(sc);
            if (rc != SMTP_PATH_OK) {
                return rc;
            }
        }
        if (sc->pos == atom_start) {
            return SMTP_PATH_SYNTAX;
        }
        if (!scan_at(sc, '.')) {
            return SMTP_PATH_OK;
        }
        sc->pos++;
    }
}

static enum smtp_path_result scan_local_part(struct scanner *sc)
{
    size_t start = sc->pos;
    enum smtp_path_result rc;

    if (scan_at(sc, '"')) {
        rc = scan_quoted_string(sc);
    } else {
        rc = scan_dot_string(sc);
    }
    if (rc == SMTP_PATH_OK && sc->pos - start > SMTP_LOCAL_PART_MAX) {
        rc = SMTP_PATH_TOO_LONG;
    }
    return rc;
}

static bool is_postmaster(const char *text, size_t len)
{
    return len == 10 && strncasecmp(text, "postmaster", 10) == 0;
}

/* scan_mailbox_end reports whether the mailbox ends at the cursor: at
 * the '>' of a path, or at the end of a stored address. */
static bool scan_mailbox_end(const struct scanner *sc)
{
    return sc->pos == sc->len || scan_at(sc, '>');
}

/* scan_mailbox consumes Local-part ["@" (Domain / address-literal)]; the
 * domain may be missing only for postmaster. */
static enum smtp_path_result scan_mailbox(struct scanner *sc,
                                          bool *postmaster,
                                          size_t *domain_offset)
{
    size_t start = sc->pos;
    enum smtp_path_result rc;

    sc->kind = SMTP_DOMAIN_NONE;
    rc = scan_local_part(sc);
    if (rc != SMTP_PATH_OK) {
        return rc;
    }
    if (scan_mailbox_end(sc) && is_postmaster(sc->text + start,
                                              sc->pos - start)) {
        *postmaster = true;
        *domain_offset = sc->pos - start;
        return SMTP_PATH_OK;
    }
    if (!scan_at(sc, '@')) {
        return SMTP_PATH_SYNTAX;
    }
    sc->pos++;
    *domain_offset = sc->pos - start;
    return scan_domain(sc);
}

static void path_clear(struct smtp_path *path)
{
    path->address[0] = '\0';
    path->domain = path->address;
    path->is_null = false;
    path->is_postmaster = false;
}

enum smtp_path_result smtp_path_parse(const char *text, size_t len,
                                      bool allow_utf8, struct smtp_path *path,
                                      size_t *end)
{
    struct scanner sc = {.text = text, .len = len, .utf8 = allow_utf8};
    enum smtp_path_result rc;
    size_t mailbox_start;
    size_t mailbox_len;
    size_t domain_offset = 0;

    path_clear(path);
    if (!scan_at(&sc, '<')) {
        return SMTP_PATH_SYNTAX;
    }
    sc.pos++;
    if (scan_at(&sc, '>')) {
        path->is_null = true;
        *end = sc.pos + 1;
        return SMTP_PATH_OK;
    }

    if (scan_at(&sc, '@')) {
        rc = scan_source_route(&sc);
        if (rc != SMTP_PATH_OK) {
            return rc;
        }
    }
    mailbox_start = sc.pos;
    rc = scan_mailbox(&sc, &path->is_postmaster, &domain_offset);
    if (rc != SMTP_PATH_OK) {
        path_clear(path);
        return rc;
    }
    if (!scan_at(&sc, '>')) {
        path_clear(path);
        return scan_misplaced(&sc);
    }
    sc.pos++;

    /* The limit covers the whole path, brackets and source route too. */
    if (sc.pos > SMTP_PATH_MAX) {
        path_clear(path);
        return SMTP_PATH_TOO_LONG;
    }
    mailbox_len = sc.pos - 1 - mailbox_start;
    memcpy(path->address, text + mailbox_start, mailbox_len);
    path->address[mailbox_len] = '\0';
    path->domain = path->address + domain_offset;
    *end = sc.pos;
    return SMTP_PATH_OK;
}

bool smtp_domain_valid(const char *text, size_t len, bool allow_utf8)
{
    struct scanner sc = {.text = text, .len = len, .utf8 = allow_utf8};

    if (len == 0 || len > SMTP_DOMAIN_MAX) {
        return false;
    }
    return scan_domain(&sc) == SMTP_PATH_OK && sc.pos == len;
}

enum smtp_path_result smtp_mailbox_split(const char *address,
                                         bool allow_utf8,
                                         struct smtp_mailbox *mailbox)
{
    size_t len = strlen(address);
    struct scanner sc = {.text = address, .len = len, .utf8 = allow_utf8};
    enum smtp_path_result rc;
    bool postmaster = false;
    size_t domain_offset = 0;

    memset(mailbox, 0, sizeof(*mailbox));
    mailbox->domain = address + len;
    rc = scan_mailbox(&sc, &postmaster, &domain_offset);
    if (rc == SMTP_PATH_OK && sc.pos != len) {
        rc = scan_misplaced(&sc);
    }
    if (rc == SMTP_PATH_OK && len + 2 > SMTP_PATH_MAX) {
        rc = SMTP_PATH_TOO_LONG;
    }
    if (rc != SMTP_PATH_OK) {
        return rc;
    }

    /* Without a domain the offset is the local part's length; with one
     * it is one past the '@'. */
    mailbox->local_len = postmaster ? domain_offset : domain_offset - 1;
    mailbox->domain = address + domain_offset;
    mailbox->kind = sc.kind;
    memcpy(mailbox->ip, sc.ip, sizeof(mailbox->ip));
    return SMTP_PATH_OK;
}

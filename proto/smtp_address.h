/* SMTP paths (RFC 5321 section 4.1.2, with RFC 6531 UTF-8).
 *
 * One parser for the server (MAIL FROM, RCPT TO) and the outbound client. */
#ifndef RINGRELAY_PROTO_SMTP_ADDRESS_H
#define RINGRELAY_PROTO_SMTP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_PATH_MAX 256 /* RFC 5321 4.5.3.1.3: 256 octets with brackets */

enum smtp_path_result {
    SMTP_PATH_OK,
    SMTP_PATH_SYNTAX,    /* not a valid path */
    SMTP_PATH_TOO_LONG,
    SMTP_PATH_8BIT,      /* non-ASCII without SMTPUTF8 */
};

/* smtp_path: a parsed path. address is "local@domain" as given (case
 * kept, source route dropped), "" for the null path <>, "postmaster" for
 * <postmaster>. domain points into address ("" when there is none). */
struct smtp_path {
    char address[SMTP_PATH_MAX + 1];
    const char *domain;
    bool is_null;
    bool is_postmaster;
};

/* smtp_path_parse parses "<...>" at text[0..len) and stores in *end the
 * offset just past the closing '>'. allow_utf8 permits UTF-8 (SMTPUTF8). */
enum smtp_path_result smtp_path_parse(const char *text, size_t len,
                                      bool allow_utf8, struct smtp_path *path,
                                      size_t *end);

/* The form of a mailbox's domain part. */
enum smtp_domain_kind {
    SMTP_DOMAIN_NONE,    /* no domain: a bare "postmaster" */
    SMTP_DOMAIN_NAME,    /* a host name */
    SMTP_DOMAIN_IPV4,    /* "[192.0.2.1]" */
    SMTP_DOMAIN_IPV6,    /* "[IPv6:2001:db8::1]" */
};

/* smtp_mailbox: the parts of one mailbox. The local part is
 * address[0..local_len), quotes included. */
struct smtp_mailbox {
    size_t local_len;
    const char *domain;         /* into the address, after the '@' that
                                 * ends the local part, or "" */
    enum smtp_domain_kind kind;
    unsigned char ip[16];       /* an address literal's IP in network byte
                                 * order: 4 bytes for IPv4, 16 for IPv6 */
};

/* smtp_mailbox_split parses address, a mailbox as smtp_path_parse stores
 * it ("local@domain" with no angle brackets or source route, or a bare
 * "postmaster"), and splits it at the '@' that ends the local part, so a
 * quoted local part may contain '@'. The same grammar and limits apply as
 * inside a path. allow_utf8 permits UTF-8 (SMTPUTF8). The null path ""
 * is not a mailbox and returns SMTP_PATH_SYNTAX. */
enum smtp_path_result smtp_mailbox_split(const char *address,
                                         bool allow_utf8,
                                         struct smtp_mailbox *mailbox);

/* smtp_domain_valid reports whether text[0..len) is exactly a domain or an
 * address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"), as EHLO and HELO
 * take. allow_utf8 permits UTF-8 labels (SMTPUTF8). */
bool smtp_domain_valid(const char *text, size_t len, bool allow_utf8);

#endif

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

/* smtp_domain_valid reports whether text[0..len) is exactly a domain or an
 * address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"), as EHLO and HELO
 * take. allow_utf8 permits UTF-8 labels (SMTPUTF8). */
bool smtp_domain_valid(const char *text, size_t len, bool allow_utf8);

#endif

/* ESMTP parameters of MAIL and RCPT (RFC 5321 section 4.1.2,
 * esmtp-param): one table row per keyword gives the verbs that take it,
 * the extension that must be offered and the parser of its value. A
 * command row in smtp_commands.c names the verb whose parameters it
 * accepts, and smtp_params_parse() checks them all the same way.
 *
 * Every error reply names the parameter. RFC 5321 defines 555 as
 * "parameters not recognized or not implemented" and 501 as "syntax error
 * in parameters or arguments", so:
 *   555 5.5.4  an unknown keyword, a keyword of the other verb, an
 *              extension that is not offered, a repeated keyword, a
 *              missing or unexpected value, text that is no esmtp-param,
 *              and a SIZE or BODY value that does not parse
 *   501 5.5.4  a RET, ENVID, NOTIFY or ORCPT value that breaks the
 *              RFC 3461 grammar, with the reason */
#ifndef RINGRELAY_PROTO_SMTP_PARAMS_H
#define RINGRELAY_PROTO_SMTP_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_server.h"

struct smtp_server;

/* Verbs that take ESMTP parameters, as bits. */
enum smtp_param_verb {
    SMTP_PARAM_NONE = 0,
    SMTP_PARAM_MAIL = 1u << 0,
    SMTP_PARAM_RCPT = 1u << 1,
};

/* The parsed parameters; only the struct of the verb is written. */
struct smtp_param_values {
    struct smtp_mail_params mail;
    struct smtp_rcpt_params rcpt;
};

/* smtp_params_parse parses blank-separated esmtp-keyword ["=" esmtp-value]
 * items of verb into values, which contains the defaults. Returns 0, or -1
 * after queueing the error reply. */
int smtp_params_parse(struct smtp_server *s, enum smtp_param_verb verb,
                      const char *text, size_t len,
                      struct smtp_param_values *values);

/* smtp_extensions_offered returns the smtp_server_extension bits that
 * the EHLO reply offers, given the disabled ones. */
unsigned smtp_extensions_offered(unsigned disabled);

/* smtp_session_offered returns the smtp_server_extension bits that the
 * session's client may use: none after HELO, since only an EHLO reply
 * offers extensions (RFC 5321 section 4.1.1.1). */
unsigned smtp_session_offered(const struct smtp_server *s);

/* smtp_parse_size reads a SIZE= or BDAT chunk size: 1 to 20 digits that
 * fit in uint64_t. Returns 0, or -1 when it is not such a number. */
int smtp_parse_size(const char *text, size_t len, uint64_t *size);

#endif

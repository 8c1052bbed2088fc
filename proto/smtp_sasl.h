/* SASL mechanisms PLAIN (RFC 4616) and LOGIN for SMTP AUTH (RFC 4954).
 *
 * The mechanism state does no I/O and knows nothing of SMTP replies: the
 * caller passes the base64 text of each client response and gets back
 * either a challenge to send after "334 ", the decoded credentials, or
 * the reason the exchange failed. Base64 is checked strictly (RFC 4648
 * alphabet, padding, no bits left over, no blanks). Names and passwords
 * are byte strings without NUL or other control bytes, at most
 * SMTP_SASL_NAME_MAX bytes each.
 *
 * PLAIN takes "[authzid] NUL authcid NUL passwd". An authzid is accepted
 * only when it is empty or equal to the authcid, because this relay has
 * no rule that lets one user act for another. LOGIN asks "Username:" and
 * then "Password:"; an initial response on the AUTH line is the user
 * name. */
#ifndef RINGRELAY_PROTO_SMTP_SASL_H
#define RINGRELAY_PROTO_SMTP_SASL_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of a user name or password, without the NUL. */
#define SMTP_SASL_NAME_MAX 255

/* RFC 4954 section 4: a client response line may be 12288 octets long
 * with its CRLF. */
#define SMTP_SASL_LINE_MAX 12288

enum smtp_sasl_mech {
    SMTP_SASL_PLAIN,
    SMTP_SASL_LOGIN,
};

enum smtp_sasl_result {
    SMTP_SASL_CHALLENGE,   /* send "334 " + sasl->challenge */
    SMTP_SASL_DONE,        /* user and password hold the credentials */
    SMTP_SASL_CANCELLED,   /* the client sent "*" */
    SMTP_SASL_BAD_BASE64,  /* the response is not valid base64 */
    SMTP_SASL_MALFORMED,   /* decoded, but not what the mechanism takes */
    SMTP_SASL_AUTHZID,     /* PLAIN authzid differs from the authcid */
};

/* smtp_sasl: one exchange. Clear it with smtp_sasl_clear() once the
 * credentials were used, so the password does not stay in memory. */
struct smtp_sasl {
    enum smtp_sasl_mech mech;
    unsigned step;                        /* responses taken so far */
    const char *challenge;                /* base64, for "334 " */
    char user[SMTP_SASL_NAME_MAX + 1];
    char password[SMTP_SASL_NAME_MAX + 1];
};

/* smtp_sasl_mech_parse looks up a mechanism name (case-insensitive).
 * Returns 0, or -1 for a mechanism this relay does not offer. */
int smtp_sasl_mech_parse(const char *name, size_t len,
                         enum smtp_sasl_mech *mech);

/* smtp_sasl_mech_name returns "PLAIN" or "LOGIN". */
const char *smtp_sasl_mech_name(enum smtp_sasl_mech mech);

/* smtp_sasl_start begins an exchange. initial is the initial response
 * from the AUTH line (base64, "=" for an empty one) or NULL when the AUTH
 * line had none. */
enum smtp_sasl_result smtp_sasl_start(struct smtp_sasl *sasl,
                                      enum smtp_sasl_mech mech,
                                      const char *initial, size_t len);

/* smtp_sasl_step takes one response line without its CRLF: base64, an
 * empty line or "=" for an empty response, or "*" to cancel. */
enum smtp_sasl_result smtp_sasl_step(struct smtp_sasl *sasl,
                                     const char *response, size_t len);

/* smtp_sasl_clear wipes the credentials. */
void smtp_sasl_clear(struct smtp_sasl *sasl);

/* smtp_base64_decode decodes text[0..len) strictly into out[0..size).
 * Returns the decoded length, or -1 when text is not canonical base64 or
 * does not fit. */
/* smtp_base64_encode writes the padded base64 of data[0..len) and a NUL
 * into out[0..size). Returns the text length, or 0 when size is too
 * small. */
size_t smtp_base64_encode(const unsigned char *data, size_t len, char *out,
                          size_t size);

long smtp_base64_decode(const char *text, size_t len, unsigned char *out,
                        size_t size);

#endif

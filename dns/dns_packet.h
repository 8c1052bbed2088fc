/* DNS messages: building queries and parsing answers into plain structs.
 *
 * ldns does the wire format. Only its packet, record, rdf and dname
 * functions are called here, never one that reaches libcrypto.
 *
 * Return convention: 0 or a negative errno. */
#ifndef RINGRELAY_DNS_PACKET_H
#define RINGRELAY_DNS_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A name in text form: at most 253 characters, no trailing dot, plus the
 * NUL. The root name is the empty string. */
#define DNS_NAME_TEXT_MAX 256

/* Records kept from one answer; further records of the RRset are
 * dropped. */
#define DNS_ANSWER_MAX_RECORDS 32

/* CNAME links followed from a name looked up, over one answer or several
 * queries (dns_chase.c); a longer chain is treated like a loop. */
#define DNS_CNAME_MAX_HOPS 8

/* Certificate association data kept of a TLSA record: enough for SHA-256
 * and SHA-512 digests (matching types 1 and 2) and for the full public
 * key of an EC or Ed25519 key (selector 1, matching type 0). */
#define DNS_TLSA_DATA_MAX 256

/* Cache lifetimes in seconds: positive answers are capped at one day,
 * negative answers (RFC 2308) at three hours, and a negative answer
 * without an SOA record lives 60 seconds. */
#define DNS_TTL_MAX 86400u
#define DNS_NEGATIVE_TTL_MAX 10800u
#define DNS_NEGATIVE_TTL_DEFAULT 60u

/* EDNS0 UDP payload size advertised in queries, the size that avoids IP
 * fragmentation on common paths (DNS flag day 2020). */
#define DNS_EDNS_UDP_SIZE 1232u

/* Record types and class, as on the wire. */
#define DNS_TYPE_A 1u
#define DNS_TYPE_CNAME 5u
#define DNS_TYPE_SOA 6u
#define DNS_TYPE_MX 15u
#define DNS_TYPE_AAAA 28u
#define DNS_TYPE_TLSA 52u
#define DNS_CLASS_IN 1u

enum dns_answer_status {
    DNS_ANSWER_RECORDS,   /* NOERROR with records of the queried type */
    DNS_ANSWER_NODATA,    /* NOERROR without records of that type */
    DNS_ANSWER_NXDOMAIN,  /* the name does not exist */
    DNS_ANSWER_SERVER_FAILURE, /* SERVFAIL, REFUSED or another rcode */
    DNS_ANSWER_TRUNCATED, /* TC bit set: the answer needs TCP */
    DNS_ANSWER_TEMPFAIL,  /* no usable answer from any server */
    DNS_ANSWER_CNAME,     /* NOERROR, a CNAME chain that ends at a name
                           * without records in this answer and without
                           * an SOA: records[0].name is that name, to be
                           * queried next */
    DNS_ANSWER_BAD_CNAME, /* a CNAME loop, a chain over DNS_CNAME_MAX_HOPS
                           * links, or a target that is no host name */
};

/* dns_record: one MX, A, AAAA or TLSA record of an answer, or the
 * target of a DNS_ANSWER_CNAME answer. */
struct dns_record {
    uint16_t preference;          /* MX preference */
    uint8_t addr_len;             /* A: 4, AAAA: 16, others: 0 */
    uint8_t addr[16];             /* network byte order */
    uint8_t tlsa_usage;           /* TLSA fields as on the wire */
    uint8_t tlsa_selector;
    uint8_t tlsa_matching_type;
    uint16_t data_len;            /* TLSA: bytes in data */
    union {
        char name[DNS_NAME_TEXT_MAX]; /* MX or CNAME target, lower case;
                                       * "" is root */
        uint8_t data[DNS_TLSA_DATA_MAX]; /* TLSA association data */
    };
};

/* dns_answer: the records of the queried type at the end of the CNAME
 * chain, and how long the answer may be cached. */
struct dns_answer {
    enum dns_answer_status status;
    uint32_t ttl; /* seconds; 0 means do not cache */
    bool authenticated; /* the server set AD (RFC 4035 section 3.2.3) */
    uint8_t cname_hops; /* CNAME links followed inside the answer */
    size_t skipped; /* records of the type that could not be kept */
    size_t count;
    struct dns_record records[DNS_ANSWER_MAX_RECORDS];
};

/* dns_question: what a query asked, which its answer must repeat. */
struct dns_question {
    char name[DNS_NAME_TEXT_MAX]; /* lower case, no trailing dot */
    uint16_t type;
    uint16_t id;
};

/* dns_name_normalize copies a host or domain name into out in lower case
 * without a trailing dot. Only letters, digits, '-' and '_' are accepted
 * in labels, each label 1 to 63 bytes, the name 1 to 253 bytes. Returns
 * 0 or -EINVAL. */
int dns_name_normalize(char out[DNS_NAME_TEXT_MAX], const char *name);

/* dns_type_name returns the mnemonic of type for log lines, "other" for
 * a type this resolver never asks for. */
const char *dns_type_name(uint16_t type);

/* dns_packet_build_query builds a query for question with RD and AD set
 * and an EDNS0 OPT record; AD asks a validating resolver to report
 * whether it validated the answer (RFC 6840 section 5.7). *wire is
 * allocated with malloc; the caller frees it. */
int dns_packet_build_query(const struct dns_question *question,
                           uint8_t **wire, size_t *len);

/* dns_packet_parse reads an answer to question. Returns 0 and fills
 * answer, -EBADMSG when the bytes are not a DNS message, or -ENOMSG when
 * the message is not a response to question (ID, name, type or class
 * differ); a caller ignores both and keeps waiting. */
int dns_packet_parse(const uint8_t *wire, size_t len,
                     const struct dns_question *question,
                     struct dns_answer *answer);

#endif

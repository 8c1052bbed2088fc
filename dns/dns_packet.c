#include "dns/dns_packet.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldns/ldns.h>

/* CNAME links followed from the question name; the limit also ends
 * CNAME loops. */
#define DNS_CNAME_MAX_HOPS 8

#define DNS_LABEL_MAX 63
#define DNS_NAME_MAX 253

static bool dns_host_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_';
}

int dns_name_normalize(char out[DNS_NAME_TEXT_MAX], const char *name)
{
    size_t len = strlen(name);
    size_t label = 0;

    if (len > 0 && name[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len > DNS_NAME_MAX) {
        return -EINVAL;
    }

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c == '.') {
            if (label == 0) {
                return -EINVAL;
            }
            label = 0;
        } else if (dns_host_char(c) && label < DNS_LABEL_MAX) {
            label++;
        } else {
            return -EINVAL;
        }
        out[i] = (char)tolower(c);
    }
    out[len] = '\0';
    return 0;
}

/* dns_dname_to_text writes a wire-format name as lower-case text without
 * the trailing dot. Names with bytes that no host name may contain are
 * rejected, so results are safe to log and to compare as text. */
static int dns_dname_to_text(const ldns_rdf *rdf, char out[DNS_NAME_TEXT_MAX])
{
    const uint8_t *data = ldns_rdf_data(rdf);
    size_t size = ldns_rdf_size(rdf);
    size_t pos = 0;
    size_t len = 0;

    if (ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME || size == 0) {
        return -EINVAL;
    }

    while (pos < size && data[pos] != 0) {
        size_t label = data[pos];

        if (label > DNS_LABEL_MAX || pos + 1 + label > size ||
            len + 1 + label >= DNS_NAME_TEXT_MAX) {
            return -EINVAL;
        }
        if (len > 0) {
            out[len++] = '.';
        }
        for (size_t i = 1; i <= label; i++) {
            if (!dns_host_char(data[pos + i])) {
                return -EINVAL;
            }
            out[len++] = (char)tolower(data[pos + i]);
        }
        pos += 1 + label;
    }
    if (pos >= size || len > DNS_NAME_MAX) {
        return -EINVAL;
    }
    out[len] = '\0';
    return 0;
}

int dns_packet_build_query(const struct dns_question *question,
                           uint8_t **wire, size_t *len)
{
    ldns_rdf *name = ldns_dname_new_frm_str(question->name);
    ldns_pkt *pkt = NULL;
    int rc = -ENOMEM;

    if (name == NULL) {
        return -EINVAL;
    }

    /* The packet owns name from here on. */
    pkt = ldns_pkt_query_new(name, (ldns_rr_type)question->type,
                             LDNS_RR_CLASS_IN, LDNS_RD);
    if (pkt == NULL) {
        goto out;
    }
    ldns_pkt_set_id(pkt, question->id);
    ldns_pkt_set_edns_udp_size(pkt, DNS_EDNS_UDP_SIZE);

    if (ldns_pkt2wire(wire, pkt, len) != LDNS_STATUS_OK) {
        goto out;
    }
    rc = 0;

out:
    ldns_pkt_free(pkt);
    return rc;
}

/* dns_packet_match checks that pkt is a response to question. */
static int dns_packet_match(const ldns_pkt *pkt,
                            const struct dns_question *question)
{
    const ldns_rr_list *questions = ldns_pkt_question(pkt);
    const ldns_rr *rr;
    char name[DNS_NAME_TEXT_MAX];

    if (!ldns_pkt_qr(pkt) || ldns_pkt_id(pkt) != question->id ||
        ldns_pkt_get_opcode(pkt) != LDNS_PACKET_QUERY) {
        return -ENOMSG;
    }
    if (questions == NULL || ldns_rr_list_rr_count(questions) != 1) {
        return -ENOMSG;
    }

    rr = ldns_rr_list_rr(questions, 0);
    if (ldns_rr_get_type(rr) != question->type ||
        ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
        return -ENOMSG;
    }
    if (dns_dname_to_text(ldns_rr_owner(rr), name) < 0 ||
        strcmp(name, question->name) != 0) {
        return -ENOMSG;
    }
    return 0;
}

/* dns_ttl_clamp reads a TTL: values with the top bit set mean zero
 * (RFC 2181 section 8), and none exceeds max. */
static uint32_t dns_ttl_clamp(uint32_t ttl, uint32_t max)
{
    if (ttl > INT32_MAX) {
        return 0;
    }
    return ttl < max ? ttl : max;
}

/* dns_negative_ttl returns how long a negative answer may be cached: the
 * smaller of the SOA record's TTL and its minimum field (RFC 2308). */
static uint32_t dns_negative_ttl(const ldns_pkt *pkt)
{
    const ldns_rr_list *authority = ldns_pkt_authority(pkt);
    size_t count = authority != NULL ? ldns_rr_list_rr_count(authority) : 0;

    for (size_t i = 0; i < count; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(authority, i);
        const ldns_rdf *minimum;
        uint32_t ttl;

        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA ||
            ldns_rr_rd_count(rr) < 7) {
            continue;
        }
        minimum = ldns_rr_rdf(rr, 6);
        if (minimum == NULL || ldns_rdf_size(minimum) != 4) {
            continue;
        }
        ttl = ldns_rdf2native_int32(minimum);
        if (ldns_rr_ttl(rr) < ttl) {
            ttl = ldns_rr_ttl(rr);
        }
        return dns_ttl_clamp(ttl, DNS_NEGATIVE_TTL_MAX);
    }
    return DNS_NEGATIVE_TTL_DEFAULT;
}

/* dns_follow_cname walks CNAME records of the answer section from name
 * and returns the name at the end of the chain. *ttl drops to the
 * smallest TTL of the links used. */
static const ldns_rdf *dns_follow_cname(const ldns_rr_list *answers,
                                        const ldns_rdf *name, uint32_t *ttl)
{
    size_t count = ldns_rr_list_rr_count(answers);

    for (int hop = 0; hop < DNS_CNAME_MAX_HOPS; hop++) {
        const ldns_rdf *next = NULL;

        for (size_t i = 0; i < count && next == NULL; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(answers, i);

            if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME &&
                ldns_rr_rd_count(rr) == 1 &&
                ldns_dname_compare(ldns_rr_owner(rr), name) == 0) {
                next = ldns_rr_rdf(rr, 0);
                if (ldns_rr_ttl(rr) < *ttl) {
                    *ttl = ldns_rr_ttl(rr);
                }
            }
        }
        if (next == NULL) {
            break;
        }
        name = next;
    }
    return name;
}

/* dns_record_from_rr converts one MX, A or AAAA record; records with the
 * wrong shape or an unusable MX target are skipped by the caller. */
static int dns_record_from_rr(const ldns_rr *rr, uint16_t type,
                              struct dns_record *record)
{
    const ldns_rdf *rdf = ldns_rr_rdf(rr, 0);
    size_t want = type == DNS_TYPE_A ? 4 : 16;

    memset(record, 0, sizeof(*record));
    if (rdf == NULL) {
        return -EINVAL;
    }

    if (type == DNS_TYPE_MX) {
        if (ldns_rr_rd_count(rr) != 2 || ldns_rdf_size(rdf) != 2) {
            return -EINVAL;
        }
        record->preference = ldns_rdf2native_int16(rdf);
        return dns_dname_to_text(ldns_rr_rdf(rr, 1), record->name);
    }

    if (ldns_rr_rd_count(rr) != 1 || ldns_rdf_size(rdf) != want) {
        return -EINVAL;
    }
    record->addr_len = (uint8_t)want;
    memcpy(record->addr, ldns_rdf_data(rdf), want);
    return 0;
}

/* dns_collect_records copies the records of question's type owned by
 * name; the answer's TTL is the smallest TTL among them. */
static void dns_collect_records(const ldns_rr_list *answers,
                                const ldns_rdf *name, uint16_t type,
                                struct dns_answer *answer)
{
    size_t count = ldns_rr_list_rr_count(answers);

    for (size_t i = 0; i < count; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(answers, i);
        struct dns_record *record;

        if (answer->count == DNS_ANSWER_MAX_RECORDS) {
            break;
        }
        record = &answer->records[answer->count];
        if (ldns_rr_get_type(rr) != type ||
            ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
            ldns_dname_compare(ldns_rr_owner(rr), name) != 0) {
            continue;
        }
        if (dns_record_from_rr(rr, type, record) < 0) {
            continue;
        }
        if (ldns_rr_ttl(rr) < answer->ttl) {
            answer->ttl = ldns_rr_ttl(rr);
        }
        answer->count++;
    }
}

/* dns_read_records fills answer from a NOERROR response. */
static void dns_read_records(const ldns_pkt *pkt,
                             const struct dns_question *question,
                             struct dns_answer *answer)
{
    const ldns_rr_list *answers = ldns_pkt_answer(pkt);
    const ldns_rr *question_rr = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
    const ldns_rdf *name;

    answer->ttl = UINT32_MAX;
    if (answers != NULL) {
        name = dns_follow_cname(answers, ldns_rr_owner(question_rr),
                                &answer->ttl);
        dns_collect_records(answers, name, question->type, answer);
    }

    if (answer->count == 0) {
        answer->status = DNS_ANSWER_NODATA;
        answer->ttl = dns_negative_ttl(pkt);
        return;
    }
    answer->status = DNS_ANSWER_RECORDS;
    answer->ttl = dns_ttl_clamp(answer->ttl, DNS_TTL_MAX);
}

int dns_packet_parse(const uint8_t *wire, size_t len,
                     const struct dns_question *question,
                     struct dns_answer *answer)
{
    ldns_pkt *pkt = NULL;
    int rc;

    memset(answer, 0, offsetof(struct dns_answer, records));
    if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK) {
        return -EBADMSG;
    }
    rc = dns_packet_match(pkt, question);
    if (rc < 0) {
        goto out;
    }

    /* TODO: retry a truncated answer over TCP; until then the caller
     * treats it as a temporary failure. */
    if (ldns_pkt_tc(pkt)) {
        answer->status = DNS_ANSWER_TRUNCATED;
        goto out;
    }

    switch (ldns_pkt_get_rcode(pkt)) {
    case LDNS_RCODE_NOERROR:
        dns_read_records(pkt, question, answer);
        break;
    case LDNS_RCODE_NXDOMAIN:
        answer->status = DNS_ANSWER_NXDOMAIN;
        answer->ttl = dns_negative_ttl(pkt);
        break;
    default:
        answer->status = DNS_ANSWER_SERVER_FAILURE;
        break;
    }

out:
    ldns_pkt_free(pkt);
    return rc;
}

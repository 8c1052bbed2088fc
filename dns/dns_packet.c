#include "dns/dns_packet.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldns/ldns.h>

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

const char *dns_type_name(uint16_t type)
{
    switch (type) {
    case DNS_TYPE_A:
        return "A";
    case DNS_TYPE_AAAA:
        return "AAAA";
    case DNS_TYPE_MX:
        return "MX";
    case DNS_TYPE_TLSA:
        return "TLSA";
    default:
        return "other";
    }
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
    ldns_pkt_set_ad(pkt, true);
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

/* dns_soa_ttl finds the SOA record of the authority section and sets
 * *ttl to how long a negative answer may be cached: the smaller of the
 * SOA record's TTL and its minimum field (RFC 2308 section 5), capped.
 * Returns false when there is no SOA record. */
static bool dns_soa_ttl(const ldns_pkt *pkt, uint32_t *ttl)
{
    const ldns_rr_list *authority = ldns_pkt_authority(pkt);
    size_t count = authority != NULL ? ldns_rr_list_rr_count(authority) : 0;

    for (size_t i = 0; i < count; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(authority, i);
        const ldns_rdf *minimum;
        uint32_t value;

        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA ||
            ldns_rr_rd_count(rr) < 7) {
            continue;
        }
        minimum = ldns_rr_rdf(rr, 6);
        if (minimum == NULL || ldns_rdf_size(minimum) != 4) {
            continue;
        }
        value = ldns_rdf2native_int32(minimum);
        if (ldns_rr_ttl(rr) < value) {
            value = ldns_rr_ttl(rr);
        }
        *ttl = dns_ttl_clamp(value, DNS_NEGATIVE_TTL_MAX);
        return true;
    }
    return false;
}

/* dns_negative_ttl is dns_soa_ttl with DNS_NEGATIVE_TTL_DEFAULT for an
 * answer without SOA. A stub resolver serves no other resolver, so the
 * loops that make RFC 2308 section 5 advise against caching such answers
 * cannot form here, and a short lifetime spares the name server. */
static uint32_t dns_negative_ttl(const ldns_pkt *pkt)
{
    uint32_t ttl = DNS_NEGATIVE_TTL_DEFAULT;

    dns_soa_ttl(pkt, &ttl);
    return ttl;
}

/* dns_cname_target returns the target of the CNAME record owned by name
 * in answers, or NULL; *ttl drops to that record's TTL if smaller. */
static const ldns_rdf *dns_cname_target(const ldns_rr_list *answers,
                                        const ldns_rdf *name, uint32_t *ttl)
{
    size_t count = ldns_rr_list_rr_count(answers);

    for (size_t i = 0; i < count; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(answers, i);

        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME &&
            ldns_rr_rd_count(rr) == 1 &&
            ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
            ldns_dname_compare(ldns_rr_owner(rr), name) == 0) {
            if (ldns_rr_ttl(rr) < *ttl) {
                *ttl = ldns_rr_ttl(rr);
            }
            return ldns_rr_rdf(rr, 0);
        }
    }
    return NULL;
}

/* dns_follow_cname walks CNAME records of the answer section from name
 * and returns the name at the end of the chain, or NULL for a loop or a
 * chain over DNS_CNAME_MAX_HOPS links. *hops counts the links used and
 * *ttl drops to the smallest of their TTLs. */
static const ldns_rdf *dns_follow_cname(const ldns_rr_list *answers,
                                        const ldns_rdf *name, uint32_t *ttl,
                                        uint8_t *hops)
{
    const ldns_rdf *seen[DNS_CNAME_MAX_HOPS + 1];

    *hops = 0;
    seen[0] = name;
    for (;;) {
        const ldns_rdf *next = dns_cname_target(answers, name, ttl);

        if (next == NULL) {
            return name;
        }
        if (*hops == DNS_CNAME_MAX_HOPS) {
            return NULL;
        }
        for (size_t i = 0; i <= *hops; i++) {
            if (ldns_dname_compare(seen[i], next) == 0) {
                return NULL;
            }
        }
        (*hops)++;
        seen[*hops] = next;
        name = next;
    }
}

/* dns_tlsa_from_rr converts one TLSA record (RFC 6698 section 2.1). */
static int dns_tlsa_from_rr(const ldns_rr *rr, struct dns_record *record)
{
    const ldns_rdf *data;

    if (ldns_rr_rd_count(rr) != 4) {
        return -EINVAL;
    }
    for (size_t i = 0; i < 3; i++) {
        if (ldns_rdf_size(ldns_rr_rdf(rr, i)) != 1) {
            return -EINVAL;
        }
    }
    data = ldns_rr_rdf(rr, 3);
    if (data == NULL || ldns_rdf_size(data) == 0) {
        return -EINVAL;
    }
    if (ldns_rdf_size(data) > DNS_TLSA_DATA_MAX) {
        return -E2BIG;
    }
    record->tlsa_usage = ldns_rdf2native_int8(ldns_rr_rdf(rr, 0));
    record->tlsa_selector = ldns_rdf2native_int8(ldns_rr_rdf(rr, 1));
    record->tlsa_matching_type = ldns_rdf2native_int8(ldns_rr_rdf(rr, 2));
    record->data_len = (uint16_t)ldns_rdf_size(data);
    memcpy(record->data, ldns_rdf_data(data), record->data_len);
    return 0;
}

/* dns_record_from_rr converts one MX, A, AAAA or TLSA record; records
 * with the wrong shape or an unusable MX target are skipped by the
 * caller. */
static int dns_record_from_rr(const ldns_rr *rr, uint16_t type,
                              struct dns_record *record)
{
    const ldns_rdf *rdf = ldns_rr_rdf(rr, 0);
    size_t want = type == DNS_TYPE_A ? 4 : 16;

    memset(record, 0, sizeof(*record));
    if (rdf == NULL) {
        return -EINVAL;
    }

    if (type == DNS_TYPE_TLSA) {
        return dns_tlsa_from_rr(rr, record);
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
 * name; the answer's TTL is the smallest TTL among them. Records that do
 * not convert are counted in skipped. */
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
            answer->skipped++;
            continue;
        }
        if (ldns_rr_ttl(rr) < answer->ttl) {
            answer->ttl = ldns_rr_ttl(rr);
        }
        answer->count++;
    }
}

/* dns_read_chain_end handles a NOERROR answer without records at the end
 * of its CNAME chain. With an SOA, the server speaks for the end of the
 * chain: NODATA. Without one, after at least one link, the server did not
 * chase the chain, so the end is queried next. */
static void dns_read_chain_end(const ldns_pkt *pkt, const ldns_rdf *end,
                               struct dns_answer *answer)
{
    uint32_t negative;

    if (answer->cname_hops > 0 && !dns_soa_ttl(pkt, &negative)) {
        answer->status = DNS_ANSWER_CNAME;
        if (dns_dname_to_text(end, answer->records[0].name) < 0) {
            answer->status = DNS_ANSWER_BAD_CNAME;
            answer->ttl = 0;
            return;
        }
        answer->count = 1;
        answer->ttl = dns_ttl_clamp(answer->ttl, DNS_TTL_MAX);
        return;
    }
    /* A CNAME link ends its part of the answer as a record would. */
    negative = dns_negative_ttl(pkt);
    answer->status = DNS_ANSWER_NODATA;
    if (answer->cname_hops > 0) {
        answer->ttl = dns_ttl_clamp(answer->ttl, DNS_TTL_MAX);
        negative = negative < answer->ttl ? negative : answer->ttl;
    }
    answer->ttl = negative;
}

/* dns_read_records fills answer from a NOERROR response. */
static void dns_read_records(const ldns_pkt *pkt,
                             const struct dns_question *question,
                             struct dns_answer *answer)
{
    const ldns_rr_list *answers = ldns_pkt_answer(pkt);
    const ldns_rr *question_rr = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
    const ldns_rdf *name = ldns_rr_owner(question_rr);

    answer->ttl = UINT32_MAX;
    if (answers != NULL) {
        name = dns_follow_cname(answers, name, &answer->ttl,
                                &answer->cname_hops);
        if (name == NULL) {
            answer->status = DNS_ANSWER_BAD_CNAME;
            answer->ttl = 0;
            return;
        }
        dns_collect_records(answers, name, question->type, answer);
    }

    /* Records of the type that are all unusable still mean the name has
     * such records: no implicit MX, and a TLSA set of unusable records
     * (RFC 7672 section 2.2) is not the absence of one. */
    if (answer->count == 0 && answer->skipped == 0) {
        dns_read_chain_end(pkt, name, answer);
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

    /* The caller repeats a truncated answer's query over TCP. */
    if (ldns_pkt_tc(pkt)) {
        answer->status = DNS_ANSWER_TRUNCATED;
        goto out;
    }

    answer->authenticated = ldns_pkt_ad(pkt);
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

/* Resolver tests: answer parsing on packets built here with ldns, MX
 * order, the cache and resolv.conf parsing. Queries through the reactor
 * are tested in test_dns_live.c. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "core/reactor.h"
#include "dns/dns_cache.h"
#include "dns/dns_chase.h"
#include "dns/dns_mx.h"
#include "dns/dns_packet.h"
#include "dns/resolver.h"

/* fake_reply: a response for the test to encode, records in zone-file
 * syntax. */
struct fake_reply {
    const char *qname;
    uint16_t qtype;
    uint16_t id;
    ldns_pkt_rcode rcode;
    bool query_flag; /* QR clear: a query, not a response */
    bool truncated;
    bool authenticated; /* AD set */
    const char *answer[12];
    const char *authority[4];
};

static void push_records(ldns_pkt *pkt, ldns_pkt_section section,
                         const char *const *records, size_t max)
{
    for (size_t i = 0; i < max && records[i] != NULL; i++) {
        ldns_rr *rr = NULL;
        ldns_status status = ldns_rr_new_frm_str(&rr, records[i], 3600,
                                                 NULL, NULL);

        cr_assert_eq(status, LDNS_STATUS_OK, "record \"%s\": %s",
                     records[i], ldns_get_errorstr_by_id(status));
        cr_assert(ldns_pkt_push_rr(pkt, section, rr));
    }
}

/* fake_wire encodes reply; the caller frees *wire. */
static size_t fake_wire(const struct fake_reply *reply, uint8_t **wire)
{
    ldns_rdf *name = ldns_dname_new_frm_str(reply->qname);
    ldns_pkt *pkt;
    size_t len = 0;

    cr_assert_not_null(name);
    pkt = ldns_pkt_query_new(name, (ldns_rr_type)reply->qtype,
                             LDNS_RR_CLASS_IN, LDNS_RD);
    cr_assert_not_null(pkt);
    ldns_pkt_set_id(pkt, reply->id);
    ldns_pkt_set_qr(pkt, !reply->query_flag);
    ldns_pkt_set_tc(pkt, reply->truncated);
    ldns_pkt_set_ad(pkt, reply->authenticated);
    ldns_pkt_set_rcode(pkt, (uint8_t)reply->rcode);
    push_records(pkt, LDNS_SECTION_ANSWER, reply->answer, 12);
    push_records(pkt, LDNS_SECTION_AUTHORITY, reply->authority, 4);
    cr_assert_eq(ldns_pkt2wire(wire, pkt, &len), LDNS_STATUS_OK);
    ldns_pkt_free(pkt);
    return len;
}

static int parse_reply(const struct fake_reply *reply,
                       const struct dns_question *question,
                       struct dns_answer *answer)
{
    uint8_t *wire = NULL;
    size_t len = fake_wire(reply, &wire);
    int rc = dns_packet_parse(wire, len, question, answer);

    free(wire);
    return rc;
}

static struct dns_question question_of(const char *name, uint16_t type,
                                       uint16_t id)
{
    struct dns_question question = {.type = type, .id = id};

    cr_assert_eq(dns_name_normalize(question.name, name), 0);
    return question;
}

/* ---- Names and queries ------------------------------------------------- */

Test(dns_name, normalize_lowers_and_strips_dot)
{
    char out[DNS_NAME_TEXT_MAX];

    cr_assert_eq(dns_name_normalize(out, "Mail.Example.TEST."), 0);
    cr_assert_str_eq(out, "mail.example.test");
    cr_assert_eq(dns_name_normalize(out, "_srv-1.x"), 0);
    cr_assert_str_eq(out, "_srv-1.x");
}

Test(dns_name, normalize_rejects_bad_names)
{
    char out[DNS_NAME_TEXT_MAX];
    char long_label[80];
    char long_name[300];

    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    memset(long_name, 'a', 254);
    for (size_t i = 10; i < 254; i += 10) {
        long_name[i] = '.';
    }
    long_name[254] = '\0';

    cr_assert_eq(dns_name_normalize(out, ""), -EINVAL);
    cr_assert_eq(dns_name_normalize(out, "."), -EINVAL);
    cr_assert_eq(dns_name_normalize(out, "a..b"), -EINVAL);
    cr_assert_eq(dns_name_normalize(out, ".a"), -EINVAL);
    cr_assert_eq(dns_name_normalize(out, "a b.test"), -EINVAL);
    cr_assert_eq(dns_name_normalize(out, "a\\.b"), -EINVAL);
    cr_assert_eq(dns_name_normalize(out, long_label), -EINVAL);
    cr_assert_eq(dns_name_normalize(out, long_name), -EINVAL);
}

Test(dns_packet, query_has_id_rd_question_and_edns)
{
    struct dns_question question = question_of("example.test", DNS_TYPE_MX,
                                               0xbeef);
    uint8_t *wire = NULL;
    size_t len = 0;
    ldns_pkt *pkt = NULL;
    ldns_rr *question_rr;

    cr_assert_eq(dns_packet_build_query(&question, &wire, &len), 0);
    cr_assert_eq(ldns_wire2pkt(&pkt, wire, len), LDNS_STATUS_OK);
    cr_assert_eq(ldns_pkt_id(pkt), 0xbeef);
    cr_assert(ldns_pkt_rd(pkt));
    cr_assert(ldns_pkt_ad(pkt), "AD asks for the validation status");
    cr_assert(!ldns_pkt_qr(pkt));
    cr_assert_eq(ldns_pkt_qdcount(pkt), 1);
    cr_assert_eq(ldns_pkt_edns_udp_size(pkt), DNS_EDNS_UDP_SIZE);

    question_rr = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
    cr_assert_eq(ldns_rr_get_type(question_rr), LDNS_RR_TYPE_MX);
    cr_assert_eq(ldns_rr_get_class(question_rr), LDNS_RR_CLASS_IN);

    /* The query itself is not an answer to its question. */
    struct dns_answer answer;
    cr_assert_eq(dns_packet_parse(wire, len, &question, &answer), -ENOMSG);
    ldns_pkt_free(pkt);
    free(wire);
}

/* ---- Answer parsing ---------------------------------------------------- */

Test(dns_packet, mx_records_and_min_ttl)
{
    struct fake_reply reply = {
        .qname = "example.test.", .qtype = DNS_TYPE_MX, .id = 7,
        .answer = {"example.test. 300 IN MX 20 mx2.example.test.",
                   "example.test. 100 IN MX 10 MX1.Example.Test.",
                   "other.test. 5 IN MX 10 mx.other.test."},
    };
    struct dns_question question = question_of("example.test",
                                               DNS_TYPE_MX, 7);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert_eq(answer.count, 2, "records of another owner are ignored");
    cr_assert_eq(answer.ttl, 100);
    cr_assert_eq(answer.records[0].preference, 20);
    cr_assert_str_eq(answer.records[0].name, "mx2.example.test");
    cr_assert_eq(answer.records[1].preference, 10);
    cr_assert_str_eq(answer.records[1].name, "mx1.example.test");
}

Test(dns_packet, mx_target_with_bad_bytes_skipped)
{
    struct fake_reply reply = {
        .qname = "example.test.", .qtype = DNS_TYPE_MX, .id = 7,
        .answer = {"example.test. 300 IN MX 10 bad\\032name.test.",
                   "example.test. 300 IN MX 20 good.test."},
    };
    struct dns_question question = question_of("example.test",
                                               DNS_TYPE_MX, 7);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.count, 1);
    cr_assert_str_eq(answer.records[0].name, "good.test");
}

Test(dns_packet, a_and_aaaa_addresses)
{
    struct fake_reply a_reply = {
        .qname = "mx.test.", .qtype = DNS_TYPE_A, .id = 1,
        .answer = {"mx.test. 60 IN A 192.0.2.1", "mx.test. 60 IN A 192.0.2.2"},
    };
    struct fake_reply aaaa_reply = {
        .qname = "mx.test.", .qtype = DNS_TYPE_AAAA, .id = 2,
        .answer = {"mx.test. 60 IN AAAA 2001:db8::25"},
    };
    struct dns_question q4 = question_of("mx.test", DNS_TYPE_A, 1);
    struct dns_question q6 = question_of("mx.test", DNS_TYPE_AAAA, 2);
    struct dns_answer answer;
    uint8_t expected6[16];

    cr_assert_eq(parse_reply(&a_reply, &q4, &answer), 0);
    cr_assert_eq(answer.count, 2);
    cr_assert_eq(answer.records[0].addr_len, 4);
    cr_assert_eq(memcmp(answer.records[1].addr, "\xc0\x00\x02\x02", 4), 0);

    cr_assert_eq(parse_reply(&aaaa_reply, &q6, &answer), 0);
    cr_assert_eq(answer.count, 1);
    cr_assert_eq(answer.records[0].addr_len, 16);
    cr_assert_eq(inet_pton(AF_INET6, "2001:db8::25", expected6), 1);
    cr_assert_eq(memcmp(answer.records[0].addr, expected6, 16), 0);
}

Test(dns_packet, cname_followed_within_answer)
{
    struct fake_reply reply = {
        .qname = "alias.test.", .qtype = DNS_TYPE_MX, .id = 9,
        .answer = {"alias.test. 50 IN CNAME real.test.",
                   "real.test. 300 IN MX 5 mx.real.test.",
                   "alias.test. 300 IN MX 1 wrong.test."},
    };
    struct dns_question question = question_of("alias.test", DNS_TYPE_MX, 9);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert_eq(answer.count, 1);
    cr_assert_str_eq(answer.records[0].name, "mx.real.test");
    cr_assert_eq(answer.ttl, 50, "the CNAME's TTL bounds the answer");
}

Test(dns_packet, cname_loop_is_bad_cname)
{
    struct fake_reply reply = {
        .qname = "a.test.", .qtype = DNS_TYPE_A, .id = 9,
        .answer = {"a.test. 50 IN CNAME b.test.",
                   "b.test. 50 IN CNAME c.test.",
                   "c.test. 50 IN CNAME b.test."},
    };
    struct dns_question question = question_of("a.test", DNS_TYPE_A, 9);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_BAD_CNAME);
    cr_assert_eq(answer.count, 0);
    cr_assert_eq(answer.ttl, 0, "a bad chain is never cached");
}

Test(dns_packet, cname_chain_over_limit_is_bad_cname)
{
    /* DNS_CNAME_MAX_HOPS (8) links are followed, a ninth is not. */
    struct fake_reply reply = {
        .qname = "c0.test.", .qtype = DNS_TYPE_A, .id = 9,
        .answer = {"c0.test. 50 IN CNAME c1.test.",
                   "c1.test. 50 IN CNAME c2.test.",
                   "c2.test. 50 IN CNAME c3.test.",
                   "c3.test. 50 IN CNAME c4.test.",
                   "c4.test. 50 IN CNAME c5.test.",
                   "c5.test. 50 IN CNAME c6.test.",
                   "c6.test. 50 IN CNAME c7.test.",
                   "c7.test. 50 IN CNAME c8.test.",
                   "c8.test. 50 IN A 192.0.2.8"},
    };
    struct dns_question question = question_of("c0.test", DNS_TYPE_A, 9);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert_eq(answer.cname_hops, 8);

    reply.answer[8] = "c8.test. 50 IN CNAME c9.test.";
    reply.answer[9] = "c9.test. 50 IN A 192.0.2.9";
    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_BAD_CNAME);
}

Test(dns_packet, unchased_cname_names_its_target)
{
    struct fake_reply reply = {
        .qname = "alias.test.", .qtype = DNS_TYPE_MX, .id = 9,
        .answer = {"alias.test. 70 IN CNAME next.test.",
                   "next.test. 40 IN CNAME Real.Test."},
    };
    struct dns_question question = question_of("alias.test", DNS_TYPE_MX, 9);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_CNAME);
    cr_assert_eq(answer.count, 1);
    cr_assert_str_eq(answer.records[0].name, "real.test");
    cr_assert_eq(answer.cname_hops, 2);
    cr_assert_eq(answer.ttl, 40);
}

Test(dns_packet, chased_cname_without_records_is_nodata)
{
    struct fake_reply reply = {
        .qname = "alias.test.", .qtype = DNS_TYPE_MX, .id = 9,
        .answer = {"alias.test. 20 IN CNAME real.test."},
        .authority = {"test. 300 IN SOA ns.test. admin.test. 1 7200 3600 "
                      "86400 120"},
    };
    struct dns_question question = question_of("alias.test", DNS_TYPE_MX, 9);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_NODATA);
    cr_assert_eq(answer.count, 0);
    cr_assert_eq(answer.ttl, 20, "the CNAME's TTL bounds the negative one");
}

Test(dns_packet, nxdomain_uses_soa_minimum)
{
    struct fake_reply reply = {
        .qname = "nx.test.", .qtype = DNS_TYPE_MX, .id = 3,
        .rcode = LDNS_RCODE_NXDOMAIN,
        .authority = {"test. 900 IN SOA ns.test. admin.test. 1 7200 3600 "
                      "86400 120"},
    };
    struct dns_question question = question_of("nx.test", DNS_TYPE_MX, 3);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_NXDOMAIN);
    cr_assert_eq(answer.ttl, 120);
}

Test(dns_packet, nodata_uses_soa_ttl_when_smaller)
{
    struct fake_reply reply = {
        .qname = "implicit.test.", .qtype = DNS_TYPE_MX, .id = 3,
        .answer = {"implicit.test. 300 IN A 192.0.2.9"},
        .authority = {"test. 30 IN SOA ns.test. admin.test. 1 7200 3600 "
                      "86400 120"},
    };
    struct dns_question question = question_of("implicit.test",
                                               DNS_TYPE_MX, 3);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_NODATA);
    cr_assert_eq(answer.count, 0);
    cr_assert_eq(answer.ttl, 30);
}

Test(dns_packet, negative_ttl_capped)
{
    struct fake_reply reply = {
        .qname = "nx.test.", .qtype = DNS_TYPE_A, .id = 3,
        .rcode = LDNS_RCODE_NXDOMAIN,
        .authority = {"test. 604800 IN SOA ns.test. admin.test. 1 7200 "
                      "3600 86400 604800"},
    };
    struct dns_question question = question_of("nx.test", DNS_TYPE_A, 3);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_NXDOMAIN);
    cr_assert_eq(answer.ttl, DNS_NEGATIVE_TTL_MAX);
}

Test(dns_packet, positive_ttl_capped_and_top_bit_zero)
{
    struct fake_reply reply = {
        .qname = "mx.test.", .qtype = DNS_TYPE_A, .id = 3,
        .answer = {"mx.test. 604800 IN A 192.0.2.1"},
    };
    struct dns_question question = question_of("mx.test", DNS_TYPE_A, 3);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.ttl, DNS_TTL_MAX);

    reply.answer[0] = "mx.test. 2147483648 IN A 192.0.2.1";
    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert_eq(answer.ttl, 0, "RFC 2181 section 8");
}

Test(dns_packet, authenticated_data_bit_read)
{
    struct fake_reply reply = {
        .qname = "mx.test.", .qtype = DNS_TYPE_A, .id = 3,
        .answer = {"mx.test. 60 IN A 192.0.2.1"},
    };
    struct dns_question question = question_of("mx.test", DNS_TYPE_A, 3);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert(!answer.authenticated);
    reply.authenticated = true;
    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert(answer.authenticated);
}

Test(dns_packet, all_mx_records_unusable_no_implicit_mx)
{
    struct fake_reply reply = {
        .qname = "example.test.", .qtype = DNS_TYPE_MX, .id = 7,
        .answer = {"example.test. 300 IN MX 10 bad\\032name.test."},
    };
    struct dns_question question = question_of("example.test",
                                               DNS_TYPE_MX, 7);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert_eq(answer.count, 0);
    cr_assert_eq(answer.skipped, 1);
}

Test(dns_packet, tlsa_records)
{
    struct fake_reply reply = {
        .qname = "_25._tcp.mx.test.", .qtype = DNS_TYPE_TLSA, .id = 11,
        .authenticated = true,
        .answer = {"_25._tcp.mx.test. 300 IN TLSA 3 1 1 "
                   "0123456789abcdef0123456789abcdef"
                   "0123456789abcdef0123456789abcdef",
                   "_25._tcp.mx.test. 200 IN TLSA 2 0 2 "
                   "00112233445566778899aabbccddeeff"
                   "00112233445566778899aabbccddeeff"
                   "00112233445566778899aabbccddeeff"
                   "00112233445566778899aabbccddeeff"},
    };
    struct dns_question question = question_of("_25._tcp.mx.test",
                                               DNS_TYPE_TLSA, 11);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert(answer.authenticated);
    cr_assert_eq(answer.count, 2);
    cr_assert_eq(answer.ttl, 200);
    cr_assert_eq(answer.records[0].tlsa_usage, 3);
    cr_assert_eq(answer.records[0].tlsa_selector, 1);
    cr_assert_eq(answer.records[0].tlsa_matching_type, 1);
    cr_assert_eq(answer.records[0].data_len, 32);
    cr_assert_eq(answer.records[0].data[0], 0x01);
    cr_assert_eq(answer.records[0].data[31], 0xef);
    cr_assert_eq(answer.records[1].tlsa_usage, 2);
    cr_assert_eq(answer.records[1].tlsa_selector, 0);
    cr_assert_eq(answer.records[1].tlsa_matching_type, 2);
    cr_assert_eq(answer.records[1].data_len, 64);
    cr_assert_eq(answer.records[1].data[63], 0xff);
}

Test(dns_packet, tlsa_data_over_limit_skipped)
{
    char big[64 + 2 * (DNS_TLSA_DATA_MAX + 1)];
    struct fake_reply reply = {
        .qname = "_25._tcp.mx.test.", .qtype = DNS_TYPE_TLSA, .id = 11,
        .answer = {big},
    };
    struct dns_question question = question_of("_25._tcp.mx.test",
                                               DNS_TYPE_TLSA, 11);
    struct dns_answer answer;
    int len = snprintf(big, sizeof(big),
                       "_25._tcp.mx.test. 300 IN TLSA 3 0 0 ");

    for (size_t i = 0; i < DNS_TLSA_DATA_MAX + 1; i++) {
        len += snprintf(big + len, sizeof(big) - (size_t)len, "ab");
    }
    cr_assert_lt((size_t)len, sizeof(big));

    /* Records exist, so this is not the absence of TLSA records. */
    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert_eq(answer.count, 0);
    cr_assert_eq(answer.skipped, 1);
}

Test(dns_packet, nodata_without_soa_default_ttl)
{
    struct fake_reply reply = {
        .qname = "implicit.test.", .qtype = DNS_TYPE_AAAA, .id = 3,
    };
    struct dns_question question = question_of("implicit.test",
                                               DNS_TYPE_AAAA, 3);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_NODATA);
    cr_assert_eq(answer.ttl, DNS_NEGATIVE_TTL_DEFAULT);
}

Test(dns_packet, servfail_and_refused_are_server_failures)
{
    static const ldns_pkt_rcode rcodes[] = {
        LDNS_RCODE_SERVFAIL, LDNS_RCODE_REFUSED, LDNS_RCODE_FORMERR,
    };
    struct dns_question question = question_of("servfail.test",
                                               DNS_TYPE_MX, 4);
    struct dns_answer answer;

    for (size_t i = 0; i < sizeof(rcodes) / sizeof(rcodes[0]); i++) {
        struct fake_reply reply = {
            .qname = "servfail.test.", .qtype = DNS_TYPE_MX, .id = 4,
            .rcode = rcodes[i],
        };

        cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
        cr_assert_eq(answer.status, DNS_ANSWER_SERVER_FAILURE,
                     "rcode %d", (int)rcodes[i]);
    }
}

Test(dns_packet, truncated_answer_flagged)
{
    struct fake_reply reply = {
        .qname = "big.test.", .qtype = DNS_TYPE_MX, .id = 5,
        .truncated = true,
    };
    struct dns_question question = question_of("big.test", DNS_TYPE_MX, 5);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_TRUNCATED);
}

Test(dns_packet, mismatched_answers_rejected)
{
    struct dns_question question = question_of("example.test",
                                               DNS_TYPE_MX, 100);
    struct fake_reply wrong_id = {
        .qname = "example.test.", .qtype = DNS_TYPE_MX, .id = 101,
    };
    struct fake_reply wrong_name = {
        .qname = "example2.test.", .qtype = DNS_TYPE_MX, .id = 100,
    };
    struct fake_reply wrong_type = {
        .qname = "example.test.", .qtype = DNS_TYPE_A, .id = 100,
    };
    struct fake_reply not_response = {
        .qname = "example.test.", .qtype = DNS_TYPE_MX, .id = 100,
        .query_flag = true,
    };
    struct fake_reply upper_case = {
        .qname = "EXAMPLE.test.", .qtype = DNS_TYPE_MX, .id = 100,
    };
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&wrong_id, &question, &answer), -ENOMSG);
    cr_assert_eq(parse_reply(&wrong_name, &question, &answer), -ENOMSG);
    cr_assert_eq(parse_reply(&wrong_type, &question, &answer), -ENOMSG);
    cr_assert_eq(parse_reply(&not_response, &question, &answer), -ENOMSG);
    cr_assert_eq(parse_reply(&upper_case, &question, &answer), 0,
                 "names compare without case");
}

Test(dns_packet, truncated_bytes_rejected)
{
    struct fake_reply reply = {
        .qname = "example.test.", .qtype = DNS_TYPE_MX, .id = 7,
        .answer = {"example.test. 300 IN MX 20 mx2.example.test.",
                   "example.test. 100 IN MX 10 mx1.example.test."},
    };
    struct dns_question question = question_of("example.test",
                                               DNS_TYPE_MX, 7);
    struct dns_answer answer;
    uint8_t *wire = NULL;
    size_t len = fake_wire(&reply, &wire);

    for (size_t cut = 0; cut < len; cut++) {
        cr_assert_neq(dns_packet_parse(wire, cut, &question, &answer), 0,
                      "a packet cut at %zu bytes of %zu parsed", cut, len);
    }
    cr_assert_eq(dns_packet_parse(wire, len, &question, &answer), 0);
    free(wire);
}

Test(dns_packet, garbage_rejected)
{
    struct dns_question question = question_of("example.test",
                                               DNS_TYPE_MX, 7);
    struct dns_answer answer;
    uint8_t bytes[512];
    unsigned seed = 12345;

    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand_r(&seed) % (int)sizeof(bytes));

        for (size_t i = 0; i < len; i++) {
            bytes[i] = (uint8_t)rand_r(&seed);
        }
        /* Random bytes almost never carry ID 7 and the question, so
         * anything but a parse error or a mismatch is a bug. */
        cr_assert_lt(dns_packet_parse(bytes, len, &question, &answer), 0);
    }
}

/* ---- MX selection ------------------------------------------------------ */

static void add_mx(struct dns_answer *answer, uint16_t preference,
                   const char *name)
{
    struct dns_record *record = &answer->records[answer->count++];

    memset(record, 0, sizeof(*record));
    record->preference = preference;
    strcpy(record->name, name);
}

Test(dns_mx, sorted_by_preference)
{
    struct dns_answer answer = {.status = DNS_ANSWER_RECORDS};
    struct dns_mx_result result;

    add_mx(&answer, 30, "c.test");
    add_mx(&answer, 10, "a.test");
    add_mx(&answer, 20, "b.test");
    add_mx(&answer, 20, "b.test");
    dns_mx_select(&answer, &result);

    cr_assert_eq(result.host_count, 3, "repeated names are dropped");
    cr_assert_str_eq(result.hosts[0].name, "a.test");
    cr_assert_eq(result.hosts[0].preference, 10);
    cr_assert_str_eq(result.hosts[1].name, "b.test");
    cr_assert_str_eq(result.hosts[2].name, "c.test");
    cr_assert_eq(result.hosts[2].addr_count, 0);
}

Test(dns_mx, equal_preferences_shuffled)
{
    struct dns_answer answer = {.status = DNS_ANSWER_RECORDS};
    struct dns_mx_result result;
    int first_x = 0;
    int first_y = 0;

    add_mx(&answer, 5, "x.test");
    add_mx(&answer, 5, "y.test");
    add_mx(&answer, 1, "best.test");
    for (int round = 0; round < 200; round++) {
        dns_mx_select(&answer, &result);
        cr_assert_eq(result.host_count, 3);
        cr_assert_str_eq(result.hosts[0].name, "best.test");
        if (strcmp(result.hosts[1].name, "x.test") == 0) {
            first_x++;
        } else {
            first_y++;
        }
    }
    /* Each order has probability 1/2; missing one in 200 rounds has
     * probability 2^-199. */
    cr_assert_gt(first_x, 0);
    cr_assert_gt(first_y, 0);
}

Test(dns_mx, at_most_max_hosts)
{
    struct dns_answer answer = {.status = DNS_ANSWER_RECORDS};
    struct dns_mx_result result;
    char name[32];

    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "mx%02d.test", i);
        add_mx(&answer, (uint16_t)(100 - i), name);
    }
    dns_mx_select(&answer, &result);
    cr_assert_eq(result.host_count, DNS_MAX_MX_HOSTS);
    cr_assert_str_eq(result.hosts[0].name, "mx19.test");
    cr_assert_eq(result.hosts[DNS_MAX_MX_HOSTS - 1].preference, 90);
}

Test(dns_mx, null_mx_detected)
{
    struct dns_answer null_mx = {.status = DNS_ANSWER_RECORDS};
    struct dns_answer root_pref10 = {.status = DNS_ANSWER_RECORDS};
    struct dns_answer mixed = {.status = DNS_ANSWER_RECORDS};
    struct dns_mx_result result;

    add_mx(&null_mx, 0, "");
    add_mx(&root_pref10, 10, "");
    add_mx(&mixed, 0, "");
    add_mx(&mixed, 10, "mx.test");

    cr_assert(dns_mx_is_null(&null_mx));
    cr_assert(!dns_mx_is_null(&root_pref10));
    cr_assert(!dns_mx_is_null(&mixed));

    dns_mx_select(&mixed, &result);
    cr_assert_eq(result.host_count, 1, "root targets are dropped");
    cr_assert_str_eq(result.hosts[0].name, "mx.test");
    dns_mx_select(&root_pref10, &result);
    cr_assert_eq(result.host_count, 0);
}

Test(dns_mx, null_mx_parsed_from_packet)
{
    struct fake_reply reply = {
        .qname = "nullmx.test.", .qtype = DNS_TYPE_MX, .id = 11,
        .answer = {"nullmx.test. 300 IN MX 0 ."},
    };
    struct dns_question question = question_of("nullmx.test",
                                               DNS_TYPE_MX, 11);
    struct dns_answer answer;

    cr_assert_eq(parse_reply(&reply, &question, &answer), 0);
    cr_assert_eq(answer.count, 1);
    cr_assert(dns_mx_is_null(&answer));
}

Test(dns_mx, addresses_split_between_families)
{
    uint8_t v4[DNS_MAX_ADDRS][16] = {{0}};
    uint8_t v6[DNS_MAX_ADDRS][16] = {{0}};
    struct dns_mx_host host = {0};
    const struct sockaddr_in *sin;

    for (int i = 0; i < DNS_MAX_ADDRS; i++) {
        v4[i][0] = 10;
        v4[i][3] = (uint8_t)i;
        v6[i][0] = 0xfd;
        v6[i][15] = (uint8_t)i;
    }

    dns_mx_fill_addresses(&host, v4, DNS_MAX_ADDRS, v6, DNS_MAX_ADDRS);
    cr_assert_eq(host.addr_count, DNS_MAX_ADDRS);
    cr_assert_eq(host.addrs[0].ss_family, AF_INET);
    cr_assert_eq(host.addrs[DNS_MAX_ADDRS / 2 - 1].ss_family, AF_INET);
    cr_assert_eq(host.addrs[DNS_MAX_ADDRS / 2].ss_family, AF_INET6);
    sin = (const struct sockaddr_in *)&host.addrs[1];
    cr_assert_eq(sin->sin_port, 0);
    cr_assert_eq(memcmp(&sin->sin_addr, v4[1], 4), 0);

    dns_mx_fill_addresses(&host, v4, 2, v6, DNS_MAX_ADDRS);
    cr_assert_eq(host.addr_count, DNS_MAX_ADDRS);
    cr_assert_eq(host.addrs[1].ss_family, AF_INET);
    cr_assert_eq(host.addrs[2].ss_family, AF_INET6);

    dns_mx_fill_addresses(&host, v4, DNS_MAX_ADDRS, v6, 1);
    cr_assert_eq(host.addr_count, DNS_MAX_ADDRS);
    cr_assert_eq(host.addrs[DNS_MAX_ADDRS - 2].ss_family, AF_INET);
    cr_assert_eq(host.addrs[DNS_MAX_ADDRS - 1].ss_family, AF_INET6);

    dns_mx_fill_addresses(&host, v4, 0, v6, 0);
    cr_assert_eq(host.addr_count, 0);
}

/* ---- Loopback addresses and per-attempt limits ------------------------- */

static struct sockaddr_storage addr_of(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1, "%s",
                     text);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, text, &sin->sin_addr), 1, "%s",
                     text);
    }
    return ss;
}

Test(dns_mx, loopback_addresses_detected)
{
    static const char *const loops[] = {
        "127.0.0.1", "127.255.0.9", "0.0.0.0", "0.1.2.3", "::1", "::",
        "::ffff:127.0.0.1", "::ffff:0.0.0.0",
    };
    static const char *const remote[] = {
        "126.255.255.255", "128.0.0.1", "10.0.0.1", "192.0.2.1",
        "2001:db8::1", "::2", "::ffff:192.0.2.1", "fe80::1",
    };

    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
        struct sockaddr_storage ss = addr_of(loops[i]);

        cr_expect(dns_addr_loops_back(&ss), "%s loops back", loops[i]);
    }
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        struct sockaddr_storage ss = addr_of(remote[i]);

        cr_expect(!dns_addr_loops_back(&ss), "%s is remote", remote[i]);
    }
}

static void add_host(struct dns_mx_result *result, const char *name,
                     size_t addr_count)
{
    struct dns_mx_host *host = &result->hosts[result->host_count++];

    memset(host, 0, sizeof(*host));
    strcpy(host->name, name);
    for (size_t i = 0; i < addr_count; i++) {
        host->addrs[i] = addr_of("192.0.2.1");
    }
    host->addr_count = addr_count;
}

Test(dns_mx, limit_hosts_and_addresses)
{
    struct dns_mx_result result = {.status = DNS_OK};

    add_host(&result, "a.test", 3);
    add_host(&result, "empty.test", 0);
    add_host(&result, "b.test", 4);
    add_host(&result, "c.test", 2);

    dns_mx_limit(&result, 2, 100);
    cr_assert_eq(result.host_count, 2, "empty hosts do not count");
    cr_assert_str_eq(result.hosts[0].name, "a.test");
    cr_assert_str_eq(result.hosts[1].name, "b.test");
    cr_assert_eq(result.hosts[1].addr_count, 4);

    dns_mx_limit(&result, 10, 5);
    cr_assert_eq(result.host_count, 2);
    cr_assert_eq(result.hosts[0].addr_count, 3);
    cr_assert_eq(result.hosts[1].addr_count, 2, "cut to the total");

    dns_mx_limit(&result, 10, 3);
    cr_assert_eq(result.host_count, 1, "a host with no room left goes");
    cr_assert_eq(result.hosts[0].addr_count, 3);
}

/* ---- Cache ------------------------------------------------------------- */

Test(dns_cache, entry_lives_for_its_ttl)
{
    struct dns_cache *cache = NULL;
    struct dns_answer answer = {.status = DNS_ANSWER_RECORDS, .ttl = 10};
    struct dns_answer out;

    add_mx(&answer, 10, "mx.test");
    cr_assert_eq(dns_cache_new(&cache, 4), 0);
    cr_assert_eq(dns_cache_put(cache, "a.test", DNS_TYPE_MX, &answer, 1000),
                 0);

    cr_assert(dns_cache_get(cache, "a.test", DNS_TYPE_MX, 5000, &out));
    cr_assert_eq(out.status, DNS_ANSWER_RECORDS);
    cr_assert_eq(out.count, 1);
    cr_assert_str_eq(out.records[0].name, "mx.test");
    cr_assert_eq(out.ttl, 6);
    cr_assert(!dns_cache_get(cache, "a.test", DNS_TYPE_A, 5000, &out),
              "the type is part of the key");
    cr_assert(!dns_cache_get(cache, "a.test", DNS_TYPE_MX, 11000, &out),
              "an entry ends at its TTL");
    cr_assert_eq(dns_cache_count(cache), 0);
    dns_cache_free(cache);
}

Test(dns_cache, negative_stored_tempfail_not)
{
    struct dns_cache *cache = NULL;
    struct dns_answer nx = {.status = DNS_ANSWER_NXDOMAIN, .ttl = 60};
    struct dns_answer temp = {.status = DNS_ANSWER_TEMPFAIL, .ttl = 60};
    struct dns_answer zero = {.status = DNS_ANSWER_RECORDS, .ttl = 0};
    struct dns_answer out;

    cr_assert_eq(dns_cache_new(&cache, 4), 0);
    cr_assert_eq(dns_cache_put(cache, "nx.test", DNS_TYPE_MX, &nx, 0), 0);
    cr_assert_eq(dns_cache_put(cache, "t.test", DNS_TYPE_MX, &temp, 0), 0);
    cr_assert_eq(dns_cache_put(cache, "z.test", DNS_TYPE_MX, &zero, 0), 0);

    cr_assert(dns_cache_get(cache, "nx.test", DNS_TYPE_MX, 0, &out));
    cr_assert_eq(out.status, DNS_ANSWER_NXDOMAIN);
    cr_assert_eq(out.count, 0);
    cr_assert(!dns_cache_get(cache, "t.test", DNS_TYPE_MX, 0, &out));
    cr_assert(!dns_cache_get(cache, "z.test", DNS_TYPE_MX, 0, &out));
    dns_cache_free(cache);
}

Test(dns_cache, least_recently_used_evicted)
{
    struct dns_cache *cache = NULL;
    struct dns_answer answer = {.status = DNS_ANSWER_NODATA, .ttl = 60};
    struct dns_answer out;
    char name[32];

    cr_assert_eq(dns_cache_new(&cache, 3), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "n%d.test", i);
        cr_assert_eq(dns_cache_put(cache, name, DNS_TYPE_A, &answer, 0), 0);
    }
    cr_assert(dns_cache_get(cache, "n0.test", DNS_TYPE_A, 0, &out));
    cr_assert_eq(dns_cache_put(cache, "n3.test", DNS_TYPE_A, &answer, 0), 0);

    cr_assert_eq(dns_cache_count(cache), 3);
    cr_assert(dns_cache_get(cache, "n0.test", DNS_TYPE_A, 0, &out));
    cr_assert(!dns_cache_get(cache, "n1.test", DNS_TYPE_A, 0, &out));
    cr_assert(dns_cache_get(cache, "n3.test", DNS_TYPE_A, 0, &out));

    /* Replacing a key keeps one entry for it. */
    cr_assert_eq(dns_cache_put(cache, "n3.test", DNS_TYPE_A, &answer, 0), 0);
    cr_assert_eq(dns_cache_count(cache), 3);
    dns_cache_free(cache);
    dns_cache_free(NULL);
}

Test(dns_cache, cname_target_and_ad_bit_kept)
{
    struct dns_cache *cache = NULL;
    struct dns_answer cname = {.status = DNS_ANSWER_CNAME, .ttl = 60,
                               .authenticated = true, .cname_hops = 2};
    struct dns_answer out;

    add_mx(&cname, 0, "real.test");
    cr_assert_eq(dns_cache_new(&cache, 4), 0);
    cr_assert_eq(dns_cache_put(cache, "alias.test", DNS_TYPE_A, &cname, 0),
                 0);
    cr_assert(dns_cache_get(cache, "alias.test", DNS_TYPE_A, 0, &out));
    cr_assert_eq(out.status, DNS_ANSWER_CNAME);
    cr_assert_str_eq(out.records[0].name, "real.test");
    cr_assert(out.authenticated);
    cr_assert_eq(out.cname_hops, 2);
    dns_cache_free(cache);
}

/* ---- CNAME chains across answers --------------------------------------- */

/* These chases find every link in the cache, so they end inside
 * dns_chase_start and never query: the options name no server. */
struct chase_fixture {
    struct reactor *reactor;
    struct dns_options opts;
    struct dns_chase_env env;
};

static struct chase_fixture fixture;

static void chase_setup(void)
{
    memset(&fixture, 0, sizeof(fixture));
    cr_assert_eq(reactor_new(&fixture.reactor, NULL), 0);
    cr_assert_eq(dns_cache_new(&fixture.env.cache, 64), 0);
    fixture.env.reactor = fixture.reactor;
    fixture.env.opts = &fixture.opts;
}

static void chase_teardown(void)
{
    dns_cache_free(fixture.env.cache);
    reactor_free(fixture.reactor);
}

static void chase_never_called(void *arg, const struct dns_answer *answer)
{
    (void)arg;
    (void)answer;
    cr_assert_fail("a chase answered from the cache called back");
}

static void cache_link(const char *name, uint16_t type, const char *target,
                       uint32_t ttl, bool authenticated)
{
    struct dns_answer answer = {.status = DNS_ANSWER_CNAME, .ttl = ttl,
                                .authenticated = authenticated,
                                .cname_hops = 1};

    add_mx(&answer, 0, target);
    cr_assert_eq(dns_cache_put(fixture.env.cache, name, type, &answer,
                               reactor_now_ms(fixture.reactor)), 0);
}

static void cache_address(const char *name, uint32_t ttl,
                          bool authenticated)
{
    struct dns_answer answer = {.status = DNS_ANSWER_RECORDS, .ttl = ttl,
                                .authenticated = authenticated, .count = 1};

    answer.records[0].addr_len = 4;
    memcpy(answer.records[0].addr, "\xc0\x00\x02\x07", 4);
    cr_assert_eq(dns_cache_put(fixture.env.cache, name, DNS_TYPE_A, &answer,
                               reactor_now_ms(fixture.reactor)), 0);
}

static int chase_run(const char *name, struct dns_answer *answer)
{
    struct dns_chase chase;

    return dns_chase_start(&chase, &fixture.env, name, DNS_TYPE_A,
                           chase_never_called, NULL, answer);
}

TestSuite(dns_chase, .init = chase_setup, .fini = chase_teardown);

Test(dns_chase, chain_followed_across_answers)
{
    struct dns_answer answer;

    cache_link("a.test", DNS_TYPE_A, "b.test", 300, true);
    cache_link("b.test", DNS_TYPE_A, "c.test", 40, true);
    cache_address("c.test", 100, true);

    cr_assert_eq(chase_run("a.test", &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert_eq(answer.count, 1);
    cr_assert_eq(memcmp(answer.records[0].addr, "\xc0\x00\x02\x07", 4), 0);
    cr_assert_eq(answer.ttl, 40, "the shortest link bounds the chain");
    cr_assert(answer.authenticated);
    cr_assert_eq(answer.cname_hops, 2);
}

Test(dns_chase, one_unauthenticated_link_clears_ad)
{
    struct dns_answer answer;

    cache_link("a.test", DNS_TYPE_A, "b.test", 300, false);
    cache_address("b.test", 100, true);
    cr_assert_eq(chase_run("a.test", &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);
    cr_assert(!answer.authenticated);
}

Test(dns_chase, loop_detected)
{
    struct dns_answer answer;

    cache_link("a.test", DNS_TYPE_A, "b.test", 300, true);
    cache_link("b.test", DNS_TYPE_A, "a.test", 300, true);
    cr_assert_eq(chase_run("a.test", &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_BAD_CNAME);
}

Test(dns_chase, chain_over_limit_stops)
{
    struct dns_answer answer;
    char name[32];
    char target[32];

    /* A chain of DNS_CNAME_MAX_HOPS links ends at an address... */
    for (int i = 0; i < DNS_CNAME_MAX_HOPS; i++) {
        snprintf(name, sizeof(name), "c%d.test", i);
        snprintf(target, sizeof(target), "c%d.test", i + 1);
        cache_link(name, DNS_TYPE_A, target, 300, true);
    }
    snprintf(name, sizeof(name), "c%d.test", DNS_CNAME_MAX_HOPS);
    cache_address(name, 300, true);
    cr_assert_eq(chase_run("c0.test", &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_RECORDS);

    /* ...and one link more is rejected. */
    cache_link(name, DNS_TYPE_A, "last.test", 300, true);
    cache_address("last.test", 300, true);
    cr_assert_eq(chase_run("c0.test", &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_BAD_CNAME);
}

Test(dns_chase, negative_answer_at_chain_end)
{
    struct dns_answer nx = {.status = DNS_ANSWER_NXDOMAIN, .ttl = 30};
    struct dns_answer answer;

    cache_link("a.test", DNS_TYPE_A, "gone.test", 300, false);
    cr_assert_eq(dns_cache_put(fixture.env.cache, "gone.test", DNS_TYPE_A,
                               &nx, reactor_now_ms(fixture.reactor)), 0);
    cr_assert_eq(chase_run("a.test", &answer), 0);
    cr_assert_eq(answer.status, DNS_ANSWER_NXDOMAIN);
    cr_assert_eq(answer.ttl, 30);
}

/* ---- resolv.conf ------------------------------------------------------- */

static void write_file(char *path, const char *text)
{
    int fd = mkstemp(path);
    size_t len = strlen(text);

    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

Test(dns_resolv_conf, nameservers_and_options)
{
    char path[] = "/tmp/test_dns_resolv_XXXXXX";
    struct dns_options opts = {0};
    const struct sockaddr_in *sin;
    const struct sockaddr_in6 *sin6;
    char text[INET6_ADDRSTRLEN];

    write_file(path, "# comment\n"
                     "; another comment\n"
                     "search example.test\n"
                     "nameserver 192.0.2.53\n"
                     "nameserver not-an-address\n"
                     "  nameserver\t2001:db8::53  # trailing\n"
                     "nameserver\n"
                     "options timeout:3 attempts:4 rotate\n"
                     "nameserver 127.0.0.53\n"
                     "nameserver 127.0.0.54\n");
    cr_assert_eq(dns_options_from_resolv_conf(&opts, path), 0);
    unlink(path);

    cr_assert_eq(opts.server_count, 3);
    sin = (const struct sockaddr_in *)&opts.servers[0];
    cr_assert_eq(sin->sin_family, AF_INET);
    cr_assert_eq(ntohs(sin->sin_port), 53);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
    cr_assert_str_eq(text, "192.0.2.53");
    cr_assert_eq(opts.server_lens[0], sizeof(struct sockaddr_in));

    sin6 = (const struct sockaddr_in6 *)&opts.servers[1];
    cr_assert_eq(sin6->sin6_family, AF_INET6);
    cr_assert_eq(ntohs(sin6->sin6_port), 53);
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
    cr_assert_str_eq(text, "2001:db8::53");
    cr_assert_eq(opts.server_lens[1], sizeof(struct sockaddr_in6));

    sin = (const struct sockaddr_in *)&opts.servers[2];
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
    cr_assert_str_eq(text, "127.0.0.53", "servers past the third ignored");
    cr_assert_eq(opts.timeout_ms, 3000);
    cr_assert_eq(opts.attempts, 4);
}

Test(dns_resolv_conf, no_nameserver_leaves_zero)
{
    char path[] = "/tmp/test_dns_resolv_XXXXXX";
    struct dns_options opts = {.server_count = 2};

    write_file(path, "search example.test\n");
    cr_assert_eq(dns_options_from_resolv_conf(&opts, path), 0);
    unlink(path);
    cr_assert_eq(opts.server_count, 0);
}

Test(dns_resolv_conf, missing_file_fails)
{
    struct dns_options opts = {0};

    cr_assert_eq(dns_options_from_resolv_conf(
                     &opts, "/nonexistent/ringrelay/resolv.conf"),
                 -ENOENT);
}

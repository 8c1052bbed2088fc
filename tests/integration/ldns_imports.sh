#!/usr/bin/env bash
# Fails when a binary imports an ldns function outside the allowlist.
#
# BoringSSL and OpenSSL 3 share one process, so the process stays correct
# only while nothing calls into OpenSSL 3. ldns's packet, record, rdf and
# dname functions never reach libcrypto; its key, DNSSEC, TSIG, DANE,
# random-ID and resolver/network functions do. ldns is a shared library,
# so the binary's undefined dynamic symbols are exactly the ldns functions
# it calls, even when they are called from a static library linked in.
# Output is TAP, one test per binary.
# Usage: ldns_imports.sh BINARY...
set -eu

if [ "$#" -lt 1 ]; then
    echo "usage: $0 BINARY..." >&2
    exit 2
fi

# Extended regular expressions, anchored on the whole symbol name.
allowed='^ldns_('
allowed+='pkt_(new|free|query_new|push_rr'
allowed+='|set_(id|qr|tc|ad|rcode|edns_udp_size)'
allowed+='|id|qr|tc|rd|aa|ad|get_rcode|get_opcode|edns_udp_size'
allowed+='|(qd|an|ns|ar)count|question|answer|authority|additional)'
allowed+='|pkt2wire|wire2pkt'
allowed+='|rr_(new|new_frm_str|free|owner|get_type|get_class|ttl|rd_count|rdf'
allowed+='|list_(new|free|deep_free|rr|rr_count|push_rr))'
allowed+='|rdf_(data|size|get_type|free|deep_free|clone|compare'
allowed+='|new|new_frm_data|new_frm_str)'
allowed+='|rdf2native_int(8|16|32)'
allowed+='|native2rdf_int(8|16|32)'
allowed+='|dname_(new_frm_str|compare|label_count|is_subdomain)'
allowed+='|get_errorstr_by_id'
allowed+=')$'

echo "1..$#"
index=0
status=0
for binary in "$@"; do
    index=$((index + 1))
    if ! symbols=$(nm -D --undefined-only "$binary" 2>&1); then
        echo "not ok $index - $binary: nm failed: $symbols"
        status=1
        continue
    fi
    imported=$(printf '%s\n' "$symbols" | awk '{print $NF}' |
               sed 's/@.*//' | grep '^ldns_' | sort -u || true)
    bad=$(printf '%s\n' "$imported" | grep -v '^$' |
          grep -Ev "$allowed" || true)
    count=$(printf '%s\n' "$imported" | grep -c '^ldns_' || true)
    if [ -n "$bad" ]; then
        echo "not ok $index - $binary imports ldns functions outside" \
             "the allowlist"
        printf '%s\n' "$bad" | sed 's/^/# /'
        status=1
    else
        echo "ok $index - $binary imports $count allowed ldns functions"
    fi
done
exit "$status"

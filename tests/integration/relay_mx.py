#!/usr/bin/env python3
"""MX handling end to end, against ldns-testns and the bundled sink.

The zone is resolver_zone.data, which the resolver tests use too, plus
fail-over to a second MX and to a host's second address when nothing
listens on 127.0.0.2, and two MX hosts of equal preference that share the
load, and a first MX at 127.0.0.3 that times out after the end of data
(the relay must defer rather than send a second copy to the next MX),
and a first MX that greets with 421 while sessions to the second work
(a failed host, not a connection limit).
From the shared zone come a CNAME chain to the MX host, CNAME
chains that the name server leaves to the resolver, a CNAME loop, a
domain without MX (implicit MX), a null MX, NXDOMAIN, an MX host that
does not exist, SERVFAIL, REFUSED,
and an MX answer that is truncated over UDP and complete over TCP. Six
relays share the zone:

- "main" has mx_allow_loopback and the default limits, so every MX at
  127.0.0.x may be used;
- "strict" has no mx_allow_loopback, so it defers an MX at 127.0.0.1 but
  still uses a route to 127.0.0.1;
- "strict" also routes typo.test to nx.test, and "smarthost" sends all
  mail to nx.test: a next hop that does not exist defers, never bounces;
- "smart-live" has a smarthost that works, so the domains and address
  literals of one message go in one transaction;
- "one-host" has max_mx_hosts = 1 and "one-address" has
  max_mx_addresses = 1, so both give up after the unreachable address.

Usage (inside netns_run.sh): relay_mx.py BUILD_DIR
"""
import os
import smtplib
import socket
import threading
import time

import harness as h

DEAD = "127.0.0.2"  # nothing listens here, so connects are refused
LIVE = "127.0.0.1"  # the sink listens on port 25
SMART_PORT = 2591  # the sink that smart-live uses as smarthost
SLOW = "127.0.0.3"  # a sink that never answers the end of data in time
CUT = "127.0.0.4"  # a server that closes each connection after its 354
GREET5 = "127.0.0.5"  # a sink that greets with 554
GREET421 = "127.0.0.6"  # a sink that greets with 421
BUSY_SLOW = "127.0.0.7"  # a sink that waits before each RCPT reply
BUSY_COUNT = 6  # messages to busy.test, sent in one burst
SENDER = "sender@client.test"
BODY = b"Subject: MX test\r\n\r\nMX handling\r\n"

SOA = "test. 300 IN SOA ns.test. admin.test. 1 7200 3600 86400 60"

# Cases that need an address where nothing listens, or several hosts
# that take mail, appended to resolver_zone.data (SHARED_ZONE below).
# (name, type, answer RRs, REPLY flags and rcode, MATCH transport)
ENTRIES = [
    ("failover.test", "MX", [
        "failover.test. 300 IN MX 10 mx-dead.failover.test.",
        "failover.test. 300 IN MX 20 mx-live.failover.test.",
    ], "NOERROR", ""),
    ("mx-dead.failover.test", "A",
     [f"mx-dead.failover.test. 300 IN A {DEAD}"], "NOERROR", ""),
    ("mx-live.failover.test", "A",
     [f"mx-live.failover.test. 300 IN A {LIVE}"], "NOERROR", ""),
    ("multi.test", "MX", ["multi.test. 300 IN MX 10 mx.multi.test."],
     "NOERROR", ""),
    ("mx.multi.test", "A", [
        f"mx.multi.test. 300 IN A {DEAD}",
        f"mx.multi.test. 300 IN A {LIVE}",
    ], "NOERROR", ""),
    ("dup.test", "MX", [
        "dup.test. 300 IN MX 10 slow.dup.test.",
        "dup.test. 300 IN MX 20 live.dup.test.",
    ], "NOERROR", ""),
    ("slow.dup.test", "A", [f"slow.dup.test. 300 IN A {SLOW}"],
     "NOERROR", ""),
    ("live.dup.test", "A", [f"live.dup.test. 300 IN A {LIVE}"],
     "NOERROR", ""),
    ("cut.test", "MX", [
        "cut.test. 300 IN MX 10 cut.cut.test.",
        "cut.test. 300 IN MX 20 live.cut.test.",
    ], "NOERROR", ""),
    ("cut.cut.test", "A", [f"cut.cut.test. 300 IN A {CUT}"],
     "NOERROR", ""),
    ("live.cut.test", "A", [f"live.cut.test. 300 IN A {LIVE}"],
     "NOERROR", ""),
    # Another MX set than cut.test's, so that no idle connection of the
    # first cut test carries the second.
    ("cut2.test", "MX", [
        "cut2.test. 300 IN MX 10 cut.cut.test.",
        "cut2.test. 300 IN MX 20 live2.cut.test.",
    ], "NOERROR", ""),
    ("live2.cut.test", "A", [f"live2.cut.test. 300 IN A {LIVE}"],
     "NOERROR", ""),
    ("mxnx.test", "MX", ["mxnx.test. 300 IN MX 10 gone.mxnx.test."],
     "NOERROR", ""),
    ("greet.test", "MX", [
        "greet.test. 300 IN MX 10 no.greet.test.",
        "greet.test. 300 IN MX 20 live.greet.test.",
    ], "NOERROR", ""),
    ("greetonly.test", "MX", ["greetonly.test. 300 IN MX 10 no.greet.test."],
     "NOERROR", ""),
    ("no.greet.test", "A", [f"no.greet.test. 300 IN A {GREET5}"],
     "NOERROR", ""),
    ("live.greet.test", "A", [f"live.greet.test. 300 IN A {LIVE}"],
     "NOERROR", ""),
    # The first MX greets every session with 421 while the sessions of
    # the second work: the first host failed, it limits nothing.
    ("busy.test", "MX", [
        "busy.test. 300 IN MX 10 full.busy.test.",
        "busy.test. 300 IN MX 20 slow.busy.test.",
    ], "NOERROR", ""),
    ("full.busy.test", "A", [f"full.busy.test. 300 IN A {GREET421}"],
     "NOERROR", ""),
    ("slow.busy.test", "A", [f"slow.busy.test. 300 IN A {BUSY_SLOW}"],
     "NOERROR", ""),
    ("spread.test", "MX", [
        "spread.test. 300 IN MX 10 s1.spread.test.",
        "spread.test. 300 IN MX 10 s2.spread.test.",
    ], "NOERROR", ""),
    ("s1.spread.test", "A", [f"s1.spread.test. 300 IN A {LIVE}"],
     "NOERROR", ""),
    ("s2.spread.test", "A", [f"s2.spread.test. 300 IN A {LIVE}"],
     "NOERROR", ""),
    # share-a and share-b have the same MX hosts in the same order (the
    # preference values differ), share-c has them the other way round,
    # and share-d has the same set as share-a but its own destinations
    # entry in the main relay.
    ("share-a.test", "MX", [
        "share-a.test. 300 IN MX 10 mx1.share.test.",
        "share-a.test. 300 IN MX 20 MX2.share.test.",
    ], "NOERROR", ""),
    ("share-b.test", "MX", [
        "share-b.test. 300 IN MX 50 mx2.share.test.",
        "share-b.test. 300 IN MX 5 mx1.share.test.",
    ], "NOERROR", ""),
    ("share-c.test", "MX", [
        "share-c.test. 300 IN MX 10 mx2.share.test.",
        "share-c.test. 300 IN MX 20 mx1.share.test.",
    ], "NOERROR", ""),
    ("share-d.test", "MX", [
        "share-d.test. 300 IN MX 10 mx1.share.test.",
        "share-d.test. 300 IN MX 20 mx2.share.test.",
    ], "NOERROR", ""),
    ("dead-a.test", "MX", ["dead-a.test. 300 IN MX 10 mxdead.share.test."],
     "NOERROR", ""),
    ("dead-b.test", "MX", ["dead-b.test. 300 IN MX 10 mxdead.share.test."],
     "NOERROR", ""),
    ("mxdead.share.test", "A", [f"mxdead.share.test. 300 IN A {DEAD}"],
     "NOERROR", ""),
    ("mx1.share.test", "A", [f"mx1.share.test. 300 IN A {LIVE}"],
     "NOERROR", ""),
    ("mx2.share.test", "A", [f"mx2.share.test. 300 IN A {LIVE}"],
     "NOERROR", ""),
]

# Every other type of these names gets NOERROR without records (NODATA).
NAMES = sorted({entry[0] for entry in ENTRIES})

# The resolver tests' zone: implicit MX, null MX, CNAME chains, a CNAME
# loop, a truncated answer, NXDOMAIN, SERVFAIL and REFUSED. Its names
# differ from those above, so the order of the two parts does not matter.
SHARED_ZONE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "resolver_zone.data")

ENTRY = """ENTRY_BEGIN
MATCH opcode qtype qname {transport}
ADJUST copy_id
REPLY QR AA RD RA {reply}
SECTION QUESTION
{name}. IN {rrtype}
SECTION ANSWER
{answers}
ENTRY_END
"""

# copy_query makes the reply repeat whatever type was asked.
CATCH_ALL = """ENTRY_BEGIN
MATCH opcode qname
ADJUST copy_id copy_query
REPLY QR AA RD RA {rcode}
SECTION QUESTION
{name}. IN A
SECTION AUTHORITY
{soa}
ENTRY_END
"""

CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{queue}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
log_level = "debug";
{extra}
"""

RELAYS = {
    # One message per connection to spread.test, so that each message
    # takes a new connection and a new shuffle of the equal MX hosts:
    # a reused connection would carry them all to one host.
    "main": (2525, "mx_allow_loopback = true;\n"
                   'destinations { "spread.test" { '
                   "max_messages_per_connection = 1; }\n"
                   '               "dup.test" { timeout_final = 2s; }\n'
                   '               "share-d.test" { max_connections = 2; }\n'
                   '               "mx:full.busy.test;slow.busy.test" { '
                   "max_messages_per_connection = 1; }\n"
                   "               }"),
    "strict": (2535, 'routes { "routed.test" = "127.0.0.1:25";\n'
                      '         "typo.test" = "nx.test:2526"; }'),
    "one-host": (2545, "mx_allow_loopback = true;\nmax_mx_hosts = 1;"),
    "one-address": (2555,
                    "mx_allow_loopback = true;\nmax_mx_addresses = 1;"),
    "smarthost": (2565, 'smarthost = "nx.test:2526";'),
    "smart-live": (2575, f'smarthost = "127.0.0.1:{SMART_PORT}";'),
    # Retries every second, and no breaker to park the messages.
    "retry": (2585, "mx_allow_loopback = true;\nretry_interval = 1s;\n"
                    "retry_max_interval = 1s;\n"
                    "delivery_breaker_failures = 0;"),
}


def write_zone(path):
    with open(SHARED_ZONE) as shared:
        text = shared.read()
    with open(path, "w") as zone:
        zone.write(text)
        for name, rrtype, answers, reply, transport in ENTRIES:
            zone.write(ENTRY.format(transport=transport, reply=reply,
                                    name=name, rrtype=rrtype,
                                    answers="\n".join(answers)))
        for name in NAMES:
            zone.write(CATCH_ALL.format(rcode="NOERROR", name=name,
                                        soa=SOA))
        zone.write(CATCH_ALL.format(rcode="NXDOMAIN", name="gone.mxnx.test",
                                    soa=SOA))


def start_relays(harness):
    for name, (port, extra) in RELAYS.items():
        config = h.write_config(harness, CONFIG.format(
            port=port, queue=harness.path("queue-" + name), extra=extra),
            name=name + ".conf")
        h.start_relay(harness, config, port=port, name=name)


def send(relay, rcpts):
    port = RELAYS[relay][0]
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      timeout=30) as client:
        return client.sendmail(SENDER, rcpts, BODY)


def outcome_line(harness, relay, rcpt, event):
    """Return the relay's log line with event for rcpt, or None."""
    for line in harness.log_text(relay).splitlines():
        if f"event={event} " in line and f"to=<{rcpt}>" in line:
            return line
    return None


def wait_outcome(harness, relay, rcpt, event, timeout=30):
    h.wait_for(lambda: outcome_line(harness, relay, rcpt, event), timeout)
    return outcome_line(harness, relay, rcpt, event)


def stored_rcpts(store):
    return [rcpt for _, rcpts, _ in h.read_stored(store) for rcpt in rcpts]


# Messages to spread.test: both MX hosts show up in the deliveries unless
# every lookup shuffled the same host first, with probability 2^-19.
SPREAD_COUNT = 20


def check_main(tap, harness, store):
    rcpts = ["a@failover.test", "b@multi.test", "c@chain.test",
             "d@implicit.test", "e@truncated.test", "f@nullmx.test",
             "g@servfail.test", "l@nx.test", "m@loop.test",
             "n@split.test", "o@refused.test", "s@mxnx.test"]
    spread = [f"p{i}@spread.test" for i in range(SPREAD_COUNT)]
    for rcpt in rcpts:
        refused = send("main", [rcpt])
        tap.check(refused == {}, f"main relay accepts {rcpt}", refused)
    for rcpt in spread:
        refused = send("main", [rcpt])
        if refused:
            tap.check(False, f"main relay accepts {rcpt}", refused)

    delivered = {
        "a@failover.test": "mx-live.failover.test[127.0.0.1]:25",
        "b@multi.test": "mx.multi.test[127.0.0.1]:25",
        "c@chain.test": "alias.chain.test[127.0.0.1]:25",
        "d@implicit.test": "implicit.test[127.0.0.1]:25",
        "e@truncated.test": "mx1.example.test[127.0.0.1]:25",
        "n@split.test": "hop.split.test[127.0.0.1]:25",
    }
    for rcpt, relay in delivered.items():
        line = wait_outcome(harness, "main", rcpt, "delivered")
        tap.check(line is not None and f"relay={relay}" in line,
                  f"{rcpt} is delivered through {relay}", line)

    spread_hosts = set()
    for rcpt in spread:
        line = wait_outcome(harness, "main", rcpt, "delivered") or ""
        for host in ("s1.spread.test", "s2.spread.test"):
            if f"relay={host}[" in line:
                spread_hosts.add(host)
    tap.check(spread_hosts == {"s1.spread.test", "s2.spread.test"},
              "MX hosts of equal preference both receive mail",
              spread_hosts)
    tap.check(sorted(stored_rcpts(store)) == sorted(list(delivered) +
                                                    spread),
              "the sink holds one copy of each delivered message",
              stored_rcpts(store))

    log = harness.log_text("main")
    for dead in ("mx-dead.failover.test", "mx.multi.test"):
        tap.check(f"event=connect-failed relay={dead}[{DEAD}]:25" in log,
                  f"the refused connect to {dead} is logged")
    tap.check("event=dns-truncated name=truncated.test" in log,
              "the truncated MX answer is logged before the TCP retry")

    line = wait_outcome(harness, "main", "f@nullmx.test", "bounced")
    tap.check(line is not None and "556 5.1.10" in line,
              "null MX bounces with 556 5.1.10", line)
    tap.check(line is not None and "relay=none" in line,
              "null MX bounces without a connection", line)

    line = wait_outcome(harness, "main", "g@servfail.test", "deferred")
    tap.check(line is not None and "451 4.4.3" in line,
              "SERVFAIL defers with 451 4.4.3", line)
    failed = [entry for entry in harness.log_text("main").splitlines()
              if "event=dns-failed name=servfail.test type=MX" in entry]
    tap.check(len(failed) == 1, "the first attempt does not repeat the "
              "failed lookup that picked the destination", failed)
    line = wait_outcome(harness, "main", "o@refused.test", "deferred")
    tap.check(line is not None and "451 4.4.3" in line,
              "REFUSED defers with 451 4.4.3", line)
    line = wait_outcome(harness, "main", "m@loop.test", "deferred")
    tap.check(line is not None and "451 4.4.3" in line,
              "a CNAME loop defers with 451 4.4.3", line)
    tap.check("event=dns-bad-cname name=loop.test type=MX" in
              harness.log_text("main"), "the CNAME loop is logged")
    line = wait_outcome(harness, "main", "l@nx.test", "bounced")
    tap.check(line is not None and "550 5.1.2" in line,
              "NXDOMAIN bounces with 550 5.1.2", line)
    tap.check(line is not None and "relay=none" in line,
              "NXDOMAIN bounces without a connection", line)
    line = wait_outcome(harness, "main", "s@mxnx.test", "bounced")
    tap.check(line is not None and "550 5.4.4" in line,
              "an MX host not in DNS bounces with 550 5.4.4", line)
    tap.check(line is not None and "gone.mxnx.test" in line,
              "the bounce names the missing MX host", line)


def check_no_duplicate(tap, harness, store):
    tap.check(send("main", ["d@dup.test"]) == {},
              "main relay accepts d@dup.test")
    line = wait_outcome(harness, "main", "d@dup.test", "deferred")
    tap.check(line is not None and "451 4.4.2" in line,
              "a timeout after the end of data defers with 451 4.4.2",
              line)
    tap.check(line is not None and f"relay=slow.dup.test[{SLOW}]:25" in line,
              "the deferral names the host that timed out", line)
    tap.check("relay=slow.dup.test" not in
              "".join(l for l in harness.log_text("main").splitlines()
                      if "event=try-next-host" in l),
              "a timeout after the end of data never tries the next MX")
    tap.check("d@dup.test" not in stored_rcpts(store),
              "the next MX host gets no second copy", stored_rcpts(store))


def serve_cut_after_354(count):
    """Accept count SMTP sessions on CUT:25 and close each right after the
    354 reply, before reading the body: a first MX that fails mid-body.
    RCPT TO:<nouser@...> gets 550, every other command 250."""
    listener = socket.create_server((CUT, 25))
    listener.settimeout(60)

    def serve_one(conn):
        conn.settimeout(30)
        conn.sendall(b"220 cut.test ESMTP\r\n")
        reader = conn.makefile("rb")
        reader.readline()
        conn.sendall(b"250-cut.test\r\n250 PIPELINING\r\n")
        while True:
            line = reader.readline().upper()
            if not line or line.startswith(b"DATA"):
                break
            reply = (b"550 5.1.1 no such user"
                     if line.startswith(b"RCPT TO:<NOUSER@") else b"250 ok")
            conn.sendall(reply + b"\r\n")
        conn.sendall(b"354 go\r\n")

    def serve():
        try:
            for _ in range(count):
                conn, _ = listener.accept()
                with conn:
                    serve_one(conn)
        except OSError:
            pass
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


CUT_BODY = (b"Subject: cut in the body\r\n\r\n" +
            b"x" * 998 + b"\r\n") * 4096


def check_cut_in_body(tap, harness, store):
    """A first MX that closes the connection while the body is still being
    sent cannot have the message, so the next MX host takes it. A
    recipient that the first MX refused with 5xx bounces at once and does
    not hold the others back."""
    with smtplib.SMTP("127.0.0.1", RELAYS["main"][0],
                      local_hostname="client.test", timeout=60) as client:
        refused = client.sendmail(SENDER, ["e@cut.test"], CUT_BODY)
    tap.check(refused == {}, "main relay accepts e@cut.test", refused)
    line = wait_outcome(harness, "main", "e@cut.test", "delivered")
    tap.check(line is not None and "relay=live.cut.test" in line,
              "a connection cut in the body moves on to the next MX", line)

    with smtplib.SMTP("127.0.0.1", RELAYS["main"][0],
                      local_hostname="client.test", timeout=60) as client:
        refused = client.sendmail(SENDER, ["nouser@cut2.test",
                                           "f@cut2.test"], CUT_BODY)
    tap.check(refused == {}, "main relay accepts two cut2.test recipients",
              refused)
    line = wait_outcome(harness, "main", "f@cut2.test", "delivered")
    tap.check(line is not None and "relay=live2.cut.test" in line and
              "attempt=1 " in line,
              "after a cut, the next MX takes the recipients that the first "
              "did not refuse", line)
    line = wait_outcome(harness, "main", "nouser@cut2.test", "bounced")
    tap.check(line is not None and "550 5.1.1" in line and
              "relay=cut.cut.test" in line,
              "the recipient the first MX refused bounces with its 550",
              line)
    tap.check("nouser@cut2.test" not in stored_rcpts(store),
              "the refused recipient is not tried at the next MX")


def check_5xx_greeting(tap, harness, store):
    """A 554 greeting means that the host offers no service, and it is no
    verdict on the recipients. So the next MX takes the mail, and with no
    other MX the mail is deferred, never bounced."""
    tap.check(send("main", ["g@greet.test"]) == {},
              "main relay accepts g@greet.test")
    line = wait_outcome(harness, "main", "g@greet.test", "delivered")
    tap.check(line is not None and "relay=live.greet.test" in line and
              "attempt=1 " in line,
              "a 554 greeting moves on to the next MX", line)
    tap.check(send("main", ["h@greetonly.test"]) == {},
              "main relay accepts h@greetonly.test")
    line = wait_outcome(harness, "main", "h@greetonly.test", "deferred")
    tap.check(line is not None and "451 4.4.0" in line and
              "554 5.3.2" in line,
              "a 554 greeting of the only MX defers with its text", line)
    tap.check(outcome_line(harness, "main", "h@greetonly.test",
                           "bounced") is None,
              "a 554 greeting never bounces the mail")


def check_421_other_host(tap, harness):
    """A 421 greeting from an MX host with no working session of its own
    is a failure of that host, even while sessions to the next MX work.
    Each message moves on to the next MX, and the destination's
    connection limit stays."""
    with smtplib.SMTP("127.0.0.1", RELAYS["main"][0],
                      local_hostname="client.test", timeout=30) as client:
        for index in range(BUSY_COUNT):
            client.sendmail(SENDER, [f"b{index}@busy.test"], BODY)
    for index in range(BUSY_COUNT):
        line = wait_outcome(harness, "main", f"b{index}@busy.test",
                            "delivered")
        tap.check(line is not None and "relay=slow.busy.test" in line and
                  "attempt=1 " in line,
                  f"b{index}@busy.test goes to the next MX after a 421",
                  line)
    busy = [line for line in harness.log_text("main").splitlines()
            if "dest=mx:full.busy.test;slow.busy.test" in line]
    tap.check(not any("event=connection-limit-lowered" in line
                      for line in busy),
              "a 421 of a host without sessions lowers no limit",
              [line for line in busy if "limit" in line][:3])
    tap.check(not any("event=requeued" in line for line in busy),
              "a 421 of a host without sessions requeues nothing")


def check_strict(tap, harness, store):
    tap.check(send("strict", ["h@implicit.test", "i@routed.test"]) == {},
              "strict relay accepts both recipients")

    line = wait_outcome(harness, "strict", "h@implicit.test", "deferred")
    tap.check(line is not None and "451 4.4.6" in line,
              "a loopback MX is deferred with 451 4.4.6", line)
    tap.check(line is not None and "relay=none" in line,
              "a loopback MX gets no connection", line)
    tap.check("event=mx-address-skipped domain=implicit.test "
              "host=implicit.test address=127.0.0.1"
              in harness.log_text("strict"),
              "the skipped loopback address is logged")

    line = wait_outcome(harness, "strict", "i@routed.test", "delivered")
    tap.check(line is not None, "a route to 127.0.0.1 still delivers", line)
    tap.check("h@implicit.test" not in stored_rcpts(store),
              "the loopback MX recipient never reaches the sink")


def check_missing_next_hop(tap, harness):
    tap.check(send("strict", ["q@typo.test"]) == {},
              "strict relay accepts the routed recipient")
    tap.check(send("smarthost", ["r@else.test"]) == {},
              "smarthost relay accepts the recipient")
    for relay, rcpt in (("strict", "q@typo.test"),
                        ("smarthost", "r@else.test")):
        line = wait_outcome(harness, relay, rcpt, "deferred")
        tap.check(line is not None and "451 4.4.4" in line,
                  f"{relay}: a next hop not in DNS defers with 451 4.4.4",
                  line)
        tap.check(line is not None and "nx.test" in line.split("reply=")[-1],
                  f"{relay}: the deferral names the missing host", line)
        tap.check(outcome_line(harness, relay, rcpt, "bounced") is None,
                  f"{relay}: a next hop not in DNS never bounces")


def check_smarthost_shared(tap, harness, smart_store):
    rcpts = ["a@else.test", "b@[127.0.0.9]", "c@Else.Test"]
    tap.check(send("smart-live", rcpts) == {},
              "smart-live relay accepts a domain and a literal")
    for rcpt in rcpts:
        line = wait_outcome(harness, "smart-live", rcpt, "delivered")
        tap.check(line is not None and
                  f"dest=127.0.0.1:{SMART_PORT} " in line,
                  f"{rcpt} is delivered through the smarthost", line)
    stored = [sorted(r) for _, r, _ in h.read_stored(smart_store)]
    tap.check(len(stored) == 1, "the smarthost gets one transaction for "
              "domains and literals", stored)
    tap.check(stored and stored[0] == sorted(rcpts),
              "that transaction carries all three recipients", stored)


SHARED_SET = "mx:mx1.share.test;mx2.share.test"


def check_shared_mx(tap, harness, store):
    """Domains with the same MX hosts share a destination. So the
    recipients of one message go in one transaction, and later messages
    reuse its connection. Other orders and named destinations keep
    apart."""
    rcpts = ["a@share-a.test", "b@share-b.test", "c@share-c.test",
             "d@share-d.test", "e@Share-A.test"]
    tap.check(send("main", rcpts) == {}, "main relay accepts the shared-MX "
              "recipients")
    dests = {}
    for rcpt in rcpts:
        line = wait_outcome(harness, "main", rcpt, "delivered") or ""
        dests[rcpt] = line.split(" dest=")[-1].split(" ")[0]
    tap.check(dests["a@share-a.test"] == SHARED_SET and
              dests["b@share-b.test"] == SHARED_SET and
              dests["e@Share-A.test"] == SHARED_SET,
              "domains with the same MX hosts in the same order share the "
              "destination named after the MX set", dests)
    tap.check(dests["c@share-c.test"] == "mx:mx2.share.test;mx1.share.test",
              "the same hosts in another preference order are another "
              "destination", dests)
    tap.check(dests["d@share-d.test"] == "share-d.test",
              "a domain with its own destinations entry keeps its name",
              dests)
    stored = [sorted(r) for _, r, _ in h.read_stored(store)
              if any("@share-" in rcpt.lower() for rcpt in r)]
    tap.check(sorted(["a@share-a.test", "b@share-b.test",
                      "e@Share-A.test"]) in stored,
              "one transaction carries the recipients of both domains",
              stored)
    tap.check(len(stored) == 3, "three transactions for three "
              "destinations", stored)

    # The connection the first message left idle carries the next
    # message to the other domain of the set.
    tap.check(send("main", ["f@share-b.test"]) == {},
              "main relay accepts a second message to the shared set")
    line = wait_outcome(harness, "main", "f@share-b.test", "delivered")
    reused = [entry for entry in harness.log_text("main").splitlines()
              if "event=connection-reused" in entry and
              f"dest={SHARED_SET} " in entry]
    tap.check(line is not None and reused != [],
              "a message to share-b reuses the connection of share-a's "
              "set", reused)


def check_shared_retry(tap, harness):
    """Before each retry the domains of a shared MX set are looked up
    again, and those that still share it go in one transaction again."""
    dead = "mx:mxdead.share.test"
    tap.check(send("retry", ["x@dead-a.test", "y@dead-b.test"]) == {},
              "retry relay accepts two domains of one dead MX set")

    def scheduled():
        return [line for line in harness.log_text("retry").splitlines()
                if "event=retry-scheduled" in line and
                f"dest={dead} " in line]
    h.wait_for(lambda: len(scheduled()) >= 2, 20)
    lines = scheduled()
    tap.check(len(lines) >= 2 and
              all("rcpts=2 " in line for line in lines[:2]),
              "both recipients wait for their retry together, twice",
              lines)
    def second_tries():
        return [line for line in harness.log_text("retry").splitlines()
                if "event=deferred" in line and "attempt=2 " in line]
    h.wait_for(lambda: len(second_tries()) >= 2, 20)
    tries = second_tries()
    tap.check(len(tries) == 2 and
              all(f"dest={dead} " in line for line in tries),
              "the second attempt goes to the shared destination again",
              tries)


def check_limits(tap, harness, store):
    tap.check(send("one-host", ["j@failover.test"]) == {},
              "one-host relay accepts the recipient")
    tap.check(send("one-address", ["k@multi.test"]) == {},
              "one-address relay accepts the recipient")

    for relay, rcpt in (("one-host", "j@failover.test"),
                        ("one-address", "k@multi.test")):
        line = wait_outcome(harness, relay, rcpt, "deferred")
        tap.check(line is not None and "Connection refused" in line,
                  f"{relay} defers {rcpt} after the refused address",
                  line)
        tap.check(line is not None and f"[{LIVE}]" not in line,
                  f"{relay} never tries the second address", line)
    stored = stored_rcpts(store)
    tap.check("j@failover.test" not in stored and "k@multi.test" not in
              stored, "limited relays deliver nothing", stored)


def test(tap, harness):
    store = harness.path("store")
    zone = harness.path("zone.data")
    write_zone(zone)
    harness.start("ldns-testns", ["ldns-testns", "-p", "53", zone])
    time.sleep(0.3)  # as start_name_server: ldns-testns has no ready signal
    h.start_sink(harness, store)
    smart_store = harness.path("smart-store")
    h.start_sink(harness, smart_store, port=SMART_PORT, name="smart-sink")
    harness.start("slow-sink", [
        harness.binary("bench/ringrelay-bench"), "sink", "--listen",
        f"{SLOW}:25", "--store", harness.path("slow-store"),
        "--data-delay", "20000"])
    tap.check(h.wait_port(SLOW, 25), "the slow sink listens")
    serve_cut_after_354(2)
    harness.start("greet-sink", [
        harness.binary("bench/ringrelay-bench"), "sink", "--listen",
        f"{GREET5}:25", "--store", harness.path("greet-store"),
        "--connect-reply", "554 5.3.2 go away:1"])
    tap.check(h.wait_port(GREET5, 25), "the 554 sink listens")
    harness.start("greet421-sink", [
        harness.binary("bench/ringrelay-bench"), "sink", "--listen",
        f"{GREET421}:25", "--store", harness.path("greet421-store"),
        "--connect-reply", "421 4.7.0 too many sessions:1"])
    tap.check(h.wait_port(GREET421, 25), "the 421 sink listens")
    harness.start("busy-slow-sink", [
        harness.binary("bench/ringrelay-bench"), "sink", "--listen",
        f"{BUSY_SLOW}:25", "--store", harness.path("busy-slow-store"),
        "--rcpt-delay", "300"])
    tap.check(h.wait_port(BUSY_SLOW, 25), "the slow RCPT sink listens")
    start_relays(harness)

    check_main(tap, harness, store)
    check_no_duplicate(tap, harness, store)
    check_cut_in_body(tap, harness, store)
    check_5xx_greeting(tap, harness, store)
    check_421_other_host(tap, harness)
    check_strict(tap, harness, store)
    check_missing_next_hop(tap, harness)
    check_smarthost_shared(tap, harness, smart_store)
    check_shared_mx(tap, harness, store)
    check_shared_retry(tap, harness)
    check_limits(tap, harness, store)

    for name in RELAYS:
        proc = next(p for p in harness.procs if p.test_name == name)
        tap.check(harness.stop(proc) == 0, f"{name} relay stops cleanly "
                  "on SIGTERM")


if __name__ == "__main__":
    h.main_wrapper(test)

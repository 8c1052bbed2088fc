#!/usr/bin/env python3
"""Relay access from a client outside relay_networks: no open relay.

The relay listens on 127.0.0.1 with relay_networks = 127.0.0.1/32 and
relay_domains = local.test. A client that binds its source address to
127.0.0.2 tries the classic relay tricks. Every recipient outside
local.test gets 554 5.7.1, and every malformed one gets a 5xx syntax
reply. Recipients in local.test are accepted, also with '%', '!', '@'
inside a quoted local part or a source route, and reach the local.test
route exactly as given. A trap sink is both the route of other.test and
the smarthost, so mail that leaked to any other domain or address literal
would land there. It must receive nothing until a client inside
relay_networks sends to it. A second relay with the default
relay_networks checks the defaults and the max_errors limit.

relay_auth.py checks that an authenticated client from 127.0.0.2 may
relay to foreign domains while an unauthenticated one still gets 554.

Usage (inside netns_run.sh): relay_open_relay.py BUILD_DIR
"""
import smtplib
import subprocess

import harness as h

# Nothing listens on 127.0.0.1:53, so a DNS lookup can only defer.
# Port 2545 is a dual-stack wildcard socket (safe only in the test's own
# network namespace), where an IPv4 client appears as ::ffff:127.0.0.x.
CONFIG = """
listen = ["127.0.0.1:2525", "[::]:2545"];
queue_dir = "{queue}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
relay_networks = ["127.0.0.1/32"];
relay_domains = ["local.test"];
routes {{
    "local.test" = "127.0.0.1:2526";
    "other.test" = "127.0.0.1:2527";
}}
smarthost = "127.0.0.1:2527";
greeting_delay = 0s;
max_errors = 1000;
log_level = "debug";
"""

# No relay_networks, relay_domains or max_errors key: their defaults.
DEFAULT_CONFIG = """
listen = "127.0.0.1:2535";
queue_dir = "{queue}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
"""

OUTSIDE = "127.0.0.2"
INSIDE = "127.0.0.1"
SENDER = "sender@client.test"
BODY = b"Subject: relay test\r\n\r\nrelay access\r\n"

ACCEPTED = ("250", "2.1.5")
DENIED = ("554", "5.7.1")
BAD_SYNTAX = ("501", "5.1.3")

# Each case is the path as sent after "RCPT TO:" and the expected code
# and enhanced code of the reply. An accepted recipient must reach the local.test sink as the address that
# the path holds, without the source route.
CASES = [
    ("<user@local.test>", ACCEPTED),
    ("<user@other.test>", DENIED),
    ("<user@OTHER.TEST>", DENIED),
    ("<user@Other.Test>", DENIED),
    ("<user@LOCAL.TEST>", ACCEPTED),
    ("<user@Local.Test>", ACCEPTED),
    # '%' is an ordinary atext character, so the domain is local.test and
    # the local part goes unchanged to the local.test next hop.
    ("<user%other@local.test>", ACCEPTED),
    ("<user%other.test@local.test>", ACCEPTED),
    ("<user%local.test@other.test>", DENIED),
    ("<user@other.test%local.test>", BAD_SYNTAX),
    ("<other.test!user@local.test>", ACCEPTED),
    ("<local.test!user@other.test>", DENIED),
    ("<user@other@local.test>", BAD_SYNTAX),
    ("<user@local.test@other.test>", BAD_SYNTAX),
    # The parser drops a source route, so only the mailbox's own domain
    # decides.
    ("<@local.test:user@other.test>", DENIED),
    ("<@a,@b:user@other.test>", DENIED),
    ("<@local.test,@local.test:user@other.test>", DENIED),
    ("<@other.test:user@local.test>", ACCEPTED),
    ("<@other.test:user@other.test@local.test>", BAD_SYNTAX),
    ('<"user@other.test"@local.test>', ACCEPTED),
    ('<"user%other.test"@local.test>', ACCEPTED),
    ('<"user@local.test"@other.test>', DENIED),
    ('<"user"@other.test>', DENIED),
    ("<user@[127.0.0.1]>", DENIED),
    ("<user@[127.0.0.2]>", DENIED),
    ("<user@[IPv6:::1]>", DENIED),
    ("<user@[IPv6:::ffff:127.0.0.1]>", DENIED),
    ("<user@[local.test]>", BAD_SYNTAX),
    ("<user@local.test.>", BAD_SYNTAX),
    ("<user@other.test.>", BAD_SYNTAX),
    ("<user@LOCAL.TEST.>", BAD_SYNTAX),
    ("<user@sub.local.test>", DENIED),
    ("<user@evillocal.test>", DENIED),
    ("<user@local.test.other.test>", DENIED),
    ("<user@local-test>", DENIED),
    ("<user@local.test >", BAD_SYNTAX),
    ("<user @local.test>", BAD_SYNTAX),
    ("<user@ local.test>", BAD_SYNTAX),
    ("<user@local.test\tx@other.test>", BAD_SYNTAX),
    ("<user@local.test>,<user@other.test>", ("501", "5.5.4")),
    ("<user@other.test> ORCPT=rfc822;user@local.test", DENIED),
    ("user@other.test", BAD_SYNTAX),
    ("<<user@other.test>>", BAD_SYNTAX),
]

# Raw command lines that smtplib will not send, with the expected code
# and enhanced code of each reply they get, in order. A NUL or bare CR
# rejects the whole line before the path is parsed, and a bare LF ends
# the line, so the text after it is an unknown command of its own.
RAW_CASES = [
    (b"RCPT TO:<user@local.test\x00@other.test>\r\n",
     [("500", "5.5.2")]),
    (b"RCPT TO:<user@other.test\x00>\r\n", [("500", "5.5.2")]),
    (b"RCPT TO:<user@other.test\r@local.test>\r\n", [("500", "5.5.2")]),
    (b"RCPT TO:<user@local.test\rRCPT TO:<user@other.test>\r\n",
     [("500", "5.5.2")]),
    (b"RCPT TO:<user@other.test\n@local.test>\r\n",
     [("500", "5.5.2"), ("500", "5.5.2")]),
]

FOREIGN = ["user@other.test", "user@OTHER.TEST", "user@sub.local.test",
           "user@evillocal.test", "user@[127.0.0.1]"]


def stored_rcpts(store):
    """Return the recipients of every message the sink stored, sorted."""
    return sorted(rcpt for _, rcpts, _ in h.read_stored(store)
                  for rcpt in rcpts)


def path_address(path):
    """Return the address a valid path stores: no brackets, no route."""
    inner = path[1:-1]
    if inner.startswith("@"):
        inner = inner.split(":", 1)[1]
    return inner


def reply_matches(code, text, expected):
    return str(code) == expected[0] and text.startswith(expected[1] + " ")


def check_cases(tap, client):
    """Send every case as one RCPT and return the accepted addresses."""
    accepted = []
    for path, expected in CASES:
        code, text = client.docmd("RCPT", "TO:" + path)
        text = text.decode(errors="replace")
        tap.check(reply_matches(code, text, expected),
                  f"RCPT {path} gets {' '.join(expected)}",
                  f"{code} {text}")
        if expected == ACCEPTED:
            accepted.append(path_address(path))
    return accepted


def send_outside(tap, port):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      source_address=(OUTSIDE, 0), timeout=30) as client:
        client.ehlo()
        code, _ = client.mail(SENDER)
        tap.check(code == 250, "MAIL from the outside client", code)
        accepted = check_cases(tap, client)
        code, text = client.data(BODY)
        tap.check(code == 250, "DATA after the mixed RCPTs is queued",
                  f"{code} {text}")
        client.quit()
    return accepted


def check_raw(tap, port):
    client = h.RawClient(port, source=OUTSIDE)
    tap.check(client.reply().startswith("220 "), "raw client greeted")
    client.command(b"EHLO client.test\r\n")
    tap.check(client.command(b"MAIL FROM:<" + SENDER.encode() + b">\r\n")
              .startswith("250 "), "raw MAIL accepted")
    reply = client.command(b"RCPT TO:<user@other.test>\r\n")
    tap.check(reply.startswith("554 5.7.1 "), "raw foreign RCPT denied",
              reply)
    for line, expected in RAW_CASES:
        replies = [client.command(line)]
        replies += [client.reply() for _ in expected[1:]]
        for reply, (code, status) in zip(replies, expected):
            tap.check(reply.startswith(f"{code} {status} "),
                      f"raw {line!r} gets {code} {status}", reply)
    reply = client.command(b"DATA\r\n")
    tap.check(reply.startswith("554 5.5.1 "),
              "raw DATA without valid recipients gets 554 5.5.1", reply)
    tap.check(client.command(b"QUIT\r\n").startswith("221 "), "raw QUIT")
    client.close()


# Look-alike domains in UTF-8: Cyrillic o (U+043E) and long s (U+017F),
# whose upper case is S. Byte-wise case folding must not match either.
LOOKALIKES = ["user@l\u043ecal.test", "user@local.te\u017ft"]


def check_utf8(tap, port):
    """Send look-alike domains with and without SMTPUTF8."""
    sessions = [(b"", "without SMTPUTF8", "553 5.6.7 "),
                (b" SMTPUTF8", "with SMTPUTF8", "554 5.7.1 ")]
    for parameter, label, expected in sessions:
        client = h.RawClient(port, source=OUTSIDE)
        client.reply()
        client.command(b"EHLO client.test\r\n")
        reply = client.command(b"MAIL FROM:<" + SENDER.encode() + b">"
                               + parameter + b"\r\n")
        tap.check(reply.startswith("250 "), f"MAIL {label}", reply)

        for address in LOOKALIKES:
            reply = client.command(b"RCPT TO:<" + address.encode() +
                                   b">\r\n")
            tap.check(reply.startswith(expected),
                      f"RCPT {address!a} {label} gets {expected.strip()}",
                      reply)
        client.command(b"QUIT\r\n")
        client.close()


def check_outside(tap, harness, stores):
    # The relay stores a recipient given twice once, and the source route
    # case repeats <user@local.test>.
    accepted = sorted(set(send_outside(tap, 2525)))
    check_raw(tap, 2525)
    check_utf8(tap, 2525)

    arrived = h.wait_for(lambda: len(stored_rcpts(stores["local"]))
                         >= len(accepted), timeout=30)
    tap.check(arrived, "local.test sink receives the accepted message",
              stored_rcpts(stores["local"]))
    tap.check(stored_rcpts(stores["local"]) == accepted,
              "local.test sink gets each accepted address as sent",
              f"got {stored_rcpts(stores['local'])}\n"
              f"expected {accepted}")

    # A sink stores a message before its reply reaches the relay, so wait
    # for the relay to log every delivery before reading the log.
    h.wait_for(lambda: harness.log_text("ringrelay").count(
        "event=delivered") >= len(accepted), timeout=30)

    log = harness.log_text("ringrelay")
    tap.check(h.read_stored(stores["trap"]) == [],
              "trap sink gets nothing from the outside client",
              stored_rcpts(stores["trap"]))
    tap.check(f"client={OUTSIDE} relay=no" in log,
              "relay sees 127.0.0.2 as outside relay_networks")
    tap.check('reason="relay access denied"' in log,
              "relay logs the denied RCPTs")
    tap.check("event=deferred" not in log, "nothing was deferred",
              [line for line in log.splitlines() if "deferred" in line])


def check_inside(tap, harness, stores):
    with smtplib.SMTP("127.0.0.1", 2525, local_hostname="client.test",
                      source_address=(INSIDE, 0), timeout=30) as client:
        refused = client.sendmail(SENDER, FOREIGN, BODY)
    tap.check(refused == {}, "client in relay_networks relays anywhere",
              refused)
    arrived = h.wait_for(lambda: len(stored_rcpts(stores["trap"]))
                         >= len(FOREIGN), timeout=30)
    tap.check(arrived and stored_rcpts(stores["trap"]) == sorted(FOREIGN),
              "trap sink receives the inside client's foreign mail",
              stored_rcpts(stores["trap"]))


def rcpt_reply(host, port, source, path):
    """Return "CODE TEXT" of one RCPT sent from source to host:port."""
    with smtplib.SMTP(host, port, local_hostname="client.test",
                      source_address=(source, 0), timeout=30) as client:
        client.ehlo()
        client.mail(SENDER)
        code, text = client.docmd("RCPT", "TO:" + path)
        client.rset()
        client.quit()
    return f"{code} {text.decode(errors='replace')}"


def check_address_families(tap, harness):
    """Match clients in IPv4-mapped and IPv6 form against 127.0.0.1/32."""
    cases = [
        ("127.0.0.1", OUTSIDE, "554 5.7.1 ",
         "::ffff:127.0.0.2 on a dual-stack socket is denied"),
        ("127.0.0.1", INSIDE, "250 2.1.5 ",
         "::ffff:127.0.0.1 on a dual-stack socket may relay"),
        ("::1", "::1", "554 5.7.1 ",
         "::1 is outside 127.0.0.1/32 and is denied"),
    ]
    for host, source, expected, name in cases:
        reply = rcpt_reply(host, 2545, source, "<user@other.test>")
        tap.check(reply.startswith(expected), name, reply)

    # The connect lines show that the dual-stack socket saw mapped forms.
    log = harness.log_text("ringrelay")
    tap.check("client=::ffff:127.0.0.2 relay=no" in log,
              "relay logs ::ffff:127.0.0.2 as outside relay_networks")
    tap.check("client=::ffff:127.0.0.1 relay=yes" in log,
              "relay logs ::ffff:127.0.0.1 as inside relay_networks")


def check_default(tap, harness):
    """The default relay_networks trusts only 127.0.0.1, and the default
    max_errors (20) closes a session after 20 denied RCPTs."""
    path = h.write_config(harness, DEFAULT_CONFIG.format(
        queue=harness.path("queue-default")), name="default.conf")
    relay = h.start_relay(harness, path, port=2535,
                          name="ringrelay-default")

    client = h.RawClient(2535, source=OUTSIDE)
    tap.check(client.reply().startswith("220 "), "default relay greets")
    client.command(b"EHLO client.test\r\n")
    client.command(b"MAIL FROM:<" + SENDER.encode() + b">\r\n")
    replies = [client.command(b"RCPT TO:<user%d@other.test>\r\n" % i)
               for i in range(20)]
    tap.check(all(r.startswith("554 5.7.1 ") for r in replies),
              "default config denies every foreign RCPT", replies)
    tap.check(client.reply().startswith("421 4.7.0 "),
              "the 20th error is followed by 421 4.7.0")
    tap.check(client.closed(), "session is closed after max_errors")
    client.close()

    inside = h.RawClient(2535, source=INSIDE)
    inside.reply()
    inside.command(b"EHLO client.test\r\n")
    inside.command(b"MAIL FROM:<" + SENDER.encode() + b">\r\n")
    tap.check(inside.command(b"RCPT TO:<user@other.test>\r\n")
              .startswith("250 2.1.5 "),
              "default config relays for 127.0.0.1")
    inside.command(b"QUIT\r\n")
    inside.close()
    tap.check(harness.stop(relay) == 0,
              "default relay stops cleanly on SIGTERM")


def check_wide_networks(tap, harness):
    """relay_networks that cover nearly everyone: ringrelay -t and the
    start log warn, and the daemon still runs. The relay's own networks
    in CONFIG and the default get no warning."""
    path = h.write_config(harness, DEFAULT_CONFIG.format(
        queue=harness.path("queue-wide")) + 'relay_networks = ["0.0.0.0/0",'
        ' "::/0", "10.0.0.0/8"];\n', name="wide.conf")
    result = subprocess.run([harness.binary("ringrelay"), "-t", "-c", path],
                            capture_output=True, text=True, timeout=30)
    tap.check(result.returncode == 0, "ringrelay -t accepts 0.0.0.0/0",
              result.stderr)
    for net in ("0.0.0.0/0", "::/0"):
        tap.check(f"warning: relay_networks entry {net} covers nearly "
                  "every address" in result.stderr,
                  f"ringrelay -t warns about {net}", result.stderr)
    tap.check("10.0.0.0/8" not in result.stderr,
              "ringrelay -t does not warn about 10.0.0.0/8", result.stderr)
    relay = h.start_relay(harness, path, port=2535, name="ringrelay-wide")
    log = harness.log_text("ringrelay-wide")
    tap.check("level=warning event=open-relay-warning network=0.0.0.0/0 "
              in log and "network=::/0 " in log,
              "start logs the open relay warning", log[-1500:])
    tap.check(harness.stop(relay) == 0, "wide relay stops cleanly")
    tap.check("open-relay-warning" not in harness.log_text("ringrelay"),
              "127.0.0.1/32 gets no warning")


def test(tap, harness):
    stores = {name: harness.path("store-" + name)
              for name in ("local", "trap")}
    h.start_sink(harness, stores["local"], port=2526, name="sink-local")
    h.start_sink(harness, stores["trap"], port=2527, name="sink-trap")
    relay = h.start_relay(harness, h.write_config(harness, CONFIG.format(
        queue=harness.path("queue"))))

    check_outside(tap, harness, stores)
    check_inside(tap, harness, stores)
    check_address_families(tap, harness)
    check_default(tap, harness)
    check_wide_networks(tap, harness)

    tap.check(harness.stop(relay) == 0, "relay stops cleanly on SIGTERM")


if __name__ == "__main__":
    h.main_wrapper(test)

#!/usr/bin/env python3
"""A domain that moves to other MX hosts leaves its shared destination.

Two domains share the MX host mx1.shared.test, where nothing listens, so
their mail is deferred and the destination's breaker opens. Then the
name server restarts with a zone where moving.test points at
mx3.other.test, the sink. Its mail must go there under its new
destination. stay.test's mail must never follow it, neither on a new
connection nor on the connection that moving.test's delivery leaves
idle. Records have a TTL of 1 s, so the relay's cache drops the old
ones at once.

fo.test has a backup MX that answers 452 for some recipients: after a
4xx on a reused connection to it, those recipients move to a new
connection, which starts again at the preferred MX once it is back.

A second relay has a breaker that stays open for an hour and a
queue_lifetime of 3 s: the messages it parks must bounce once they are
too old, although they never make an attempt.

Usage (inside netns_run.sh): relay_mx_move.py BUILD_DIR
"""
import smtplib
import socket
import threading
import time

import harness as h
from relay_mx import CATCH_ALL, ENTRY

DEAD = "127.0.0.2"  # nothing listens here, so connects are refused
LIVE = "127.0.0.1"  # the sink listens on port 25
PRIMARY = "127.0.0.6"  # fo.test's first MX, started late
BACKUP = "127.0.0.7"  # fo.test's second MX: 452 for "full" recipients
SENDER = "sender@client.test"
BODY = b"Subject: moving MX\r\n\r\nMX move\r\n"
SOA = "test. 1 IN SOA ns.test. admin.test. 1 7200 3600 86400 1"

MOVE_PORT = 2525
LIFETIME_PORT = 2535

CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{queue}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
log_level = "debug";
mx_allow_loopback = true;
retry_interval = 1s;
retry_max_interval = 1s;
{extra}
"""

MOVE_EXTRA = ("delivery_breaker_failures = 2;\n"
              "delivery_breaker_wait = 2s;")
LIFETIME_EXTRA = ("delivery_breaker_failures = 1;\n"
                  "delivery_breaker_wait = 1h;\n"
                  "queue_lifetime = 3s;")

OLD_SET = "mx:mx1.shared.test"
NEW_SET = "mx:mx3.other.test"


def zone_entries(moving_host):
    return [
        ("moving.test", "MX", [f"moving.test. 1 IN MX 10 {moving_host}."]),
        ("stay.test", "MX", ["stay.test. 1 IN MX 10 mx1.shared.test."]),
        ("dead.test", "MX", ["dead.test. 1 IN MX 10 mx1.shared.test."]),
        ("mx1.shared.test", "A", [f"mx1.shared.test. 1 IN A {DEAD}"]),
        ("mx3.other.test", "A", [f"mx3.other.test. 1 IN A {LIVE}"]),
        ("fo.test", "MX", ["fo.test. 1 IN MX 10 mxa.fo.test.",
                           "fo.test. 1 IN MX 20 mxb.fo.test."]),
        ("mxa.fo.test", "A", [f"mxa.fo.test. 1 IN A {PRIMARY}"]),
        ("mxb.fo.test", "A", [f"mxb.fo.test. 1 IN A {BACKUP}"]),
    ]


def write_zone(path, moving_host):
    entries = zone_entries(moving_host)
    with open(path, "w") as zone:
        for name, rrtype, answers in entries:
            zone.write(ENTRY.format(transport="", reply="NOERROR",
                                    name=name, rrtype=rrtype,
                                    answers="\n".join(answers)))
        for name in sorted({entry[0] for entry in entries}):
            zone.write(CATCH_ALL.format(rcode="NOERROR", name=name,
                                        soa=SOA))


def start_dns(harness, name, zone):
    proc = harness.start(name, ["ldns-testns", "-p", "53", zone])
    time.sleep(0.3)  # ldns-testns has no ready signal
    return proc


def send(port, rcpts):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      timeout=30) as client:
        return client.sendmail(SENDER, rcpts, BODY)


def lines_with(harness, relay, *parts):
    return [line for line in harness.log_text(relay).splitlines()
            if all(part in line for part in parts)]


def check_move(tap, harness, store, dns):
    for n in range(3):
        tap.check(send(MOVE_PORT, [f"k{n}@stay.test"]) == {},
                  f"relay accepts k{n}@stay.test")
    h.wait_for(lambda: lines_with(harness, "move", "event=breaker-open"),
               15)
    tap.check(lines_with(harness, "move", "event=breaker-open",
                         f"dest={OLD_SET} "),
              "the old MX set's breaker opens")

    # Parked before its first attempt, so only the breaker wakes it.
    tap.check(send(MOVE_PORT, ["mv@moving.test", "k@stay.test"]) == {},
              "relay accepts one message to both domains")
    h.wait_for(lambda: lines_with(harness, "move", "event=suspended",
                                  "domain=moving.test"), 15)
    parked = lines_with(harness, "move", "event=suspended",
                        "domain=moving.test")
    tap.check(parked and f"dest={OLD_SET} " in parked[0] and
              "rcpts=2 " in parked[0],
              "both domains share the old MX set, parked by its breaker",
              parked[:1])

    harness.stop(dns)
    moved = harness.path("zone-moved.data")
    write_zone(moved, "mx3.other.test")
    start_dns(harness, "dns-moved", moved)

    h.wait_for(lambda: lines_with(harness, "move", "event=delivered",
                                  "to=<mv@moving.test>"), 20)
    line = lines_with(harness, "move", "event=delivered",
                      "to=<mv@moving.test>")
    tap.check(line and f"dest={NEW_SET} " in line[0] and
              "relay=mx3.other.test[" in line[0],
              "the moved domain goes to its new MX under its new "
              "destination", line)

    # Long enough for several retries of stay.test after the move.
    time.sleep(4)
    stored = [rcpt for _, rcpts, _ in h.read_stored(store)
              for rcpt in rcpts]
    tap.check(not any(rcpt.endswith("@stay.test") for rcpt in stored),
              "no stay.test recipient reaches the moved domain's host",
              stored)
    wrong = lines_with(harness, "move", f"dest={OLD_SET} ",
                       "relay=mx3.other.test")
    tap.check(wrong == [], "the old MX set never connects to the new "
              "host", wrong)


def serve_backup():
    """Serve SMTP on BACKUP:25 for the test's length: RCPT of a local
    part that starts with "full" gets 452, everything else 250, and a
    connection carries any number of transactions."""
    listener = socket.create_server((BACKUP, 25))
    listener.settimeout(60)

    def session(conn):
        conn.settimeout(30)
        reader = conn.makefile("rb")
        conn.sendall(b"220 mxb.fo.test ESMTP\r\n")
        while True:
            line = reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"RCPT" and b"<full" in line.lower():
                conn.sendall(b"452 4.2.2 mailbox full\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                while reader.readline() not in (b".\r\n", b""):
                    pass
                conn.sendall(b"250 2.0.0 stored\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 mxb.fo.test\r\n")

    def serve():
        try:
            while True:
                conn, _ = listener.accept()
                with conn:
                    session(conn)
        except OSError:
            pass
        finally:
            listener.close()

    threading.Thread(target=serve, daemon=True).start()


def start_primary(harness, name):
    proc = harness.start(name, [
        harness.binary("bench/ringrelay-bench"), "sink", "--listen",
        f"{PRIMARY}:25", "--store", harness.path(name + "-store")])
    if not h.wait_port(PRIMARY, 25):
        raise RuntimeError("the preferred MX's sink did not listen")
    return proc


def check_backup_reuse(tap, harness, store):
    """A 4xx on a reused connection to the backup MX moves the message to
    a new connection, which starts again at the preferred MX."""
    serve_backup()
    tap.check(send(MOVE_PORT, ["ok1@fo.test"]) == {},
              "relay accepts ok1@fo.test")
    h.wait_for(lambda: lines_with(harness, "move", "event=delivered",
                                  "to=<ok1@fo.test>"), 15)
    line = lines_with(harness, "move", "event=delivered",
                      "to=<ok1@fo.test>")
    tap.check(line and "relay=mxb.fo.test[" in line[0],
              "with the first MX down, the backup takes the mail", line)

    primary = start_primary(harness, "primary")
    tap.check(send(MOVE_PORT, ["full1@fo.test"]) == {},
              "relay accepts full1@fo.test")
    h.wait_for(lambda: lines_with(harness, "move", "to=<full1@fo.test>",
                                  "event=delivered"), 15)
    reused = lines_with(harness, "move", "event=connection-reused",
                        "relay=mxb.fo.test[")
    line = lines_with(harness, "move", "event=delivered",
                      "to=<full1@fo.test>")
    tap.check(reused != [], "the next message reuses the backup's "
              "connection", reused)
    tap.check(line and "relay=mxa.fo.test[" in line[0] and
              "attempt=1 " in line[0],
              "its 452 there moves it to the preferred MX, now up", line)

    # Once more with the preferred MX down for the first message, and a
    # second message whose other recipient the backup accepts.
    harness.stop(primary)
    tap.check(send(MOVE_PORT, ["ok2@fo.test"]) == {},
              "relay accepts ok2@fo.test")
    h.wait_for(lambda: lines_with(harness, "move", "event=delivered",
                                  "to=<ok2@fo.test>"), 15)
    start_primary(harness, "primary-again")
    tap.check(send(MOVE_PORT, ["ok3@fo.test", "full2@fo.test"]) == {},
              "relay accepts ok3 and full2")
    h.wait_for(lambda: lines_with(harness, "move", "to=<full2@fo.test>",
                                  "event=delivered"), 15)
    ok3 = lines_with(harness, "move", "event=delivered", "to=<ok3@fo.test>")
    full2 = lines_with(harness, "move", "event=delivered",
                       "to=<full2@fo.test>")
    tap.check(ok3 and "relay=mxb.fo.test[" in ok3[0],
              "the backup keeps the recipient it accepted", ok3)
    tap.check(full2 and "relay=mxa.fo.test[" in full2[0] and
              "attempt=1 " in full2[0],
              "the recipient it deferred moves to the preferred MX", full2)


def check_parked_lifetime(tap, harness):
    tap.check(send(LIFETIME_PORT, ["p0@dead.test"]) == {},
              "lifetime relay accepts the first message")
    h.wait_for(lambda: lines_with(harness, "lifetime",
                                  "event=breaker-open"), 15)
    for n in range(1, 4):
        send(LIFETIME_PORT, [f"p{n}@dead.test"])
    h.wait_for(lambda: len(lines_with(harness, "lifetime",
                                      "event=bounced",
                                      "queue_lifetime exceeded")) >= 4,
               20)
    for n in range(1, 4):
        parked = lines_with(harness, "lifetime", "event=suspended")
        bounced = lines_with(harness, "lifetime", "event=bounced",
                             f"to=<p{n}@dead.test>")
        tap.check(bounced and "queue_lifetime exceeded" in bounced[0],
                  f"parked p{n} bounces once too old", bounced)
    tap.check(parked != [], "the later messages were parked by the "
              "breaker", parked[:1])
    tried = lines_with(harness, "lifetime", "event=connect-failed")
    tap.check(len(tried) == 1, "only the first message made an attempt",
              tried)


def test(tap, harness):
    store = harness.path("store")
    zone = harness.path("zone.data")
    write_zone(zone, "mx1.shared.test")
    dns = start_dns(harness, "dns", zone)
    h.start_sink(harness, store)
    for name, port, extra in (("move", MOVE_PORT, MOVE_EXTRA),
                              ("lifetime", LIFETIME_PORT, LIFETIME_EXTRA)):
        config = h.write_config(harness, CONFIG.format(
            port=port, queue=harness.path("queue-" + name), extra=extra),
            name=name + ".conf")
        h.start_relay(harness, config, port=port, name=name)

    check_parked_lifetime(tap, harness)
    check_move(tap, harness, store, dns)
    check_backup_reuse(tap, harness, store)

    for name in ("move", "lifetime"):
        proc = next(p for p in harness.procs if p.test_name == name)
        tap.check(harness.stop(proc) == 0, f"{name} relay stops cleanly")


if __name__ == "__main__":
    h.main_wrapper(test)

#!/usr/bin/env python3
"""Delivery scheduling end to end: connection reuse, pipelining, the
per-destination limits, fairness between destinations, retries and the
circuit breaker.

Each case has its own domain, routed to its own downstream server on
127.0.0.1: the bundled sink (its --stats-file gives sessions_total,
sessions_peak and pipelined_reads), Postfix's smtp-sink (its -c counters
give sessions and messages), nothing at all (a closed port), or a small
Python server that drops a reused connection. Every destination name is
the route's "127.0.0.1:PORT".

Usage (inside netns_run.sh): relay_delivery.py BUILD_DIR
"""
import json
import re
import shutil
import smtplib
import subprocess
import socket
import threading
import time

import harness as h

REUSE_PORT = 2611
NOPIPE_PORT = 2612
CONC_PORT = 2613
PERCONN_PORT = 2614
STUCK_PORT = 2615
GOOD_PORT = 2616
RETRY_PORT = 2617
DOWN_PORT = 2618
DEAD_PORT = 2619
RATE_PORT = 2620
SPLIT_PORT = 2621
SLOW_GREETING_PORT = 2622
SLOW_FINAL_PORT = 2623
FLUSH_DOWN_PORT = 2624
PARTIAL_PORT = 2625
BUSY_PORT = 2626
BULK_PORT = 2627
BULK_RELAY_PORT = 2527

ROUTES = {"reuse.test": REUSE_PORT, "nopipe.test": NOPIPE_PORT,
          "conc.test": CONC_PORT, "perconn.test": PERCONN_PORT,
          "stuck.test": STUCK_PORT, "good.test": GOOD_PORT,
          "retry.test": RETRY_PORT, "down.test": DOWN_PORT,
          "dead.test": DEAD_PORT, "rate.test": RATE_PORT,
          "split.test": SPLIT_PORT, "split2.test": SPLIT_PORT,
          "slowgreet.test": SLOW_GREETING_PORT,
          "slowfinal.test": SLOW_FINAL_PORT,
          "flushdown.test": FLUSH_DOWN_PORT,
          "partial.test": PARTIAL_PORT, "busy.test": BUSY_PORT}

CONFIG = """
listen = "127.0.0.1:2525";
queue_dir = "{queue}";
hostname = "relay.test";
durability = none;
retry_interval = 1s;
retry_max_interval = 2s;
relay_networks = ["127.0.0.1/32"];
routes {{
{routes}
}}
destinations {{
    "127.0.0.1:{reuse}" {{ max_connections = 2; }}
    "127.0.0.1:{conc}" {{ max_connections = 3; }}
    "127.0.0.1:{perconn}" {{ max_connections = 1;
                            max_messages_per_connection = 3; }}
    "127.0.0.1:{down}" {{ breaker_failures = 3; breaker_wait = 2s; }}
    "127.0.0.1:{dead}" {{ max_connections = 1; }}
    "127.0.0.1:{rate}" {{ max_messages_per_second = 5; }}
    "127.0.0.1:{split}" {{ max_rcpts_per_transaction = 2; }}
    "127.0.0.1:{slow_greeting}" {{ timeout_greeting = 1s;
                                  breaker_failures = 0; }}
    "127.0.0.1:{slow_final}" {{ timeout_final = 1s; }}
    "127.0.0.1:{flush_down}" {{ breaker_failures = 2; breaker_wait = 1h; }}
    "127.0.0.1:{partial}" {{ max_rcpts_per_transaction = 4; }}
    "127.0.0.1:{busy}" {{ max_connections = 10; breaker_failures = 3; }}
}}
"""


def message(tag, index):
    return (f"From: sender@client.test\r\nTo: rcpt@{tag}\r\n"
            f"Subject: {tag} {index}\r\n\r\nbody {index}\r\n").encode()


def send(domain, count, first=0):
    """Send count one-recipient messages to domain over one connection."""
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        for index in range(first, first + count):
            client.sendmail("sender@client.test", [f"r{index}@{domain}"],
                            message(domain, index))


def queue_list(harness, config, *options):
    """Return the output of ringrelay-queue list with options, or ""
    when the tool fails."""
    done = subprocess.run([harness.binary("tools/ringrelay-queue"), "-c",
                           config, "list", *options],
                          capture_output=True, text=True, timeout=30)
    return done.stdout if done.returncode == 0 else ""


def queue_rcpts(harness, config):
    """Return the recipients of every message in ringrelay-queue list
    --json, or [] when the tool fails."""
    output = queue_list(harness, config, "--json")
    if not output:
        return []
    return [rcpt for msg in json.loads(output)["messages"]
            for rcpt in msg["recipients"]]


class BundledSink:
    """The bundled sink on one port, with a store and a stats file."""

    def __init__(self, harness, name, port, options=()):
        self.store = harness.path(name + "-store")
        self.stats = harness.path(name + ".stats")
        self.proc = h.start_sink(harness, self.store, port=port, name=name,
                                 options=["--stats-file", self.stats,
                                          *options])
        # wait_port's probe connection is the sink's first session.
        h.wait_for(lambda: h.sink_stat(self.stats, "sessions_total") == 1
                   and h.sink_stat(self.stats, "sessions_open") == 0, 5)

    def count(self):
        return len(h.read_stored(self.store))

    def value(self, key):
        return h.sink_stat(self.stats, key)


def test_reuse_and_pipelining(tap, harness):
    sink = BundledSink(harness, "reuse", REUSE_PORT)
    send("reuse.test", 20)
    arrived = h.wait_for(lambda: sink.count() == 20, 20)
    tap.check(arrived, "reuse: 20 messages arrive", sink.count())
    h.wait_for(lambda: sink.value("messages") == 20, 3)
    sessions = sink.value("sessions_total") - 1
    tap.check(1 <= sessions <= 2,
              "reuse: 20 messages over at most 2 connections",
              f"{sessions} sessions")
    tap.check(sink.value("pipelined_reads") >= 20,
              "pipelining: each MAIL, RCPT and DATA batch arrives in one "
              "read", h.read_sink_stats(sink.stats))

    plain = BundledSink(harness, "nopipe", NOPIPE_PORT, ["--no-pipelining"])
    send("nopipe.test", 3)
    arrived = h.wait_for(lambda: plain.count() == 3, 20)
    tap.check(arrived, "no pipelining: 3 messages arrive", plain.count())
    tap.check(plain.value("pipelined_reads") == 0,
              "no pipelining: one command per read",
              h.read_sink_stats(plain.stats))


def test_concurrency_limit(tap, harness):
    sink = BundledSink(harness, "conc", CONC_PORT, ["--data-delay", "300"])
    send("conc.test", 15)
    arrived = h.wait_for(lambda: sink.count() == 15, 30)
    tap.check(arrived, "concurrency: 15 messages arrive", sink.count())
    peak = sink.value("sessions_peak")
    tap.check(peak == 3, "concurrency: 3 sessions at once, the limit",
              h.read_sink_stats(sink.stats))


def smtp_sink_counter(harness, name, counter):
    values = re.findall(counter + r"=(\d+)", harness.log_text(name))
    return int(values[-1]) if values else None


def test_messages_per_connection(tap, harness):
    if shutil.which("smtp-sink") is None:
        tap.check(False, "smtp-sink is installed (apt-get install postfix)")
        return
    # -u: smtp-sink does not run as root without a user to switch to.
    # -c: counters "sess=N quit=N mesg=N", sess counting ended sessions.
    proc = harness.start("smtp-sink", [
        "timeout", "120", "smtp-sink", "-u", "nobody", "-c",
        f"127.0.0.1:{PERCONN_PORT}", "64"])
    tap.check(h.wait_port("127.0.0.1", PERCONN_PORT), "smtp-sink listens")
    probe_sessions = 1
    send("perconn.test", 9)
    h.wait_for(lambda: smtp_sink_counter(harness, "smtp-sink", "mesg")
               == 9, 20)
    # Three connections of three messages each; each ends with QUIT at
    # its third message.
    h.wait_for(lambda: smtp_sink_counter(harness, "smtp-sink", "sess")
               == probe_sessions + 3, 5)
    tap.check(smtp_sink_counter(harness, "smtp-sink", "mesg") == 9,
              "per connection: smtp-sink gets 9 messages")
    tap.check(smtp_sink_counter(harness, "smtp-sink", "sess")
              == probe_sessions + 3,
              "per connection: 3 messages on each of 3 connections",
              harness.log_text("smtp-sink")[-200:])
    tap.check(smtp_sink_counter(harness, "smtp-sink", "quit")
              == 3, "per connection: each connection ends with QUIT")
    harness.stop(proc)


def test_stuck_destination(tap, harness):
    """More messages than the old engine's global cap of 200 attempts
    wait on a next hop that never greets; another one is not slowed."""
    BundledSink(harness, "stuck", STUCK_PORT, ["--connect-delay", "60000"])
    good = BundledSink(harness, "good", GOOD_PORT)
    send("stuck.test", 210)
    h.wait_for(lambda: False, 1)
    start = time.monotonic()
    send("good.test", 5)
    arrived = h.wait_for(lambda: good.count() == 5, 10)
    elapsed = time.monotonic() - start
    tap.check(arrived and elapsed < 5,
              "fairness: a stuck destination does not delay another",
              f"{good.count()} of 5 in {elapsed:.1f}s")
    opened = len(re.findall(r"event=connect-failed relay=\[?127\.0\.0\.1"
                            rf"\]?:{STUCK_PORT}",
                            harness.log_text("ringrelay")))
    tap.check(opened == 0, "fairness: no stuck connection failed yet")


def test_retry_then_success(tap, harness):
    sink = BundledSink(harness, "retry", RETRY_PORT,
                       ["--mail-reply", "451 4.3.0 try later:0.5",
                        "--seed", "3"])
    send("retry.test", 6)
    arrived = h.wait_for(lambda: sink.count() == 6, 30)
    tap.check(arrived, "retry: 6 messages arrive", sink.count())
    log = harness.log_text("ringrelay")
    tap.check(re.search(r"event=deferred to=<[^>]*@retry\.test> "
                        r".*reply=\"451 4\.3\.0 try later\" attempt=1",
                        log) is not None,
              "retry: 451 defers a message at attempt 1")
    later = re.findall(r"event=delivered to=<[^>]*@retry\.test> .* "
                       r"attempt=([2-9])", log)
    tap.check(len(later) >= 1, "retry: a deferred message is delivered "
              "by a later attempt", later)


def test_circuit_breaker(tap, harness):
    dest = f"127.0.0.1:{DOWN_PORT}"
    send("down.test", 4)
    opened = h.wait_for(lambda: f"event=breaker-open dest={dest} "
                        in harness.log_text("ringrelay"), 10)
    tap.check(opened, "breaker: opens after failed connections")
    suspended = h.wait_for(lambda: f"Delivery to {dest} suspended"
                           in harness.log_text("ringrelay"), 5)
    tap.check(suspended, "breaker: retries while open are deferred "
              "without a connection")
    sink = BundledSink(harness, "down", DOWN_PORT)
    arrived = h.wait_for(lambda: sink.count() == 4, 20)
    tap.check(arrived, "breaker: messages arrive once the next hop is up",
              sink.count())
    log = harness.log_text("ringrelay")
    tap.check(f"event=breaker-probe dest={dest}" in log,
              "breaker: probes after breaker_wait")
    tap.check(f"event=breaker-closed dest={dest}" in log,
              "breaker: closes after a good connection")
    suspended_deferrals = [line for line in log.splitlines()
                           if "event=deferred" in line and
                           "suspended" in line]
    tap.check(not suspended_deferrals, "breaker: a suspended message "
              "is not deferred as an attempt", suspended_deferrals[:3])
    attempts = [int(n) for n in re.findall(
        r"event=delivered to=<r\d@down\.test> .* attempt=(\d+)", log)]
    tap.check(len(attempts) == 4 and max(attempts) <= 3,
              "breaker: waiting for the probe adds no attempts", attempts)


def check_breaker_list(tap, harness, config):
    """ringrelay-queue list shows the recipients parked behind the open
    breaker of flushdown.test as waiting for it, with the time of the
    probe, breaker_wait (1h) after the breaker opened."""
    def parked_rcpts():
        return [r for r in queue_rcpts(harness, config)
                if r["address"].endswith("@flushdown.test")]
    all_marked = h.wait_for(lambda: len(parked_rcpts()) == 3 and all(
        r.get("waiting") == "breaker" for r in parked_rcpts()), 5)
    rcpts = parked_rcpts()
    tap.check(all_marked, "list: --json marks the parked recipients "
              "\"waiting\": \"breaker\"", rcpts)
    now = time.time()
    probes = [r.get("probe", 0) for r in rcpts]
    tap.check(len(probes) == 3 and
              all(now + 3500 < probe <= now + 3601 for probe in probes),
              "list: --json gives the probe time, about an hour ahead",
              [(probe - now) for probe in probes])
    tap.check(all(r.get("probe_iso") for r in rcpts),
              "list: --json gives the probe time in ISO form", rcpts)
    lines = [line for line in queue_list(harness, config).splitlines()
             if "@flushdown.test>" in line]
    marked = [line for line in lines
              if re.search(r" waiting=breaker probe=\d{4}-\d\d-\d\dT"
                           r"\d\d:\d\d:\d\dZ$", line)]
    tap.check(len(lines) == 3 and marked == lines,
              "list: text marks each parked recipient waiting=breaker "
              "with the probe time", lines)
    others = [line for line in queue_list(harness, config).splitlines()
              if "waiting=" in line and "@flushdown.test>" not in line]
    tap.check(not others, "list: recipients of other destinations are "
              "not marked", others)


def test_breaker_flush(tap, harness, config):
    """ringrelay-queue flush of one message makes an open breaker probe at
    once, however long its breaker_wait, and once the probe gets through
    every message parked behind the breaker goes out."""
    dest = f"127.0.0.1:{FLUSH_DOWN_PORT}"
    send("flushdown.test", 3)
    opened = h.wait_for(lambda: f"event=breaker-open dest={dest} "
                        in harness.log_text("ringrelay"), 10)
    tap.check(opened, "flush: the breaker opens")

    def parked():
        return set(re.findall(r"id=(\S+) event=suspended "
                              r"domain=flushdown\.test",
                              harness.log_text("ringrelay")))
    h.wait_for(lambda: len(parked()) == 3, 10)
    ids = sorted(parked())
    tap.check(len(ids) == 3, "flush: all three messages are parked", ids)
    check_breaker_list(tap, harness, config)
    sink = BundledSink(harness, "flushdown", FLUSH_DOWN_PORT)
    done = subprocess.run([harness.binary("tools/ringrelay-queue"), "-c",
                           config, "flush", ids[0] if ids else "-"],
                          capture_output=True, text=True, timeout=30)
    tap.check(done.returncode == 0, "flush: the tool succeeds",
              (done.returncode, done.stdout, done.stderr))
    arrived = h.wait_for(lambda: sink.count() == 3, 10)
    tap.check(arrived, "flush: the flushed message and the others parked "
              "behind the breaker arrive long before the 1h breaker_wait",
              sink.count())
    tap.check(f"event=breaker-probe dest={dest} reason=flush" in
              harness.log_text("ringrelay"), "flush: the probe is logged")


def serve_dead(listener, delivered_on):
    """Accept SMTP sessions. At the second MAIL of the first connection
    close without a reply, and at that of the second connection reply
    421 and close, as peers that dropped an idle connection do."""
    for connection_number in (1, 2, 3):
        conn, _ = listener.accept()
        stream = conn.makefile("rb")
        conn.sendall(b"220 dead.test ESMTP\r\n")
        transactions = 0
        while True:
            line = stream.readline()
            verb = line[:4].upper()
            if not line:
                break
            if verb == b"EHLO":
                conn.sendall(b"250-dead.test\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL" and connection_number == 1 \
                    and transactions == 1:
                break
            elif verb == b"MAIL" and connection_number == 2 \
                    and transactions == 1:
                conn.sendall(b"421 4.4.2 dead.test idle too long\r\n")
                break
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                while stream.readline() not in (b".\r\n", b""):
                    pass
                transactions += 1
                delivered_on.append(connection_number)
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        stream.close()
        conn.close()


def test_dead_reused_connection(tap, harness):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", DEAD_PORT))
    listener.listen(8)
    listener.settimeout(30)
    delivered_on = []
    server = threading.Thread(target=serve_dead,
                              args=(listener, delivered_on), daemon=True)
    server.start()
    send("dead.test", 1)
    h.wait_for(lambda: len(delivered_on) == 1, 10)
    send("dead.test", 1, first=1)
    h.wait_for(lambda: len(delivered_on) == 2, 10)
    send("dead.test", 1, first=2)
    h.wait_for(lambda: len(delivered_on) == 3, 10)
    tap.check(delivered_on == [1, 2, 3],
              "dead reuse: closed and 421 connections are replaced",
              delivered_on)
    log = harness.log_text("ringrelay")
    tap.check(log.count("event=reused-connection-lost") == 2,
              "dead reuse: each lost connection is logged")
    for index in (1, 2):
        tap.check(re.search(rf"event=delivered to=<r{index}@dead\.test> "
                            r".*attempt=1 ", log) is not None,
                  f"dead reuse: message {index} delivered at attempt 1")
    listener.close()


def test_rate_limit(tap, harness):
    sink = BundledSink(harness, "rate", RATE_PORT)
    send("rate.test", 10)
    arrived = h.wait_for(lambda: sink.count() == 10, 20)
    tap.check(arrived, "rate: 10 messages arrive", sink.count())
    h.wait_for(lambda: sink.value("messages") == 10, 3)
    span = (sink.value("last_message_wall_us")
            - sink.value("first_message_wall_us")) / 1e6
    # 5 per second: the 10th starts 9 steps of 0.2 s after the first.
    tap.check(span >= 1.7, "rate: 5 messages per second at most",
              f"first to last {span:.2f}s")


def test_recipients_per_transaction(tap, harness):
    """Two domains routed to one next hop share transactions, cut at the
    destination's max_rcpts_per_transaction."""
    sink = BundledSink(harness, "split", SPLIT_PORT)
    rcpts = ["a@split.test", "b@split2.test", "c@split.test",
             "d@split2.test", "e@split.test"]
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.sendmail("sender@client.test", rcpts,
                        message("split.test", 0))
    arrived = h.wait_for(lambda: sink.count() == 3, 20)
    stored = h.read_stored(sink.store)
    tap.check(arrived, "split: 3 transactions for 5 recipients",
              [r for _, r, _ in stored])
    sizes = sorted(len(r) for _, r, _ in stored)
    tap.check(sizes == [1, 2, 2], "split: at most 2 recipients each",
              sizes)
    got = sorted(rcpt for _, r, _ in stored for rcpt in r)
    tap.check(got == sorted(rcpts), "split: every recipient once", got)
    mixed = any(len({rcpt.split("@")[1] for rcpt in r}) == 2
                for _, r, _ in stored)
    tap.check(mixed, "split: one transaction carries both domains")


def outcome_lines(harness, domain):
    return [line for line in harness.log_text("ringrelay").splitlines()
            if re.search(r"event=(delivered|deferred|retry-scheduled) "
                         r"(to=<\w+@|domain=)" + re.escape(domain), line)]


def test_untried_rcpts_not_held(tap, harness):
    """Recipients left out of a transaction by max_rcpts_per_transaction
    go out at once, even when others of the message were deferred, and
    each recipient counts its own attempts."""
    sink = BundledSink(harness, "partial", PARTIAL_PORT,
                       ["--rcpt-reply", "451 4.2.1 later:0.3",
                        "--seed", "5"])
    rcpts = [f"p{i}@partial.test" for i in range(12)]
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.sendmail("sender@client.test", rcpts,
                        message("partial.test", 0))
    stored = lambda: sorted(r for _, rs, _ in h.read_stored(sink.store)
                            for r in rs)
    arrived = h.wait_for(lambda: stored() == sorted(rcpts), 20)
    tap.check(arrived, "partial: every recipient arrives", stored())
    lines = outcome_lines(harness, "partial.test")
    first = {}
    first_wait = None
    for number, line in enumerate(lines):
        match = re.search(r"to=<(\w+@partial\.test)>.* attempt=(\d+) ",
                          line)
        if match and match.group(1) not in first:
            first[match.group(1)] = (number, int(match.group(2)))
        if "event=retry-scheduled" in line and first_wait is None:
            first_wait = number
    tap.check(any("event=deferred" in line for line in lines),
              "partial: the sink defers a recipient", lines)
    inflated = {r: a for r, (_, a) in first.items() if a != 1}
    tap.check(sorted(first) == sorted(rcpts) and not inflated,
              "partial: each recipient's first result is attempt=1",
              inflated)
    late = [r for r, (n, _) in first.items()
            if first_wait is not None and n > first_wait]
    tap.check(not late, "partial: no retry wait before every recipient "
              "was tried once", late)


def send_parallel(domain, clients, each):
    """Send clients times each messages to domain over parallel
    connections, so that the relay has many ready at once."""
    threads = [threading.Thread(target=send, args=(domain, each, i * each))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_connection_limit_of_next_hop(tap, harness):
    """A next hop that takes 2 sessions and greets more with 421 limits
    connections and is not down: the relay waits for the 2 working
    sessions, defers nothing and keeps the breaker closed."""
    sink = BundledSink(harness, "busy", BUSY_PORT,
                       ["--max-connections", "2", "--rcpt-delay", "200"])
    send_parallel("busy.test", 6, 5)
    arrived = h.wait_for(lambda: sink.count() == 30, 30)
    tap.check(arrived, "busy: 30 messages arrive", sink.count())
    log = [line for line in harness.log_text("ringrelay").splitlines()
           if "127.0.0.1:2626" in line]
    text = "\n".join(log)
    tap.check("event=deferred" not in text,
              "busy: a 421 greeting with 2 sessions working defers "
              "nothing", [l for l in log if "event=deferred" in l][:3])
    tap.check("event=breaker-open" not in text,
              "busy: the breaker stays closed")
    tap.check("event=connection-limit-lowered dest=127.0.0.1:2626" in text,
              "busy: the lowered connection limit is logged")
    tap.check(sink.value("sessions_peak") <= 10,
              "busy: at most max_connections sessions",
              sink.value("sessions_peak"))

    # The idle connections close after 5 s, long before the lowered
    # limit's breaker_wait of 1 minute ends, and the destination is
    # freed with them.
    restored = "event=connection-limit-restored dest=127.0.0.1:2626 "
    h.wait_for(lambda: restored in harness.log_text("ringrelay"), 15)
    lines = [line for line in harness.log_text("ringrelay").splitlines()
             if restored in line]
    tap.check(len(lines) == 1 and 'reason="no jobs left"' in lines[0],
              "busy: the limit is restored once, when the destination "
              "has no jobs left", lines)


def test_state_timeouts(tap, harness):
    """timeout_greeting and timeout_final of one destination cut a slow
    greeting and a slow reply to the final dot; both defer."""
    BundledSink(harness, "slowgreet", SLOW_GREETING_PORT,
                ["--connect-delay", "5000"])
    BundledSink(harness, "slowfinal", SLOW_FINAL_PORT,
                ["--data-delay", "5000"])
    start = time.monotonic()
    send("slowgreet.test", 1)
    send("slowfinal.test", 1)
    pattern = (r"event=deferred to=<r0@{}> .*reply=\"451 4\.4\.2 Timed "
               r"out waiting for the relay\" attempt=1 ")
    greeting = h.wait_for(lambda: re.search(
        pattern.format(r"slowgreet\.test"),
        harness.log_text("ringrelay")) is not None, 4)
    final = h.wait_for(lambda: re.search(
        pattern.format(r"slowfinal\.test"),
        harness.log_text("ringrelay")) is not None, 4)
    elapsed = time.monotonic() - start
    tap.check(greeting, "timeout: a slow greeting defers after 1s")
    tap.check(final, "timeout: a slow final reply defers after 1s")
    tap.check(elapsed < 4, "timeout: both well before the 5 s delays",
              f"{elapsed:.1f}s")
    next_host = [line for line in harness.log_text("ringrelay").splitlines()
                 if "event=try-next-host" in line and
                 f":{SLOW_GREETING_PORT}" in line]
    tap.check(not next_host, "timeout: no try-next-host when the route "
              "has no other address", next_host)


BULK_CONFIG = """
listen = "127.0.0.1:{listen}";
queue_dir = "{queue}";
hostname = "relay.test";
durability = none;
retry_interval = 10s;
relay_networks = ["127.0.0.1/32"];
routes {{
    "bulk.test" = "127.0.0.1:{bulk}";
}}
destinations {{
    "127.0.0.1:{bulk}" {{ max_rcpts_per_transaction = 100;
                         max_connections = 1; }}
}}
"""


def test_one_retry_time_per_message(tap, harness):
    """The 150 recipients of one message go out in two transactions of
    at most 100, and the sink defers them all after holding each
    transaction 3 s, so the two end 3 s apart. With retry_interval = 10s
    the 20% jitter spans only 2 s, yet the recipients of both
    transactions get one next attempt on each retry, and the retry
    starts both transactions at once."""
    config = h.write_config(harness, BULK_CONFIG.format(
        listen=BULK_RELAY_PORT, queue=harness.path("bulk-queue"),
        bulk=BULK_PORT), name="bulk.conf")
    relay = h.start_relay(harness, config, port=BULK_RELAY_PORT,
                          name="bulk-relay")
    later = h.start_sink(harness, harness.path("bulk-later-store"),
                         port=BULK_PORT, name="bulk-later",
                         options=["--rcpt-reply", "451 4.2.1 later:1",
                                  "--mail-delay", "3000"])
    rcpts = [f"b{i}@bulk.test" for i in range(150)]
    with smtplib.SMTP("127.0.0.1", BULK_RELAY_PORT, timeout=30) as client:
        client.sendmail("sender@client.test", rcpts,
                        message("bulk.test", 0))

    def deferred(attempts):
        return [r for r in queue_rcpts(harness, config)
                if r["state"] == "deferred" and r["attempts"] == attempts]
    for attempts, wait in ((1, 20), (2, 40)):
        all_deferred = h.wait_for(lambda: len(deferred(attempts)) == 150,
                                  wait)
        tap.check(all_deferred, f"bulk: the sink defers all 150 "
                  f"recipients at attempt {attempts}",
                  len(deferred(attempts)))
        times = sorted({r["next_attempt"] for r in deferred(attempts)})
        tap.check(len(times) == 1, f"bulk: one next attempt after "
                  f"attempt {attempts} for the recipients of both "
                  f"transactions", times)
    harness.stop(later)
    sink = BundledSink(harness, "bulk", BULK_PORT)
    stored = lambda: h.read_stored(sink.store)
    arrived = h.wait_for(lambda: sum(len(r) for _, r, _ in stored()) == 150,
                         40)
    tap.check(arrived, "bulk: every recipient arrives at its retry",
              sum(len(r) for _, r, _ in stored()))
    sizes = sorted(len(r) for _, r, _ in stored())
    tap.check(sizes == [50, 100], "bulk: the retry takes two transactions",
              sizes)
    log = harness.log_text("bulk-relay")
    delays = {int(d) for d in re.findall(
        r"event=delivered to=<b\d+@bulk\.test> .* attempt=3 delay=(\d+)s",
        log)}
    tap.check(delays and max(delays) - min(delays) <= 1, "bulk: both "
              "transactions of the retry are delivered within a second",
              sorted(delays))
    waits = re.findall(r"event=retry-scheduled domain=bulk\.test "
                       r"dest=\S+ rcpts=(\d+) next_attempt=(\d+) "
                       r"in=(\d+)s rcpts_later=(\d+)", log)
    tap.check([(n, a, later) for n, a, _, later in waits] ==
              [("150", "2", "0"), ("150", "3", "0")],
              "bulk: one retry wait for all 150 recipients per attempt, "
              "none for a remainder", waits)
    tap.check(waits and 10 <= int(waits[0][2]) <= 12, "bulk: the logged "
              "wait is retry_interval plus at most 20%", waits)
    tap.check(harness.stop(relay) == 0, "bulk: relay stops cleanly")


def test(tap, harness):
    routes = "\n".join(f'    "{domain}" = "127.0.0.1:{port}";'
                       for domain, port in ROUTES.items())
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue"), routes=routes, reuse=REUSE_PORT,
        conc=CONC_PORT, perconn=PERCONN_PORT, down=DOWN_PORT,
        dead=DEAD_PORT, rate=RATE_PORT, split=SPLIT_PORT,
        slow_greeting=SLOW_GREETING_PORT, slow_final=SLOW_FINAL_PORT,
        flush_down=FLUSH_DOWN_PORT, partial=PARTIAL_PORT, busy=BUSY_PORT))
    relay = h.start_relay(harness, config)
    test_reuse_and_pipelining(tap, harness)
    test_concurrency_limit(tap, harness)
    test_messages_per_connection(tap, harness)
    test_retry_then_success(tap, harness)
    test_circuit_breaker(tap, harness)
    test_breaker_flush(tap, harness, config)
    test_dead_reused_connection(tap, harness)
    test_rate_limit(tap, harness)
    test_recipients_per_transaction(tap, harness)
    test_untried_rcpts_not_held(tap, harness)
    test_connection_limit_of_next_hop(tap, harness)
    test_state_timeouts(tap, harness)
    test_stuck_destination(tap, harness)
    line = re.search(r"id=\S+ event=delivered to=<r0@reuse\.test> "
                     r"dest=127\.0\.0\.1:2611 relay=127\.0\.0\.1\[127\.0\.0"
                     r"\.1\]:2611 tls=none reply=\"250 [^\"]*\" attempt=1 "
                     r"delay=\d+s",
                     harness.log_text("ringrelay"))
    tap.check(line is not None, "log: one line per recipient result with "
              "queue ID, destination, relay, reply, attempt and delay")
    tap.check(harness.stop(relay) == 0, "relay stops cleanly")
    test_one_retry_time_per_message(tap, harness)


if __name__ == "__main__":
    h.main_wrapper(test)

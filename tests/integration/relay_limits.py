#!/usr/bin/env python3
"""Every inbound limit, set small in the configuration, gets its reply
from the relay, and a message that a limit rejects is not queued.

Clients from 127.0.0.1 are in relay_networks and greeted at once. Other
127.0.0.x addresses are strangers, which wait greeting_delay for the
greeting.

Usage (inside netns_run.sh): relay_limits.py BUILD_DIR
"""
import socket
import time

import harness as h

CONFIG = """
listen = ["127.0.0.1:2525", "[::1]:2525"];
queue_dir = "{queue}";
hostname = "relay.test";
routes {{ "example.test" = "127.0.0.1:2526"; }}
relay_networks = ["127.0.0.1/32"];
max_message_size = 4kb;
max_recipients = 100;
max_line_length = 600;
max_text_line_length = 1000;
max_connections = 8;
max_connections_per_ip = 3;
max_errors = 4;
timeout_command = 2s;
timeout_data = 1s;
greeting_delay = 1s;
reject_early_talkers = yes;
"""

ENVELOPE = (b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
            b"RCPT TO:<limits@example.test>\r\n")


def check_reply(tap, reply, prefix, name):
    return tap.check(reply.startswith(prefix), name,
                     f"got {reply!r}, want {prefix!r}")


def greeted(source="127.0.0.1"):
    """Connect from source, read the greeting and return the client."""
    return greeted_all([source])[0]


def greeted_all(sources):
    """Connect from every source first, then read each greeting, so that
    the greeting delays run at the same time."""
    clients = [h.RawClient(2525, source=source) for source in sources]
    for client in clients:
        client.greeting = client.reply()
    return clients


def open_envelope(tap, client, name):
    """Send EHLO, MAIL and RCPT and return whether each got 250."""
    replies = [client.command(line + b"\r\n")
               for line in ENVELOPE.split(b"\r\n")[:-1]]
    return tap.check(all(r.startswith("250 ") for r in replies),
                     f"{name}: envelope accepted", replies)


def disconnects(harness, source):
    return harness.log_text("ringrelay").count(
        f"event=disconnect client={source} ")


def close_all(harness, clients, source):
    """Close clients and wait until the relay logged their disconnects."""
    before = disconnects(harness, source)
    for client in clients:
        client.close()
    return h.wait_for(
        lambda: disconnects(harness, source) >= before + len(clients),
        timeout=10)


def test_per_ip_limit(tap, harness):
    """Three sessions per address fit and the fourth gets 421. After they
    close, three fit again in every round, so the count stays exact."""
    source = "127.0.0.3"
    for round_number in range(3):
        clients = greeted_all([source] * 3)
        tap.check(all(c.greeting.startswith("220 ") for c in clients),
                  f"round {round_number}: three sessions from one address",
                  [c.greeting for c in clients])
        extra = h.RawClient(2525, source=source)
        started = time.monotonic()
        check_reply(tap, extra.reply(), "421 4.7.0 relay.test Error: too "
                    "many connections from your address",
                    f"round {round_number}: fourth session gets 421")
        tap.check(time.monotonic() - started < 0.9,
                  f"round {round_number}: 421 is not delayed")
        tap.check(extra.closed(), f"round {round_number}: 421 closes")
        extra.close()
        tap.check(close_all(harness, clients, source),
                  f"round {round_number}: relay saw the three close")
    log = harness.log_text("ringrelay")
    tap.check(f"event=reject client={source} reason=\"too many "
              "connections\" limit=max_connections_per_ip max=3" in log,
              "per-address refusal is logged with the client")


def ipv6_client():
    """A RawClient connected to [::1]:2525."""
    client = h.RawClient.__new__(h.RawClient)
    client.sock = socket.create_connection(("::1", 2525), timeout=10)
    client.buffer = b""
    return client


def test_per_ip_limit_ipv6(tap, harness):
    """::1 is one client with its own limit of three sessions."""
    for round_number in range(2):
        clients = [ipv6_client() for _ in range(3)]
        greetings = [c.reply() for c in clients]
        tap.check(all(g.startswith("220 ") for g in greetings),
                  f"IPv6 round {round_number}: three sessions from ::1",
                  greetings)
        extra = ipv6_client()
        check_reply(tap, extra.reply(), "421 4.7.0",
                    f"IPv6 round {round_number}: fourth session gets 421")
        extra.close()
        tap.check(close_all(harness, clients, "::1"),
                  f"IPv6 round {round_number}: relay saw the three close")


def test_total_limit(tap, harness):
    """Eight sessions in total from three addresses fit and a ninth gets
    421. After they close, eight fit again."""
    sources = ["127.0.0.1"] * 3 + ["127.0.0.4"] * 3 + ["127.0.0.6"] * 2
    for round_number in range(2):
        clients = greeted_all(sources)
        tap.check(all(c.greeting.startswith("220 ") for c in clients),
                  f"round {round_number}: eight sessions",
                  [c.greeting for c in clients])
        extra = h.RawClient(2525, source="127.0.0.9")
        check_reply(tap, extra.reply(), "421 4.7.0 relay.test Error: too "
                    "many connections, closing connection",
                    f"round {round_number}: ninth session gets 421")
        extra.close()
        for source in sorted(set(sources)):
            mine = [c for c, s in zip(clients, sources) if s == source]
            tap.check(close_all(harness, mine, source),
                      f"round {round_number}: sessions from {source} "
                      "closed")
    tap.check("event=reject client=127.0.0.9 reason=\"too many "
              "connections\" limit=max_connections max=8"
              in harness.log_text("ringrelay"),
              "total refusal is logged with the client")


def test_greeting_delay(tap):
    started = time.monotonic()
    client = greeted("127.0.0.5")
    waited = time.monotonic() - started
    check_reply(tap, client.greeting, "220 ", "stranger is greeted")
    tap.check(waited >= 0.9, "stranger waits for the greeting", waited)
    client.close()

    started = time.monotonic()
    client = greeted()
    waited = time.monotonic() - started
    check_reply(tap, client.greeting, "220 ", "relay client is greeted")
    tap.check(waited < 0.5, "relay client is greeted at once", waited)
    client.close()


def test_early_talker(tap, harness):
    """A stranger that sends EHLO right after connecting gets 554 and is
    closed. A relay client that does the same is served."""
    client = h.RawClient(2525, source="127.0.0.7")
    client.sock.sendall(b"EHLO early.test\r\n")
    check_reply(tap, client.reply(), "554 5.5.0 relay.test Error: talked "
                "before greeting", "early talker gets 554 5.5.0")
    tap.check(client.closed(), "early talker is closed")
    client.close()
    tap.check(h.wait_for(lambda: "event=reject client=127.0.0.7 "
                         "reason=\"talked before greeting\""
                         in harness.log_text("ringrelay"), timeout=5),
              "early talker is logged with the client")

    client = h.RawClient(2525)
    client.sock.sendall(b"EHLO trusted.test\r\n")
    check_reply(tap, client.reply(), "220 ", "relay client gets 220 first")
    check_reply(tap, client.reply(), "250 ", "relay client's early EHLO")
    client.close()


PATIENT_CONFIG = """
listen = "127.0.0.1:2527";
queue_dir = "{queue}";
hostname = "patient.test";
greeting_delay = 1s;
reject_early_talkers = off;
"""


def test_early_talker_allowed(tap, harness):
    """With reject_early_talkers off, a stranger's early EHLO gets its
    reply after the delayed greeting."""
    config = h.write_config(harness, PATIENT_CONFIG.format(
        queue=harness.path("queue2")), name="patient.conf")
    relay = h.start_relay(harness, config, port=2527, name="patient")
    client = h.RawClient(2527, source="127.0.0.8")
    started = time.monotonic()
    client.sock.sendall(b"EHLO early.test\r\n")
    check_reply(tap, client.reply(), "220 patient.test",
                "patient relay greets the early talker")
    tap.check(time.monotonic() - started >= 0.9,
              "greeting still waits for the delay")
    check_reply(tap, client.reply(), "250 ",
                "early EHLO is answered after the greeting")
    check_reply(tap, client.command(b"QUIT\r\n"), "221 ", "QUIT answered")
    client.close()
    tap.check(harness.stop(relay) == 0, "patient relay stops cleanly")


def test_open_file_warning(tap, harness):
    """A relay whose open file limit cannot hold max_connections sessions
    warns at start."""
    config = h.write_config(harness, 'listen = "127.0.0.1:2528";\n'
                            f'queue_dir = "{harness.path("queue3")}";\n',
                            name="few-files.conf")
    relay = harness.start("few-files", ["prlimit", "--nofile=300:300",
                                        harness.binary("ringrelay"), "-c",
                                        config])
    tap.check(h.wait_port("127.0.0.1", 2528), "relay with 300 files starts")
    tap.check("event=open-file-limit max_connections=1000 open_files=300"
              in harness.log_text("few-files"),
              "open file limit below max_connections is logged",
              harness.log_text("few-files"))
    tap.check(harness.stop(relay) == 0, "relay with 300 files stops")


def test_command_line_length(tap):
    client = greeted()
    noop = b"NOOP " + b"a" * (600 - 7) + b"\r\n"
    check_reply(tap, client.command(noop), "250 ",
                "600-byte command line is accepted")
    check_reply(tap, client.command(b"NOOP " + b"a" * (601 - 7) + b"\r\n"),
                "500 5.5.6", "601-byte command line gets 500 5.5.6")

    # The tail of an over-long line is not run as a command.
    check_reply(tap, client.command(b"X" * 700 + b"QUIT\r\n"), "500 5.5.6",
                "long line ending in QUIT gets 500 5.5.6")
    check_reply(tap, client.command(b"NOOP\r\n"), "250 ",
                "session continues after the long line")
    client.close()


def test_recipient_limit(tap):
    client = greeted()
    check_reply(tap, client.command(b"EHLO client.test\r\n"), "250 ",
                "EHLO before recipients")
    check_reply(tap, client.command(b"MAIL FROM:<a@client.test>\r\n"),
                "250 ", "MAIL before recipients")
    batch = b"".join(b"RCPT TO:<r%d@example.test>\r\n" % i
                     for i in range(101))
    client.sock.sendall(batch)
    replies = [client.reply() for _ in range(101)]
    tap.check(all(r.startswith("250 ") for r in replies[:100]),
              "100 recipients are accepted",
              [r for r in replies[:100] if not r.startswith("250 ")])
    check_reply(tap, replies[100], "452 4.5.3",
                "recipient 101 gets 452 4.5.3")
    check_reply(tap, client.command(b"RSET\r\n"), "250 ", "RSET after 452")
    client.close()


def send_data(client, body):
    client.sock.sendall(ENVELOPE + b"DATA\r\n")
    replies = [client.reply() for _ in range(4)]
    client.sock.sendall(body + b".\r\n")
    return replies, client.reply()


def test_text_line_length(tap, store):
    client = greeted()
    line = b"x" * 998 + b"\r\n"
    replies, end = send_data(client, b"Subject: long-line-ok\r\n\r\n" + line)
    tap.check(replies[-1].startswith("354 "), "DATA with a 1000-byte line",
              replies)
    check_reply(tap, end, "250 2.0.0", "1000-byte text line is accepted")

    long_line = b"x" * 999 + b"\r\n"
    replies, end = send_data(client, b"Subject: long-line-bad\r\n\r\n"
                             + long_line)
    check_reply(tap, end, "554 5.6.0", "1001-byte text line gets 554 5.6.0")
    check_reply(tap, client.command(b"NOOP\r\n"), "250 ",
                "session continues after the long DATA line")

    open_envelope(tap, client, "BDAT")
    chunk = b"Subject: long-line-bdat\r\n\r\n" + long_line
    check_reply(tap, client.command(b"BDAT %d LAST\r\n" % len(chunk)
                                    + chunk),
                "554 5.6.0", "1001-byte BDAT line gets 554 5.6.0")
    check_reply(tap, client.command(b"NOOP\r\n"), "250 ",
                "session continues after the long BDAT line")

    replies, end = send_data(client, b"Subject: too-big\r\n\r\n"
                             + (b"z" * 78 + b"\r\n") * 60)
    check_reply(tap, end, "552 5.3.4", "message over 4kb gets 552 5.3.4")
    client.command(b"QUIT\r\n")
    client.close()

    h.wait_for(lambda: any(b"long-line-ok" in content
                           for _, _, content in h.read_stored(store)),
               timeout=30)
    subjects = [content for _, _, content in h.read_stored(store)]
    tap.check(any(b"long-line-ok" in c for c in subjects),
              "the message with a 1000-byte line is delivered")
    for marker in (b"long-line-bad", b"long-line-bdat", b"too-big"):
        tap.check(not any(marker in c for c in subjects),
                  f"rejected message {marker.decode()} is not delivered")


def test_error_limit(tap):
    client = greeted()
    replies = [client.command(b"FROB\r\n") for _ in range(4)]
    tap.check(all(r.startswith("500 5.5.2") for r in replies),
              "unknown commands get 500 5.5.2", replies)
    check_reply(tap, client.reply(), "421 4.7.0 relay.test Error: too many "
                "errors", "fourth error gets 421 4.7.0")
    tap.check(client.closed(), "error limit closes the session")
    client.close()

    # A flood of unknown commands in one write is cut off the same way.
    client = greeted()
    client.sock.sendall(b"FROB\r\n" * 1000)
    data = b""
    try:
        while True:
            chunk = client.sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    lines = data.decode(errors="replace").split("\r\n")
    tap.check(lines.count("500 5.5.2 Error: command not recognized") == 4,
              "flood gets four 500 replies", lines[:8])
    tap.check(any(l.startswith("421 4.7.0") for l in lines),
              "flood gets 421 4.7.0", lines[:8])
    client.close()


def test_relay_denied_limit(tap, harness):
    """Relay-denied RCPTs count toward max_errors (4), so a stranger that
    pipelines 1000 of them gets four 554 5.7.1 replies, then 421."""
    source = "127.0.0.6"
    client = greeted(source)
    client.sock.sendall(b"EHLO stranger.test\r\nMAIL FROM:<s@stranger.test>"
                        b"\r\n" + b"RCPT TO:<x@elsewhere.test>\r\n" * 1000)
    data = b""
    try:
        while True:
            chunk = client.sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    client.close()
    lines = data.decode(errors="replace").split("\r\n")
    denied = [l for l in lines if l.startswith("554 5.7.1")]
    tap.check(len(denied) == 4, "relay denials stop at max_errors",
              f"{len(denied)} replies 554 5.7.1")
    tap.check(any(l.startswith("421 4.7.0 relay.test Error: too many "
                               "errors") for l in lines),
              "relay denials end with 421 4.7.0", lines[-3:])
    h.wait_for(lambda: disconnects(harness, source) > 0, timeout=10)
    logged = harness.log_text("ringrelay").count(
        f"event=reject client={source} to=<x@elsewhere.test> "
        "reason=\"relay access denied\"")
    tap.check(logged == 4, "four relay denials are logged", logged)


def test_timeouts(tap, harness):
    client = greeted()
    started = time.monotonic()
    check_reply(tap, client.reply(), "421 4.4.2 relay.test",
                "idle session gets 421 4.4.2")
    waited = time.monotonic() - started
    tap.check(1.5 <= waited < 4, "command timeout is about 2 s", waited)
    client.close()

    client = greeted()
    client.sock.sendall(ENVELOPE + b"DATA\r\n")
    replies = [client.reply() for _ in range(4)]
    tap.check(replies[-1].startswith("354 "), "DATA before the data timeout",
              replies)
    client.sock.sendall(b"Subject: data-timeout\r\n\r\npart")
    started = time.monotonic()
    check_reply(tap, client.reply(), "421 4.4.2",
                "stalled DATA gets 421 4.4.2")
    waited = time.monotonic() - started
    tap.check(0.5 <= waited < 1.8, "data timeout is about 1 s", waited)
    client.close()
    tap.check("waiting=data" in harness.log_text("ringrelay"),
              "data timeout is logged as waiting=data")
    tap.check("waiting=command" in harness.log_text("ringrelay"),
              "command timeout is logged as waiting=command")


def test(tap, harness):
    store = harness.path("store")
    h.start_sink(harness, store, port=2526)
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")))
    relay = h.start_relay(harness, config)
    test_per_ip_limit(tap, harness)
    test_per_ip_limit_ipv6(tap, harness)
    test_total_limit(tap, harness)
    test_greeting_delay(tap)
    test_early_talker(tap, harness)
    test_early_talker_allowed(tap, harness)
    test_open_file_warning(tap, harness)
    test_command_line_length(tap)
    test_recipient_limit(tap)
    test_text_line_length(tap, store)
    test_error_limit(tap)
    test_relay_denied_limit(tap, harness)
    test_timeouts(tap, harness)
    queued = harness.log_text("ringrelay").count("event=accepted")
    tap.check(queued == 1, "only the one valid message was queued", queued)
    tap.check(relay.poll() is None, "relay is still running")


if __name__ == "__main__":
    h.main_wrapper(test)

#!/usr/bin/env python3
"""Hostile client input against the real relay and sink.

Every case is sent on a raw socket. A rejected message must get its 5xx,
must not be queued (no event=accepted line, nothing at the sink), and the
session must go on after EHLO with no transaction open, so a new MAIL in
the same session works. The relay must stay up and, under ASan, exit
without a leak report.

Usage (inside netns_run.sh): relay_hostile.py BUILD_DIR
"""
import os
import signal
import socket
import struct
import threading
import time

import harness as h

CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
routes {{ "example.test" = "127.0.0.1:2526"; }}
relay_networks = ["127.0.0.1/32"];
max_junk_commands = 1000000;
"""

# The relay's command line limit, CRLF included (README).
MAX_LINE = 1024

# Bounds the time spent in sleeps between one-byte segments.
TINY_SEGMENTS_SLEEP_MAX = 3.0

# One mebibyte of pipelined commands in one write. The floods send NOOP
# and RSET, so the config raises max_junk_commands above their count.
FLOOD_BYTES = 1024 * 1024

# Commands sent by a client that reads no reply. NOTE: sized for Linux's
# default tcp_wmem maximum of 4 MiB, the most replies the relay's socket
# can buffer; a larger maximum may let the relay answer them all.
UNREAD_FLOOD_BYTES = 8 * 1024 * 1024

# The tail of the end of data that each smuggling variant puts in place
# of CR LF . CR LF, with the name used in the test points.
SMUGGLING_VARIANTS = [
    ("LF.LF", b"\n.\n"),
    ("CR.CR", b"\r.\r"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CRLF.LF", b"\r\n.\n"),
    ("CR.CRLF", b"\r.\r\n"),
    ("bare LF in a line", b"\nmore"),
    ("bare CR in a line", b"\rmore"),
]


class Relay:
    """The relay under test with the counters the checks need."""

    def __init__(self, harness, proc, store):
        self.harness = harness
        self.proc = proc
        self.store = store
        self.good_rcpts = []   # recipients that must arrive at the sink
        self.bad_rcpts = []    # recipients that must never arrive
        self.accepted_expected = 0

    def log(self):
        return self.harness.log_text("ringrelay")

    def accepted(self):
        return self.log().count(" event=accepted ")

    def disconnects(self, reason):
        return self.log().count(f'event=disconnect client=127.0.0.1 '
                                f'reason="{reason}"')


def connect(ehlo=True):
    client = h.RawClient(2525)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    greeting = client.reply()
    if not greeting.startswith("220 "):
        raise RuntimeError(f"greeting was {greeting!r}")
    if ehlo:
        reply = client.command(b"EHLO client.test\r\n")
        if not reply.startswith("250 "):
            raise RuntimeError(f"EHLO got {reply!r}")
    return client


def check_reply(tap, reply, prefix, name):
    return tap.check(reply.startswith(prefix), name,
                     f"got {reply!r}, want {prefix!r}")


def send_good_message(tap, relay, client, rcpt, name):
    """Run a whole transaction that must be queued, in an open session."""
    ok = check_reply(tap, client.command(b"MAIL FROM:<a@client.test>\r\n"),
                     "250 2.1.0", f"{name}: MAIL works after it")
    client.command(b"RCPT TO:<" + rcpt.encode() + b">\r\n")
    client.command(b"DATA\r\n")
    reply = client.command(b"Subject: " + name.encode() + b"\r\n\r\n"
                           b"good message\r\n.\r\n")
    ok = check_reply(tap, reply, "250 2.0.0 Ok: queued",
                     f"{name}: next message in the session is queued") and ok
    relay.good_rcpts.append(rcpt)
    relay.accepted_expected += 1
    return ok


def check_not_accepted(tap, relay, name):
    tap.check(relay.accepted() == relay.accepted_expected,
              f"{name}: no event=accepted for it",
              f"{relay.accepted()} accepted lines, want "
              f"{relay.accepted_expected}")


def rcpts_at_sink(store):
    return {r for _, rcpts, _ in h.read_stored(store) for r in rcpts}


def test_smuggling(tap, relay):
    for index, (name, end) in enumerate(SMUGGLING_VARIANTS):
        rcpt = f"smuggle{index}@example.test"
        inner = f"smuggled{index}@example.test"
        case = f"smuggling {name}"
        client = connect()
        client.command(b"MAIL FROM:<a@client.test>\r\n")
        client.command(b"RCPT TO:<" + rcpt.encode() + b">\r\n")
        check_reply(tap, client.command(b"DATA\r\n"), "354 ",
                    f"{case}: DATA")

        # Everything up to the real CR LF . CR LF is one body, so the
        # inner transaction must be neither run nor queued.
        body = (b"Subject: " + name.encode() + b"\r\n\r\nfirst" + end +
                b"MAIL FROM:<evil@client.test>\r\n"
                b"RCPT TO:<" + inner.encode() + b">\r\n"
                b"DATA\r\nsmuggled\r\n.\r\n")
        check_reply(tap, client.command(body), "550 5.6.0",
                    f"{case}: message gets 550 5.6.0")
        check_reply(tap, client.command(b"RCPT TO:<x@example.test>\r\n"),
                    "503 5.5.1 Error: need MAIL",
                    f"{case}: no transaction is open after the 550")
        check_not_accepted(tap, relay, case)
        send_good_message(tap, relay, client, f"after{index}@example.test",
                          case)
        client.command(b"QUIT\r\n")
        client.close()
        relay.bad_rcpts += [rcpt, inner]


def test_classic_smuggling(tap, relay):
    """The classic smuggling payload: some servers take LF . CR LF as the
    end of data, and a second transaction follows it in the same body."""
    case = "smuggling payload"
    client = connect()
    client.command(b"MAIL FROM:<a@client.test>\r\n")
    client.command(b"RCPT TO:<classic@example.test>\r\n")
    client.command(b"DATA\r\n")
    client.sock.sendall(b"Subject: classic\r\n\r\nlegit text\r\n"
                        b"\n.\r\n"
                        b"MAIL FROM:<admin@client.test>\r\n"
                        b"RCPT TO:<classic-inner@example.test>\r\n"
                        b"DATA\r\n"
                        b"From: admin@client.test\r\n\r\nforged\r\n"
                        b".\r\n"
                        b"NOOP\r\n")
    check_reply(tap, client.reply(), "550 5.6.0",
                f"{case}: one 550 5.6.0 for the whole input")
    check_reply(tap, client.reply(), "250 2.0.0 Ok",
                f"{case}: the next reply is the NOOP's, not a MAIL's")
    check_not_accepted(tap, relay, case)
    send_good_message(tap, relay, client, "after-classic@example.test",
                      case)
    client.close()
    relay.bad_rcpts += ["classic@example.test", "classic-inner@example.test"]


def test_nul_bytes(tap, relay):
    client = connect()
    check_reply(tap, client.command(b"MAIL FROM:<a\x00b@client.test>\r\n"),
                "500 5.5.2 Error: NUL byte",
                "NUL in MAIL gets 500 5.5.2")
    check_reply(tap, client.command(b"MAIL FROM:<a@client.test>\r\n"),
                "250 2.1.0", "NUL in MAIL: MAIL works after it")
    check_reply(tap, client.command(b"RCPT TO:<nul@example.test>\x00\r\n"),
                "500 5.5.2 Error: NUL byte", "NUL in RCPT gets 500 5.5.2")
    check_reply(tap, client.command(b"RCPT TO:<nul-rcpt@example.test>\r\n"),
                "250 2.1.5", "NUL in RCPT: the transaction stays open")
    client.command(b"DATA\r\n")
    reply = client.command(b"Subject: nul\r\n\r\nbefore\x00after\r\n.\r\n")
    check_reply(tap, reply, "550 5.6.0",
                "NUL in DATA gets 550 5.6.0")
    check_not_accepted(tap, relay, "NUL in DATA")
    send_good_message(tap, relay, client, "after-nul@example.test",
                      "NUL in DATA")
    client.close()
    relay.bad_rcpts.append("nul-rcpt@example.test")


def test_8bit_commands(tap, relay):
    client = connect()
    check_reply(tap, client.command(b"M\xc3\x84IL FROM:<a@client.test>\r\n"),
                "500 5.5.2", "8-bit verb gets 500 5.5.2")
    check_reply(tap, client.command(b"MAIL FROM:<j\xc3\xb6rg@client.test>"
                                    b"\r\n"),
                "553 5.6.7", "8-bit sender without SMTPUTF8 gets 553 5.6.7")
    check_reply(tap, client.command(b"MAIL FROM:<j\xf6rg@client.test> "
                                    b"SMTPUTF8\r\n"),
                "501 5.1.7", "Latin-1 sender with SMTPUTF8 gets 501 5.1.7")
    check_reply(tap, client.command(b"MAIL FROM:<a@client.test> "
                                    b"SIZE=1\xe9\r\n"),
                "555 5.5.4", "8-bit MAIL parameter gets 555 5.5.4")
    check_reply(tap, client.command(b"EHLO caf\xe9.test\r\n"), "501 5.5.4",
                "Latin-1 EHLO name gets 501 5.5.4")
    check_reply(tap, client.command(b"EHLO client.test\r\n"), "250 ",
                "8-bit commands: EHLO works after them")
    check_reply(tap, client.command(b"MAIL FROM:<a@client.test>\r\n"),
                "250 2.1.0", "8-bit commands: MAIL works after them")
    check_reply(tap, client.command(b"RCPT TO:<m\xc3\xbcller@example.test>"
                                    b"\r\n"),
                "553 5.6.7", "8-bit recipient without SMTPUTF8 gets 553")
    check_reply(tap, client.command(b"RCPT TO:<eight@example.test>\r\n"),
                "250 2.1.5", "8-bit recipient: the transaction stays open")
    client.command(b"QUIT\r\n")
    client.close()


def send_bytewise(sock, data):
    """Send data one byte per TCP segment, with sleeps bounded in total."""
    pause = min(0.002, TINY_SEGMENTS_SLEEP_MAX / max(len(data), 1))
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        time.sleep(pause)


def test_tiny_segments(tap, relay):
    body = (b"Subject: tiny segments\r\n\r\n"
            b"..a line that starts with a dot\r\n"
            b"second line\r\n")
    client = connect(ehlo=False)
    send_bytewise(client.sock, b"EHLO client.test\r\n"
                  b"MAIL FROM:<a@client.test>\r\n"
                  b"RCPT TO:<tiny@example.test>\r\nDATA\r\n")
    replies = [client.reply() for _ in range(4)]
    tap.check([r[:3] for r in replies] == ["250", "250", "250", "354"],
              "one-byte segments: envelope replies", replies)
    send_bytewise(client.sock, body + b".\r\n")
    check_reply(tap, client.reply(), "250 2.0.0 Ok: queued",
                "one-byte segments: message is queued")
    client.close()
    relay.accepted_expected += 1
    content = None
    if h.wait_for(lambda: "tiny@example.test" in rcpts_at_sink(relay.store),
                  timeout=30):
        content = [c for _, rcpts, c in h.read_stored(relay.store)
                   if "tiny@example.test" in rcpts][0]
    tap.check(content is not None and h.strip_received(content) ==
              body.replace(b"\r\n..", b"\r\n."),
              "one-byte segments: body arrives byte for byte",
              repr(content))


def read_replies(client, count, replies):
    """Read up to count replies into replies; stop when the server closes
    or a read times out."""
    try:
        for _ in range(count):
            reply = client.reply()
            replies.append(reply)
            if reply.endswith("<closed>"):
                return
    except OSError as error:
        replies.append(f"<read failed: {error}>")


def check_flood(tap, relay, name, command, want_reply):
    """Send FLOOD_BYTES of one command in one write while a thread reads
    the replies. Every reply must be the command's, in order; the only
    other ending allowed is the documented 421 and a close."""
    count = FLOOD_BYTES // len(command)
    client = connect()
    replies = []
    reader = threading.Thread(target=read_replies,
                              args=(client, count + 1, replies))
    reader.start()
    try:
        client.sock.sendall(command * count + b"QUIT\r\n")
    except OSError:
        pass  # the relay closed after its 421
    reader.join(timeout=120)
    tap.check(not reader.is_alive(), f"{name}: reading replies ended")
    client.close()

    good = 0
    while good < len(replies) and replies[good].startswith(want_reply):
        good += 1
    rest = replies[good:]
    answered = good == count and len(rest) == 1 and \
        rest[0].startswith("221")
    closed_with_421 = len(rest) == 1 and rest[0].startswith(
        "421 4.7.0 relay.test Error: too much input sent without reading "
        "replies")
    tap.check(answered or closed_with_421,
              f"{name}: all {count} answered in order, or 421 4.7.0",
              f"{good} good replies, then {rest[:3]!r}")
    if closed_with_421:
        tap.check(h.wait_for(lambda: relay.disconnects(
            "too much input without reading replies") > 0, timeout=10),
            f"{name}: disconnect line gives the 421 reason")
    client = connect()
    check_reply(tap, client.command(b"NOOP\r\n"), "250 ",
                f"{name}: relay answers a new session")
    client.close()


def check_unread_flood(tap, relay):
    """A client with a small receive buffer that never reads: its replies
    back up, so the relay keeps its commands unparsed until 1 MiB waits,
    then sends 421 4.7.0 and closes. The 421 may be lost to the reset that
    closing with unread input causes, so the log line is checked."""
    name = "unread flood"
    reason = "too much input without reading replies"
    before = relay.disconnects(reason)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", 2525))

    # More than the relay's socket buffers, its 64 KiB of queued replies
    # and its 1 MiB of held input can take.
    try:
        sock.sendall(b"NOOP\r\n" * (UNREAD_FLOOD_BYTES // 6))
    except OSError:
        pass  # the relay closed after its 421
    closed = h.wait_for(lambda: relay.disconnects(reason) > before,
                        timeout=10)
    sock.close()
    tap.check(closed, f"{name}: closed with the 421 reason in the log")
    client = connect()
    check_reply(tap, client.command(b"NOOP\r\n"), "250 ",
                f"{name}: relay answers a new session")
    client.close()


def test_floods(tap, relay):
    check_flood(tap, relay, "1 MiB of NOOP", b"NOOP\r\n", "250 2.0.0 Ok")
    check_flood(tap, relay, "1 MiB of RSET", b"RSET\r\n", "250 2.0.0 Ok")
    check_unread_flood(tap, relay)


def open_data(rcpt):
    client = connect()
    client.command(b"MAIL FROM:<a@client.test>\r\n")
    client.command(b"RCPT TO:<" + rcpt.encode() + b">\r\n")
    return client


def abort_socket(sock):
    """Close with a TCP reset instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_disconnects(tap, relay):
    """Clients that go away in the middle of DATA or of a BDAT chunk,
    with a FIN or a reset: nothing is queued and no session is left."""
    cases = [
        ("mid-DATA close", b"DATA\r\n", b"Subject: cut\r\n\r\nhalf a bo",
         "close"),
        ("mid-DATA reset", b"DATA\r\n", b"Subject: cut\r\n\r\nhalf\r\n.",
         "reset"),
        ("mid-BDAT close", b"BDAT 1000 LAST\r\n", b"Subject: cut\r\n\r\nx",
         "close"),
        ("mid-BDAT reset", b"BDAT 100\r\n", b"Subject: cut\r\n", "reset"),
    ]

    # Deliveries still running would change the relay's file count.
    h.wait_for(lambda: set(relay.good_rcpts) <= rcpts_at_sink(relay.store),
               timeout=30)
    time.sleep(0.5)
    fds_before = open_fds(relay.proc.pid)
    gone_before = relay.log().count(" event=disconnect ")

    for index, (name, command, partial, how) in enumerate(cases):
        rcpt = f"cut{index}@example.test"
        client = open_data(rcpt)
        if command.startswith(b"DATA"):
            check_reply(tap, client.command(command), "354 ",
                        f"{name}: DATA")
            client.sock.sendall(partial)
        else:
            client.sock.sendall(command + partial)
        time.sleep(0.2)
        if how == "reset":
            abort_socket(client.sock)
        else:
            client.close()
        relay.bad_rcpts.append(rcpt)

    settled = h.wait_for(lambda: relay.log().count(" event=disconnect ") -
                         gone_before >= len(cases), timeout=15)
    tap.check(settled, "disconnects: every session logs event=disconnect")
    check_not_accepted(tap, relay, "disconnects")
    h.wait_for(lambda: open_fds(relay.proc.pid) <= fds_before, timeout=5)
    fds_after = open_fds(relay.proc.pid)
    tap.check(fds_after <= fds_before,
              "disconnects: no file descriptor is left open",
              f"{fds_before} before, {fds_after} after")

    client = connect()
    send_good_message(tap, relay, client, "after-cut@example.test",
                      "disconnects")
    client.close()


def test_long_line(tap, relay):
    client = connect()
    check_reply(tap, client.command(b"MAIL FROM:<a@client.test>\r\n"),
                "250 2.1.0", "long line: MAIL")

    # The long line's tail is "QUIT": it must not run, and the NOOP
    # sent in the same write must.
    client.sock.sendall(b"X" * 2000 + b"QUIT\r\nNOOP\r\n")
    check_reply(tap, client.reply(), "500 5.5.6",
                "long line ending in QUIT gets 500 5.5.6")
    check_reply(tap, client.reply(), "250 2.0.0 Ok",
                "long line: the NOOP after it in one write runs")

    # The same across two writes, so the relay reads the line in parts.
    client.sock.sendall(b"NOOP " + b"a" * (MAX_LINE + 100))
    time.sleep(0.2)
    client.sock.sendall(b"RSET\r\nRCPT TO:<long@example.test>\r\n")
    check_reply(tap, client.reply(), "500 5.5.6",
                "long line in two writes gets 500 5.5.6")
    check_reply(tap, client.reply(), "250 2.1.5",
                "long line: the transaction stays open, the tail RSET "
                "did not run")

    # Three writes each shorter than the limit: the relay keeps the
    # first part of the line, then learns in the second that it is too
    # long, and finds its end in the third.
    part = b"VRFY " + b"b" * (MAX_LINE // 2)
    for piece in (part, b"b" * (MAX_LINE // 2), b"QUIT\r\nNOOP\r\n"):
        client.sock.sendall(piece)
        time.sleep(0.2)
    check_reply(tap, client.reply(), "500 5.5.6",
                "long line in three short writes gets 500 5.5.6")
    check_reply(tap, client.reply(), "250 2.0.0 Ok",
                "long line in three writes: the NOOP after it runs")
    client.command(b"DATA\r\n")
    check_reply(tap, client.command(b"Subject: long\r\n\r\nx\r\n.\r\n"),
                "250 2.0.0 Ok: queued", "long line: message is queued")
    relay.good_rcpts.append("long@example.test")
    relay.accepted_expected += 1
    check_reply(tap, client.command(b"QUIT\r\n"), "221 ",
                "long line: QUIT")
    client.close()


def test_nothing_leaked(tap, relay):
    """Every good message arrives, no rejected one, and the relay stops
    cleanly (under ASan: with no leak report)."""
    h.wait_for(lambda: set(relay.good_rcpts) <= rcpts_at_sink(relay.store),
               timeout=60)
    arrived = rcpts_at_sink(relay.store)
    missing = sorted(set(relay.good_rcpts) - arrived)
    tap.check(not missing, "every accepted message reaches the sink",
              missing)
    leaked = sorted(set(relay.bad_rcpts) & arrived)
    tap.check(not leaked, "no rejected message reaches the sink", leaked)
    tap.check(relay.accepted() == relay.accepted_expected,
              "event=accepted only for the accepted messages",
              f"{relay.accepted()} lines, want {relay.accepted_expected}")
    tap.check(relay.proc.poll() is None, "relay is still running")
    status = relay.harness.stop(relay.proc, signal.SIGTERM, timeout=30)
    tap.check(status == 0, "relay exits with status 0", status)
    log = relay.log()
    tap.check("Sanitizer" not in log and "runtime error:" not in log,
              "relay log has no sanitizer report",
              log[log.find("Sanitizer") - 200:][:2000])


def test_queue_after_restart(tap, relay, config):
    """A relay started again on the same queue finds no message in it:
    every accepted one was delivered, and no rejected or cut one was
    kept."""
    again = h.start_relay(relay.harness, config, name="ringrelay-again")
    log = relay.harness.log_text("ringrelay-again")
    opened = [line for line in log.splitlines()
              if "event=queue_opened" in line]
    tap.check(len(opened) == 1 and " messages=0 " in opened[0],
              "restarted relay finds no message in the queue", opened)
    time.sleep(1.0)
    leaked = sorted(set(relay.bad_rcpts) & rcpts_at_sink(relay.store))
    tap.check(not leaked, "restarted relay delivers no rejected message",
              leaked)
    relay.harness.stop(again, signal.SIGTERM, timeout=30)


def test(tap, harness):
    store = harness.path("store")
    h.start_sink(harness, store, port=2526)
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")))
    relay = Relay(harness, h.start_relay(harness, config), store)
    test_smuggling(tap, relay)
    test_classic_smuggling(tap, relay)
    test_nul_bytes(tap, relay)
    test_8bit_commands(tap, relay)
    test_tiny_segments(tap, relay)
    test_long_line(tap, relay)
    test_floods(tap, relay)
    test_disconnects(tap, relay)
    test_nothing_leaked(tap, relay)
    test_queue_after_restart(tap, relay, config)


if __name__ == "__main__":
    h.main_wrapper(test)

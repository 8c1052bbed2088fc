#!/usr/bin/env python3
"""Bad client input gets the right SMTP error, and the session and the
server keep working; strangers cannot relay.

Usage (inside netns_run.sh): relay_bad_input.py BUILD_DIR
"""
import signal
import smtplib
import socket

import harness as h

CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
routes {{ "example.test" = "127.0.0.1:2526"; }}
relay_networks = ["127.0.0.1/32"];
"""


def raw_client(source="127.0.0.1"):
    return h.RawClient(2525, source=source)


def check_reply(tap, reply, prefix, name):
    tap.check(reply.startswith(prefix), name, f"got {reply!r}, "
              f"want {prefix!r}")


def test_bad_commands(tap, store):
    client = raw_client()
    check_reply(tap, client.reply(), "220 ", "greeting")
    check_reply(tap, client.command(b"EHLO client.test\r\n"), "250 ", "EHLO")
    check_reply(tap, client.command(b"X" * 2000 + b"\r\n"), "500 5.5.6",
                "2000-byte line is rejected as too long")
    check_reply(tap, client.command(b"NOOP\r\n"), "250 ",
                "session works after the long line")
    check_reply(tap, client.command(b"NO\x00OP\r\n"), "500 5.5.2",
                "NUL byte in a command is rejected")
    check_reply(tap, client.command(b"MAIL FROM:<a@client.test>\r\n"),
                "250 ", "MAIL")
    check_reply(tap, client.command(b"DATA\r\n"), "503 5.5.1",
                "DATA before RCPT is a bad sequence")
    check_reply(tap, client.command(b"FROB\r\n"), "500 5.5.2",
                "unknown command")
    check_reply(tap, client.command(b"RCPT TO:<ok@example.test>\r\n"),
                "250 ", "RCPT after the errors")
    check_reply(tap, client.command(b"DATA\r\n"), "354 ", "DATA")
    check_reply(tap, client.command(b"Subject: after errors\r\n\r\nhi\r\n"
                                    b".\r\n"),
                "250 2.0.0", "message after the errors is queued")
    check_reply(tap, client.command(b"QUIT\r\n"), "221 ", "QUIT")
    client.close()
    arrived = h.wait_for(lambda: len(h.read_stored(store)) == 1, timeout=30)
    tap.check(arrived, "the message after the errors is delivered")


def test_relay_denied(tap):
    client = raw_client(source="127.0.0.2")
    check_reply(tap, client.reply(), "220 ", "greeting for a stranger")
    check_reply(tap, client.command(b"EHLO stranger.test\r\n"), "250 ",
                "EHLO from a stranger")
    check_reply(tap, client.command(b"MAIL FROM:<a@stranger.test>\r\n"),
                "250 ", "MAIL from a stranger")
    check_reply(tap, client.command(b"RCPT TO:<x@example.test>\r\n"),
                "554 5.7.1", "stranger cannot relay")
    check_reply(tap, client.command(b"QUIT\r\n"), "221 ", "QUIT stranger")
    client.close()


def read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode(errors="replace")
        data += chunk


def test_half_close(tap, store):
    """A client that sends everything and half-closes still gets every
    reply, the 250 for its message included."""
    client = raw_client()
    client.sock.sendall(b"EHLO c.test\r\nMAIL FROM:<a@client.test>\r\n"
                        b"RCPT TO:<half@example.test>\r\nDATA\r\n"
                        b"Subject: half-close\r\n\r\nx\r\n.\r\n"
                        b"QUIT\r\n")
    client.sock.shutdown(socket.SHUT_WR)
    replies = read_all(client.sock)
    client.close()
    codes = [line[:3] for line in replies.split("\r\n") if line[3:4] == " "]
    tap.check(codes == ["220", "250", "250", "250", "354", "250", "221"],
              "half-closed client gets every reply", replies)
    arrived = h.wait_for(
        lambda: any("half@example.test" in rcpts
                    for _, rcpts, _ in h.read_stored(store)), timeout=30)
    tap.check(arrived, "half-closed client's message is delivered")


def test_stop_during_data(tap, harness, relay):
    """SIGTERM lets a message being received finish: 250, then 421."""
    client = raw_client()
    client.reply()
    client.command(b"EHLO c.test\r\n")
    client.command(b"MAIL FROM:<a@client.test>\r\n")
    client.command(b"RCPT TO:<stop@example.test>\r\n")
    check_reply(tap, client.command(b"DATA\r\n"), "354 ", "DATA before stop")
    client.sock.sendall(b"Subject: stop\r\n\r\nfirst half\r\n")
    relay.send_signal(signal.SIGTERM)
    h.wait_for(lambda: "event=stopping" in harness.log_text("ringrelay"),
               timeout=5)
    check_reply(tap, client.command(b"second half\r\n.\r\n"), "250 2.0.0",
                "message in progress at stop is queued")
    check_reply(tap, client.reply(), "421 4.3.2",
                "session gets 421 after its message")
    client.close()
    tap.check(relay.wait(timeout=15) == 0, "relay stops cleanly after it")


def test_many_recipients(tap, store):
    """150 recipients (one given twice) go out in transactions of at most
    100, and each recipient gets one copy."""
    rcpts = [f"many{i}@example.test" for i in range(150)]
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.sendmail("a@client.test", rcpts + [rcpts[0]],
                        b"Subject: many\r\n\r\nmany recipients\r\n")

    def many_arrived():
        return [r for _, stored, _ in h.read_stored(store) for r in stored
                if r.startswith("many")]
    h.wait_for(lambda: len(many_arrived()) >= 150, timeout=30)
    arrived = many_arrived()
    tap.check(sorted(arrived) == sorted(rcpts),
              "150 recipients arrive once each", f"{len(arrived)} arrived")
    sizes = [len(stored) for _, stored, _ in h.read_stored(store)
             if stored[0].startswith("many")]
    tap.check(max(sizes) <= 100, "at most 100 recipients per transaction",
              sizes)


def test_log_fields_quoted(tap, harness):
    """A quoted local part with spaces and '=' must not add fields to the
    relay's key=value log lines."""
    sender = '"x id=FAKE event=delivered"@client.test'
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.sendmail(sender, ["quoted@example.test"],
                        b"Subject: quoted\r\n\r\nquoted sender\r\n")
    lines = [line for line in harness.log_text("ringrelay").splitlines()
             if "event=accepted" in line and "FAKE" in line]
    tap.check(len(lines) == 1, "accepted line for a quoted sender", lines)
    want = 'from="<\\"x id=FAKE event=delivered\\"@client.test>"'
    tap.check(bool(lines) and want in lines[0],
              "quoted sender is logged as one quoted value", lines)


def test_sighup_ignored(tap, harness, relay):
    relay.send_signal(signal.SIGHUP)
    h.wait_for(lambda: "event=reload-ignored" in
               harness.log_text("ringrelay"), timeout=10)
    tap.check("event=reload-ignored" in harness.log_text("ringrelay"),
              "SIGHUP is logged")
    client = raw_client()
    check_reply(tap, client.reply(), "220 ", "relay answers after SIGHUP")
    client.close()
    tap.check(relay.poll() is None, "relay survives SIGHUP")


def test_disconnect_reason(tap, harness):
    client = raw_client()
    check_reply(tap, client.reply(), "220 ", "greeting before QUIT")
    check_reply(tap, client.command(b"QUIT\r\n"), "221 ", "QUIT answered")
    client.close()
    h.wait_for(lambda: 'reason="quit"' in harness.log_text("ringrelay"),
               timeout=10)
    tap.check('event=disconnect' in harness.log_text("ringrelay") and
              'reason="quit"' in harness.log_text("ringrelay"),
              "disconnect line gives the reason")


def test(tap, harness):
    store = harness.path("store")
    h.start_sink(harness, store, port=2526)
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")))
    relay = h.start_relay(harness, config)
    test_bad_commands(tap, store)
    test_relay_denied(tap)
    test_half_close(tap, store)
    test_many_recipients(tap, store)
    test_log_fields_quoted(tap, harness)
    test_sighup_ignored(tap, harness, relay)
    test_disconnect_reason(tap, harness)
    tap.check(relay.poll() is None, "relay is still running")
    test_stop_during_data(tap, harness, relay)


if __name__ == "__main__":
    h.main_wrapper(test)

#!/usr/bin/env python3
"""timeout_command is a deadline for a whole command line, timeout_data
is restarted by every block of message data, and max_junk_commands ends
a session that sends only NOOP, RSET, VRFY and HELP.

Every wait here is bounded: the slowest case sends one byte every 0.5 s
for at most 8 bytes.

Usage (inside netns_run.sh): relay_timeouts.py BUILD_DIR
"""
import select
import socket
import time

import harness as h

CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
routes {{ "example.test" = "127.0.0.1:2526"; }}
relay_networks = ["127.0.0.1/32"];
timeout_command = 2s;
timeout_data = 1s;
max_junk_commands = 5;
"""

TIMEOUT_REPLY = "421 4.4.2 relay.test Error: timeout exceeded"


def select_readable(sock):
    """Return True when sock has bytes or a close to read now."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def read_until_closed(client, limit_seconds):
    """Return every line the relay sends until it closes, waiting at most
    limit_seconds."""
    client.sock.settimeout(limit_seconds)
    data = client.buffer
    try:
        while True:
            chunk = client.sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        data += b"<still open>"
    return data.decode(errors="replace")


def test_slow_command(tap):
    """A command sent one byte every 0.5 s gets 421 about 2 s after the
    session started waiting for it, not after its last byte."""
    client = h.RawClient(2525)
    client.reply()
    started = time.monotonic()
    closed = False
    for byte in b"NOOPNOOP":
        try:
            client.sock.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        time.sleep(0.5)
        if select_readable(client.sock):
            break
    text = read_until_closed(client, 3)
    elapsed = time.monotonic() - started
    client.close()
    tap.check(TIMEOUT_REPLY in text, "byte-wise command gets 421",
              f"{text!r} closed={closed}")
    tap.check(1.5 <= elapsed <= 3.5, "421 comes after timeout_command",
              f"after {elapsed:.1f} s")


def test_whole_lines_keep_session(tap):
    """Each complete command restarts the deadline, so an RSET every 1.2 s
    keeps the session past two deadlines of 2 s."""
    client = h.RawClient(2525)
    client.reply()
    replies = []
    for _ in range(4):
        time.sleep(1.2)
        replies.append(client.command(b"RSET\r\n"))
    tap.check(all(r.startswith("250 ") for r in replies),
              "commands 1.2 s apart are answered", replies)
    client.command(b"QUIT\r\n")
    client.close()


def test_data_block_wait(tap):
    """Inside DATA every block restarts timeout_data (1 s): a body byte
    every 0.5 s for 2.5 s is fine, then silence gets 421."""
    client = h.RawClient(2525)
    client.reply()
    for line in (b"EHLO client.test\r\n", b"MAIL FROM:<t@client.test>\r\n",
                 b"RCPT TO:<t@example.test>\r\n", b"DATA\r\n"):
        client.command(line)
    for _ in range(5):
        client.sock.sendall(b"x")
        time.sleep(0.5)
    tap.check(not select_readable(client.sock),
              "slow body blocks keep the session")
    started = time.monotonic()
    text = read_until_closed(client, 4)
    elapsed = time.monotonic() - started
    client.close()
    tap.check(TIMEOUT_REPLY in text, "silence in DATA gets 421", text)
    tap.check(elapsed <= 2.5, "421 comes after timeout_data",
              f"after {elapsed:.1f} s")


def test_junk_limit(tap, harness):
    client = h.RawClient(2525)
    client.reply()
    replies = [client.command(line) for line in (
        b"EHLO client.test\r\n", b"NOOP\r\n", b"RSET\r\n", b"VRFY a\r\n",
        b"HELP\r\n", b"NOOP\r\n")]
    # The EHLO is one of the five junk commands allowed.
    tap.check(all(r[:1] == "2" for r in replies[:5]),
              "five junk commands are answered", replies)
    tap.check(replies[5].startswith("421 4.7.0 relay.test Error: too many "
                                    "commands without mail"),
              "sixth junk command gets 421", replies[5])
    tap.check(client.closed(), "421 closes the session")
    client.close()
    tap.check(h.wait_for(lambda: 'reason="too many commands without mail"'
                         in harness.log_text("ringrelay"), timeout=5),
              "disconnect line gives the reason")


def main(tap, harness):
    queue = harness.path("queue")
    config = h.write_config(harness, CONFIG.format(queue=queue))
    relay = h.start_relay(harness, config)
    test_slow_command(tap)
    test_whole_lines_keep_session(tap)
    test_data_block_wait(tap)
    test_junk_limit(tap, harness)
    tap.check(harness.stop(relay) == 0, "relay stops cleanly")


if __name__ == "__main__":
    h.main_wrapper(main)

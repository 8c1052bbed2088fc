#!/usr/bin/env python3
"""Every message that the relay rejects at the end of its data, or that
the client abandons inside DATA or BDAT, leaves one info line in the log.
The line gives the client, the sender, the recipient count, and the reply
or the reason.

Usage (inside netns_run.sh): relay_message_log.py BUILD_DIR
"""
import harness as h

CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
routes {{ "example.test" = "127.0.0.1:2526"; }}
relay_networks = ["127.0.0.1/32"];
max_message_size = 4kb;
max_text_line_length = 1000;
max_hops = 5;
"""

ENVELOPE = (b"EHLO client.test\r\n", b"MAIL FROM:<log@client.test>\r\n",
            b"RCPT TO:<a@example.test>\r\n", b"RCPT TO:<b@example.test>\r\n")

REJECTED_CASES = (
    ("bare LF", b"a\nb\r\n.\r\n", "550 5.6.0"),
    ("NUL byte", b"a\0b\r\n.\r\n", "550 5.6.0"),
    ("long line", b"x" * 1200 + b"\r\n.\r\n", "554 5.6.0"),
    ("too big", (b"y" * 70 + b"\r\n") * 80 + b".\r\n", "552 5.3.4"),
    ("too many hops", b"Received: x\r\n" * 6 + b"\r\nbody\r\n.\r\n",
     "554 5.4.6"),
)


def open_envelope(tap, name):
    client = h.RawClient(2525)
    client.reply()
    replies = [client.command(line) for line in ENVELOPE]
    tap.check(all(r.startswith("250 ") for r in replies),
              f"{name}: envelope accepted", replies)
    return client


def log_lines(harness, event):
    return [line for line in harness.log_text("ringrelay").splitlines()
            if f" event={event} " in line]


def wait_lines(harness, event, count):
    return h.wait_for(lambda: len(log_lines(harness, event)) >= count,
                      timeout=10)


def test_rejected(tap, harness):
    for number, (name, data, code) in enumerate(REJECTED_CASES, 1):
        client = open_envelope(tap, name)
        client.command(b"DATA\r\n")
        reply = client.command(data)
        client.command(b"QUIT\r\n")
        client.close()
        tap.check(reply.startswith(code), f"{name}: gets {code}", reply)
        tap.check(wait_lines(harness, "message-rejected", number),
                  f"{name}: rejection is logged")
        lines = log_lines(harness, "message-rejected")
        line = lines[-1] if len(lines) >= number else ""
        tap.check("level=info" in line, f"{name}: at info level", line)
        tap.check(" client=127.0.0.1 " in line, f"{name}: line has client",
                  line)
        tap.check(" from=<log@client.test> " in line,
                  f"{name}: line has sender", line)
        tap.check(" rcpts=2 " in line, f"{name}: line has rcpts", line)
        tap.check(f' reply="{code} ' in line, f"{name}: line has reply",
                  line)
    tap.check(len(log_lines(harness, "message-rejected")) ==
              len(REJECTED_CASES), "one line per rejected message")


def test_bdat_rejected(tap, harness):
    before = len(log_lines(harness, "message-rejected"))
    client = open_envelope(tap, "BDAT bare LF")
    first = client.command(b"BDAT 4\r\na\nb\n")
    last = client.command(b"BDAT 3 LAST\r\nc\r\n")
    client.close()
    tap.check(first.startswith("550 5.6.0"), "BDAT bare LF: chunk gets 550",
              first)
    tap.check(last.startswith("550 5.6.0"), "BDAT bare LF: LAST gets 550",
              last)
    tap.check(wait_lines(harness, "message-rejected", before + 1),
              "BDAT bare LF: rejection is logged")
    h.wait_for(lambda: "event=disconnect" in
               harness.log_text("ringrelay").splitlines()[-1], timeout=5)
    tap.check(len(log_lines(harness, "message-rejected")) == before + 1,
              "BDAT bare LF: one line for the message, not per chunk")


def test_aborted(tap, harness):
    cases = (("disconnect in DATA", b"DATA\r\n", b"Subject: x\r\n\r\npart"),
             ("disconnect in BDAT", b"BDAT 100 LAST\r\n", b"partial"))
    for number, (name, command, data) in enumerate(cases, 1):
        client = open_envelope(tap, name)
        if command == b"DATA\r\n":
            client.command(command)
            client.sock.sendall(data)
        else:
            client.sock.sendall(command + data)
        client.close()
        tap.check(wait_lines(harness, "message-aborted", number),
                  f"{name}: abort is logged")
        lines = log_lines(harness, "message-aborted")
        line = lines[-1] if len(lines) >= number else ""
        tap.check("level=info" in line, f"{name}: at info level", line)
        tap.check(" from=<log@client.test> rcpts=2 " in line,
                  f"{name}: line has sender and rcpts", line)
        tap.check(' reason="client closed the connection"' in line,
                  f"{name}: line has reason", line)


def main(tap, harness):
    queue = harness.path("queue")
    config = h.write_config(harness, CONFIG.format(queue=queue))
    relay = h.start_relay(harness, config)
    test_rejected(tap, harness)
    test_bdat_rejected(tap, harness)
    test_aborted(tap, harness)
    tap.check(harness.stop(relay) == 0, "relay stops cleanly")


if __name__ == "__main__":
    h.main_wrapper(main)

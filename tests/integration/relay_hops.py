#!/usr/bin/env python3
"""A relay whose smarthost is itself stops the mail loop at max_hops.

Each pass through the relay adds one Received: header, so with max_hops
= 5 a message that starts with none is accepted six times (it arrives
with 0 to 5 headers) and rejected with 554 5.4.6 on the seventh pass.
The sender is <> so that no bounce could start a second loop.

Usage (inside netns_run.sh): relay_hops.py BUILD_DIR
"""
import time

import harness as h

MAX_HOPS = 5

CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
smarthost = "127.0.0.1:2525";
relay_networks = ["127.0.0.1/32"];
max_hops = {max_hops};
"""

# The loop normally ends within a second, and the test waits at most this.
LOOP_WAIT_SECONDS = 8


def accepted_count(harness):
    return harness.log_text("ringrelay").count(" event=accepted ")


def test_loop_stops(tap, harness):
    client = h.RawClient(2525)
    client.reply()
    replies = [client.command(line) for line in (
        b"EHLO client.test\r\n", b"MAIL FROM:<>\r\n",
        b"RCPT TO:<loop@example.test>\r\n", b"DATA\r\n",
        b"Subject: loop\r\n\r\nReceived: in the body, not counted\r\n"
        b".\r\n", b"QUIT\r\n")]
    client.close()
    tap.check(replies[4].startswith("250 2.0.0 Ok: queued as "),
              "first pass is accepted", replies)

    rejected = h.wait_for(
        lambda: "554 5.4.6" in harness.log_text("ringrelay"),
        timeout=LOOP_WAIT_SECONDS)
    tap.check(rejected, "a later pass gets 554 5.4.6",
              harness.log_text("ringrelay")[-2000:])

    # Give a loop that was not stopped time to show more passes.
    time.sleep(1)
    count = accepted_count(harness)
    tap.check(count == MAX_HOPS + 1, "message accepted max_hops + 1 times",
              f"accepted {count} times, want {MAX_HOPS + 1}")
    log = harness.log_text("ringrelay")
    tap.check(f"too many hops ({MAX_HOPS + 1} Received: headers)" in log,
              "reject reply gives the header count", log[-2000:])


def test_header_limit(tap, harness):
    """A message that arrives with max_hops headers is accepted and one
    with one more is rejected. A header in the body does not count."""
    for count, want in ((MAX_HOPS, "250 2.0.0"), (MAX_HOPS + 1, "554 5.4.6")):
        header = b"".join(b"Received: from h%d\r\n\tby relay.test\r\n" % i
                          for i in range(count))
        client = h.RawClient(2525)
        client.reply()
        for line in (b"EHLO client.test\r\n", b"MAIL FROM:<>\r\n",
                     b"RCPT TO:<limit@other.test>\r\n", b"DATA\r\n"):
            client.command(line)
        reply = client.command(header + b"Subject: x\r\n\r\n"
                               b"Received: body\r\n.\r\n")
        client.close()
        tap.check(reply.startswith(want), f"{count} headers get {want}",
                  reply)


def main(tap, harness):
    queue = harness.path("queue")
    config = h.write_config(harness, CONFIG.format(queue=queue,
                                                   max_hops=MAX_HOPS))
    relay = h.start_relay(harness, config)
    test_loop_stops(tap, harness)
    test_header_limit(tap, harness)
    tap.check(harness.stop(relay) == 0, "relay stops cleanly")


if __name__ == "__main__":
    h.main_wrapper(main)

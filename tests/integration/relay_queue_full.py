#!/usr/bin/env python3
"""A full queue turns new mail away with 452 4.3.1 and keeps what it has.

Two relays fill their queues while the sink is down, so every accepted
message stays queued:
- one with queue_max_size = 1mb, filled with 100 KiB messages;
- one whose queue is on a 72 MiB tmpfs, mounted in a private mount
  namespace (root only, else skipped), filled with 4 MiB messages sent
  without SIZE, so the body outgrows its reservation and the writer runs
  out of space in the middle of DATA, and then of a BDAT chunk. A filler
  file then takes the free space below queue_min_free, which MAIL must
  see within a second.
Then the sink starts, and every accepted message must arrive once and
byte for byte at its next retry (every RETRY_INTERVAL_S plus up to 20%
jitter), after which the size-limited relay accepts mail again.

Usage (inside netns_run.sh): relay_queue_full.py BUILD_DIR
"""
import os
import re
import subprocess
import sys

import harness as h

# Deferred mail is retried every RETRY_INTERVAL_S, plus up to 20%, so it
# arrives soon after the sink starts.
RETRY_INTERVAL_S = 5
FIRST_RETRY_MAX_S = RETRY_INTERVAL_S * 6 // 5 + 1

TMPFS_SIZE = "72m"
SMALL_BODY = 100 * 1024
LARGE_BODY = 4 * 1024 * 1024

CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{queue}";
hostname = "relay.test";
routes {{ "example.test" = "127.0.0.1:2526"; }}
retry_interval = {retry};
retry_max_interval = {retry};
{limits}
"""


def reexec_in_mount_namespace():
    """Run this script again in a private mount namespace, so the tmpfs
    mount stays inside the test. Returns False when not root."""
    if os.environ.get("RINGRELAY_IN_MOUNTNS") == "1":
        return True
    if os.geteuid() != 0:
        return False
    os.environ["RINGRELAY_IN_MOUNTNS"] = "1"
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                          "--", sys.executable, *sys.argv])
    return True


def body(index, size):
    """A body of about size bytes in 78-byte CRLF lines, unique by index."""
    line = f"message {index:05d} ".encode().ljust(76, b"x") + b"\r\n"
    return f"Subject: full {index}\r\n\r\n".encode() + line * (size // 78)


def send_raw(port, index, size):
    """Send one message without SIZE and return the MAIL reply and the
    reply to the end of the data ("" when MAIL failed)."""
    client = h.RawClient(port, timeout=30)
    try:
        client.reply()
        client.command(b"EHLO client.test\r\n")
        mail = client.command(b"MAIL FROM:<sender@client.test>\r\n")
        if not mail.startswith("250"):
            return mail, ""
        client.command(f"RCPT TO:<rcpt{index}@example.test>\r\n".encode())
        data = client.command(b"DATA\r\n")
        if not data.startswith("354"):
            return mail, data
        return mail, client.command(body(index, size) + b".\r\n")
    finally:
        client.close()


def send_bdat(port, index, size):
    """Send one message as a single BDAT LAST chunk and return the replies
    to MAIL and to the chunk ("" when MAIL failed)."""
    client = h.RawClient(port, timeout=30)
    try:
        client.reply()
        client.command(b"EHLO client.test\r\n")
        mail = client.command(b"MAIL FROM:<sender@client.test>\r\n")
        if not mail.startswith("250"):
            return mail, ""
        client.command(f"RCPT TO:<rcpt{index}@example.test>\r\n".encode())
        data = body(index, size)
        return mail, client.command(f"BDAT {len(data)} LAST\r\n".encode()
                                    + data)
    finally:
        client.close()


def fill(port, first, size, limit):
    """Send messages until one is not accepted. Returns the indexes
    accepted and the MAIL and final replies of the one that was not."""
    accepted = []
    for index in range(first, first + limit):
        mail, final = send_raw(port, index, size)
        if not final.startswith("250"):
            return accepted, mail, final
        accepted.append(index)
    return accepted, "", ""


def start(harness, port, limits, name):
    config = h.write_config(harness, CONFIG.format(
        port=port, queue=harness.path(name + "-queue"),
        retry=RETRY_INTERVAL_S, limits=limits),
        name=name + ".conf")
    return h.start_relay(harness, config, port=port, name=name)


def test_max_size(tap, harness):
    start(harness, 2525, "queue_max_size = 1mb;\nmax_message_size = 1mb;\n"
          "queue_min_free = 0;",
          "relay-size")
    accepted, mail, final = fill(2525, 0, SMALL_BODY, 40)
    tap.check(5 <= len(accepted) <= 10, "1 MiB queue takes 5 to 10 "
              "messages of 100 KiB", len(accepted))
    reply = final or mail
    tap.check(reply.startswith("452 4.3.1"), "message past the limit gets "
              "452 4.3.1", reply)

    # RFC 1870 allows 452 at MAIL when the declared SIZE does not fit.
    client = h.RawClient(2525, timeout=30)
    try:
        client.reply()
        client.command(b"EHLO client.test\r\n")
        sized = client.command(b"MAIL FROM:<sender@client.test> "
                               b"SIZE=900000\r\n")
        small = client.command(b"RSET\r\n") and client.command(
            b"MAIL FROM:<sender@client.test> SIZE=1000\r\n")
    finally:
        client.close()
    tap.check(sized == "452 4.3.1 Insufficient system storage",
              "MAIL with a SIZE past the room left gets 452 4.3.1", sized)
    tap.check(small.startswith("250"), "MAIL with a SIZE that fits gets "
              "250", small)

    # Small messages fill what is left, until not even the smallest
    # reservation fits and MAIL itself gets 452.
    more, mail, final = fill(2525, 1000, 1024, 300)
    accepted += more
    tap.check(mail == "452 4.3.1 Insufficient system storage",
              "MAIL at the limit gets 452 4.3.1", (mail, final))
    log = harness.log_text("relay-size")
    tap.check(re.search(r"session=\d+ event=mail-rejected .*"
                        r"reason=queue_max_size", log),
              "relay logs the rejected MAIL with its session", log[-2000:])
    tap.check("No space left on device" not in log and
              "event=queue-full reason=queue_max_size" in log,
              "the limit is logged as queue_max_size, not as a full disk",
              log[-2000:])
    return accepted


def test_tmpfs(tap, harness):
    mount = harness.path("tmpfs")
    os.mkdir(mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}",
                    "tmpfs", mount], check=True)
    os.mkdir(os.path.join(mount, "queue"))
    config = h.write_config(harness, CONFIG.format(
        port=2527, queue=os.path.join(mount, "queue"),
        retry=RETRY_INTERVAL_S, limits="queue_min_free = 2mb;"),
        name="relay-disk.conf")
    h.start_relay(harness, config, port=2527, name="relay-disk")

    accepted, mail, final = fill(2527, 100, LARGE_BODY, 30)
    tap.check(10 <= len(accepted) <= 16, "72 MiB tmpfs takes 10 to 16 "
              "messages of 4 MiB", len(accepted))
    tap.check(mail.startswith("250"), "MAIL before the disk is full gets "
              "250", mail)
    tap.check(final == "452 4.3.1 Insufficient system storage",
              "body that cannot get space gets 452 4.3.1 at its end", final)
    log = harness.log_text("relay-disk")
    tap.check(re.search(r"id=[0-9A-F]{16} session=\d+ event=queue-full "
                        r"reason=no_space", log),
              "relay logs the failed write with queue ID and session",
              log[-2000:])

    # MAIL already gets 452 when the segment that takes new mail has no
    # room left for the smallest record, since a new segment would break
    # queue_min_free; otherwise the chunk gets it.
    mail, chunk = send_bdat(2527, 198, LARGE_BODY)
    full = "452 4.3.1 Insufficient system storage"
    tap.check(mail == full or chunk == full,
              "BDAT message that cannot get space gets 452 4.3.1",
              (mail, chunk))

    filler = os.path.join(mount, "filler")
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M",
                    "status=none"], check=False)
    h.wait_for(lambda: False, timeout=1.2)
    mail, _ = send_raw(2527, 199, 1024)
    tap.check(mail == "452 4.3.1 Insufficient system storage",
              "MAIL below queue_min_free gets 452 4.3.1", mail)
    tap.check("reason=queue_min_free" in harness.log_text("relay-disk"),
              "relay logs the free-space floor as the reason")
    log = harness.log_text("relay-disk")
    tap.check(re.search(r"id=none session=\d+ event=queue-full", log)
              is None, "every queue-full line names its queue ID",
              log[-2000:])
    os.unlink(filler)
    return accepted


def body_size(index):
    if index >= 1000:
        return 1024
    return SMALL_BODY if index < 100 else LARGE_BODY


def check_delivered(tap, store, expected):
    stored = {}
    for _, rcpts, content in h.read_stored(store):
        for rcpt in rcpts:
            stored.setdefault(rcpt, []).append(content)
    for index in expected:
        size = body_size(index)
        copies = stored.get(f"rcpt{index}@example.test", [])
        tap.check(len(copies) == 1, f"message {index} arrives once",
                  len(copies))
        if copies:
            tap.check(h.strip_received(copies[0]) == body(index, size),
                      f"message {index} arrives byte for byte")


def check_sync_stats(tap, harness, commits):
    """The stopped size-limited relay logs its group-commit counters, and
    only accepted messages count as commits."""
    found = re.search(r"event=queue_sync_stats dir=\S+ durability=fsync "
                      r"commits=(\d+) batches=(\d+) fsyncs=(\d+)",
                      harness.log_text("relay-size"))
    tap.check(found, "relay logs queue_sync_stats at stop")
    if not found:
        return
    logged, batches, fsyncs = (int(value) for value in found.groups())
    tap.check(logged == commits, "commits counts the accepted messages",
              f"{logged} logged, {commits} accepted")
    tap.check(1 <= batches <= commits, "batches is between 1 and commits",
              batches)
    tap.check(fsyncs >= batches, "each batch has an fsync",
              f"{fsyncs} fsyncs, {batches} batches")


def test(tap, harness):
    expected = test_max_size(tap, harness)
    size_accepted = len(expected)
    if os.environ.get("RINGRELAY_IN_MOUNTNS") == "1":
        expected += test_tmpfs(tap, harness)
    else:
        print("# tmpfs checks skipped: mounting needs root", flush=True)

    store = harness.path("store")
    h.start_sink(harness, store, port=2526)
    arrived = h.wait_for(lambda: len(h.read_stored(store)) >= len(expected),
                         timeout=FIRST_RETRY_MAX_S + 60)
    tap.check(arrived, "every queued message arrives once the sink is up",
              f"{len(h.read_stored(store))} of {len(expected)}")
    h.wait_for(lambda: False, timeout=1)
    check_delivered(tap, store, expected)

    freed = h.wait_for(
        lambda: send_raw(2525, 99, 1024)[1].startswith("250"), timeout=10)
    tap.check(freed, "size-limited relay accepts mail after delivery")
    for proc in list(harness.procs):
        harness.stop(proc)
    check_sync_stats(tap, harness, size_accepted + 1)
    if os.environ.get("RINGRELAY_IN_MOUNTNS") == "1":
        subprocess.run(["umount", harness.path("tmpfs")], check=False)


if __name__ == "__main__":
    reexec_in_mount_namespace()
    h.main_wrapper(test)

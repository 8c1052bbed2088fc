#!/usr/bin/env python3
"""BINARYMIME (RFC 3030) through the relay: a binary body sent with BDAT
in several chunks reaches the sink with BDAT, byte for byte after the
relay's Received: header. A sink started with --no-binarymime or
--no-chunking cannot take it, so the relay bounces it with 554 5.6.3
once and does not retry.

Usage (inside netns_run.sh): relay_binarymime.py BUILD_DIR
"""
import random
import re
import smtplib
import socket
import threading
import time

import harness as h
from relay_bdat import Client, stored_for, wait_stored

# example.test goes to the sink on 2526, which offers BINARYMIME;
# nobin.test to the sink on 2527 (--no-binarymime), nochunk.test to the
# sink on 2528 (--no-chunking) and record.test to CommandRecorder.
CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
routes {{
    "example.test" = "127.0.0.1:2526";
    "nobin.test" = "127.0.0.1:2527";
    "nochunk.test" = "127.0.0.1:2528";
    "record.test" = "127.0.0.1:2529";
}}
relay_networks = ["127.0.0.1/32"];
"""

# NUL bytes, bare CR, bare LF, lines that start with '.', a lone "."
# line, CRLF.CRLF inside the body and no CRLF at the end: DATA could
# carry none of this unchanged.
BINARY_BODY = (b"Subject: binary\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: binary\r\n\r\n"
               b"\x00\x01\x02 NUL bytes\r\n"
               b"bare LF\nbare CR\rboth\n\r"
               b".leading dot\r\n..two dots\r\n.\r\n"
               b"\r\n.\r\nQUIT\r\n"
               b"\xff\xfe\x00\r\n.\n.\r"
               b"no final CRLF")


class CommandRecorder:
    """A one-connection SMTP peer that records the relay's command lines,
    because the sink does not show how a message was cut into chunks. It
    offers PIPELINING, CHUNKING and BINARYMIME and sends no reply to the
    transaction until BDAT LAST has arrived, so it receives the whole
    batch before its first reply only when the client pipelines. A client
    that waits for replies gets them after a 5 s timeout."""

    def __init__(self, port):
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(30)
        self.commands = []
        self.body = b""
        self.replied_early = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            self.talk(conn)
        self.listener.close()

    def talk(self, conn):
        reader = conn.makefile("rb")
        conn.sendall(b"220 rec.test ESMTP\r\n")
        pending_replies = []
        while True:
            try:
                line = reader.readline()
            except socket.timeout:
                # Not pipelined: send the pending replies so the client
                # goes on, and record that it waited.
                if pending_replies:
                    self.replied_early = True
                conn.sendall(b"".join(pending_replies))
                pending_replies = []
                continue
            if not line:
                return
            verb = line.split(b" ", 1)[0].upper().strip()
            self.commands.append(line.rstrip(b"\r\n").decode())
            if verb == b"EHLO":
                conn.sendall(b"250-rec.test\r\n250-PIPELINING\r\n"
                             b"250-CHUNKING\r\n250 BINARYMIME\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif verb == b"BDAT":
                size = int(line.split()[1])
                self.body += reader.read(size)
                pending_replies.append(b"250 2.0.0 chunk\r\n")
                if line.rstrip().upper().endswith(b"LAST"):
                    conn.sendall(b"".join(pending_replies))
                    pending_replies = []
            else:
                pending_replies.append(b"250 ok\r\n")

    def wait(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()


def binary_transaction(rcpt, chunks):
    """Return MAIL with BODY=BINARYMIME, RCPT and one BDAT per chunk."""
    data = (b"MAIL FROM:<a@client.test> BODY=BINARYMIME\r\n"
            b"RCPT TO:<" + rcpt.encode() + b">\r\n")
    for i, chunk in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        data += b"BDAT %d%s\r\n" % (len(chunk), last) + chunk
    return data


def split_chunks(body, cuts):
    """Cut body at the given offsets into chunks."""
    bounds = [0] + list(cuts) + [len(body)]
    return [body[a:b] for a, b in zip(bounds, bounds[1:])]


def open_session(port=2525):
    client = Client(port)
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    return client, client.reply()


def send_binary(rcpt, body, cuts):
    """Send body for rcpt in chunks cut at cuts, pipelined in one write.
    Returns the replies to MAIL, RCPT and every BDAT."""
    chunks = split_chunks(body, cuts)
    client, _ = open_session()
    client.sock.sendall(binary_transaction(rcpt, chunks))
    replies = client.replies(2 + len(chunks))
    client.sock.sendall(b"QUIT\r\n")
    client.reply()
    client.close()
    return replies


def queue_id_of(reply):
    return reply.rsplit(" ", 1)[-1]


def test_offered(tap):
    client, ehlo = open_session()
    tap.check("250-CHUNKING" in ehlo, "relay offers CHUNKING", ehlo)
    tap.check("250-BINARYMIME" in ehlo, "relay offers BINARYMIME", ehlo)
    client.close()


def test_relayed(tap, store):
    # Cuts fall inside lines, between a CR and its LF, next to NUL bytes
    # and right before a leading dot.
    cuts = [7, BINARY_BODY.index(b"\x01"), BINARY_BODY.index(b"\nbare CR"),
            BINARY_BODY.index(b".leading"), BINARY_BODY.index(b"\r\n.\r\nQ"),
            BINARY_BODY.index(b"\r\n.\r\nQ") + 1]
    rcpt = "bin@example.test"
    replies = send_binary(rcpt, BINARY_BODY, cuts)
    want = (["250 2.1.0", "250 2.1.5"] +
            ["250 2.0.0 %d octets received" % len(c)
             for c in split_chunks(BINARY_BODY, cuts)[:-1]] +
            ["250 2.0.0 Ok: queued as "])
    tap.check(len(replies) == len(want) and
              all(r.startswith(w) for r, w in zip(replies, want)),
              "binary BDAT chunks are accepted", replies)

    content = wait_stored(store, rcpt)
    tap.check(content is not None, "binary message reaches the sink")
    if content is None:
        return
    tap.check(h.strip_received(content) == BINARY_BODY,
              "binary body arrives byte for byte after Received:",
              repr(content))


def test_relayed_large(tap, store):
    """A body over 1 MiB leaves the relay in more than one BDAT chunk."""
    rng = random.Random(3030)
    payload = rng.randbytes(2_600_000)
    body = b"Subject: large binary\r\n\r\n" + payload
    rcpt = "large@example.test"
    cuts = [100_000, 1_500_000, 1_500_001]
    replies = send_binary(rcpt, body, cuts)
    tap.check(replies[-1].startswith("250 2.0.0 Ok: queued as "),
              "2.6 MB binary message is queued", replies)
    content = wait_stored(store, rcpt)
    tap.check(content is not None, "2.6 MB binary message reaches the sink")
    if content is None:
        return
    stripped = h.strip_received(content)
    tap.check(stripped == body, "2.6 MB binary body arrives byte for byte",
              f"got {len(stripped or b'')} bytes, want {len(body)}")


def test_chunked_and_pipelined(tap, recorder):
    """The relay cuts a body of 2.5 MiB into BDAT chunks of 1 MiB and
    pipelines them with MAIL and RCPT."""
    size = 2 * 1024 * 1024 + 512 * 1024
    body = b"Subject: cut\r\n\r\n" + random.Random(1).randbytes(size)
    replies = send_binary("cut@record.test", body, [size // 3])
    tap.check(replies[-1].startswith("250 2.0.0 Ok: queued as "),
              "2.5 MiB binary message is queued", replies)
    tap.check(recorder.wait(30), "recorder peer finished its session")
    bdat = [c for c in recorder.commands if c.upper().startswith("BDAT")]
    mail = [c for c in recorder.commands if c.upper().startswith("MAIL")]
    total = len(recorder.body)  # the Received: header and the body
    tap.check(mail and "BODY=BINARYMIME" in mail[0],
              "relay sends MAIL with BODY=BINARYMIME", recorder.commands)
    tap.check(bdat[:2] == ["BDAT 1048576", "BDAT 1048576"] and
              len(bdat) == 3 and bdat[2] == f"BDAT {total - 2097152} LAST",
              "relay sends two 1 MiB chunks and BDAT LAST",
              recorder.commands)
    tap.check(len(bdat) == 3 and not recorder.replied_early,
              "MAIL, RCPT and every BDAT come before the first reply",
              recorder.commands)
    tap.check(h.strip_received(recorder.body) == body,
              "chunks join to the binary body byte for byte")


def test_data_refused(tap):
    client, _ = open_session()
    client.sock.sendall(b"MAIL FROM:<a@client.test> BODY=BINARYMIME\r\n"
                        b"RCPT TO:<data@example.test>\r\n"
                        b"DATA\r\nRSET\r\n")
    replies = client.replies(4)
    tap.check(replies[2].startswith("503 5.5.1"),
              "DATA after BODY=BINARYMIME gets 503 5.5.1", replies)
    tap.check(replies[3].startswith("250 2.0.0"),
              "session goes on after the 503", replies)
    client.close()


def events_for(harness, queue_id):
    pattern = re.compile(rf"id={queue_id} event=(\S+)")
    return [m.group(1) for m in
            pattern.finditer(harness.log_text("ringrelay"))]


def test_bounced(tap, harness, rcpt, store, name):
    replies = send_binary(rcpt, BINARY_BODY, [20])
    queue_id = queue_id_of(replies[-1])
    tap.check(replies[-1].startswith("250 2.0.0 Ok: queued as "),
              f"{name}: binary message is queued", replies)
    h.wait_for(lambda: "bounced" in events_for(harness, queue_id),
               timeout=30)
    lines = [l for l in harness.log_text("ringrelay").splitlines()
             if f"id={queue_id} event=bounced" in l]
    tap.check(len(lines) == 1 and "554 5.6.3" in lines[0],
              f"{name}: bounced with 554 5.6.3", lines)

    # A retry would come at the earliest 60 s later, so this only shows
    # that the bounce ended the message: nothing is deferred.
    time.sleep(1.0)
    events = events_for(harness, queue_id)
    tap.check("deferred" not in events and events.count("bounced") == 1,
              f"{name}: bounced message is not retried", events)
    tap.check(stored_for(store, rcpt) is None,
              f"{name}: the sink got nothing")


def test_text_still_uses_data(tap, store):
    """A text message to a peer without BINARYMIME still goes with DATA."""
    body = b"Subject: text\r\n\r\n.dot line\r\nend\r\n"
    rcpt = "text@nobin.test"
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.ehlo("client.test")
        client.sendmail("a@client.test", [rcpt], body)
    content = wait_stored(store, rcpt)
    tap.check(content is not None and h.strip_received(content) == body,
              "text message reaches the sink without BINARYMIME",
              repr(content))


def test_sink_switches(tap):
    client, ehlo = open_session(2527)
    client.close()
    tap.check("BINARYMIME" not in ehlo and "250-CHUNKING" in ehlo,
              "sink --no-binarymime keeps CHUNKING only", ehlo)
    client, ehlo = open_session(2528)
    client.close()
    tap.check("BINARYMIME" not in ehlo and "CHUNKING" not in ehlo,
              "sink --no-chunking leaves BINARYMIME out too", ehlo)


def test(tap, harness):
    store = harness.path("store")
    nobin_store = harness.path("nobin-store")
    nochunk_store = harness.path("nochunk-store")
    h.start_sink(harness, store, port=2526)
    h.start_sink(harness, nobin_store, port=2527, name="nobin-sink",
                 options=["--no-binarymime"])
    h.start_sink(harness, nochunk_store, port=2528, name="nochunk-sink",
                 options=["--no-chunking"])
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")))
    recorder = CommandRecorder(2529)
    relay = h.start_relay(harness, config)
    test_offered(tap)
    test_relayed(tap, store)
    test_relayed_large(tap, store)
    test_chunked_and_pipelined(tap, recorder)
    test_data_refused(tap)
    test_sink_switches(tap)
    test_bounced(tap, harness, "bin@nobin.test", nobin_store,
                 "--no-binarymime")
    test_bounced(tap, harness, "bin@nochunk.test", nochunk_store,
                 "--no-chunking")
    test_text_still_uses_data(tap, nobin_store)
    tap.check(relay.poll() is None, "relay is still running")


if __name__ == "__main__":
    h.main_wrapper(test)

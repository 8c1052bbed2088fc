#!/usr/bin/env python3
"""BDAT (CHUNKING) through the relay: pipelined chunks, split across
writes at odd places, reach the sink byte for byte after the relay's
Received: header; bare LF without BODY=BINARYMIME is rejected.

Usage (inside netns_run.sh): relay_bdat.py BUILD_DIR
"""
import socket
import time

import harness as h

CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
routes {{ "example.test" = "127.0.0.1:2526"; }}
relay_networks = ["127.0.0.1/32"];
"""


class Client:
    """A raw SMTP client that sends bytes as given and reads replies."""

    def __init__(self, port=2525):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def reply(self):
        """Return one whole reply, its lines joined by '|'."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                data = self.sock.recv(65536)
                if not data:
                    return "|".join(lines + ["<closed>"])
                self.buffer += data
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode(errors="replace"))
            if line[3:4] != b"-":
                return "|".join(lines)

    def replies(self, count):
        return [self.reply() for _ in range(count)]

    def send_pieces(self, data, cuts):
        """Send data in pieces cut at the given offsets, with pauses so
        that the server reads them apart."""
        start = 0
        for cut in list(cuts) + [len(data)]:
            self.sock.sendall(data[start:cut])
            start = cut
            time.sleep(0.05)

    def close(self):
        self.sock.close()


def bdat_transaction(rcpt, chunks):
    """Return MAIL, RCPT and one BDAT per chunk, the last with LAST."""
    data = (b"MAIL FROM:<a@client.test>\r\n"
            b"RCPT TO:<" + rcpt.encode() + b">\r\n")
    for i, chunk in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        data += b"BDAT %d%s\r\n" % (len(chunk), last) + chunk
    return data


def stored_for(store, rcpt):
    for _, rcpts, content in h.read_stored(store):
        if rcpt in rcpts:
            return content
    return None


def wait_stored(store, rcpt):
    h.wait_for(lambda: stored_for(store, rcpt) is not None, timeout=30)
    return stored_for(store, rcpt)


def check_relayed(tap, store, rcpt, want, name):
    content = wait_stored(store, rcpt)
    tap.check(content is not None, f"{name}: message reaches the sink")
    if content is None:
        return
    tap.check(h.strip_received(content) == want,
              f"{name}: body matches byte for byte after Received:",
              repr(content))


def test_pipelined_chunks(tap, store):
    body = (b"Subject: chunks\r\n\r\n"
            b".a line that starts with a dot\r\n"
            b"..two dots\r\n"
            b"a line split\r\n"
            b"\r\n.\r\n"
            b"QUIT\r\n"
            b"end\r\n")
    chunks = [body[:25], body[25:26], body[26:70], body[70:]]
    data = bdat_transaction("chunks@example.test", chunks)

    client = Client()
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    ehlo = client.reply()
    tap.check("250-CHUNKING" in ehlo, "relay offers CHUNKING", ehlo)
    tap.check("250-BINARYMIME" in ehlo, "relay offers BINARYMIME", ehlo)

    # Cuts fall inside the RCPT line, inside BDAT lines, inside a chunk
    # and between the CR and LF of a line in a chunk.
    cuts = sorted([data.index(b"RCPT") + 5,
                   data.index(b"BDAT 1\r\n") + 3,
                   data.index(b"two dots") + 4,
                   data.index(b"split\r\n") + 6,
                   data.index(b" LAST\r\n") + 2])
    client.send_pieces(data, cuts)
    replies = client.replies(2 + len(chunks))
    want = ["250 2.1.0", "250 2.1.5",
            f"250 2.0.0 {len(chunks[0])} octets received",
            f"250 2.0.0 {len(chunks[1])} octets received",
            f"250 2.0.0 {len(chunks[2])} octets received",
            "250 2.0.0 Ok: queued as "]
    tap.check(all(r.startswith(w) for r, w in zip(replies, want)),
              "pipelined BDAT replies", replies)

    client.sock.sendall(b"QUIT\r\n")
    tap.check(client.reply().startswith("221"), "QUIT after BDAT")
    client.close()
    check_relayed(tap, store, "chunks@example.test", body, "chunks")


def test_no_final_crlf(tap, store):
    client = Client()
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    client.reply()
    client.sock.sendall(bdat_transaction(
        "nocrlf@example.test", [b"Subject: x\r\n\r\n.dot", b" and more"]))
    replies = client.replies(4)
    tap.check(replies[3].startswith("250 2.0.0 Ok: queued"),
              "body without final CRLF is queued", replies)
    client.close()
    check_relayed(tap, store, "nocrlf@example.test",
                  b"Subject: x\r\n\r\n.dot and more\r\n",
                  "body without final CRLF gets one")


def test_empty_last(tap, store):
    client = Client()
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    client.reply()
    body = b"Subject: e\r\n\r\nbody\r\n"
    client.sock.sendall(bdat_transaction("empty@example.test", [body, b""]))
    replies = client.replies(4)
    tap.check(replies[2].startswith(f"250 2.0.0 {len(body)} octets") and
              replies[3].startswith("250 2.0.0 Ok: queued"),
              "BDAT 0 LAST ends the message", replies)
    client.close()
    check_relayed(tap, store, "empty@example.test", body, "BDAT 0 LAST")


def test_bare_lf_rejected(tap, store):
    client = Client()
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    client.reply()
    client.sock.sendall(bdat_transaction(
        "barelf@example.test", [b"Subject: s\r\n\r\nx\n", b"y\r\n"]) +
        b"NOOP\r\n")
    replies = client.replies(5)
    tap.check(replies[2].startswith("550 5.6.0") and
              replies[3].startswith("550 5.6.0"),
              "bare LF in BDAT data gets 550 5.6.0", replies)
    tap.check(replies[4].startswith("250 2.0.0 Ok"),
              "session stays in sync after the rejected chunks", replies)
    client.close()
    time.sleep(0.5)
    tap.check(stored_for(store, "barelf@example.test") is None,
              "rejected BDAT message is not relayed")


def test_data_after_bdat(tap):
    client = Client()
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    client.reply()
    client.sock.sendall(b"MAIL FROM:<a@client.test>\r\n"
                        b"RCPT TO:<mixed@example.test>\r\n"
                        b"BDAT 3\r\nabcDATA\r\nRSET\r\n")
    replies = client.replies(5)
    tap.check(replies[3].startswith("503 5.5.1") and
              replies[4].startswith("250 2.0.0"),
              "DATA after BDAT gets 503 5.5.1", replies)
    client.close()


def test_sink_bdat(tap, harness):
    """The sink reads BDAT itself, and --no-chunking turns it off."""
    direct = harness.path("direct")
    h.start_sink(harness, direct, port=2527, name="direct-sink")
    h.start_sink(harness, harness.path("nochunk"), port=2528,
                 name="nochunk-sink", options=["--no-chunking"])
    client = Client(2527)
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    client.reply()
    body = b"Subject: direct\r\n\r\n.x\r\n"
    client.sock.sendall(bdat_transaction("d@sink.test",
                                         [body[:7], body[7:]]))
    replies = client.replies(4)
    tap.check(replies[3].startswith("250"), "sink accepts BDAT", replies)
    client.close()
    content = wait_stored(direct, "d@sink.test")
    tap.check(content == body, "sink stores the BDAT message", repr(content))

    client = Client(2528)
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    ehlo = client.reply()
    tap.check("CHUNKING" not in ehlo, "--no-chunking leaves CHUNKING out",
              ehlo)
    client.close()


def test(tap, harness):
    store = harness.path("store")
    h.start_sink(harness, store, port=2526)
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")))
    relay = h.start_relay(harness, config)
    test_pipelined_chunks(tap, store)
    test_no_final_crlf(tap, store)
    test_empty_last(tap, store)
    test_bare_lf_rejected(tap, store)
    test_data_after_bdat(tap)
    test_sink_bdat(tap, harness)
    tap.check(relay.poll() is None, "relay is still running")


if __name__ == "__main__":
    h.main_wrapper(test)

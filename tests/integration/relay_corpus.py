#!/usr/bin/env python3
"""Relay every corpus message end to end, through a real MX lookup.

ldns-testns answers for example.test (MX mx.example.test, A 127.0.0.1),
the bundled sink listens on 127.0.0.1:25, and ringrelay relays to it.
Python's smtplib sends every message of the corpus and swaks some of them;
each must arrive once with the same bytes, behind one Received: header.

Usage (inside netns_run.sh): relay_corpus.py BUILD_DIR CORPUS_DIR
"""
import os
import smtplib
import subprocess
import sys

import harness as h

ZONE = {
    ("example.test", "MX"): ["example.test. 300 IN MX 10 mx.example.test."],
    ("mx.example.test", "A"): ["mx.example.test. 300 IN A 127.0.0.1"],
    ("mx.example.test", "AAAA"): [],
}

CONFIG = """
listen = "127.0.0.1:2525";
queue_dir = "{queue}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
# The test MX host is 127.0.0.1, which MX delivery skips by default.
mx_allow_loopback = true;
log_level = "debug";
"""


def corpus_files(corpus):
    return sorted(os.path.join(corpus, name) for name in os.listdir(corpus)
                  if name.endswith(".eml"))


def send_with_smtplib(files):
    expected = {}
    with smtplib.SMTP("127.0.0.1", 2525, local_hostname="client.test",
                      timeout=30) as client:
        for index, path in enumerate(files):
            rcpt = f"lib{index}@example.test"
            with open(path, "rb") as eml:
                data = h.to_crlf(eml.read())
            client.sendmail("sender@client.test", [rcpt], data)
            expected[rcpt] = (os.path.basename(path), data)
    return expected


def send_with_swaks(tap, files):
    expected = {}
    for index, path in enumerate(files):
        rcpt = f"swaks{index}@example.test"
        with open(path, "rb") as eml:
            # swaks ends the data with one more CRLF than the file has
            # (seen with swaks 20201014 sending straight to the sink).
            data = h.to_crlf(eml.read()) + b"\r\n"
        result = subprocess.run(
            ["swaks", "--server", "127.0.0.1:2525", "--helo", "swaks.test",
             "--from", "sender@client.test", "--to", rcpt,
             "--data", "@" + path, "--silent", "2"],
            capture_output=True, text=True, timeout=60)
        tap.check(result.returncode == 0, f"swaks sends {os.path.basename(path)}",
                  result.stdout + result.stderr)
        expected[rcpt] = (os.path.basename(path), data)
    return expected


def check_arrivals(tap, store, expected):
    stored = h.read_stored(store)
    by_rcpt = {}
    for sender, rcpts, content in stored:
        for rcpt in rcpts:
            by_rcpt.setdefault(rcpt, []).append((sender, content))
    for rcpt, (name, data) in sorted(expected.items()):
        copies = by_rcpt.get(rcpt, [])
        if not tap.check(len(copies) == 1, f"{name} to {rcpt} arrives once",
                         f"arrived {len(copies)} times"):
            continue
        sender, content = copies[0]
        body = h.strip_received(content)
        tap.check(sender == "sender@client.test",
                  f"{name} keeps its sender", sender)
        tap.check(body == data, f"{name} arrives byte for byte",
                  first_difference(body or b"", data))


def first_difference(got, want):
    for offset, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return (f"first difference at byte {offset}: "
                    f"got {got[offset:offset + 40]!r} "
                    f"want {want[offset:offset + 40]!r}")
    return f"lengths differ: got {len(got)} want {len(want)}"


def test(tap, harness):
    corpus = sys.argv[2]
    store = harness.path("store")
    if not os.path.isdir(corpus):
        tap.check(False, "corpus directory exists",
                  f"{corpus} not found: the corpus lives in shared/corpus "
                  "beside the checkout")
        return
    files = corpus_files(corpus)
    tap.check(len(files) > 40, "corpus has messages", len(files))

    h.start_name_server(harness, ZONE)
    h.start_sink(harness, store)
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")))
    relay = h.start_relay(harness, config)

    expected = send_with_smtplib(files)
    expected.update(send_with_swaks(tap, files[:5]))

    arrived = h.wait_for(lambda: len(h.read_stored(store)) >= len(expected),
                         timeout=60)
    tap.check(arrived, "every message reaches the sink",
              f"{len(h.read_stored(store))} of {len(expected)}")
    check_arrivals(tap, store, expected)

    log = harness.log_text("ringrelay")
    tap.check("event=accepted" in log and "event=delivered" in log,
              "relay logs acceptance and delivery")
    tap.check("relay=mx.example.test[127.0.0.1]:25" in log,
              "delivery went to the MX host from DNS")
    tap.check(harness.stop(relay) == 0, "relay stops cleanly on SIGTERM")


if __name__ == "__main__":
    h.main_wrapper(test)

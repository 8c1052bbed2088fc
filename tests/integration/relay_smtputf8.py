#!/usr/bin/env python3
"""SMTPUTF8 through the relay: a message with a UTF-8 local part and
domain reaches a sink that offers SMTPUTF8, and the same message for a
sink started with --no-smtputf8 is bounced once, not retried.

Usage (inside netns_run.sh): relay_smtputf8.py BUILD_DIR
"""
import re
import smtplib
import time

import harness as h

# Everything without a route goes to the sink on 2526, which offers
# SMTPUTF8; plain.test goes to the sink on 2527, which does not.
CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
smarthost = "127.0.0.1:2526";
routes {{ "plain.test" = "127.0.0.1:2527"; }}
relay_networks = ["127.0.0.1/32"];
"""

SENDER = "s\u00e9nder@exp\u00e9diteur.test"
RCPT = "jos\u00e9@b\u00fccher.test"
PLAIN_RCPT = "m\u00fcller@plain.test"
BODY = ("Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n"
        "\r\nGr\u00fc\u00dfe aus K\u00f6ln\r\n").encode()


def send(rcpt):
    """Send one SMTPUTF8 message with smtplib; returns the queue ID."""
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.ehlo("client.test")
        code, text = client.mail(SENDER, options=["SMTPUTF8"])
        if code != 250:
            raise RuntimeError(f"MAIL got {code} {text!r}")
        code, text = client.rcpt(rcpt)
        if code != 250:
            raise RuntimeError(f"RCPT got {code} {text!r}")
        code, text = client.data(BODY)
        if code != 250:
            raise RuntimeError(f"DATA got {code} {text!r}")
        return text.decode().rsplit(" ", 1)[-1]


def test_relayed(tap, harness, store):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        code, _ = client.ehlo("client.test")
        tap.check(code == 250 and client.has_extn("smtputf8"),
                  "relay offers SMTPUTF8", client.esmtp_features)
    queue_id = send(RCPT)
    arrived = h.wait_for(lambda: len(h.read_stored(store)) == 1,
                         timeout=30)
    tap.check(arrived, "SMTPUTF8 message reaches the sink")
    if not arrived:
        return
    sender, rcpts, content = h.read_stored(store)[0]
    tap.check(sender == SENDER, "UTF-8 sender arrives unchanged", sender)
    tap.check(rcpts == [RCPT], "UTF-8 recipient arrives unchanged", rcpts)
    tap.check(h.strip_received(content) == BODY,
              "body arrives byte for byte", content)
    tap.check(b"with UTF8SMTP id " + queue_id.encode() in content,
              "Received: names UTF8SMTP", content[:300])


def bounced_lines(harness, queue_id):
    pattern = re.compile(rf"id={queue_id} event=(\S+)")
    return [m.group(1) for m in
            pattern.finditer(harness.log_text("ringrelay"))]


def test_bounced(tap, harness, plain_store):
    queue_id = send(PLAIN_RCPT)
    h.wait_for(lambda: "bounced" in bounced_lines(harness, queue_id),
               timeout=30)
    events = bounced_lines(harness, queue_id)
    tap.check("bounced" in events,
              "message for a peer without SMTPUTF8 is bounced", events)
    line = [l for l in harness.log_text("ringrelay").splitlines()
            if f"id={queue_id} event=bounced" in l]
    tap.check(bool(line) and "5.6.7" in line[0],
              "bounce line gives the 5.6.7 reason", line)

    # A retry would come at the earliest 60 s later, so this only shows
    # that the bounce ended the message: nothing is deferred or queued.
    time.sleep(1.0)
    events = bounced_lines(harness, queue_id)
    tap.check("deferred" not in events and events.count("bounced") == 1,
              "bounced message is not retried", events)
    tap.check(h.read_stored(plain_store) == [],
              "sink without SMTPUTF8 got nothing")


def test_without_smtputf8_param(tap):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.ehlo("client.test")
        code, _ = client.mail("a@client.test")
        tap.check(code == 250, "MAIL without SMTPUTF8")
        client.command_encoding = "utf-8"
        code, text = client.docmd("RCPT TO:<" + RCPT + ">")
        tap.check(code == 553 and b"5.6.7" in text,
                  "UTF-8 recipient without SMTPUTF8 gets 553 5.6.7",
                  (code, text))


def test(tap, harness):
    store = harness.path("store")
    plain_store = harness.path("plain-store")
    h.start_sink(harness, store, port=2526)
    h.start_sink(harness, plain_store, port=2527, name="plain-sink",
                 options=["--no-smtputf8"])
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")))
    relay = h.start_relay(harness, config)
    test_relayed(tap, harness, store)
    test_without_smtputf8_param(tap)
    test_bounced(tap, harness, plain_store)
    tap.check(relay.poll() is None, "relay is still running")


if __name__ == "__main__":
    h.main_wrapper(test)

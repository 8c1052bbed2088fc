#!/usr/bin/env python3
"""Recipients with address literals and quoted local parts, end to end.

ringrelay delivers user@[127.0.0.1] straight to a sink on 127.0.0.1:25
and v6@[IPv6:::1] to a sink on [::1]:25, with no DNS lookup: the resolver
points at a loopback port where no name server runs, so a lookup could
only defer. A recipient whose quoted local part contains '@' reaches the
route of its domain. A second relay with a smarthost sends a literal
recipient to the smarthost instead of the literal's IP.

Usage (inside netns_run.sh): relay_literal.py BUILD_DIR
"""
import smtplib

import harness as h

# Nothing listens on 127.0.0.1:53, so any DNS lookup fails.
CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{queue}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
relay_networks = ["127.0.0.1/32"];
routes {{ "quoted.test" = "127.0.0.1:2526"; }}
log_level = "debug";
{extra}
"""

SENDER = "sender@client.test"
BODY = b"Subject: literal\r\n\r\nto an address literal\r\n"


def send(port, rcpts):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      timeout=30) as client:
        refused = client.sendmail(SENDER, rcpts, BODY)
    return refused


def rcpt_sets(store):
    """Return the recipient list of each message the sink stored."""
    return sorted(sorted(rcpts) for _, rcpts, _ in h.read_stored(store))


def start_relays(harness):
    direct = h.write_config(harness, CONFIG.format(
        port=2525, queue=harness.path("queue"), extra=""))
    smarthost = h.write_config(harness, CONFIG.format(
        port=2535, queue=harness.path("queue-smarthost"),
        extra='smarthost = "127.0.0.1:2527";'), name="smarthost.conf")
    relay = h.start_relay(harness, direct)
    smart_relay = h.start_relay(harness, smarthost, port=2535,
                                name="ringrelay-smarthost")
    return relay, smart_relay


def check_direct(tap, harness, stores):
    refused = send(2525, ["user@[127.0.0.1]", "other@[127.0.0.1]",
                          "v6@[IPv6:::1]", '"a@b"@quoted.test',
                          "User@Quoted.TEST"])
    tap.check(refused == {}, "relay accepts every recipient", refused)

    arrived = h.wait_for(
        lambda: all(h.read_stored(stores[name]) for name in
                    ("v4", "v6", "route")), timeout=30)
    tap.check(arrived, "each sink receives a message",
              {name: rcpt_sets(store) for name, store in stores.items()})
    tap.check(rcpt_sets(stores["v4"]) ==
              [["other@[127.0.0.1]", "user@[127.0.0.1]"]],
              "IPv4 literal recipients share one transaction to port 25",
              rcpt_sets(stores["v4"]))
    tap.check(rcpt_sets(stores["v6"]) == [["v6@[IPv6:::1]"]],
              "IPv6 literal goes to [::1]:25", rcpt_sets(stores["v6"]))
    tap.check(rcpt_sets(stores["route"]) ==
              [['"a@b"@quoted.test', "User@Quoted.TEST"]],
              "quoted local part with @ reaches its domain's route",
              rcpt_sets(stores["route"]))

    # A sink stores a message before its reply reaches the relay, so wait
    # for the relay to log all five results.
    h.wait_for(lambda: harness.log_text("ringrelay").count(
        "event=delivered") >= 5, timeout=30)
    log = harness.log_text("ringrelay")
    tap.check(log.count("event=delivered") == 5,
              "relay logs five deliveries",
              [line for line in log.splitlines() if "event=" in line])
    tap.check("relay=[127.0.0.1]:25" in log, "log names the IPv4 literal")
    tap.check("relay=[::1]:25" in log, "log names the IPv6 literal")
    tap.check("event=deferred" not in log, "nothing was deferred",
              [line for line in log.splitlines() if "deferred" in line])


def check_smarthost(tap, harness, stores):
    before = len(h.read_stored(stores["v4"]))
    refused = send(2535, ["smart@[127.0.0.1]"])
    tap.check(refused == {}, "smarthost relay accepts the literal", refused)

    arrived = h.wait_for(lambda: h.read_stored(stores["smarthost"]),
                         timeout=30)
    tap.check(arrived, "literal recipient reaches the smarthost")
    tap.check(rcpt_sets(stores["smarthost"]) == [["smart@[127.0.0.1]"]],
              "smarthost receives only the literal recipient",
              rcpt_sets(stores["smarthost"]))
    tap.check(len(h.read_stored(stores["v4"])) == before,
              "literal IP is not used when a smarthost is set",
              rcpt_sets(stores["v4"]))


def test(tap, harness):
    stores = {name: harness.path("store-" + name)
              for name in ("v4", "v6", "route", "smarthost")}
    h.start_sink(harness, stores["v4"], port=25, name="sink-v4")
    harness.start("sink-v6", [harness.binary("bench/ringrelay-bench"),
                              "sink", "--listen", "[::1]:25", "--store",
                              stores["v6"]])
    tap.check(h.wait_port("::1", 25), "IPv6 sink listens on [::1]:25",
              harness.log_text("sink-v6"))
    h.start_sink(harness, stores["route"], port=2526, name="sink-route")
    h.start_sink(harness, stores["smarthost"], port=2527,
                 name="sink-smarthost")
    relay, smart_relay = start_relays(harness)

    check_direct(tap, harness, stores)
    check_smarthost(tap, harness, stores)

    tap.check(harness.stop(relay) == 0, "relay stops cleanly on SIGTERM")
    tap.check(harness.stop(smart_relay) == 0,
              "smarthost relay stops cleanly on SIGTERM")


if __name__ == "__main__":
    h.main_wrapper(test)

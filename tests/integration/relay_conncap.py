#!/usr/bin/env python3
"""The cap on outbound connections over all destinations
(delivery_max_connections_total) end to end.

Twenty domains d1.test ... d20.test are routed to 127.0.0.1:2640 ...
127.0.0.20:2640, so each is a destination of its own, and one bundled
sink listens on 0.0.0.0:2640 and counts the sessions of all of them
(--stats-file: sessions_open, sessions_peak). The cap is 4, and idle
connections would stay open for 60 s, so any connection that closes
sooner was closed to make room.

A second relay, with the default cap, sends a burst of 20 messages to
one slow destination (a sink that waits 500 ms before each reply to the
end of data). A new connection opens only while the ready messages
outnumber the connections that carry one, so at most 10 open, not the
destination's limit of 20.

A third relay, with a cap of 2, gets a backlog for a slow destination
that takes both slots, then messages for a fast one. The slow
destination must give up one connection after its current transaction,
so the fast one delivers while the slow backlog still waits.

Last, ringrelay -t checks the names in the destinations object.

Usage (inside netns_run.sh): relay_conncap.py BUILD_DIR
"""
import re
import smtplib
import subprocess
import time

import harness as h

SINK_PORT = 2640
BURST_PORT = 2641
SLOW_PORT = 2642
FAST_PORT = 2643
SLOW_BACKLOG = 20
FAST_MESSAGES = 10
BURST = 20
DOMAINS = 20
CAP = 4
PER_DOMAIN = 5

CONFIG = """
listen = "127.0.0.1:2525";
queue_dir = "{queue}";
hostname = "relay.test";
durability = none;
log_level = "debug";
retry_interval = 1s;
retry_max_interval = 2s;
relay_networks = ["127.0.0.1/32"];
delivery_max_connections_total = {cap};
delivery_connection_idle_timeout = 60s;
routes {{
{routes}
}}
"""


BURST_CONFIG = """
listen = "127.0.0.1:2525";
queue_dir = "{queue}";
hostname = "relay.test";
durability = none;
relay_networks = ["127.0.0.1/32"];
routes {{
    "burst.test" = "127.0.0.1:{port}";
}}
"""


YIELD_CONFIG = """
listen = "127.0.0.1:2525";
queue_dir = "{queue}";
hostname = "relay.test";
durability = none;
log_level = "debug";
relay_networks = ["127.0.0.1/32"];
delivery_max_connections_total = 2;
delivery_connection_idle_timeout = 60s;
routes {{
    "slow.test" = "127.0.0.1:{slow}";
    "fast.test" = "127.0.0.1:{fast}";
}}
"""


def dest_name(index):
    return f"127.0.0.{index}:{SINK_PORT}"


def message(domain, index):
    return (f"From: sender@client.test\r\nTo: r{index}@{domain}\r\n"
            f"Subject: {domain} {index}\r\n\r\nbody {index}\r\n").encode()


def send(pairs):
    """Send one message to each (domain, index) over one connection."""
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        for domain, index in pairs:
            client.sendmail("sender@client.test", [f"r{index}@{domain}"],
                            message(domain, index))


def test_reclaim_idle(tap, harness, store, stats):
    """Four destinations leave one idle connection each, so a fifth
    must close the least recently used one to get a slot."""
    for index in range(1, CAP + 1):
        send([(f"d{index}.test", index)])
        arrived = h.wait_for(lambda: len(h.read_stored(store)) == index, 10)
        tap.check(arrived, f"reclaim: message to d{index}.test arrives")
    idle = h.wait_for(lambda: h.sink_stat(stats, "sessions_open") == CAP, 5)
    tap.check(idle, f"reclaim: {CAP} idle connections stay open",
              h.read_sink_stats(stats))

    started = time.monotonic()
    send([(f"d{CAP + 1}.test", CAP + 1)])
    arrived = h.wait_for(lambda: len(h.read_stored(store)) == CAP + 1, 10)
    elapsed = time.monotonic() - started
    tap.check(arrived, "reclaim: message to a fifth destination arrives")
    tap.check(elapsed < 10, "reclaim: well before the 60 s idle timeout",
              f"{elapsed:.1f}s")
    log = harness.log_text("ringrelay")
    tap.check(re.search(r"event=connection-slot-wait dest="
                        + re.escape(dest_name(CAP + 1)), log) is not None,
              "reclaim: the fifth destination waits for a slot")
    reclaimed = re.findall(r"event=idle-connection-reclaimed dest=(\S+)",
                           log)
    tap.check(reclaimed == [dest_name(1)],
              "reclaim: the least recently used idle connection closes",
              reclaimed)
    settled = h.wait_for(lambda: h.sink_stat(stats, "sessions_open") == CAP, 5)
    tap.check(settled, f"reclaim: {CAP} connections open afterwards",
              h.read_sink_stats(stats))


def test_cap_under_load(tap, harness, store, stats, before):
    """Five messages to each of the twenty destinations, sent round
    robin, all arrive over at most CAP connections at once."""
    pairs = [(f"d{index}.test", 100 + round_ * DOMAINS + index)
             for round_ in range(PER_DOMAIN)
             for index in range(1, DOMAINS + 1)]
    send(pairs)
    total = before + len(pairs)
    arrived = h.wait_for(lambda: len(h.read_stored(store)) == total, 90)
    stored = h.read_stored(store)
    tap.check(arrived, f"load: all {len(pairs)} messages arrive",
              f"{len(stored) - before} arrived")
    rcpts = sorted(rcpt for _, rcpts, _ in stored for rcpt in rcpts)
    tap.check(len(rcpts) == len(set(rcpts)), "load: no message twice")
    for index in range(1, DOMAINS + 1):
        got = sum(1 for rcpt in rcpts if rcpt.endswith(f"@d{index}.test"))
        expected = PER_DOMAIN + (1 if index <= CAP + 1 else 0)
        if got != expected:
            tap.check(False, f"load: d{index}.test gets its messages",
                      f"{got} of {expected}")
    peak = h.sink_stat(stats, "sessions_peak")
    tap.check(0 < peak <= CAP,
              f"load: the sink never sees more than {CAP} sessions",
              h.read_sink_stats(stats))
    log = harness.log_text("ringrelay")
    waits = re.findall(r"event=connection-slot-wait dest=(\S+)", log)
    tap.check(len(set(waits)) > CAP,
              "load: many destinations wait for a slot", len(set(waits)))


def start_sink(harness, name, port, delay_ms):
    store = harness.path(name + "-store")
    stats = harness.path(name + ".stats")
    harness.start(name, [harness.binary("bench/ringrelay-bench"), "sink",
                         "--listen", f"0.0.0.0:{port}", "--store", store,
                         "--stats-file", stats,
                         "--data-delay", str(delay_ms)])
    listening = h.wait_port("127.0.0.1", port)
    # wait_port's probe connection is the sink's first session.
    h.wait_for(lambda: h.sink_stat(stats, "sessions_total") == 1
               and h.sink_stat(stats, "sessions_open") == 0, 5)
    return listening, store, stats


def test_burst(tap, harness):
    """A burst to one slow destination opens at most half as many
    connections as messages."""
    listening, store, stats = start_sink(harness, "burst", BURST_PORT, 500)
    tap.check(listening, "burst: sink listens")
    config = h.write_config(harness, BURST_CONFIG.format(
        queue=harness.path("burst-queue"), port=BURST_PORT),
        name="burst.conf")
    relay = h.start_relay(harness, config, name="burst-relay")
    send([("burst.test", index) for index in range(BURST)])
    arrived = h.wait_for(lambda: len(h.read_stored(store)) == BURST, 30)
    tap.check(arrived, f"burst: all {BURST} messages arrive",
              len(h.read_stored(store)))
    h.wait_for(lambda: h.sink_stat(stats, "messages") == BURST, 3)
    peak = h.sink_stat(stats, "sessions_peak")
    tap.check(1 < peak <= BURST // 2,
              f"burst: 2 to {BURST // 2} connections at once, not {BURST}",
              h.read_sink_stats(stats))
    tap.check(harness.stop(relay) == 0, "burst: relay stops cleanly")


def test_busy_yield(tap, harness):
    """A slow destination with a backlog takes both slots of a cap of 2,
    and must hand one to a fast destination after its current
    transaction instead of keeping it until the backlog is gone."""
    listening, slow_store, _ = start_sink(harness, "slow", SLOW_PORT, 500)
    tap.check(listening, "yield: slow sink listens")
    listening, fast_store, _ = start_sink(harness, "fast", FAST_PORT, 0)
    tap.check(listening, "yield: fast sink listens")
    config = h.write_config(harness, YIELD_CONFIG.format(
        queue=harness.path("yield-queue"), slow=SLOW_PORT, fast=FAST_PORT),
        name="yield.conf")
    relay = h.start_relay(harness, config, name="yield-relay")

    send([("slow.test", index) for index in range(SLOW_BACKLOG)])
    send([("fast.test", index) for index in range(FAST_MESSAGES)])
    fast_done = h.wait_for(
        lambda: len(h.read_stored(fast_store)) == FAST_MESSAGES, 30)
    slow_at_fast_done = len(h.read_stored(slow_store))
    tap.check(fast_done, f"yield: all {FAST_MESSAGES} fast messages arrive",
              len(h.read_stored(fast_store)))
    # Two slow connections deliver about 4 messages a second, so the fast
    # messages, delivered in about a second once a slot is free, must be
    # done with most of the slow backlog still queued.
    tap.check(slow_at_fast_done <= SLOW_BACKLOG // 2,
              "yield: fast delivery ends while the slow backlog waits",
              f"{slow_at_fast_done} of {SLOW_BACKLOG} slow messages "
              "delivered by then")

    slow_done = h.wait_for(
        lambda: len(h.read_stored(slow_store)) == SLOW_BACKLOG, 30)
    tap.check(slow_done, f"yield: all {SLOW_BACKLOG} slow messages arrive",
              len(h.read_stored(slow_store)))
    log = harness.log_text("yield-relay")
    slow_dest = f"127.0.0.1:{SLOW_PORT}"
    fast_dest = f"127.0.0.1:{FAST_PORT}"
    tap.check(re.search(r"event=connection-slot-wait dest="
                        + re.escape(fast_dest), log) is not None,
              "yield: the fast destination waits for a slot")
    yielded = re.findall(r"event=connection-yielded dest=(\S+)", log)
    tap.check(yielded[:1] == [slow_dest],
              "yield: a slow connection ends for the waiting destination",
              yielded)
    tap.check(harness.stop(relay) == 0, "yield: relay stops cleanly")
    line = re.search(r"event=outbound-connections .*yielded=(\d+)",
                     harness.log_text("yield-relay"))
    tap.check(line is not None and int(line.group(1)) == len(yielded),
              "yield: the stop line counts yielded connections",
              line.group(0) if line is not None else None)


def check_config(harness, name, text):
    """Run ringrelay -t on text; returns the CompletedProcess."""
    path = h.write_config(harness, text, name=name)
    return subprocess.run([harness.binary("ringrelay"), "-t", "-c", path],
                          capture_output=True, text=True, timeout=30)


def test_destination_names(tap, harness):
    """ringrelay -t rejects a destination name of no valid form, and
    warns about one that no delivery uses, naming the one to use."""
    base = f'queue_dir = "{harness.path("names-queue")}";\n'
    result = check_config(harness, "bad-name.conf", base + (
        'destinations {\n  "127.0.0.1:99999" { max_connections = 2; }\n}\n'))
    tap.check(result.returncode == 1, "names: -t rejects port 99999",
              result.stderr)
    tap.check("bad-name.conf:3: invalid value for 'destinations': "
              "destination '127.0.0.1:99999': port '99999' is not a "
              "number from 1 to 65535" in result.stderr,
              "names: the error has file, line and reason", result.stderr)

    result = check_config(harness, "routed-name.conf", base + (
        'routes { "slow.test" = "127.0.0.4"; }\n'
        'destinations {\n'
        '  "slow.test" { max_connections = 2; }\n'
        '  "127.0.0.4:25" { max_connections = 3; }\n'
        '}\n'))
    tap.check(result.returncode == 0, "names: -t accepts a routed domain",
              result.stderr)
    tap.check("warning: " in result.stderr and "routed-name.conf:4: "
              "destination 'slow.test' matches no delivery" in result.stderr,
              "names: -t warns about the routed domain", result.stderr)
    tap.check("the destination is '127.0.0.4:25'" in result.stderr,
              "names: the warning names the route's destination",
              result.stderr)
    tap.check("destination '127.0.0.4:25'" not in result.stderr,
              "names: -t accepts the route's HOST:PORT", result.stderr)


def test(tap, harness):
    routes = "\n".join(f'    "d{index}.test" = "{dest_name(index)}";'
                       for index in range(1, DOMAINS + 1))
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue"), cap=CAP, routes=routes))
    listening, store, stats = start_sink(harness, "sink", SINK_PORT, 100)
    tap.check(listening, "sink listens")
    relay = h.start_relay(harness, config)

    test_reclaim_idle(tap, harness, store, stats)
    test_cap_under_load(tap, harness, store, stats, CAP + 1)

    tap.check(harness.stop(relay) == 0, "relay stops cleanly")
    line = re.search(r"event=outbound-connections peak=(\d+) cap=(\d+) "
                     r"slot_waits=(\d+) idle_reclaimed=(\d+)",
                     harness.log_text("ringrelay"))
    tap.check(line is not None, "stop: the relay logs its connection counts")
    if line is not None:
        peak, cap, waits, reclaimed = (int(v) for v in line.groups())
        tap.check(peak == CAP, f"stop: peak of {CAP} connections", peak)
        tap.check(cap == CAP, f"stop: cap of {CAP}", cap)
        # At least every destination beyond the cap waited once; how many
        # more waits there were depends on timing.
        tap.check(waits >= DOMAINS - CAP, "stop: slot waits are counted",
                  waits)
        tap.check(reclaimed > 0, "stop: reclaimed connections are counted",
                  reclaimed)

    test_burst(tap, harness)
    test_busy_yield(tap, harness)
    test_destination_names(tap, harness)


if __name__ == "__main__":
    h.main_wrapper(test)

#!/usr/bin/env python3
"""Queued mail and its retry schedule survive a restart, and mail is
delivered exactly once.

With the sink down, ringrelay accepts messages and defers them. It is
stopped, the sink is started, and ringrelay is started again on the same
queue: it must wait for the retry time stored before the restart
(retry_interval plus up to 20% jitter after the first attempt), then
deliver every
message exactly once as attempt 2. A second relay started on that queue
must exit and say that the queue directory is locked.

Usage (inside netns_run.sh): relay_restart.py BUILD_DIR
"""
import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys

import harness as h

MESSAGES = 30

# The first retry comes RETRY_INTERVAL_S after the first attempt, plus up
# to 20%. It must outlast the stop and restart below, which take a few
# seconds under the sanitizers.
RETRY_INTERVAL_S = 20
# Smaller than the default, to check that the key sizes the files.
SEGMENT_SIZE = 1024 * 1024
FIRST_RETRY_MAX_S = RETRY_INTERVAL_S * 6 // 5
# Rounds of send, SIGKILL and immediate restart.
KILL_ROUNDS = 8

ZONE = {
    ("example.test", "MX"): ["example.test. 300 IN MX 10 mx.example.test."],
    ("mx.example.test", "A"): ["mx.example.test. 300 IN A 127.0.0.1"],
    ("mx.example.test", "AAAA"): [],
}

CONFIG = f"""
queue_dir = "{{queue}}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
# The test MX host is 127.0.0.1, which MX delivery skips by default.
mx_allow_loopback = true;
retry_interval = {RETRY_INTERVAL_S};
segment_size = {SEGMENT_SIZE};
# Every message must make its own failed attempt while the sink is down,
# so that each has a stored retry time: an open breaker would hold the
# later ones back without an attempt.
delivery_breaker_failures = 0;
"""


def message(index):
    return (f"From: sender@client.test\r\nTo: rcpt{index}@example.test\r\n"
            f"Subject: restart {index}\r\n\r\nbody of message {index}\r\n"
            ).encode()


def test(tap, harness):
    store = harness.path("store")
    h.start_name_server(harness, ZONE)
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")))
    relay = h.start_relay(harness, config)

    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        for index in range(MESSAGES):
            client.sendmail("sender@client.test",
                            [f"rcpt{index}@example.test"], message(index))
    deferred = h.wait_for(
        lambda: harness.log_text("ringrelay").count("event=deferred")
        >= MESSAGES, timeout=30)
    tap.check(deferred, "messages are deferred while the sink is down")
    sizes = [os.path.getsize(os.path.join(harness.path("queue"), name))
             for name in os.listdir(harness.path("queue"))
             if name.startswith("seg-")]
    tap.check(sizes and all(size == SEGMENT_SIZE for size in sizes),
              "segment files have the configured segment_size", sizes)
    tap.check(harness.stop(relay) == 0, "relay stops cleanly")

    h.start_sink(harness, store)
    relay = h.start_relay(harness, config, name="ringrelay-restarted")
    check_schedule_resumed(tap, harness)
    arrived = h.wait_for(lambda: len(h.read_stored(store)) >= MESSAGES,
                         timeout=FIRST_RETRY_MAX_S + 60)
    tap.check(arrived, "every queued message arrives after the restart",
              f"{len(h.read_stored(store))} of {MESSAGES}")
    h.wait_for(lambda: False, timeout=1)

    counts = {}
    for _, rcpts, content in h.read_stored(store):
        for rcpt in rcpts:
            counts[rcpt] = counts.get(rcpt, 0) + 1
        index = int(rcpts[0][len("rcpt"):].split("@")[0])
        tap.check(h.strip_received(content) == message(index),
                  f"message {index} arrives byte for byte")
    for index in range(MESSAGES):
        rcpt = f"rcpt{index}@example.test"
        tap.check(counts.get(rcpt) == 1, f"message {index} arrives once",
                  f"arrived {counts.get(rcpt, 0)} times")
    log = harness.log_text("ringrelay-restarted")
    delivered = re.findall(r"event=delivered .* attempt=(\d+) ", log)
    tap.check(len(delivered) == MESSAGES and set(delivered) == {"2"},
              "every message is delivered by attempt 2", delivered)
    tap.check(re.search(rf"event=queue_opened .*messages={MESSAGES} ", log),
              "restart logs the recovered messages")
    test_second_relay_locked_out(tap, harness, relay)
    tap.check(harness.stop(relay) == 0, "restarted relay stops cleanly")
    test_restart_after_kill(tap, harness)
    test_control_listener_exited(tap, harness)
    test_control_listener_running(tap, harness)
    test_quarantine_keeps_hold(tap, harness)


def check_schedule_resumed(tap, harness):
    """The restarted relay must wait for the stored retry time of every
    message, which is attempt 2, instead of retrying at once."""
    pattern = r"event=retry-scheduled .*next_attempt=(\d+) in=(\d+)s"
    scheduled = h.wait_for(
        lambda: len(re.findall(pattern, harness.log_text(
            "ringrelay-restarted"))) >= MESSAGES, timeout=30)
    log = harness.log_text("ringrelay-restarted")
    found = re.findall(pattern, log)
    tap.check(scheduled, "restart schedules a retry for every message",
              f"{len(found)} of {MESSAGES}")
    tap.check(all(attempt == "2" for attempt, _ in found),
              "recovered retries are attempt 2", found)
    tap.check(all(0 < int(delay) <= FIRST_RETRY_MAX_S for _, delay in found),
              "recovered retries wait for the stored time", found)
    tap.check("event=delivered" not in log and "event=deferred" not in log,
              "restart does not retry at once", log)


def test_second_relay_locked_out(tap, harness, relay):
    """A second relay on the queue directory that relay holds must exit
    and name the lock, its file and the holder's PID."""
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue")) + 'listen = "127.0.0.1:2530";\n',
        name="second.conf")
    second = harness.start("ringrelay-second", [
        harness.binary("ringrelay"), "-c", config])
    try:
        status = second.wait(timeout=30)
    except subprocess.TimeoutExpired:
        status = None
        harness.stop(second)
    tap.check(status not in (None, 0), "second relay on a locked queue "
              "exits with an error", status)
    log = harness.log_text("ringrelay-second")
    lock_file = harness.path("queue") + "/journal"
    tap.check(f"event=queue_locked dir={harness.path('queue')} "
              f"lock_file={lock_file} holder_pid={relay.pid} " in log,
              "second relay logs the lock file and the holder's PID", log)
    tap.check("error=\"the queue directory is locked by another ringrelay "
              "process\"" in log,
              "second relay blames the identified holder", log)
    tap.check('error="queue open failed: the queue directory is locked by '
              'another process"' in log,
              "second relay's queue error names the lock", log)
    tap.check("Resource temporarily unavailable" not in log,
              "second relay logs no bare errno text", log)


def test_restart_after_kill(tap, harness):
    """A relay started right after the previous one was killed with
    SIGKILL and reaped must come up every time. The killed process's
    listening socket and journal lock can outlive it by a moment."""
    port = 2532
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("kill-queue"))
        + f'listen = "127.0.0.1:{port}";\n', name="kill.conf")
    argv = [harness.binary("ringrelay"), "-c", config]
    relay = harness.start("ringrelay-kill-0", argv)
    for round_number in range(1, KILL_ROUNDS + 1):
        name = relay.test_name
        up = h.wait_for(lambda: relay.poll() is not None
                        or "event=start " in harness.log_text(name),
                        timeout=20, interval=0.02)
        tap.check(up and relay.poll() is None,
                  f"relay comes up in kill round {round_number}",
                  harness.log_text(name))
        if relay.poll() is not None:
            harness.stop(relay)
            return
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("sender@client.test", ["rcpt0@example.test"],
                            message(round_number))
        harness.stop(relay, sig=signal.SIGKILL)
        relay = harness.start(f"ringrelay-kill-{round_number}", argv)
    name = relay.test_name
    up = h.wait_for(lambda: relay.poll() is not None
                    or "event=start " in harness.log_text(name),
                    timeout=20, interval=0.02)
    tap.check(up and relay.poll() is None, "last restart comes up",
              harness.log_text(name))
    tap.check(harness.stop(relay) == 0, "last restarted relay stops")


def control_config(harness, name, port):
    queue = harness.path(f"{name}-queue")
    os.makedirs(queue, mode=0o700, exist_ok=True)
    config = h.write_config(harness, CONFIG.format(queue=queue)
                            + f'listen = "127.0.0.1:{port}";\n',
                            name=f"{name}.conf")
    return queue, [harness.binary("ringrelay"), "-c", config]


def test_control_listener_exited(tap, harness):
    """A control socket that still accepts, although the process that
    listens on it has exited, as after SIGKILL while the kernel closes the
    files of its io_uring instance, is waited for."""
    queue, argv = control_config(harness, "ctl-exited", 2534)
    path = os.path.join(queue, "control")
    # The listener's creator exits at once. A child keeps the socket for
    # HOLD_S, as the kernel keeps a killed relay's files for a moment.
    code = ("import os, socket, time\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.bind({path!r})\n"
            "s.listen(4)\n"
            "if os.fork() == 0:\n"
            "    time.sleep(1.5)\n"
            "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    relay, up = start_and_wait(harness, argv, "ringrelay-ctl-exited")
    log = harness.log_text("ringrelay-ctl-exited")
    tap.check(up, "relay waits for a control listener that has exited",
              log)
    tap.check("level=warning event=control_wait " in log,
              "relay logs the control socket wait", log)
    tap.check(harness.stop(relay) == 0, "relay after the wait stops cleanly")


def test_control_listener_running(tap, harness):
    """A control socket that a running process accepts on makes the start
    fail at once, naming that PID, and a failed start logs no queue
    statistics."""
    queue, argv = control_config(harness, "ctl-running", 2535)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(os.path.join(queue, "control"))
    listener.listen(4)
    try:
        relay = harness.start("ringrelay-ctl-running", argv)
        try:
            status = relay.wait(timeout=30)
        except subprocess.TimeoutExpired:
            status = None
            harness.stop(relay)
    finally:
        listener.close()
    log = harness.log_text("ringrelay-ctl-running")
    tap.check(status == 1, "relay exits 1 on a live control socket", status)
    tap.check(f"event=control_failed path={queue}/control "
              f"holder_pid={os.getpid()} waited_ms=0 " in log,
              "relay names the listener's PID without waiting", log)
    tap.check("event=queue_sync_stats" not in log,
              "failed start logs no queue_sync_stats", log)


def run_queue_tool(harness, queue, *args):
    done = subprocess.run([harness.binary("tools/ringrelay-queue"), "-q",
                           queue, *args], capture_output=True, text=True,
                          timeout=30)
    return done.returncode, done.stdout, done.stderr


def xor_header_bytes(path):
    """Flip bytes 4-7 of a segment header: its version and reserved
    bytes. A second call restores them."""
    with open(path, "r+b") as segment:
        segment.seek(4)
        data = bytes(b ^ 0xFF for b in segment.read(4))
        segment.seek(4)
        segment.write(data)


def start_and_wait(harness, argv, name):
    relay = harness.start(name, argv)
    up = h.wait_for(lambda: relay.poll() is not None
                    or "event=start " in harness.log_text(name),
                    timeout=20, interval=0.02)
    return relay, up and relay.poll() is None


def test_quarantine_keeps_hold(tap, harness):
    """A held message whose segment fails its header check moves to
    corrupt/, and after the file is repaired and moved back, even after a
    start in between, the message is still held."""
    port = 2533
    queue = harness.path("corrupt-queue")
    config = h.write_config(harness, CONFIG.format(queue=queue)
                            + f'listen = "127.0.0.1:{port}";\n',
                            name="corrupt.conf")
    argv = [harness.binary("ringrelay"), "-c", config]
    relay, up = start_and_wait(harness, argv, "ringrelay-corrupt-0")
    tap.check(up, "relay on a new queue comes up")
    # Nothing listens on 127.0.0.2:25, so the message stays deferred.
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("sender@client.test", ["held@[127.0.0.2]"],
                        message(0))
    status, out, err = run_queue_tool(harness, queue, "--json", "list")
    ids = [m["id"] for m in json.loads(out)["messages"]] if status == 0 \
        else []
    tap.check(len(ids) == 1, "one message is queued", out + err)
    if len(ids) != 1:
        harness.stop(relay)
        return
    status, out, err = run_queue_tool(harness, queue, "hold", ids[0])
    tap.check(status == 0, "hold exits 0", out + err)
    tap.check(harness.stop(relay) == 0, "relay stops cleanly")

    segment = os.path.join(queue, "seg-00000001")
    quarantined = os.path.join(queue, "corrupt", "seg-00000001")
    xor_header_bytes(segment)
    for number in (1, 2):
        relay, up = start_and_wait(harness, argv,
                                   f"ringrelay-corrupt-{number}")
        tap.check(up, f"relay with a damaged segment comes up ({number})")
        harness.stop(relay)
    log = harness.log_text("ringrelay-corrupt-1")
    tap.check("event=queue_segment_invalid segment=seg-00000001 "
              "reason=unknown_version action=quarantine" in log,
              "invalid segment is logged with its reason", log)
    tap.check(f"file={quarantined} " in log,
              "quarantine names the file", log)
    tap.check(os.path.exists(quarantined) and not os.path.exists(segment),
              "invalid segment is moved to corrupt/")

    xor_header_bytes(quarantined)
    os.rename(quarantined, segment)
    relay, up = start_and_wait(harness, argv, "ringrelay-corrupt-3")
    tap.check(up, "relay with the repaired segment comes up")
    status, out, err = run_queue_tool(harness, queue, "--json", "list")
    states = [r["state"] for m in json.loads(out)["messages"]
              for r in m["recipients"]] if status == 0 else []
    tap.check(states == ["held"], "repaired message is still held",
              out + err)
    tap.check(harness.stop(relay) == 0, "relay stops cleanly at the end")


if __name__ == "__main__":
    h.main_wrapper(test)

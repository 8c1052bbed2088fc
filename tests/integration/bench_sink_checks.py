#!/usr/bin/env python3
"""The bundled sink's command line and life cycle: a --listen without a
port, SIGHUP, and the cleanup and file names of its --store.

Runs inside netns_run.sh, because each case binds a sink port.

usage: bench_sink_checks.py BUILD_DIR
"""
import json
import os
import signal
import smtplib
import subprocess

from harness import main_wrapper, wait_port

FIRST_PORT = 2900


class Ports:
    """Hands each sink a port of its own, so that no case waits for the
    port of the case before it to be released."""

    next_port = FIRST_PORT

    @classmethod
    def take(cls):
        cls.next_port += 1
        return cls.next_port


def sink_argv(harness, port, options=()):
    return [harness.binary("bench/ringrelay-bench"), "sink", "--listen",
            f"127.0.0.1:{port}", "--max-seconds", "60", *options]


def start_sink(harness, name, options=()):
    port = Ports.take()
    proc = harness.start(name, sink_argv(harness, port, options))
    if not wait_port("127.0.0.1", port):
        raise RuntimeError(f"sink {name} did not listen on {port}:\n"
                           + harness.log_text(name))
    return proc, port


def check_listen_without_port(tap, harness):
    for listen in ("127.0.0.1", "[::1]"):
        result = subprocess.run(
            [harness.binary("bench/ringrelay-bench"), "sink", "--listen",
             listen], stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=10)
        tap.check(result.returncode == 2,
                  f"--listen {listen}: usage error",
                  f"exit {result.returncode}\n{result.stderr}")
        tap.check(f'invalid --listen "{listen}": missing port'
                  in result.stderr, f"--listen {listen}: message",
                  result.stderr)


def check_sighup(tap, harness):
    report = harness.path("hup.json")
    sink, port = start_sink(harness, "hup", ["--json", report])
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.sendmail("sender@client.test", ["user@example.test"],
                    b"Subject: before the hangup\r\n\r\nbody\r\n")
    client.quit()
    status = harness.stop(sink, sig=signal.SIGHUP)
    tap.check(status == 0, "SIGHUP: sink exits 0", f"exit {status}")
    tap.check("sink summary" in harness.log_text("hup"),
              "SIGHUP: summary printed", harness.log_text("hup"))
    tap.check(os.path.exists(report), "SIGHUP: --json written")
    if os.path.exists(report):
        with open(report) as stream:
            tap.check(json.load(stream)["messages"] == 1,
                      "SIGHUP: JSON counts the message")


def check_store_start(tap, harness):
    """A store that a killed sink left: its partial temporary file goes
    at start, and numbering goes on after the highest stored file."""
    store = harness.path("stale-store")
    os.makedirs(store)
    with open(os.path.join(store, "tmp-4242-7"), "wb") as partial:
        partial.write(b"MAIL FROM:<a@client.test>\r\n")
    with open(os.path.join(store, "000000000003.msg"), "wb") as stored:
        stored.write(b"MAIL FROM:<a@client.test>\r\n\r\nSubject: 3\r\n")
    with open(os.path.join(store, "notes.txt"), "w") as notes:
        notes.write("not the sink's\n")
    sink, port = start_sink(harness, "stale", ["--store", store])
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.sendmail("sender@client.test", ["user@example.test"],
                    b"Subject: after the restart\r\n\r\nbody\r\n")
    client.quit()
    harness.stop(sink)
    names = sorted(os.listdir(store))
    tap.check(names == ["000000000003.msg", "000000000004.msg",
                        "notes.txt"],
              "stale store: temporary file removed, numbering goes on",
              names)
    tap.check("removed 1 stale temporary files from the store"
              in harness.log_text("stale"), "stale store: removal logged",
              harness.log_text("stale"))


def test(tap, harness):
    check_listen_without_port(tap, harness)
    check_sighup(tap, harness)
    check_store_start(tap, harness)


if __name__ == "__main__":
    main_wrapper(test)

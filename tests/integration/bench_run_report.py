#!/usr/bin/env python3
"""What `ringrelay-bench run` reports and why it fails: a relay on ::1,
the reason printed when blast exits 1, recipient copies, and the
--expect that run gives its sink.

Each case runs `ringrelay-bench run` with TMPDIR set to a directory of
its own and reads its text report and --json file. Runs inside
netns_run.sh, because the cases bind the relay's and the sink's ports.

usage: bench_run_report.py BUILD_DIR
"""
import json
import os
import subprocess

from harness import main_wrapper, wait_port

FIRST_PORT = 2800


class Ports:
    """Hands out a port for each server, so that no case waits for the
    port of the case before it to be released."""

    next_port = FIRST_PORT

    @classmethod
    def take(cls):
        cls.next_port += 1
        return cls.next_port


def run_bench(harness, name, args, blast_args):
    """Run `ringrelay-bench run ARGS -- BLAST_ARGS`; return the completed
    process and the --json report (None when it was not written)."""
    tmp = harness.path(name + "-tmp")
    os.makedirs(tmp, exist_ok=True)
    report_path = harness.path(name + ".json")
    result = subprocess.run(
        [harness.binary("bench/ringrelay-bench"), "run", "--json",
         report_path, *args, "--", *blast_args],
        env=dict(os.environ, TMPDIR=tmp), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120)
    report = None
    if os.path.exists(report_path):
        with open(report_path) as stream:
            report = json.load(stream)
    return result, report


def loopback_args(host):
    return ["--listen", f"{host}:{Ports.take()}",
            "--sink-listen", f"{host}:{Ports.take()}"]


def check_ipv6_loopback(tap, harness):
    result, report = run_bench(harness, "ipv6", loopback_args("[::1]"),
                               ["--messages", "200"])
    output = result.stdout + result.stderr
    tap.check(result.returncode == 0, "relay on ::1 exits 0", output)
    tap.check(report is not None and report["accepted"] == 200,
              "relay on ::1 accepts every message", output)
    tap.check(report is not None and report["delivered"] == 200,
              "relay on ::1 delivers every message", output)


def check_rejection_reason(tap, harness):
    port = Ports.take()
    rejecting = harness.start("rejecting", [
        harness.binary("bench/ringrelay-bench"), "sink", "--listen",
        f"127.0.0.1:{port}", "--rcpt-reply", "554 5.7.1 no relay:1",
        "--max-seconds", "60"])
    if not wait_port("127.0.0.1", port):
        raise RuntimeError("the rejecting sink did not listen:\n"
                           + harness.log_text("rejecting"))
    result, _ = run_bench(
        harness, "rejected",
        ["--target", f"127.0.0.1:{port}", "--sink-listen",
         f"127.0.0.1:{Ports.take()}", "--drain-timeout", "1"],
        ["--messages", "20"])
    harness.stop(rejecting)
    tap.check(result.returncode == 1, "all rejected: run exits 1",
              result.stdout + result.stderr)
    tap.check("not every message was accepted: accepted 0, rejected 20"
              in result.stderr, "all rejected: reason names the counts",
              result.stderr)
    tap.check("run: failed: blast had 20 messages rejected"
              in result.stderr, "all rejected: failure named",
              result.stderr)


def check_recipient_copies(tap, harness):
    result, report = run_bench(
        harness, "copies", loopback_args("127.0.0.1"),
        ["--messages", "100", "--rcpts", "3", "--to",
         "user%r@example.test"])
    output = result.stdout + result.stderr
    tap.check(result.returncode == 0, "3 recipients: run exits 0", output)
    if report is None:
        tap.check(False, "3 recipients: --json written", output)
        return
    tap.check(report["accepted"] == 100, "3 recipients: 100 accepted",
              report)
    tap.check(report["accepted_rcpts"] == 300,
              "3 recipients: 300 copies due", report)
    tap.check(report["delivered"] == 300,
              "3 recipients: 300 copies delivered", report)
    tap.check(report["delivered_unit"] == "recipient copies",
              "3 recipients: delivered unit named", report)
    tap.check(report["failures"] == [], "3 recipients: no failure",
              report)
    tap.check("300 distinct recipient copies" in result.stdout,
              "3 recipients: text names the unit", result.stdout)


def check_expect_passed(tap, harness):
    """With --target aimed at a sink of its own, nothing reaches run's
    sink, so each of the 5 messages counts as lost only when run gave
    its sink --expect 5."""
    port = Ports.take()
    other = harness.start("other", [
        harness.binary("bench/ringrelay-bench"), "sink", "--listen",
        f"127.0.0.1:{port}", "--max-seconds", "60"])
    if not wait_port("127.0.0.1", port):
        raise RuntimeError("the other sink did not listen:\n"
                           + harness.log_text("other"))
    result, report = run_bench(
        harness, "expect",
        ["--target", f"127.0.0.1:{port}", "--sink-listen",
         f"127.0.0.1:{Ports.take()}", "--drain-timeout", "1"],
        ["--messages", "5"])
    harness.stop(other)
    output = result.stdout + result.stderr
    tap.check(result.returncode == 1, "nothing delivered: run exits 1",
              output)
    tap.check(report is not None and report["lost"] == 5,
              "nothing delivered: sink counts 5 lost", output)
    tap.check("run: failed: the sink counted 5 recipient copies lost"
              in result.stderr, "nothing delivered: loss named",
              result.stderr)


def test(tap, harness):
    check_expect_passed(tap, harness)
    check_ipv6_loopback(tap, harness)
    check_recipient_copies(tap, harness)
    check_rejection_reason(tap, harness)


if __name__ == "__main__":
    main_wrapper(test)

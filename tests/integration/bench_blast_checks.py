#!/usr/bin/env python3
"""blast against the bundled sink: latency of pipelined commands behind
a slow end of data, empty percentiles, the exit status of --idle after
SIGINT, which --body-dir files it sends, and a --size below the header.

Runs inside netns_run.sh, because each case binds a sink port.

usage: bench_blast_checks.py BUILD_DIR
"""
import json
import os
import signal
import subprocess
import time

from harness import main_wrapper, wait_port

FIRST_PORT = 2700
DATA_DELAY_MS = 100


class Ports:
    """Hands each sink a port of its own, so that no case waits for the
    port of the case before it to be released."""

    next_port = FIRST_PORT

    @classmethod
    def take(cls):
        cls.next_port += 1
        return cls.next_port


def start_sink(harness, name, options=()):
    port = Ports.take()
    proc = harness.start(name, [harness.binary("bench/ringrelay-bench"),
                                "sink", "--listen", f"127.0.0.1:{port}",
                                "--max-seconds", "60", *options])
    if not wait_port("127.0.0.1", port):
        raise RuntimeError(f"sink {name} did not listen on {port}:\n"
                           + harness.log_text(name))
    return proc, port


def run_blast(harness, port, args, timeout=60):
    return subprocess.run(
        [harness.binary("bench/ringrelay-bench"), "blast", "--server",
         f"127.0.0.1:{port}", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout)


def check_pipelined_latency(tap, harness, pipelining):
    name = f"latency-pipelining-{pipelining}"
    sink, port = start_sink(harness, name,
                            ["--data-delay", str(DATA_DELAY_MS)])
    report = harness.path(name + ".json")
    result = run_blast(harness, port,
                       ["--messages", "20", "--connections", "1",
                        "--pipelining", pipelining, "--json", report])
    harness.stop(sink)
    tap.check(result.returncode == 0, f"{name}: blast exits 0",
              result.stdout + result.stderr)
    with open(report) as stream:
        latency = json.load(stream)["latency_ms"]
    # The sink replies to MAIL and RCPT at once and delays only the
    # reply to the final dot.
    for command in ("mail", "rcpt"):
        tap.check(latency[command]["count"] == 20,
                  f"{name}: {command} latency of every message",
                  latency[command])
        tap.check(latency[command]["p50_ms"] < DATA_DELAY_MS / 10,
                  f"{name}: {command} p50 far below the data delay",
                  latency[command])
    tap.check(latency["data"]["p50_ms"] >= DATA_DELAY_MS,
              f"{name}: end of data p50 includes the data delay",
              latency["data"])


def check_empty_percentiles(tap, harness):
    """Every RCPT is rejected, so no end of data gets a reply and the sink
    receives nothing: those percentiles are n/a and null, not 0."""
    sink_json = harness.path("empty-sink.json")
    sink, port = start_sink(harness, "empty",
                            ["--rcpt-reply", "554 5.7.1 no relay:1",
                             "--json", sink_json])
    report = harness.path("empty-blast.json")
    result = run_blast(harness, port, ["--messages", "10", "--json",
                                       report])
    harness.stop(sink)
    with open(report) as stream:
        blast = json.load(stream)
    with open(sink_json) as stream:
        received = json.load(stream)

    data = blast["latency_ms"]["data"]
    tap.check(data["count"] == 0, "nothing accepted: no data latency",
              data)
    tap.check(data["p50_ms"] is None and data["max_ms"] is None,
              "nothing accepted: blast JSON null", data)
    tap.check(all(second["data_p99_ms"] is None
                  for second in blast["series"]),
              "nothing accepted: series null", blast["series"])
    row = [line for line in result.stdout.splitlines()
           if line.strip().startswith("end of data")]
    tap.check(len(row) == 1 and row[0].split()[3:8] == ["n/a"] * 5,
              "nothing accepted: blast text n/a", result.stdout)

    tap.check(received["latency_ms"]["p50"] is None,
              "nothing received: sink JSON null", received["latency_ms"])
    tap.check("latency ms:         n/a (0 messages)"
              in harness.log_text("empty"),
              "nothing received: sink text n/a", harness.log_text("empty"))


def check_idle_status(tap, harness, interrupt):
    name = "idle-sigint" if interrupt else "idle-duration"
    sink, port = start_sink(harness, name)
    report = harness.path(name + ".json")
    blast = subprocess.Popen(
        [harness.binary("bench/ringrelay-bench"), "blast", "--idle",
         "--server", f"127.0.0.1:{port}", "--connections", "5",
         "--duration", "30" if interrupt else "1", "--json", report],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    if interrupt:
        time.sleep(1.5)
        blast.send_signal(signal.SIGINT)
    try:
        output, _ = blast.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        blast.kill()
        output, _ = blast.communicate()
    harness.stop(sink)
    expected = 1 if interrupt else 0
    tap.check(blast.returncode == expected, f"{name}: exits {expected}",
              f"exit {blast.returncode}\n{output}")
    with open(report) as stream:
        summary = json.load(stream)["summary"]
    tap.check(summary.get("interrupted") is interrupt,
              f"{name}: JSON interrupted is {interrupt}", summary)
    tap.check(summary.get("held_at_end") == 5,
              f"{name}: all 5 held to the end", summary)


def write_files(directory, files):
    os.makedirs(directory)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as stream:
            stream.write(text)


def check_body_dir(tap, harness):
    """A README beside the messages is skipped with a warning; a
    directory with nothing else is rejected."""
    mixed = harness.path("bodies-mixed")
    write_files(mixed, {
        "README.md": "# Sample messages\n\nNot a message.\n",
        "a.eml": "Subject: a\n\nbody a\n",
        "b.eml": "Subject: b\n\nbody b\n",
    })
    store = harness.path("bodies-store")
    sink, port = start_sink(harness, "bodies", ["--store", store])
    result = run_blast(harness, port, ["--messages", "4", "--body-dir",
                                       mixed])
    harness.stop(sink)
    tap.check(result.returncode == 0, "README beside messages: exits 0",
              result.stdout + result.stderr)
    warnings = [line for line in result.stderr.splitlines()
                if "skipped" in line]
    tap.check(len(warnings) == 1 and "skipped 1 files" in warnings[0],
              "README beside messages: one warning with the count",
              result.stderr)
    bodies = []
    for name in sorted(os.listdir(store)):
        with open(os.path.join(store, name), "rb") as stream:
            bodies.append(stream.read())
    tap.check(len(bodies) == 4, "README beside messages: 4 stored",
              len(bodies))
    tap.check(not any(b"Sample messages" in body for body in bodies),
              "README beside messages: README not sent")

    only_readme = harness.path("bodies-readme")
    write_files(only_readme, {"README.md": "# Only this\n"})
    result = run_blast(harness, port, ["--messages", "1", "--body-dir",
                                       only_readme])
    tap.check(result.returncode == 2, "only a README: usage error",
              f"exit {result.returncode}\n{result.stderr}")
    tap.check("none of its regular files starts with a header line"
              in result.stderr, "only a README: message", result.stderr)


def check_small_size(tap, harness):
    sink, port = start_sink(harness, "small-size")
    result = run_blast(harness, port, ["--messages", "2", "--size", "10"])
    harness.stop(sink)
    tap.check(result.returncode == 0, "--size 10: exits 0",
              result.stdout + result.stderr)
    tap.check("warning: --size 10 is below the" in result.stderr
              and "header and no body" in result.stderr,
              "--size 10: warns that messages are header only",
              result.stderr)


def test(tap, harness):
    check_pipelined_latency(tap, harness, "on")
    check_pipelined_latency(tap, harness, "off")
    check_empty_percentiles(tap, harness)
    check_idle_status(tap, harness, interrupt=False)
    check_idle_status(tap, harness, interrupt=True)
    check_body_dir(tap, harness)
    check_small_size(tap, harness)


if __name__ == "__main__":
    main_wrapper(test)

"""ringrelay-bench against independent SMTP tools.

blast sends to Postfix's smtp-sink, Postfix's smtp-source and swaks send
to ringrelay-bench sink, and each side's count must match the other's.
A missing tool is a failure that names the Debian package to install.
Runs inside netns_run.sh, so every port is on a private loopback.

usage: bench_peer_tools.py BUILD_DIR
"""
import re
import shutil
import subprocess

from harness import main_wrapper, read_stored, wait_for, wait_port

SMTP_SINK_PORT = 2601
# One port per sink started, because a sink that has just exited may
# still hold its listening address for a moment (seen with io_uring).
SOURCE_SINK_PORT = 2602
SWAKS_SINK_PORT = 2603
# Tool name -> Debian package that installs it.
PACKAGES = {"smtp-sink": "postfix", "smtp-source": "postfix",
            "swaks": "swaks"}


def check_installed(tap, tool):
    found = shutil.which(tool) is not None
    tap.check(found, f"{tool} installed",
              f"{tool} not found: apt-get install {PACKAGES[tool]} "
              "(tools/deps installs it)")
    return found


def run(argv, timeout=60):
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def last_counter(text, name):
    """Return smtp-sink's last NAME=N counter from its -c output."""
    values = re.findall(name + r"=(\d+)", text)
    return int(values[-1]) if values else None


def summary_value(text, label):
    """Return the number after LABEL in the sink's exit summary."""
    match = re.search(re.escape(label) + r":\s*(\d+)", text)
    return int(match.group(1)) if match else None


def test_blast_to_smtp_sink(tap, harness):
    if not check_installed(tap, "smtp-sink"):
        return
    # -u: smtp-sink does not run as root without a user to switch to.
    # -c: print the counters that are checked below.
    sink = harness.start("smtp-sink", [
        "timeout", "120", "smtp-sink", "-u", "nobody", "-c",
        f"127.0.0.1:{SMTP_SINK_PORT}", "128"])
    if not tap.check(wait_port("127.0.0.1", SMTP_SINK_PORT),
                     "smtp-sink listens", harness.log_text("smtp-sink")):
        return
    result = run([harness.binary("bench/ringrelay-bench"), "blast",
                  "--server", f"127.0.0.1:{SMTP_SINK_PORT}",
                  "--connections", "4", "--messages", "200",
                  "--size", "2000", "--timeout", "60"])
    tap.check(result.returncode == 0, "blast to smtp-sink exits 0",
              result.stdout + result.stderr)
    tap.check(summary_value(result.stdout, "accepted (2xx)") == 200,
              "blast counts 200 accepted", result.stdout)
    harness.stop(sink)
    counted = last_counter(harness.log_text("smtp-sink"), "mesg")
    tap.check(counted == 200, "smtp-sink counts 200 messages",
              f"smtp-sink counted {counted}")


def test_smtp_source_to_sink(tap, harness):
    if not check_installed(tap, "smtp-source"):
        return
    store = harness.path("store-source")
    sink = start_bench_sink(harness, "sink-source", store, SOURCE_SINK_PORT)
    # -d: send every message of a session over one connection.
    result = run(["smtp-source", "-d", "-s", "5", "-m", "50", "-l", "700",
                  "-M", "source.example.test",
                  "-f", "source@example.test", "-t", "rcpt@example.test",
                  f"127.0.0.1:{SOURCE_SINK_PORT}"])
    tap.check(result.returncode == 0, "smtp-source to sink exits 0",
              result.stdout + result.stderr)
    harness.stop(sink)
    log = harness.log_text("sink-source")
    tap.check(summary_value(log, "messages accepted") == 50,
              "sink counts 50 from smtp-source", log)
    tap.check(summary_value(log, "sessions") == 5,
              "sink counts 5 smtp-source sessions", log)
    stored = read_stored(store)
    tap.check(len(stored) == 50, "sink stores 50 from smtp-source",
              f"{len(stored)} files in {store}")
    envelopes_ok = all(sender == "source@example.test"
                       and rcpts == ["rcpt@example.test"]
                       for sender, rcpts, _ in stored)
    tap.check(envelopes_ok, "stored smtp-source envelopes match",
              repr([(s, r) for s, r, _ in stored[:3]]))
    sizes_ok = all(len(content) >= 700 for _, _, content in stored)
    tap.check(sizes_ok, "stored smtp-source bodies complete",
              repr(sorted(len(c) for _, _, c in stored)[:5]))


def test_swaks_to_sink(tap, harness):
    if not check_installed(tap, "swaks"):
        return
    store = harness.path("store-swaks")
    sink = start_bench_sink(harness, "sink-swaks", store, SWAKS_SINK_PORT)
    for label, extra in (("plain", []), ("pipelined", ["--pipeline"])):
        result = run(["swaks", "--server", f"127.0.0.1:{SWAKS_SINK_PORT}",
                      "--helo", "swaks.example.test",
                      "--from", "swaks@example.test",
                      "--to", f"{label}@example.test",
                      "--header", f"Subject: swaks {label}",
                      "--body", f"Body sent by swaks, {label}."] + extra)
        tap.check(result.returncode == 0, f"swaks {label} exits 0",
                  result.stdout + result.stderr)
    harness.stop(sink)
    log = harness.log_text("sink-swaks")
    tap.check(summary_value(log, "messages accepted") == 2,
              "sink counts 2 from swaks", log)
    stored = read_stored(store)
    tap.check(len(stored) == 2, "sink stores 2 from swaks",
              f"{len(stored)} files in {store}")
    for label, (sender, rcpts, content) in zip(("plain", "pipelined"),
                                               stored):
        tap.check(sender == "swaks@example.test"
                  and rcpts == [f"{label}@example.test"],
                  f"swaks {label} envelope stored", repr((sender, rcpts)))
        tap.check(f"Subject: swaks {label}\r\n".encode() in content
                  and f"Body sent by swaks, {label}.".encode() in content,
                  f"swaks {label} content stored", repr(content[:400]))


def start_bench_sink(harness, name, store, port):
    proc = harness.start(name, [
        harness.binary("bench/ringrelay-bench"), "sink",
        "--listen", f"127.0.0.1:{port}", "--store", store,
        "--max-seconds", "120"])
    # Wait for the log line, because a probe connection would count as a
    # session in the summary that the tests check.
    if not wait_for(lambda: "listening on" in harness.log_text(name), 10):
        raise RuntimeError(f"sink did not listen on {port}:\n"
                           + harness.log_text(name))
    return proc


def test(tap, harness):
    test_blast_to_smtp_sink(tap, harness)
    test_smtp_source_to_sink(tap, harness)
    test_swaks_to_sink(tap, harness)


if __name__ == "__main__":
    main_wrapper(test)

#!/usr/bin/env python3
"""ringrelay-bench run rejects bad command lines, cleans up after a
failed start and fails when the relay it started dies.

Each case runs `ringrelay-bench run` with TMPDIR set to a fresh
directory and checks the exit status and the message. A case that fails
before any child starts must leave no working directory; a case that
fails later must keep it and name it. Runs inside netns_run.sh, because
cases bind the sink's and the relay's ports.

usage: bench_run_errors.py BUILD_DIR
"""
import os
import shutil
import signal
import socket
import subprocess
import time

from harness import main_wrapper, wait_port

SINK_PORT = 2626
RELAY_PORT = 2627


def run_bench(harness, args):
    env = dict(os.environ, TMPDIR=harness.path("tmp"))
    os.makedirs(env["TMPDIR"], exist_ok=True)
    return subprocess.run(
        [harness.binary("bench/ringrelay-bench"), "run"] + args,
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60)


def check_case(tap, harness, name, args, status, message):
    result = run_bench(harness, args)
    output = result.stdout + result.stderr
    tap.check(result.returncode == status, f"{name} exits {status}",
              f"exit {result.returncode}\n{output}")
    tap.check(message in output, f"{name} message", output)
    left = os.listdir(harness.path("tmp"))
    tap.check(left == [], f"{name} leaves no work dir", repr(left))


def test(tap, harness):
    check_case(tap, harness, "help", ["--help"], 0, "--target HOST:PORT")
    check_case(tap, harness, "reserved --server",
               ["--", "--connections", "2", "--server=127.0.0.1:25"], 2,
               "--server is set by run")
    check_case(tap, harness, "reserved --stats-file",
               ["--", "--stats-file", "x"], 2,
               "--stats-file is set by run")
    check_case(tap, harness, "invalid durability",
               ["--durability", "fast"], 2, 'invalid --durability "fast"')
    check_case(tap, harness, "stray argument", ["stray"], 2,
               'unexpected argument "stray"')
    check_case(tap, harness, "target with relay",
               ["--target", "127.0.0.1:2525", "--relay", "/bin/true"], 2,
               "--relay and --durability do not apply")
    check_case(tap, harness, "missing relay",
               ["--relay", harness.path("no-such-relay")], 2,
               f"invalid --relay {harness.path('no-such-relay')}: not "
               f"executable: No such file or directory")
    check_case(tap, harness, "blast rejects options", ["--", "--bogus"], 2,
               'run: blast rejected its options (exit status 2): blast: '
               'unknown or ambiguous option "--bogus"')
    result = run_bench(harness, ["--", "--messages", "x"])
    tap.check("--stats-file?" not in result.stderr,
              "blast usage error: no --stats-file hint", result.stderr)
    check_case(tap, harness, "invalid sink address",
               ["--sink-listen", "[::1"], 2, "invalid --sink-listen")
    missing = harness.path("no-such-dir", "run.json")
    check_case(tap, harness, "json in missing dir", ["--json", missing], 2,
               f"cannot write the --json file {missing}: No such file or "
               f"directory")
    check_case(tap, harness, "json is a directory",
               ["--json", harness.path("tmp")], 2,
               f"cannot write the --json file {harness.path('tmp')}: Is a "
               f"directory")
    check_case(tap, harness, "relay on sink address",
               ["--listen", f"127.0.0.1:{SINK_PORT}", "--sink-listen",
                f"127.0.0.1:{SINK_PORT}", "--", "--messages", "10"], 2,
               f"--listen 127.0.0.1:{SINK_PORT} and --sink-listen "
               f"127.0.0.1:{SINK_PORT} are the same address")
    check_case(tap, harness, "relay under sink wildcard",
               ["--listen", f"127.0.0.1:{SINK_PORT}", "--sink-listen",
                f"0.0.0.0:{SINK_PORT}"], 2, "are the same address")
    check_case(tap, harness, "target on sink address",
               ["--target", f"127.0.0.1:{SINK_PORT}", "--sink-listen",
                f"127.0.0.1:{SINK_PORT}"], 2,
               f"--target 127.0.0.1:{SINK_PORT} and --sink-listen")

    # A port that another process listens on must be refused before any
    # child starts, or the start-up probes would reach that process.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", SINK_PORT))
    holder.listen(8)
    try:
        check_case(tap, harness, "sink port taken",
                   ["--sink-listen", f"127.0.0.1:{SINK_PORT}", "--",
                    "--messages", "1"], 1,
                   f"another process already listens on 127.0.0.1:"
                   f"{SINK_PORT}; pass --sink-listen")
        check_case(tap, harness, "relay port taken",
                   ["--listen", f"127.0.0.1:{SINK_PORT}", "--",
                    "--messages", "1"], 1,
                   f"another process already listens on 127.0.0.1:"
                   f"{SINK_PORT}; pass --listen")
    finally:
        holder.close()

    check_sink_covers_relay(tap, harness)
    check_relay_killed(tap, harness)


def check_kept_dir(tap, harness, name, output):
    """Check that the failed run kept its working directory and named
    it, then remove the directory for the next case."""
    left = os.listdir(harness.path("tmp"))
    tap.check(len(left) == 1, f"{name} keeps its work dir", repr(left))
    for entry in left:
        tap.check(f"kept logs, stats and queue in "
                  f"{harness.path('tmp', entry)}" in output,
                  f"{name} names its work dir", output)
        tap.check(os.path.exists(harness.path("tmp", entry, "relay.log")),
                  f"{name} keeps relay.log", repr(left))
        shutil.rmtree(harness.path("tmp", entry))


def check_sink_covers_relay(tap, harness):
    """A sink on [::] also takes IPv4 connections, so the relay cannot
    bind 127.0.0.1 on that port and the start-up probe would reach the
    sink. The option check compares one address family only, so this is
    caught once the sink listens."""
    name = "relay covered by sink"
    result = run_bench(harness, ["--sink-listen", f"[::]:{SINK_PORT}",
                                 "--listen", f"127.0.0.1:{SINK_PORT}",
                                 "--", "--messages", "10"])
    output = result.stdout + result.stderr
    tap.check(result.returncode == 1, f"{name} exits 1",
              f"exit {result.returncode}\n{output}")
    tap.check(f"--listen 127.0.0.1:{SINK_PORT} accepts connections as "
              f"soon as the sink listens" in output, f"{name} message",
              output)
    tap.check("delivered" not in result.stdout, f"{name} has no report",
              output)
    left = os.listdir(harness.path("tmp"))
    tap.check(len(left) == 1, f"{name} keeps its work dir", repr(left))
    for entry in left:
        shutil.rmtree(harness.path("tmp", entry))


def relay_pid(run_pid):
    """Return the PID of the ringrelay child of the run process."""
    with open(f"/proc/{run_pid}/task/{run_pid}/children") as children:
        pids = [int(pid) for pid in children.read().split()]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv0 = cmdline.read().split(b"\0")[0]
        except OSError:
            continue
        if argv0.endswith(b"/ringrelay"):
            return pid
    return None


def check_relay_killed(tap, harness):
    """Kill the relay while blast sends at a fixed rate: run must fail,
    quote the relay log and keep the working directory, instead of
    reporting CPU and memory numbers of a dead process."""
    name = "relay killed"
    env = dict(os.environ, TMPDIR=harness.path("tmp"))
    run = subprocess.Popen(
        [harness.binary("bench/ringrelay-bench"), "run", "--sink-listen",
         f"127.0.0.1:{SINK_PORT}", "--listen", f"127.0.0.1:{RELAY_PORT}",
         "--", "--messages", "400", "--rate", "100", "--connections", "2",
         "--timeout", "20"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        tap.check(wait_port("127.0.0.1", RELAY_PORT), f"{name} relay up")
        time.sleep(1)
        pid = relay_pid(run.pid)
        tap.check(pid is not None, f"{name} relay PID found")
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
    output = stdout + stderr
    tap.check(run.returncode == 1, f"{name} exits 1",
              f"exit {run.returncode}\n{output}")
    tap.check("the relay exited while blast ran (killed by Killed)"
              in output, f"{name} message", output)
    tap.check("run: end of the relay log" in output,
              f"{name} quotes relay.log", output)
    tap.check("relay CPU" not in stdout, f"{name} has no relay numbers",
              output)
    check_kept_dir(tap, harness, name, output)


if __name__ == "__main__":
    main_wrapper(test)

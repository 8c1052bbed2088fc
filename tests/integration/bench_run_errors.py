#!/usr/bin/env python3
"""ringrelay-bench run rejects bad command lines and cleans up after a
failed start.

Each case runs `ringrelay-bench run` with TMPDIR set to a fresh
directory, checks the exit status and the message, and checks that run
removed its working directory. Runs inside netns_run.sh, because one
case holds the sink's port.

usage: bench_run_errors.py BUILD_DIR
"""
import os
import socket
import subprocess

from harness import main_wrapper

SINK_PORT = 2626


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
               ["--relay", harness.path("no-such-relay")], 1,
               "is not executable")
    check_case(tap, harness, "invalid sink address",
               ["--sink-listen", "[::1"], 1, "invalid --sink-listen")

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


if __name__ == "__main__":
    main_wrapper(test)

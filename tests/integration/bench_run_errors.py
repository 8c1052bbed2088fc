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
import pty
import re
import select
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
               "--relay, --durability and --resolver do not apply")
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
    check_case(tap, harness, "sink address without port",
               ["--sink-listen", "127.0.0.1"], 2,
               'invalid --sink-listen "127.0.0.1": missing port')
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
    check_interrupted(tap, harness)
    check_ctrl_c(tap, harness)


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


def check_interrupted(tap, harness):
    """SIGINT while blast runs: run stops blast, prints that on a line
    of its own, exits 1 and keeps its working directory."""
    name = "interrupted"
    env = dict(os.environ, TMPDIR=harness.path("tmp"))
    run = subprocess.Popen(
        [harness.binary("bench/ringrelay-bench"), "run", "--sink-listen",
         f"127.0.0.1:{SINK_PORT}", "--listen", f"127.0.0.1:{RELAY_PORT}",
         "--", "--messages", "400", "--rate", "50", "--timeout", "20"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        tap.check(wait_port("127.0.0.1", RELAY_PORT), f"{name} relay up")
        time.sleep(1)
        os.kill(run.pid, signal.SIGINT)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
    output = stdout + stderr
    tap.check(run.returncode == 1, f"{name} exits 1",
              f"exit {run.returncode}\n{output}")
    tap.check("run: interrupted, stopping blast\n" in stderr.splitlines(True),
              f"{name} message is a line of its own", stderr)
    left = os.listdir(harness.path("tmp"))
    tap.check(len(left) == 1, f"{name} keeps its work dir", repr(left))
    for entry in left:
        shutil.rmtree(harness.path("tmp", entry))


def read_pty(fd, proc_pid, timeout):
    """Read a pty until the child exits or timeout seconds pass. Returns
    (output, exit status or None)."""
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the child side is closed
            break
        if not chunk:
            break
        output += chunk
    # An exiting process closes its files, and so the pty, a moment
    # before it can be reaped.
    while True:
        pid, status = os.waitpid(proc_pid, os.WNOHANG)
        if pid != 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return output.decode(errors="replace"), (
        os.waitstatus_to_exitcode(status) if pid != 0 else None)


def check_ctrl_c(tap, harness):
    """Ctrl-C on a terminal: the terminal echoes "^C" without a line end,
    and run's message must still start a line of its own. Ctrl-C reaches
    the whole process group, so which step reports it varies, and blast's
    own summary may come before run's message."""
    name = "ctrl-c"
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TMPDIR"] = harness.path("tmp")
        os.execv(harness.binary("bench/ringrelay-bench"),
                 ["ringrelay-bench", "run", "--sink-listen",
                  f"127.0.0.1:{SINK_PORT}", "--listen",
                  f"127.0.0.1:{RELAY_PORT}", "--", "--messages", "400",
                  "--rate", "50", "--timeout", "20"])
    status = None
    try:
        tap.check(wait_port("127.0.0.1", RELAY_PORT), f"{name} relay up")
        time.sleep(1)
        os.write(fd, b"\x03")
        output, status = read_pty(fd, pid, 60)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    tap.check(status == 1, f"{name} exits 1", f"exit {status}\n{output}")
    # blast gets the Ctrl-C too and may print its summary first.
    tap.check(re.search(r"\nrun: interrupted, ", output) is not None,
              f"{name} message starts a line", output)
    for entry in os.listdir(harness.path("tmp")):
        shutil.rmtree(harness.path("tmp", entry))


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

"""Helpers for ringrelay's integration tests.

The tests run inside a private network namespace (netns_run.sh), so they
may bind any loopback port, including 25 and 53. Every process a test
starts is recorded here and stopped by its PID when the test ends.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class Tap:
    """TAP output that meson counts test point by test point."""

    def __init__(self):
        self.count = 0
        self.failed = 0

    def check(self, condition, name, detail=""):
        self.count += 1
        status = "ok" if condition else "not ok"
        print(f"{status} {self.count} - {name}", flush=True)
        if not condition:
            self.failed += 1
            for line in str(detail).splitlines() or [""]:
                print(f"# {line}", flush=True)
        return condition

    def finish(self):
        print(f"1..{self.count}", flush=True)
        return 1 if self.failed else 0


class Harness:
    """Starts servers for one test and cleans up after it."""

    def __init__(self, build_dir):
        self.build_dir = os.path.abspath(build_dir)
        self.tmp = tempfile.mkdtemp(prefix="ringrelay-test-")
        self.procs = []

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def binary(self, relative):
        return os.path.join(self.build_dir, relative)

    def start(self, name, argv):
        """Start argv with stdout and stderr in NAME.log under the tmp dir."""
        log = open(self.path(name + ".log"), "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        proc.test_name = name
        self.procs.append(proc)
        return proc

    def log_text(self, name):
        try:
            with open(self.path(name + ".log"), errors="replace") as log:
                return log.read()
        except OSError:
            return ""

    def stop(self, proc, sig=signal.SIGTERM, timeout=15):
        """Stop one process by its PID; returns its exit status."""
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def close(self, keep=False):
        for proc in list(self.procs):
            self.stop(proc, timeout=5)
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"# kept test files in {self.tmp}", flush=True)


class RawClient:
    """A raw SMTP client over one TCP connection that reads one reply per
    command, for input that smtplib will not send."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=10):
        self.sock = socket.socket()
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buffer = b""

    def reply(self):
        """Return the last line of the next reply, or the lines read so
        far followed by " <closed>" when the server closes first."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return " ".join(lines) + " <closed>"
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode(errors="replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return line.decode(errors="replace")

    def command(self, raw):
        self.sock.sendall(raw)
        return self.reply()

    def closed(self):
        """Return True when the server has closed the connection."""
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.sock.close()


def wait_port(host, port, timeout=10.0):
    """Wait until host:port accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_for(predicate, timeout, interval=0.1):
    """Poll predicate until it is true or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


ZONE_ENTRY = """ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA RD RA {rcode}
SECTION QUESTION
{question}
SECTION ANSWER
{answer}
ENTRY_END
"""


def write_zone(path, records):
    """Write an ldns-testns data file.

    records maps (name, type) to a list of answer RRs in zone-file syntax;
    an empty list gives NOERROR with no data, None gives NXDOMAIN.
    """
    with open(path, "w") as zone:
        for (name, rrtype), answers in records.items():
            rcode = "NXDOMAIN" if answers is None else "NOERROR"
            zone.write(ZONE_ENTRY.format(
                rcode=rcode, question=f"{name}. IN {rrtype}",
                answer="\n".join(answers or [])))


def start_name_server(harness, records, port=53):
    """Start ldns-testns on 127.0.0.1:port (wildcard bind: namespace only)."""
    zone = harness.path("zone.data")
    write_zone(zone, records)
    proc = harness.start("ldns-testns",
                         ["ldns-testns", "-p", str(port), zone])
    time.sleep(0.3)
    return proc


def write_config(harness, text, name="ringrelay.conf"):
    path = harness.path(name)
    with open(path, "w") as conf:
        conf.write(text)
    return path


def start_relay(harness, config_path, port=2525, name="ringrelay"):
    proc = harness.start(name, [harness.binary("ringrelay"), "-c",
                                config_path])
    if not wait_port("127.0.0.1", port):
        raise RuntimeError(f"ringrelay did not listen on {port}:\n"
                           + harness.log_text(name))
    return proc


def start_sink(harness, store, port=25, name="sink", options=()):
    """Start the bench sink; options are extra sink arguments."""
    proc = harness.start(name, [harness.binary("bench/ringrelay-bench"),
                                "sink", "--listen", f"127.0.0.1:{port}",
                                "--store", store, *options])
    if not wait_port("127.0.0.1", port):
        raise RuntimeError(f"sink did not listen on {port}:\n"
                           + harness.log_text(name))
    return proc


def read_sink_stats(path):
    """Return the sink's --stats-file as a dict of strings, or {} while
    the file does not exist yet."""
    try:
        with open(path) as stats:
            return dict(line.rstrip("\n").split("=", 1)
                        for line in stats if "=" in line)
    except OSError:
        return {}


def sink_stat(path, key):
    """Return one counter of the sink's --stats-file, or -1 when absent."""
    return int(read_sink_stats(path).get(key, "-1"))


def read_stored(store):
    """Return a list of (sender, rcpts, content) for the sink's files.
    The "TLS: VERSION CIPHER" envelope line of a message that came over
    TLS is left out; read_stored_tls() returns it."""
    messages = []
    if not os.path.isdir(store):
        return messages
    for name in sorted(os.listdir(store)):
        if not name.endswith(".msg"):
            continue
        with open(os.path.join(store, name), "rb") as stored:
            data = stored.read()
        head, _, content = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        sender = lines[0][len(b"MAIL FROM:<"):-1].decode()
        rcpts = [l[len(b"RCPT TO:<"):-1].decode() for l in lines[1:]
                 if l.startswith(b"RCPT TO:<")]
        messages.append((sender, rcpts, content))
    return messages


def read_stored_tls(store):
    """Return the "TLS:" envelope line of each sink file, in file order,
    as "VERSION CIPHER", or None for a message that came without TLS."""
    lines = []
    for name in sorted(os.listdir(store)):
        if not name.endswith(".msg"):
            continue
        with open(os.path.join(store, name), "rb") as stored:
            head = stored.read().partition(b"\r\n\r\n")[0]
        found = [l[len(b"TLS: "):].decode()
                 for l in head.split(b"\r\n") if l.startswith(b"TLS: ")]
        lines.append(found[0] if found else None)
    return lines


def strip_received(content):
    """Remove the first header if it is a Received: header (with folds)."""
    if not content.startswith(b"Received:"):
        return None
    lines = content.split(b"\r\n")
    index = 1
    while index < len(lines) and lines[index][:1] in (b" ", b"\t"):
        index += 1
    return b"\r\n".join(lines[index:])


def to_crlf(data):
    """Message bytes as an SMTP client sends them: CRLF line endings and a
    final CRLF."""
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def main_wrapper(test):
    """Run test(tap, harness) with the build dir from argv[1]."""
    tap = Tap()
    harness = Harness(sys.argv[1])
    keep = False
    try:
        test(tap, harness)
    except Exception as error:  # report, then clean up
        import traceback
        tap.check(False, "test raised " + type(error).__name__,
                  traceback.format_exc())
    finally:
        keep = tap.failed > 0 and os.environ.get("RINGRELAY_KEEP") == "1"
        if tap.failed:
            for name in sorted(os.listdir(harness.tmp)):
                if not name.endswith(".log"):
                    continue
                print(f"# --- {name} ---")
                for line in harness.log_text(name[:-4])[-4000:] \
                        .splitlines():
                    print(f"# {line}")
        harness.close(keep=keep)
    sys.exit(tap.finish())

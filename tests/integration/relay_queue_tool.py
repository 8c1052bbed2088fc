#!/usr/bin/env python3
"""ringrelay-queue against a running daemon and a stopped one.

With no sink on 127.0.0.1:25, every message to an address literal is
deferred for at least 60 s. The test lists, shows and counts them in text
and JSON, holds one, deletes one, then starts the sink and flushes: the
flushed message arrives at once, the held and deleted ones never do
until the held one is released. delete --all empties the queue, and a
delete while the sink delays its reply to the data ends the attempt
without a journal error. Bad
requests get exit status 1 or 2 and a clear message, also through a raw
socket, and a second user is turned away.

After a clean stop, list, show and stats read the queue directory
read-only and report the same messages. flush, hold, release and delete
fail with a message that the daemon is not running, and no queue file
changes.

The JSON checks look for values anywhere in the document, so they hold
for any layout of the report.

Usage (inside netns_run.sh): relay_queue_tool.py BUILD_DIR
"""
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess

import harness as h

# No name server: every recipient is an address literal.
CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
"""

SENDER = "sender@client.test"
UNKNOWN_ID = "0000000000000000"

# A flushed message must arrive well before the first retry (60 s).
FLUSH_WAIT_S = 15


def message(tag):
    return (f"From: {SENDER}\r\nTo: {tag}@[127.0.0.1]\r\n"
            f"Subject: queue tool {tag}\r\n\r\nbody {tag}\r\n").encode()


def send(tag):
    """Send one message to TAG@[127.0.0.1] and return its queue ID."""
    with smtplib.SMTP("127.0.0.1", 2525, local_hostname="client.test",
                      timeout=30) as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt(f"{tag}@[127.0.0.1]")
        code, text = client.data(message(tag))
    found = re.search(rb"queued as ([0-9A-F]{16})", text)
    if code != 250 or found is None:
        raise RuntimeError(f"DATA for {tag} got {code} {text!r}")
    return found.group(1).decode()


def run_tool(harness, config, *args, user=None):
    """Run ringrelay-queue -c config ARGS, or as user with -q and the
    queue directory named by config; return (status, stdout, stderr)."""
    where = ["-c", config]
    if user is not None:
        where = ["-q", os.path.join(os.path.dirname(config), "queue")]
    argv = [harness.binary("tools/ringrelay-queue"), *where, *args]
    if user is not None:
        entry = pwd.getpwnam(user)
        argv = ["setpriv", "--reuid", str(entry.pw_uid), "--regid",
                str(entry.pw_gid), "--clear-groups", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout, done.stderr


def json_values(document):
    """Every key and scalar value in a parsed JSON document, as strings."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield str(key)
            yield from json_values(value)
    elif isinstance(document, list):
        for value in document:
            yield from json_values(value)
    else:
        yield str(document)


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def json_has(document, needle):
    """True when some key or value of document contains needle."""
    return any(needle in value for value in json_values(document))


def stored_tags(store):
    """Local parts of the recipients the sink stored."""
    return sorted(rcpt.split("@")[0] for _, rcpts, _ in h.read_stored(store)
                  for rcpt in rcpts)


def retries(harness, queue_id):
    """How often the relay scheduled a retry for queue_id."""
    return harness.log_text("ringrelay").count(
        f"id={queue_id} event=retry-scheduled")


def wait_deferred(harness, queue_ids):
    return h.wait_for(lambda: all(retries(harness, queue_id) >= 1
                                  for queue_id in queue_ids), timeout=30)


def check_reports(tap, harness, config, ids):
    status, out, err = run_tool(harness, config, "list")
    tap.check(status == 0, "list exits 0", err)
    for tag, queue_id in ids.items():
        tap.check(queue_id in out, f"list names the {tag} message", out)

    status, out, err = run_tool(harness, config, "--json", "list")
    document = parse_json(out)
    tap.check(status == 0 and document is not None, "list --json parses",
              out + err)
    for tag, queue_id in ids.items():
        tap.check(json_has(document, queue_id),
                  f"list --json names the {tag} message", out)

    queue_id = ids["flush"]
    status, out, err = run_tool(harness, config, "show", queue_id)
    tap.check(status == 0, "show exits 0", err)
    tap.check(SENDER in out, "show gives the sender", out)
    tap.check("flush@[127.0.0.1]" in out, "show gives the recipient", out)
    tap.check("Subject: queue tool flush" in out, "show gives the headers",
              out)
    tap.check("Connection refused" in out, "show gives the last error", out)

    status, out, err = run_tool(harness, config, "--json", "show", queue_id)
    document = parse_json(out)
    tap.check(status == 0 and document is not None, "show --json parses",
              out + err)
    tap.check(json_has(document, "flush@[127.0.0.1]"),
              "show --json gives the recipient", out)
    tap.check(json_has(document, "Subject: queue tool flush"),
              "show --json gives the headers", out)
    tap.check(json_has(document, "Connection refused"),
              "show --json gives the last error", out)

    status, out, err = run_tool(harness, config, "stats")
    tap.check(status == 0 and "[127.0.0.1]" in out,
              "stats names the destination", out + err)
    status, out, err = run_tool(harness, config, "--json", "stats")
    document = parse_json(out)
    tap.check(status == 0 and document is not None, "stats --json parses",
              out + err)
    tap.check(json_has(document, "[127.0.0.1]"),
              "stats --json names the destination", out)


def check_errors(tap, harness, config):
    cases = [
        (["show", UNKNOWN_ID], 1, "not found", "unknown ID"),
        (["hold", UNKNOWN_ID], 1, "not found", "hold of unknown ID"),
        (["show", "zz"], 2, "invalid queue ID", "bad ID syntax"),
        (["delete", "G" * 16], 2, "invalid queue ID", "non-hex ID"),
        (["show", ""], 2, "invalid queue ID", "empty ID"),
        (["show"], 2, "missing argument", "missing argument"),
        (["delete"], 2, "missing argument", "delete without argument"),
        (["list", "extra"], 2, "too many arguments", "extra argument"),
        (["frobnicate"], 2, "unknown command", "unknown command"),
        ([], 2, "missing command", "no command"),
    ]
    for args, expected, words, name in cases:
        status, out, err = run_tool(harness, config, *args)
        tap.check(status == expected, f"{name} exits {expected}",
                  f"{status} {out} {err}")
        tap.check(words in err, f"{name} says {words}", err)

        status, out, err = run_tool(harness, config, "--json", *args)
        document = parse_json(out)
        tap.check(status == expected, f"{name} --json exits {expected}",
                  f"{status} {out} {err}")
        tap.check(isinstance(document, dict) and
                  words in str(document.get("error")),
                  f"{name} --json gives a JSON error", out + err)

    status, out, _ = run_tool(harness, config, "--help")
    tap.check(status == 0 and "usage: ringrelay-queue" in out,
              "--help prints the usage", out)
    status, out, _ = run_tool(harness, config, "--version")
    tap.check(status == 0 and out.startswith("ringrelay-queue "),
              "--version prints the version", out)
    status, out, err = run_tool(harness, config, "list", "--json")
    tap.check(status == 0 and isinstance(parse_json(out), dict),
              "--json after the command is accepted", out + err)
    status, out, err = run_tool(harness, config, "list", "-q", "/tmp")
    tap.check(status == 2 and 'option "-q" must come before the command'
              in err, "other options after the command are named", err)

    tool = harness.binary("tools/ringrelay-queue")
    for where, words, name in [
            (config, "is not a directory", "-q on a file"),
            (harness.path(), "is not a queue directory", "-q on a non-queue"),
            (harness.path("missing"), "not found", "-q on a missing path")]:
        for command in (["list"], ["hold", UNKNOWN_ID]):
            done = subprocess.run([tool, "-q", where, *command],
                                  capture_output=True, text=True,
                                  timeout=30)
            tap.check(done.returncode == 1 and words in done.stderr,
                      f"{name} with {command[0]} says {words}",
                      f"{done.returncode} {done.stderr}")


def raw_request(path, data):
    """Send data on the control socket; return the whole reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(15)
        client.connect(path)
        client.sendall(data)
        chunks = []
        while True:
            chunk = client.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def check_raw_socket(tap, harness, config, queue):
    path = os.path.join(queue, "control")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    tap.check(mode == 0o600, "control socket has mode 0600", oct(mode))

    reply = raw_request(path, b"a" * 4000)
    tap.check(reply.startswith(b"error\n") and b"longer than" in reply,
              "oversized request line gets an error", reply[:200])
    reply = raw_request(path, b"nonsense\n")
    tap.check(reply.startswith(b"error\n") and b"invalid request" in reply,
              "request without format gets an error", reply)
    reply = raw_request(path, b"json list\n")
    tap.check(reply.startswith(b"ok\n") and
              parse_json(reply[3:].decode()) is not None,
              "raw json list gets a JSON report", reply[:200])
    reply = raw_request(path, b"text show \x01\xff\n")
    tap.check(reply.startswith(b"error\n") and b"invalid queue ID" in reply,
              "control bytes in an ID get an error", reply)
    status, _, err = run_tool(harness, config, "list")
    tap.check(status == 0, "daemon answers after bad requests", err)


def check_connection_limits(tap, harness, config, queue):
    """Idle connections fill the limit of 8, a 9th is closed at once, and
    the 10 s request timeout closes the idle ones."""
    path = os.path.join(queue, "control")
    idle = []
    for _ in range(8):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        idle.append(client)
    try:
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(5)
        extra.connect(path)
        reply = b""
        try:
            while chunk := extra.recv(100):
                reply += chunk
        except OSError:
            pass
        extra.close()
        tap.check(reply == b"error\nthe daemon is busy: 8 control "
                  b"connections are open, try again later\n",
                  "connection past the limit gets an error and is closed",
                  reply)
        status, out, err = run_tool(harness, config, "list")
        tap.check(status == 1 and err == "ringrelay-queue: the daemon is "
                  "busy: 8 control connections are open, try again later\n",
                  "tool past the limit prints the daemon's error",
                  f"{status} {out!r} {err!r}")
        status, out, err = run_tool(harness, config, "--json", "stats")
        tap.check(status == 1 and json_has(parse_json(out), "busy"),
                  "tool past the limit prints a JSON error with --json",
                  f"{status} {out!r} {err!r}")
        tap.check("control connections are open already" in
                  harness.log_text("ringrelay"),
                  "connection past the limit is logged")

        idle[0].settimeout(20)
        try:
            timed_out = idle[0].recv(100) == b""
        except OSError:
            timed_out = True
        tap.check(timed_out, "idle control connection times out")
        tap.check("event=control-timeout" in harness.log_text("ringrelay"),
                  "control timeout is logged")
    finally:
        for client in idle:
            client.close()
    status, _, err = run_tool(harness, config, "list")
    tap.check(status == 0, "daemon answers after the limit", err)


def check_other_user(tap, harness, config, queue):
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        tap.check(True, "# SKIP other-user checks need root and setpriv")
        return
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        tap.check(True, "# SKIP no user nobody")
        return
    path = os.path.join(queue, "control")
    modes = {name: stat.S_IMODE(os.stat(name).st_mode)
             for name in (harness.tmp, queue, path)}

    # Only the socket's own mode keeps the other user out here.
    os.chmod(harness.tmp, 0o711)
    os.chmod(queue, 0o711)
    try:
        status, _, err = run_tool(harness, config, "flush", user="nobody")
    finally:
        os.chmod(queue, modes[queue])
    tap.check(status == 1, "other user fails to connect", f"{status} {err}")
    tap.check("cannot connect" in err and "Permission denied" in err,
              "other user is told why", err)

    # With the file modes opened up, the daemon's uid check still rejects
    # the other user.
    os.chmod(queue, 0o711)
    os.chmod(path, 0o666)
    try:
        status, _, err = run_tool(harness, config, "list", user="nobody")
        json_status, json_out, _ = run_tool(harness, config, "--json",
                                            "list", user="nobody")
    finally:
        for name, mode in modes.items():
            os.chmod(name, mode)
    tap.check(status == 1 and "permission denied" in err,
              "daemon rejects another uid", f"{status} {err}")
    tap.check(json_status == 1 and "permission denied" in
              (parse_json(json_out) or {}).get("error", ""),
              "daemon rejects another uid in JSON", json_out)
    tap.check("event=control-rejected user=" in harness.log_text("ringrelay"),
              "rejected uid is logged")


def check_hold_flush(tap, harness, config, ids, store):
    status, out, err = run_tool(harness, config, "delete", ids["deleted"])
    tap.check(status == 0, "delete ID exits 0", err)
    status, out, err = run_tool(harness, config, "list")
    tap.check(ids["deleted"] not in out, "deleted message leaves the list",
              out)
    status, out, err = run_tool(harness, config, "hold", ids["held"])
    tap.check(status == 0, "hold exits 0", err)
    tap.check(out == f"{ids['held']}: held, rcpts=1, in_flight=0\n",
              "hold of a waiting message counts its recipient", out)
    log = harness.log_text("ringrelay")
    tap.check(f"id={ids['held']} event=queue_hold rcpts=1 in_flight=no "
              "user=" in log, "hold is logged with its queue ID")
    status, out, err = run_tool(harness, config, "flush", ids["held"])
    tap.check(status == 1 and f"{ids['held']} is held" in err,
              "flush of a held message fails and says it is held",
              f"{status} {out} {err}")
    status, out, err = run_tool(harness, config, "--json", "show",
                                ids["held"])
    tap.check(json_has(parse_json(out), "held"), "show marks the hold", out)

    h.start_sink(harness, store)
    status, out, err = run_tool(harness, config, "flush")
    tap.check(status == 0, "flush exits 0", err)
    tap.check(out.startswith("all: flushed, jobs=") and
              out.endswith(", held=1\n"),
              "flush counts the held recipients it leaves", out)
    arrived = h.wait_for(lambda: "flush" in stored_tags(store),
                         timeout=FLUSH_WAIT_S)
    tap.check(arrived, "flush delivers deferred mail at once",
              stored_tags(store))
    h.wait_for(lambda: False, timeout=2)
    tags = stored_tags(store)
    tap.check("held" not in tags, "held message stays after flush", tags)
    tap.check("deleted" not in tags, "deleted message never arrives", tags)
    log = harness.log_text("ringrelay")
    tap.check("event=queue_flush id=all" in log, "flush is logged")

    # A release makes the message ready at once, with no flush.
    status, out, err = run_tool(harness, config, "release", ids["held"])
    tap.check(status == 0, "release exits 0", err)
    arrived = h.wait_for(lambda: "held" in stored_tags(store),
                         timeout=FLUSH_WAIT_S)
    tap.check(arrived, "released message arrives", stored_tags(store))
    h.wait_for(lambda: False, timeout=1)
    tags = stored_tags(store)
    tap.check(tags.count("held") == 1, "released message arrives once",
              tags)


def check_delete_all(tap, harness, config, sink, store):
    harness.stop(sink)
    ids = [send("all1"), send("all2")]
    tap.check(wait_deferred(harness, ids), "new messages are deferred")
    # A release of a message that is not held must not cost it a retry.
    status, out, err = run_tool(harness, config, "release", ids[1])
    tap.check(status == 0 and "rcpts=0" in out, "release of a message "
              "that is not held releases nothing", f"{status} {out} {err}")
    h.wait_for(lambda: False, timeout=1)
    tap.check(retries(harness, ids[1]) == 1, "release of a message that "
              "is not held starts no attempt", retries(harness, ids[1]))
    status, out, err = run_tool(harness, config, "flush", ids[0])
    tap.check(status == 0, "flush ID exits 0", err)
    tap.check(h.wait_for(lambda: retries(harness, ids[0]) >= 2, timeout=10),
              "flush ID retries that message at once",
              harness.log_text("ringrelay")[-2000:])
    tap.check(f"id={ids[0]} event=queue_flush jobs=1 held=0 user=" in
              harness.log_text("ringrelay"), "flush ID is logged")
    tap.check(retries(harness, ids[1]) == 1,
              "flush ID leaves other messages waiting")
    status, out, err = run_tool(harness, config, "hold", "--all")
    tap.check(status == 0 and out == "all: held, rcpts=2, messages=2\n",
              "hold --all holds every message", f"{status} {out} {err}")
    status, out, err = run_tool(harness, config, "--json", "list")
    tap.check(json_has(parse_json(out), "held"), "list shows the holds",
              out)
    tap.check("event=queue_hold id=all rcpts=2 messages=2 user=" in
              harness.log_text("ringrelay"), "hold --all is logged")
    status, out, err = run_tool(harness, config, "release", "--all")
    tap.check(status == 0 and out == "all: released, rcpts=2, "
              "messages=2\n", "release --all releases every message",
              f"{status} {out} {err}")
    status, out, err = run_tool(harness, config, "release", "--all")
    tap.check(status == 0 and out == "all: released, rcpts=0, "
              "messages=0\n", "second release --all releases nothing",
              f"{status} {out} {err}")
    status, out, err = run_tool(harness, config, "--json", "delete", "--all")
    tap.check(status == 0 and parse_json(out) is not None,
              "delete --all exits 0 with JSON", out + err)
    status, out, err = run_tool(harness, config, "list")
    tap.check(all(queue_id not in out for queue_id in ids),
              "delete --all empties the list", out)
    h.start_sink(harness, store, name="sink-again")
    run_tool(harness, config, "flush")
    h.wait_for(lambda: False, timeout=2)
    tags = stored_tags(store)
    tap.check("all1" not in tags and "all2" not in tags,
              "messages deleted with --all never arrive", tags)
    return harness.procs[-1]


def check_delete_in_flight(tap, harness, config, sink, store):
    """Delete a message while the sink holds back its reply to the data."""
    harness.stop(sink)
    h.start_sink(harness, store, name="sink-slow",
                 options=["--data-delay", "3000"])
    queue_id = send("inflight")
    h.wait_for(lambda: False, timeout=1)
    status, out, err = run_tool(harness, config, "delete", queue_id)
    tap.check(status == 0, "delete during an attempt exits 0", err)
    ignored = h.wait_for(lambda: f"id={queue_id} event=result-ignored" in
                         harness.log_text("ringrelay"), timeout=15)
    tap.check(ignored, "result for a deleted recipient is ignored",
              harness.log_text("ringrelay")[-2000:])
    status, out, err = run_tool(harness, config, "list")
    tap.check(status == 0 and queue_id not in out,
              "relay runs on after the ignored result", out + err)

    # A hold does not stop an attempt under way, and its reply reports it.
    queue_id = send("holdflight")
    h.wait_for(lambda: False, timeout=1)
    status, out, err = run_tool(harness, config, "hold", queue_id)
    tap.check(status == 0 and out == f"{queue_id}: held, rcpts=1, "
              "in_flight=1\n", "hold during an attempt reports it in "
              "flight", f"{status} {out} {err}")
    arrived = h.wait_for(lambda: "holdflight" in stored_tags(store),
                         timeout=15)
    tap.check(arrived, "attempt under way still delivers a held message",
              stored_tags(store))
    return harness.procs[-1]


def snapshot(queue):
    """Name, size and SHA-256 of every file in the queue directory."""
    files = {}
    for name in sorted(os.listdir(queue)):
        path = os.path.join(queue, name)
        with open(path, "rb") as data:
            digest = hashlib.sha256(data.read()).hexdigest()
        info = os.stat(path)
        files[name] = (info.st_size, info.st_mtime_ns, digest)
    return files


def ids_in(text):
    return sorted(set(re.findall(r"\b[0-9A-F]{16}\b", text)))


def check_stopped(tap, harness, config, queue, relay, sink):
    harness.stop(sink)
    ids = [send("stopped1"), send("stopped2")]
    tap.check(wait_deferred(harness, ids),
              "messages for the stopped check are deferred")
    running = {args: run_tool(harness, config, *args)[1] for args in
               [("list",), ("--json", "list"), ("show", ids[0])]}
    tap.check(harness.stop(relay) == 0, "relay stops cleanly")
    tap.check(not os.path.exists(os.path.join(queue, "control")),
              "clean stop removes the control socket")
    before = snapshot(queue)

    status, out, err = run_tool(harness, config, "list")
    tap.check(status == 0, "read-only list exits 0", err)
    tap.check(ids_in(out) == ids_in(running[("list",)]) and
              all(queue_id in out for queue_id in ids),
              "read-only list gives the same messages", out)
    status, out, err = run_tool(harness, config, "--json", "list")
    tap.check(status == 0 and
              sorted(ids_in(out)) == sorted(ids_in(running[("--json",
                                                            "list")])),
              "read-only list --json gives the same messages", out + err)
    status, out, err = run_tool(harness, config, "show", ids[0])
    tap.check(status == 0 and "Subject: queue tool stopped1" in out,
              "read-only show gives the headers", out + err)
    status, out, err = run_tool(harness, config, "--json", "stats")
    tap.check(status == 0 and json_has(parse_json(out), "[127.0.0.1]"),
              "read-only stats --json parses", out + err)
    status, out, err = run_tool(harness, config, "show", UNKNOWN_ID)
    tap.check(status == 1 and "not found" in err,
              "read-only show of unknown ID exits 1", err)

    for args in [("flush",), ("hold", ids[0]), ("release", ids[0]),
                 ("delete", ids[0]), ("delete", "--all")]:
        name = " ".join(args)
        status, out, err = run_tool(harness, config, *args)
        tap.check(status == 1 and "not running" in err,
                  f"{name} without daemon fails clearly", f"{status} {err}")
        status, out, err = run_tool(harness, config, "--json", *args)
        document = parse_json(out)
        tap.check(status == 1 and isinstance(document, dict) and
                  "not running" in str(document.get("error")),
                  f"{name} --json without daemon is JSON", out + err)
    tap.check(snapshot(queue) == before, "read-only use changes no file")

    # A journal.new without journal is what the daemon adopts at start,
    # so the read-only tool reads it and renames nothing.
    journal = os.path.join(queue, "journal")
    os.rename(journal, journal + ".new")
    status, out, err = run_tool(harness, config, "list")
    tap.check(status == 0 and ids_in(out) == ids_in(running[("list",)]),
              "read-only list reads journal.new without journal",
              f"{status} {out} {err}")
    tap.check(os.path.exists(journal + ".new") and
              not os.path.exists(journal),
              "read-only list renames no journal file")
    os.rename(journal + ".new", journal)

    missing = harness.path("no-such-queue")
    done = subprocess.run([harness.binary("tools/ringrelay-queue"), "-q",
                           missing, "list"], capture_output=True, text=True,
                          timeout=30)
    tap.check(done.returncode == 1 and "not found" in done.stderr,
              "missing queue directory is reported", done.stderr)


def accepts_connections(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def port_open(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def check_stale_socket(tap, harness, config, queue):
    path = os.path.join(queue, "control")
    relay = h.start_relay(harness, config, name="ringrelay-killed")
    harness.stop(relay, sig=signal.SIGKILL)
    tap.check(os.path.exists(path), "SIGKILL leaves the socket file")

    # The kernel tears down a killed process's io_uring after it exits,
    # and its sockets may take connections until then.
    closed = h.wait_for(lambda: not accepts_connections(path) and
                      not port_open(2525), timeout=10)
    tap.check(closed, "killed relay's sockets close")
    relay = h.start_relay(harness, config, name="ringrelay-after-kill")
    status, _, err = run_tool(harness, config, "list")
    tap.check(status == 0, "restart replaces a stale socket", err)
    tap.check("event=control-stale-removed" in
              harness.log_text("ringrelay-after-kill"),
              "stale socket removal is logged")
    tap.check(harness.stop(relay) == 0, "restarted relay stops cleanly")


def check_long_path(tap, harness):
    deep = harness.path("q" * 100)
    config = h.write_config(harness, CONFIG.format(queue=deep),
                            name="long.conf")
    proc = harness.start("ringrelay-long", [harness.binary("ringrelay"),
                                            "-c", config])
    try:
        status = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        harness.stop(proc)
        status = None
    tap.check(status == 1, "too long socket path stops the start",
              f"status {status}")
    tap.check("queue_dir is too long: the control socket "
              in harness.log_text("ringrelay-long"),
              "too long socket path is explained",
              harness.log_text("ringrelay-long"))
    tap.check(not os.path.exists(deep), "too long socket path is refused "
              "before the queue directory is made")


def test(tap, harness):
    queue = harness.path("queue")
    store = harness.path("store")
    config = h.write_config(harness, CONFIG.format(queue=queue))
    relay = h.start_relay(harness, config)

    ids = {tag: send(tag) for tag in ("flush", "held", "deleted")}
    tap.check(wait_deferred(harness, ids.values()),
              "messages are deferred while no sink runs")
    check_reports(tap, harness, config, ids)
    check_errors(tap, harness, config)
    check_raw_socket(tap, harness, config, queue)
    check_connection_limits(tap, harness, config, queue)
    check_other_user(tap, harness, config, queue)
    check_hold_flush(tap, harness, config, ids, store)
    sink = next(p for p in harness.procs if p.test_name == "sink")
    sink = check_delete_all(tap, harness, config, sink, store)
    sink = check_delete_in_flight(tap, harness, config, sink, store)
    check_stopped(tap, harness, config, queue, relay, sink)
    check_stale_socket(tap, harness, config, queue)
    check_long_path(tap, harness)

    log = harness.log_text("ringrelay")
    tap.check("queue_mark_invalid" not in log and "queue_defer_invalid"
              not in log, "no invalid queue marks in the log")


if __name__ == "__main__":
    h.main_wrapper(test)

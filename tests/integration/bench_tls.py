#!/usr/bin/env python3
"""STARTTLS in ringrelay-bench: the sink with --tls-cert and --tls-key
against Python's smtplib and openssl s_client, its TLS envelope line and
counters, a failed handshake, --tls-fail, a reply delay inside TLS and
its option errors. Then blast --starttls runs against that sink and
against sinks without TLS or with --tls-fail, and blast --starttls
--auth against ringrelay's own STARTTLS and AUTH PLAIN. A throwaway CA
and certificate come from the openssl command in the test's temporary
directory.

Usage (inside netns_run.sh): bench_tls.py BUILD_DIR
"""
import crypt
import json
import re
import smtplib
import socket
import ssl
import subprocess
import time

import harness as h

SINK_PORT = 2700
FAIL_PORT = 2701
PLAIN_PORT = 2702
BLAST_PORT = 2703
RELAY_SINK_PORT = 2704
DELAY_PORT = 2705
RELAY_PORT = 2710

# Output of every blast run, checked for sanitizer reports at the end,
# because some runs are expected to fail and their status says nothing.
BLAST_OUTPUTS = []

RELAY_CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{queue}";
hostname = "relay.test";
relay_networks = ["10.0.0.0/8"];
greeting_delay = 0s;
smarthost = "127.0.0.1:{sink_port}";
tls_cert = "{dir}/sink.crt";
tls_key = "{dir}/sink.key";
auth_users_file = "{dir}/users";
"""

MESSAGE = b"Subject: over TLS\r\n\r\nencrypted hello\r\n"


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, timeout=60, **kwargs)


def make_certificates(harness):
    """Write ca.crt and sink.crt/sink.key for 127.0.0.1 and sink.test."""
    path = harness.path
    with open(path("sink.ext"), "w") as out:
        out.write("subjectAltName=DNS:sink.test,IP:127.0.0.1\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-keyout", path("ca.key"), "-out", path("ca.crt"),
         "-subj", "/CN=Test CA"],
        ["openssl", "req", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         path("sink.key"), "-out", path("sink.csr"), "-subj", "/CN=sink.test"],
        ["openssl", "x509", "-req", "-in", path("sink.csr"), "-CA",
         path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
         "-days", "2", "-out", path("sink.crt"), "-extfile",
         path("sink.ext")],
    ]
    for argv in steps:
        result = run(argv)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[:2]} failed: {result.stderr!r}")


def start_sink(harness, name, port, options):
    argv = [harness.binary("bench/ringrelay-bench"), "sink",
            "--listen", f"127.0.0.1:{port}",
            "--store", harness.path(name + "-store"),
            "--json", harness.path(name + ".json"),
            "--stats-file", harness.path(name + ".stats"),
            "--max-seconds", "120", *options]
    proc = harness.start(name, argv)
    if not h.wait_port("127.0.0.1", port):
        raise RuntimeError(f"sink {name} did not listen:\n"
                           + harness.log_text(name))
    return proc


def stop_sink(tap, harness, name, proc):
    """Stop the sink with SIGTERM and return its JSON report."""
    status = harness.stop(proc)
    log = harness.log_text(name)
    tap.check(status == 0, f"{name} exits 0 on SIGTERM", status)
    tap.check("Sanitizer" not in log and "runtime error:" not in log,
              f"{name} log has no sanitizer report", log[-3000:])
    with open(harness.path(name + ".json")) as report:
        return json.load(report)


def read_stats(harness, name):
    stats = {}
    with open(harness.path(name + ".stats")) as text:
        for line in text:
            key, _, value = line.strip().partition("=")
            stats[key] = value
    return stats


def s_client(harness, port, args, stdin):
    result = run(["openssl", "s_client", "-CAfile", harness.path("ca.crt"),
                  "-crlf", "-ign_eof", "-starttls", "smtp", "-connect",
                  f"127.0.0.1:{port}", *args], input=stdin)
    return result.stdout.decode(errors="replace") + \
        result.stderr.decode(errors="replace")


def test_smtplib(tap, harness):
    context = ssl.create_default_context(cafile=harness.path("ca.crt"))
    with smtplib.SMTP("127.0.0.1", SINK_PORT, timeout=30) as client:
        client.ehlo("client.test")
        tap.check(client.has_extn("starttls"), "sink EHLO offers STARTTLS",
                  client.esmtp_features)
        code, text = client.starttls(context=context)
        tap.check(code == 220, "sink answers STARTTLS with 220",
                  (code, text))
        tap.check(client.sock.version() == "TLSv1.3",
                  "smtplib and sink negotiate TLS 1.3",
                  client.sock.version())
        client.ehlo("client.test")
        tap.check(not client.has_extn("starttls"),
                  "sink does not offer STARTTLS inside TLS",
                  client.esmtp_features)
        refused = client.sendmail("a@client.test", ["b@sink.test"],
                                  MESSAGE)
        tap.check(refused == {}, "sink accepts a message over TLS", refused)
    with smtplib.SMTP("127.0.0.1", SINK_PORT, timeout=30) as client:
        refused = client.sendmail("plain@client.test", ["b@sink.test"],
                                  MESSAGE)
        tap.check(refused == {}, "sink accepts a message without TLS",
                  refused)


def test_s_client(tap, harness):
    stdin = (b"EHLO client.test\nMAIL FROM:<s@client.test>\n"
             b"RCPT TO:<c@sink.test>\nDATA\nSubject: s_client\n\nhi\n.\n"
             b"QUIT\n")
    output = s_client(harness, SINK_PORT, ["-tls1_2"], stdin)
    tap.check(re.search(r"New, TLSv1\.2, Cipher is ECDHE-", output)
              is not None, "s_client -starttls smtp gets TLS 1.2 from sink",
              output[-1500:])
    tap.check("Verify return code: 0 (ok)" in output,
              "sink certificate verifies against the test CA",
              output[-1500:])
    tap.check("250 2.0.0 Ok: stored as" in output and "221 2.0.0" in output,
              "s_client sends a message through the sink's TLS",
              output[-1500:])
    tap.check("unexpected eof" not in output,
              "sink sends close_notify before closing", output[-1500:])


def test_bad_handshake(tap, harness):
    with socket.create_connection(("127.0.0.1", SINK_PORT), 10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"EHLO client.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\n")
        reply = reader.readline()
        tap.check(reply.startswith(b"220 "), "STARTTLS before bad handshake",
                  reply)
        sock.sendall(b"this is not a TLS ClientHello\r\n" * 4)
        closed = sock.recv(100) == b""
    tap.check(closed, "sink closes the connection after a bad handshake")


def check_sink_results(tap, harness, report):
    store = harness.path("tls-store")
    messages = h.read_stored(store)
    tls_lines = h.read_stored_tls(store)
    tap.check(len(messages) == 3, "sink stored three messages", messages)
    tap.check(len(tls_lines) == 3
              and re.fullmatch(r"TLSv1\.3 TLS_\S+", tls_lines[0] or "")
              is not None, "TLS 1.3 message has a TLS envelope line",
              tls_lines)
    tap.check(len(tls_lines) == 3 and tls_lines[1] is None,
              "plaintext message has no TLS envelope line", tls_lines)
    tap.check(len(tls_lines) == 3
              and re.fullmatch(r"TLSv1\.2 ECDHE-\S+", tls_lines[2] or "")
              is not None, "TLS 1.2 message names version and cipher",
              tls_lines)
    tap.check(len(messages) == 3 and messages[0][1] == ["b@sink.test"],
              "TLS line does not change the recipients", messages[:1])
    tap.check(report["tls_sessions"] == 2, "JSON counts two TLS sessions",
              report)
    tap.check(report["messages_tls"] == 2 and report["messages"] == 3,
              "JSON counts two of three messages over TLS", report)
    tap.check(report["tls_failures"] == 1, "JSON counts the bad handshake",
              report)
    stats = read_stats(harness, "tls")
    tap.check(stats.get("tls_sessions") == "2"
              and stats.get("messages_tls") == "2",
              "stats file counts TLS sessions and messages", stats)


def test_tls_fail(tap, harness):
    proc = start_sink(harness, "fail", FAIL_PORT, ["--tls-fail"])
    with smtplib.SMTP("127.0.0.1", FAIL_PORT, timeout=30) as client:
        client.ehlo("client.test")
        tap.check(client.has_extn("starttls"),
                  "--tls-fail sink offers STARTTLS", client.esmtp_features)
        code, text = client.docmd("STARTTLS")
        tap.check(code == 454 and text.startswith(b"4.7.0 "),
                  "--tls-fail answers STARTTLS with 454 4.7.0", (code, text))
        refused = client.sendmail("a@client.test", ["b@sink.test"], MESSAGE)
        tap.check(refused == {}, "plaintext mail works after the 454",
                  refused)
    report = stop_sink(tap, harness, "fail", proc)
    tap.check(report["tls_refused"] == 1 and report["tls_sessions"] == 0,
              "JSON counts the refused STARTTLS", report)


def test_delay_over_tls(tap, harness):
    """A reply delay holds back encrypted replies as it does plain ones."""
    proc = start_sink(harness, "delay", DELAY_PORT,
                      ["--tls-cert", harness.path("sink.crt"),
                       "--tls-key", harness.path("sink.key"),
                       "--rcpt-delay", "300"])
    context = ssl.create_default_context(cafile=harness.path("ca.crt"))
    with smtplib.SMTP("127.0.0.1", DELAY_PORT, timeout=30) as client:
        client.starttls(context=context)
        client.ehlo("client.test")
        start = time.monotonic()
        client.mail("a@client.test")
        code, text = client.rcpt("b@sink.test")
        elapsed = time.monotonic() - start
    tap.check(code == 250, "delayed RCPT over TLS gets 250", (code, text))
    tap.check(elapsed >= 0.29, "--rcpt-delay 300 holds the TLS reply",
              elapsed)
    stop_sink(tap, harness, "delay", proc)


def test_option_errors(tap, harness):
    bench = harness.binary("bench/ringrelay-bench")
    result = run([bench, "sink", "--listen", "127.0.0.1:2799",
                  "--tls-cert", harness.path("sink.crt")])
    tap.check(result.returncode == 2
              and b"--tls-cert needs --tls-key FILE too" in result.stderr,
              "--tls-cert without --tls-key is a usage error",
              result.stderr)
    result = run([bench, "sink", "--listen", "127.0.0.1:2799",
                  "--tls-cert", harness.path("missing.crt"),
                  "--tls-key", harness.path("sink.key"),
                  "--max-seconds", "5"])
    tap.check(result.returncode == 1
              and b"sink: TLS: certificate file " in result.stderr
              and b"No such file or directory" in result.stderr,
              "missing --tls-cert file stops the sink with the reason",
              result.stderr)


def blast(harness, name, port, options):
    """Run blast; returns (exit status, output, JSON report or None)."""
    json_path = harness.path(name + ".json")
    result = run([harness.binary("bench/ringrelay-bench"), "blast",
                  "--server", f"127.0.0.1:{port}", "--timeout", "30",
                  "--json", json_path, *options])
    output = result.stdout.decode(errors="replace") + \
        result.stderr.decode(errors="replace")
    BLAST_OUTPUTS.append(output)
    try:
        with open(json_path) as report:
            data = json.load(report)["summary"]
    except (OSError, ValueError):
        data = None
    return result.returncode, output, data


def test_blast_sink(tap, harness):
    sink = start_sink(harness, "bsink", BLAST_PORT,
                      ["--tls-cert", harness.path("sink.crt"),
                       "--tls-key", harness.path("sink.key"),
                       "--expect", "200"])
    status, output, report = blast(harness, "blast-tls", BLAST_PORT,
                                   ["--starttls", "--connections", "4",
                                    "--messages", "200", "--size", "30000"])
    tap.check(status == 0 and report is not None
              and report["accepted"] == 200,
              "blast --starttls delivers 200 messages to the TLS sink",
              output[-2000:])
    tap.check(report is not None and report["tls_sessions"] == 4,
              "blast counts one TLS session per connection", report)
    tap.check("TLS sessions:         4" in output,
              "blast summary shows TLS sessions", output[-2000:])
    status, output, report = blast(harness, "blast-idle", BLAST_PORT,
                                   ["--starttls", "--idle", "--connections",
                                    "3", "--duration", "1"])
    tap.check(status == 0 and report is not None
              and report["tls_sessions"] == 3
              and report["quit_replied"] == 3,
              "blast --starttls --idle holds three TLS connections",
              output[-2000:])
    result = stop_sink(tap, harness, "bsink", sink)
    tap.check(result["messages_tls"] == 200 and result["lost"] == 0
              and result["duplicates"] == 0,
              "sink got all 200 blast messages over TLS", result)
    tap.check(result["tls_sessions"] == 7,
              "sink counts blast's seven TLS sessions", result)


def test_blast_refusals(tap, harness):
    plain = start_sink(harness, "plain", PLAIN_PORT, [])
    status, output, report = blast(harness, "blast-plain", PLAIN_PORT,
                                   ["--starttls", "--messages", "3",
                                    "--connections", "1"])
    tap.check(status != 0 and "does not offer STARTTLS" in output,
              "blast --starttls fails when STARTTLS is not offered",
              output[-2000:])
    tap.check(report is not None and report["accepted"] == 0,
              "no message goes out without the TLS blast asked for", report)
    harness.stop(plain)

    failing = start_sink(harness, "failing", FAIL_PORT + 10, ["--tls-fail"])
    status, output, report = blast(harness, "blast-fail", FAIL_PORT + 10,
                                   ["--starttls", "--messages", "3",
                                    "--connections", "1"])
    tap.check(status != 0 and "STARTTLS was answered 454 4.7.0" in output,
              "blast --starttls reports the 454 of --tls-fail",
              output[-2000:])
    tap.check(report is not None and report["accepted"] == 0,
              "no message goes out after a refused STARTTLS", report)
    harness.stop(failing)


def test_blast_relay(tap, harness):
    with open(harness.path("users"), "w") as users:
        users.write("blaster:" + crypt.crypt("pw:with:colons",
                                             "$6$saltsaltsalt$") + "\n")
    store = harness.path("relay-sink-store")
    sink = h.start_sink(harness, store, port=RELAY_SINK_PORT,
                        name="relay-sink")
    config = h.write_config(harness, RELAY_CONFIG.format(
        port=RELAY_PORT, queue=harness.path("queue"),
        sink_port=RELAY_SINK_PORT, dir=harness.tmp))
    relay = h.start_relay(harness, config, port=RELAY_PORT)

    status, output, report = blast(
        harness, "blast-relay", RELAY_PORT,
        ["--starttls", "--auth", "blaster:pw:with:colons",
         "--connections", "2", "--messages", "20"])
    tap.check(status == 0 and report is not None
              and report["accepted"] == 20,
              "blast --starttls --auth delivers 20 messages to ringrelay",
              output[-2000:])
    tap.check(report is not None and report["tls_sessions"] == 2,
              "blast negotiates TLS with ringrelay", report)
    arrived = h.wait_for(lambda: len(h.read_stored(store)) == 20, 30)
    tap.check(arrived, "ringrelay relays the 20 messages to the sink",
              len(h.read_stored(store)))
    received = [m[2] for m in h.read_stored(store)[:1]]
    tap.check(received and b"with ESMTPSA" in received[0],
              "Received: names ESMTPSA for STARTTLS and AUTH",
              received[:1])

    status, output, report = blast(
        harness, "blast-badauth", RELAY_PORT,
        ["--starttls", "--auth", "blaster:wrong", "--connections", "1",
         "--messages", "2"])
    tap.check(status != 0 and "AUTH PLAIN was answered 535" in output,
              "blast reports a rejected password", output[-2000:])

    status, output, report = blast(
        harness, "blast-noauth", RELAY_PORT,
        ["--auth", "blaster:pw:with:colons", "--connections", "1",
         "--messages", "2"])
    tap.check(status != 0 and "does not offer AUTH" in output
              and "--starttls" in output,
              "blast --auth without TLS names the missing --starttls",
              output[-2000:])

    harness.stop(sink)
    status = harness.stop(relay)
    log = harness.log_text("ringrelay")
    tap.check(status == 0 and "Sanitizer" not in log
              and "runtime error:" not in log,
              "ringrelay stops cleanly after the blast runs", log[-3000:])


def test(tap, harness):
    make_certificates(harness)
    sink = start_sink(harness, "tls", SINK_PORT,
                      ["--tls-cert", harness.path("sink.crt"),
                       "--tls-key", harness.path("sink.key")])
    test_smtplib(tap, harness)
    test_s_client(tap, harness)
    test_bad_handshake(tap, harness)
    h.wait_for(lambda: len(h.read_stored(harness.path("tls-store"))) == 3,
               10)
    report = stop_sink(tap, harness, "tls", sink)
    check_sink_results(tap, harness, report)
    test_tls_fail(tap, harness)
    test_delay_over_tls(tap, harness)
    test_option_errors(tap, harness)
    test_blast_sink(tap, harness)
    test_blast_refusals(tap, harness)
    test_blast_relay(tap, harness)
    reports = [o for o in BLAST_OUTPUTS
               if "Sanitizer" in o or "runtime error:" in o]
    tap.check(not reports, "blast output has no sanitizer report",
              "\n".join(reports)[-3000:])


if __name__ == "__main__":
    h.main_wrapper(test)

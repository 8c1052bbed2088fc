#!/usr/bin/env python3
"""Outbound STARTTLS, AUTH to the next hop and the discard transport.

One relay delivers to bundled sinks with and without STARTTLS, to one
that refuses it (--tls-fail), and to MX hosts whose TLSA records
ldns-testns serves with or without the AD bit. Each recipient domain
has a route or MX host that exercises one TLS policy. A second
ringrelay with STARTTLS and an AUTH users file is the next hop for the
AUTH routes. The sink certificate comes from a throwaway CA made with
openssl in the test's temporary directory.

Usage (inside netns_run.sh): relay_outbound_tls.py BUILD_DIR
"""
import crypt
import hashlib
import re
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import harness as h

RELAY_PORT = 2525
TLS_PORT = 2801
PLAIN_PORT = 2802
FAIL_PORT = 2803
REUSE_PORT = 2804
AUTH_SINK_PORT = 2805
POSTFIX_SINK_PORT = 2806
BROKEN_TLS_PORT = 2807
CLOSER_PORT = 2808
STALL_PORT = 2809
NEXT_RELAY_PORT = 2830
DANE_RELAY_PORT = 2831
DANE_HOST = "127.0.0.2"

RELAY_CONFIG = """
listen = "127.0.0.1:{relay}";
queue_dir = "{dir}/queue";
hostname = "relay.test";
greeting_delay = 0s;
resolver = "127.0.0.1:53";
mx_allow_loopback = true;
retry_interval = 1h;
retry_max_interval = 1h;
delivery_connection_idle_timeout = 30s;
destinations {{
    "127.0.0.1:{reuse}" {{ max_connections = 1; }}
    "127.0.0.1:{stall}" {{ timeout_command = 1s; }}
}}
outbound_tls_ca_file = "{dir}/ca.crt";
routes {{
    "may.test" = "127.0.0.1:{tls}";
    "mayplain.test" = "127.0.0.1:{plain}";
    "none.test" {{ host = "127.0.0.1:{tls}"; tls = "none"; }}
    "encplain.test" {{ host = "127.0.0.1:{plain}"; tls = "encrypt"; }}
    "mixnone.test" {{ host = "127.0.0.1:{plain}"; tls = "none"; }}
    "mixenc.test" {{ host = "127.0.0.1:{plain}"; tls = "encrypt"; }}
    "encfail.test" {{ host = "127.0.0.1:{fail}"; tls = "encrypt"; }}
    "mayfail.test" {{ host = "127.0.0.1:{fail}"; tls = "may"; }}
    "verifyok.test" {{ host = "sink.test:{tls}"; tls = "verify"; }}
    "verifybad.test" {{ host = "wrong.test:{tls}"; tls = "verify"; }}
    "reuse.test" = "127.0.0.1:{reuse}";
    "auth.test" {{ host = "127.0.0.1:{next}"; tls = "encrypt";
                  auth_user = "alice"; auth_password = "s3cret-pw"; }}
    "authbad.test" {{ host = "127.0.0.1:{next}"; tls = "encrypt";
                     auth_user = "alice"; auth_password = "wrong-pw"; }}
    "authplain.test" {{ host = "127.0.0.1:{plain}"; tls = "may";
                       auth_user = "alice"; auth_password = "s3cret-pw"; }}
    "load.test" {{ transport = "discard"; }}
    "postfix.test" = "127.0.0.1:{postfix}";
    "brokentls.test" = "127.0.0.1:{broken}";
    "closer.test" = "127.0.0.1:{closer}";
    "stall.test" = "127.0.0.1:{stall}";
    "daneok.test" {{ host = "mx-ok.test"; tls = "dane"; }}
    "danebad.test" {{ host = "mx-bad.test"; tls = "dane"; }}
    "daneinsecure.test" {{ host = "mx-insecure.test"; tls = "dane"; }}
}}
"""

NEXT_RELAY_CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{dir}/next-queue";
hostname = "next.test";
greeting_delay = 0s;
relay_networks = ["10.0.0.0/8"];
smarthost = "127.0.0.1:{sink}";
tls_cert = "{dir}/sink.crt";
tls_key = "{dir}/sink.key";
auth_users_file = "{dir}/users";
"""

DANE_RELAY_CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{dir}/dane-queue";
hostname = "dane-relay.test";
greeting_delay = 0s;
resolver = "127.0.0.1:53";
mx_allow_loopback = true;
retry_interval = 1h;
retry_max_interval = 1h;
outbound_tls = "dane";
outbound_tls_ca_file = "{dir}/ca.crt";
"""

ZONE_ENTRY = """ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA RD RA {flags} {rcode}
SECTION QUESTION
{name}. IN {rrtype}
SECTION ANSWER
{answers}
ENTRY_END
"""


def run(argv):
    return subprocess.run(argv, capture_output=True, timeout=60)


def make_certificates(harness):
    """ca.crt, and sink.crt/sink.key naming sink.test, the DANE MX hosts
    and 127.0.0.1, signed by it."""
    path = harness.path
    with open(path("sink.ext"), "w") as out:
        out.write("subjectAltName=DNS:sink.test,DNS:mx-ok.test,"
                  "IP:127.0.0.1\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-keyout", path("ca.key"), "-out", path("ca.crt"),
         "-subj", "/CN=Test CA"],
        ["openssl", "req", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         path("sink.key"), "-out", path("sink.csr"),
         "-subj", "/CN=sink.test"],
        ["openssl", "x509", "-req", "-in", path("sink.csr"), "-CA",
         path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
         "-days", "2", "-out", path("sink.crt"), "-extfile",
         path("sink.ext")],
    ]
    for argv in steps:
        result = run(argv)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[:2]} failed: {result.stderr!r}")


def spki_sha256(harness):
    """SHA-256 of the sink certificate's SubjectPublicKeyInfo, hex, for
    a DANE-EE(3) SPKI(1) SHA-256(1) TLSA record."""
    pubkey = run(["openssl", "x509", "-in", harness.path("sink.crt"),
                  "-noout", "-pubkey"]).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                         input=pubkey, capture_output=True,
                         timeout=60).stdout
    return hashlib.sha256(der).hexdigest()


def start_dns(harness):
    good = spki_sha256(harness)
    bad = "00" * 32
    entries = [
        ("sink.test", "A", "", ["sink.test. IN A 127.0.0.1"]),
        ("wrong.test", "A", "", ["wrong.test. IN A 127.0.0.1"]),
        ("wrong.test", "AAAA", "", []),
        ("sink.test", "AAAA", "", []),
    ]
    for host, tlsa, flags in (("mx-ok.test", good, "AD"),
                              ("mx-bad.test", bad, "AD"),
                              ("mx-insecure.test", bad, ""),
                              ("mx-servfail.test", None, "")):
        entries.append((host, "A", "", [f"{host}. IN A {DANE_HOST}"]))
        entries.append((host, "AAAA", "", []))
        entries.append((f"_25._tcp.{host}", "TLSA", flags,
                        [f"_25._tcp.{host}. IN TLSA 3 1 1 {tlsa}"]
                        if tlsa else None))
    # MX delivery under outbound_tls = "dane": the preferred host fails
    # its DANE check or its TLSA lookup, so the next one takes the mail.
    for domain, first in (("danemx.test", "mx-bad.test"),
                          ("danefail.test", "mx-servfail.test")):
        entries.append((domain, "MX", "",
                        [f"{domain}. IN MX 10 {first}.",
                         f"{domain}. IN MX 20 mx-ok.test."]))
    entries.append(("daneonly.test", "MX", "",
                    ["daneonly.test. IN MX 10 mx-servfail.test."]))
    zone = harness.path("zone.data")
    with open(zone, "w") as out:
        for name, rrtype, flags, answers in entries:
            out.write(ZONE_ENTRY.format(
                flags=flags, name=name, rrtype=rrtype,
                rcode="SERVFAIL" if answers is None else "NOERROR",
                answers="\n".join(answers or [])))
    harness.start("ldns-testns", ["ldns-testns", "-p", "53", zone])


def start_sink(harness, name, port, options, host="127.0.0.1"):
    argv = [harness.binary("bench/ringrelay-bench"), "sink",
            "--listen", f"{host}:{port}",
            "--store", harness.path(name + "-store"),
            "--stats-file", harness.path(name + ".stats"),
            "--max-seconds", "200", *options]
    harness.start(name, argv)
    if not h.wait_port(host, port):
        raise RuntimeError(f"sink {name} did not listen:\n"
                           + harness.log_text(name))


def read_stats(harness, name):
    stats = {}
    try:
        with open(harness.path(name + ".stats")) as text:
            for line in text:
                key, _, value = line.strip().partition("=")
                stats[key] = value
    except OSError:
        pass
    return stats


def send(domain, count=1, subject="outbound tls"):
    with smtplib.SMTP("127.0.0.1", RELAY_PORT, timeout=30) as client:
        for i in range(count):
            client.sendmail("me@sender.test", [f"you@{domain}"],
                            f"Subject: {subject} {i}\r\n\r\nhello\r\n")


def result_lines(harness, domain):
    """The delivered/deferred/bounced lines of recipients at domain."""
    pattern = re.compile(r"event=(delivered|deferred|bounced) "
                         rf"to=<you@{re.escape(domain)}>.*")
    return [m.group(0) for m in pattern.finditer(harness.log_text("relay"))]


def wait_result(harness, domain, count=1):
    h.wait_for(lambda: len(result_lines(harness, domain)) >= count, 30)
    return result_lines(harness, domain)


def stored_tls(harness, name):
    store = harness.path(name + "-store")
    return h.read_stored_tls(store) if h.os.path.isdir(store) else []


def test_policies(tap, harness):
    send("may.test")
    lines = wait_result(harness, "may.test")
    tap.check(lines and "event=delivered" in lines[0], "may: delivered",
              lines)
    tap.check(lines and re.search(r"tls=TLSv1\.[23] ", lines[0]),
              "may: delivery line names the TLS version", lines)
    tap.check(any(t and t.startswith("TLSv1") for t in
                  stored_tls(harness, "tls-sink")),
              "may: sink stored the TLS envelope line",
              stored_tls(harness, "tls-sink"))
    log = harness.log_text("relay")
    tap.check(re.search(r"event=tls-outbound dest=127\.0\.0\.1:2801 .*"
                        r"policy=may tls_version=TLSv1\.\d cipher=\S+",
                        log), "may: tls-outbound line with the cipher",
              log[-2000:])

    send("mayplain.test")
    lines = wait_result(harness, "mayplain.test")
    tap.check(lines and "event=delivered" in lines[0] and
              "tls=none" in lines[0],
              "may without STARTTLS: delivered in plaintext", lines)

    send("none.test", subject="policy none")
    lines = wait_result(harness, "none.test")
    tap.check(lines and "event=delivered" in lines[0] and
              "tls=none" in lines[0],
              "none: delivered without STARTTLS to a TLS sink", lines)

    send("encplain.test")
    lines = wait_result(harness, "encplain.test")
    tap.check(lines and "event=deferred" in lines[0] and
              "4.7.4" in lines[0] and "does not offer STARTTLS" in lines[0],
              "encrypt without STARTTLS: deferred", lines)

    send("encfail.test")
    lines = wait_result(harness, "encfail.test")
    tap.check(lines and "event=deferred" in lines[0] and
              "STARTTLS failed: 454" in lines[0],
              "encrypt with STARTTLS refused: deferred", lines)

    send("mayfail.test")
    lines = wait_result(harness, "mayfail.test")
    tap.check(lines and "event=delivered" in lines[0] and
              "tls=none" in lines[0],
              "may with STARTTLS refused: delivered in plaintext", lines)


def test_mixed_policies(tap, harness):
    """One message to two routes of one next hop with different TLS
    policies: each recipient gets its own route's policy, so the encrypt
    one is never sent in plaintext along with the none one."""
    with smtplib.SMTP("127.0.0.1", RELAY_PORT, timeout=30) as client:
        client.sendmail("me@sender.test",
                        ["you@mixnone.test", "you@mixenc.test"],
                        "Subject: mixed policies\r\n\r\nhello\r\n")
    plain = wait_result(harness, "mixnone.test")
    tap.check(len(plain) == 1 and "event=delivered" in plain[0] and
              "tls=none" in plain[0], "mixed: the none route is "
              "delivered in plaintext", plain)
    encrypted = wait_result(harness, "mixenc.test")
    tap.check(len(encrypted) == 1 and "event=deferred" in encrypted[0] and
              "4.7.4" in encrypted[0], "mixed: the encrypt route of the "
              "same message is deferred, not sent in plaintext",
              encrypted)


def test_verify(tap, harness):
    send("verifyok.test")
    lines = wait_result(harness, "verifyok.test")
    tap.check(lines and "event=delivered" in lines[0] and
              "relay=sink.test[127.0.0.1]:2801" in lines[0] and
              "tls=TLSv1" in lines[0],
              "verify with a matching name: delivered over TLS", lines)

    send("verifybad.test")
    lines = wait_result(harness, "verifybad.test")
    tap.check(lines and "event=deferred" in lines[0] and
              "4.7.5" in lines[0] and "verification" in lines[0],
              "verify with a wrong name: deferred", lines)
    log = harness.log_text("relay")
    tap.check(re.search(r"event=tls-outbound-failed .*policy=verify "
                        r"stage=verification error=\"[^\"]*wrong\.test",
                        log), "verify: the log names the failed check",
              log[-3000:])


def test_dane(tap, harness):
    send("daneok.test")
    lines = wait_result(harness, "daneok.test")
    tap.check(lines and "event=delivered" in lines[0] and
              "tls=TLSv1" in lines[0],
              "dane with a matching DANE-EE record: delivered", lines)
    tap.check("policy=dane" in harness.log_text("relay"),
              "dane: the tls-outbound line names the dane policy")

    send("danebad.test")
    lines = wait_result(harness, "danebad.test")
    tap.check(lines and "event=deferred" in lines[0] and
              "4.7.5" in lines[0],
              "dane with no matching record: deferred", lines)

    send("daneinsecure.test")
    lines = wait_result(harness, "daneinsecure.test")
    tap.check(lines and "event=delivered" in lines[0] and
              "tls=TLSv1" in lines[0],
              "dane without the AD bit: may, delivered over TLS", lines)
    tap.check(re.search(r"event=tls-outbound dest=mx-insecure\.test:25 .*"
                        r"policy=may", harness.log_text("relay")),
              "dane without the AD bit: logged as may")


def send_to(port, domain):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("me@sender.test", [f"you@{domain}"],
                        "Subject: dane by MX\r\n\r\nhello\r\n")


def dane_results(harness, domain):
    pattern = re.compile(r"event=(delivered|deferred|bounced) "
                         rf"to=<you@{re.escape(domain)}>.*")
    return [m.group(0) for m in
            pattern.finditer(harness.log_text("dane-relay"))]


def test_dane_mx(tap, harness):
    send_to(DANE_RELAY_PORT, "danemx.test")
    h.wait_for(lambda: dane_results(harness, "danemx.test"), 30)
    lines = dane_results(harness, "danemx.test")
    tap.check(lines and "event=delivered" in lines[0] and
              "relay=mx-ok.test[" in lines[0] and "tls=TLSv1" in lines[0],
              "dane by MX: a failed match moves to the next MX", lines)
    # The MX answer has no AD bit, so under DANE the domain keeps its own
    # destination instead of sharing one named after its MX set.
    log = harness.log_text("dane-relay")
    tap.check(re.search(r"event=tls-outbound-failed dest=danemx\.test "
                        r"relay=mx-bad\.test\[.*policy=dane", log),
              "dane by MX: the failed host is logged", log[-3000:])

    send_to(DANE_RELAY_PORT, "danefail.test")
    h.wait_for(lambda: dane_results(harness, "danefail.test"), 30)
    lines = dane_results(harness, "danefail.test")
    tap.check(lines and "event=delivered" in lines[0] and
              "relay=mx-ok.test[" in lines[0],
              "dane by MX: a failed TLSA lookup skips the host", lines)

    send_to(DANE_RELAY_PORT, "daneonly.test")
    h.wait_for(lambda: dane_results(harness, "daneonly.test"), 30)
    lines = dane_results(harness, "daneonly.test")
    tap.check(lines and "event=deferred" in lines[0] and
              "TLSA lookup of mx-servfail.test failed" in lines[0],
              "dane by MX: the only host's TLSA lookup fails: deferred",
              lines)


def test_reuse(tap, harness):
    send("reuse.test", count=4, subject="reuse")
    lines = wait_result(harness, "reuse.test", 4)
    tap.check(len(lines) == 4 and
              all("event=delivered" in l and "tls=TLSv1" in l
                  for l in lines),
              "reuse: four messages delivered over TLS", lines)
    # The sink rewrites its stats file every second.
    h.wait_for(lambda: read_stats(harness, "reuse-sink")
               .get("messages_tls") == "4", 10)
    stats = read_stats(harness, "reuse-sink")
    tap.check(stats.get("tls_sessions") == "1",
              "reuse: one TLS session at the sink", stats)
    tap.check(stats.get("messages_tls") == "4",
              "reuse: four messages over TLS at the sink", stats)


def test_auth(tap, harness):
    send("auth.test", subject="authenticated")
    lines = wait_result(harness, "auth.test")
    tap.check(lines and "event=delivered" in lines[0],
              "auth: delivered to the next relay", lines)
    store = harness.path("auth-sink-store")
    h.wait_for(lambda: len(h.read_stored(store)) >= 1, 20)
    stored = h.read_stored(store)
    content = stored[0][2] if stored else b""
    tap.check(b"ESMTPSA" in content and b"(authenticated as alice)" in
              content, "auth: the next relay's Received: line names alice",
              content[:600])
    next_log = harness.log_text("next-relay")
    tap.check('event=auth-ok' in next_log and 'user="alice"' in next_log,
              "auth: the next relay logs auth-ok", next_log[-2000:])

    send("authbad.test")
    lines = wait_result(harness, "authbad.test")
    tap.check(lines and "event=deferred" in lines[0] and
              "AUTH to the next hop failed" in lines[0] and
              "535" in lines[0],
              "auth with a wrong password: deferred with the 535", lines)

    send("authplain.test")
    lines = wait_result(harness, "authplain.test")
    tap.check(lines and "event=deferred" in lines[0] and
              "only over TLS" in lines[0],
              "auth without TLS: deferred, credentials not sent", lines)
    log = harness.log_text("relay")
    tap.check("s3cret-pw" not in log and "wrong-pw" not in log,
              "auth: the password is never logged")


def test_discard(tap, harness):
    send("load.test", count=3, subject="discard")
    lines = wait_result(harness, "load.test", 3)
    tap.check(len(lines) == 3 and
              all("event=delivered" in l and "relay=discard" in l
                  for l in lines),
              "discard: delivered at once with relay=discard", lines)


def test_postfix_sink(tap, harness):
    """Postfix's smtp-sink offers no STARTTLS, so the default may policy
    delivers to it in plaintext."""
    if h.shutil.which("smtp-sink") is None:
        tap.check(False, "smtp-sink is installed (apt-get install postfix)")
        return
    # -u: smtp-sink does not run as root without a user to switch to.
    harness.start("smtp-sink", [
        "timeout", "120", "smtp-sink", "-u", "nobody",
        f"127.0.0.1:{POSTFIX_SINK_PORT}", "64"])
    tap.check(h.wait_port("127.0.0.1", POSTFIX_SINK_PORT),
              "smtp-sink listens")
    send("postfix.test", count=2, subject="smtp-sink")
    lines = wait_result(harness, "postfix.test", 2)
    tap.check(len(lines) == 2 and
              all("event=delivered" in l and "tls=none" in l
                  for l in lines),
              "may to smtp-sink: delivered in plaintext", lines)


class BrokenTlsServer:
    """An SMTP server that offers STARTTLS, answers it with 220, reads the
    start of the ClientHello and sends plaintext in place of the
    handshake, or with stall set sends nothing for 3 s. Without STARTTLS
    it takes the message. It counts STARTTLS commands and messages."""

    def __init__(self, port, stall=False):
        self.stall = stall
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(8)
        self.listener.settimeout(60)
        self.starttls = 0
        self.messages = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(30)
                try:
                    self.session(conn.makefile("rwb", buffering=0))
                except OSError:
                    pass

    def session(self, stream):
        stream.write(b"220 broken.test ESMTP\r\n")
        in_data = False
        for line in stream:
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    self.messages += 1
                    stream.write(b"250 2.0.0 stored\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                stream.write(b"250-broken.test\r\n250 STARTTLS\r\n")
            elif line.upper().startswith(b"STARTTLS"):
                self.starttls += 1
                stream.write(b"220 2.0.0 go ahead\r\n")
                stream.read(5)
                if self.stall:
                    time.sleep(3)
                else:
                    stream.write(b"this is no TLS record\r\n")
                return
            elif verb == b"DATA":
                in_data = True
                stream.write(b"354 go on\r\n")
            elif verb == b"QUIT":
                stream.write(b"221 bye\r\n")
                return
            else:
                stream.write(b"250 ok\r\n")


def test_may_handshake_failure(tap, harness):
    server = BrokenTlsServer(BROKEN_TLS_PORT)
    send("brokentls.test")
    lines = wait_result(harness, "brokentls.test")
    server.listener.close()
    tap.check(lines and "event=delivered" in lines[0] and
              "tls=none" in lines[0],
              "may, failed handshake: delivered in plaintext", lines)
    tap.check(server.starttls == 1 and server.messages == 1,
              "may, failed handshake: one STARTTLS, then plaintext",
              (server.starttls, server.messages))
    tap.check(re.search(r"event=tls-outbound-failed dest=127\.0\.0\.1:"
                        rf"{BROKEN_TLS_PORT} .*policy=may stage=handshake "
                        r".*action=retry-plaintext",
                        harness.log_text("relay")),
              "may, failed handshake: logged with the plaintext retry")


class TlsIdleCloser:
    """An SMTP server with STARTTLS that takes one message per connection
    and answers the next MAIL inside TLS with 421, as a server does that
    closes a connection kept idle too long. It counts messages and the
    421 replies."""

    def __init__(self, port, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(8)
        self.listener.settimeout(60)
        self.messages = 0
        self.closed_with_421 = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.settimeout(30)
            try:
                self.session(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    @staticmethod
    def read_line(sock):
        line = b""
        while not line.endswith(b"\n"):
            byte = sock.recv(1)
            if not byte:
                raise OSError("closed")
            line += byte
        return line

    def session(self, sock):
        sock.sendall(b"220 closer.test ESMTP\r\n")
        tls = False
        in_data = False
        while True:
            line = self.read_line(sock)
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    self.messages += 1
                    sock.sendall(b"250 2.0.0 stored\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                sock.sendall(b"250-closer.test\r\n250 STARTTLS\r\n"
                             if not tls else b"250 closer.test\r\n")
            elif line.upper().startswith(b"STARTTLS"):
                sock.sendall(b"220 2.0.0 go ahead\r\n")
                sock = self.context.wrap_socket(sock, server_side=True)
                tls = True
            elif verb == b"MAIL" and self.messages > self.closed_with_421:
                self.closed_with_421 += 1
                sock.sendall(b"421 4.4.2 closer.test idle too long\r\n")
                return
            elif verb == b"DATA":
                in_data = True
                sock.sendall(b"354 go on\r\n")
            elif verb == b"QUIT":
                sock.sendall(b"221 bye\r\n")
                return
            else:
                sock.sendall(b"250 ok\r\n")


def test_may_handshake_timeout(tap, harness):
    server = BrokenTlsServer(STALL_PORT, stall=True)
    send("stall.test")
    lines = wait_result(harness, "stall.test")
    server.listener.close()
    tap.check(lines and "event=delivered" in lines[0] and
              "tls=none" in lines[0],
              "may, handshake timeout: delivered in plaintext", lines)
    tap.check(re.search(r"event=tls-outbound-failed dest=127\.0\.0\.1:"
                        rf"{STALL_PORT} .*stage=handshake error=\"timed "
                        r"out in the TLS handshake\" action=retry-plaintext",
                        harness.log_text("relay")),
              "may, handshake timeout: logged with the plaintext retry")


def test_reused_tls_421(tap, harness):
    server = TlsIdleCloser(CLOSER_PORT, harness.path("sink.crt"),
                           harness.path("sink.key"))
    send("closer.test", subject="first")
    wait_result(harness, "closer.test")
    send("closer.test", subject="second")
    lines = wait_result(harness, "closer.test", 2)
    server.listener.close()
    tap.check(len(lines) == 2 and
              all("event=delivered" in l and "tls=TLSv1" in l
                  for l in lines),
              "421 on a reused TLS connection: both delivered", lines)
    tap.check(server.closed_with_421 == 1 and server.messages == 2,
              "421 on a reused TLS connection: one 421, two messages",
              (server.closed_with_421, server.messages))
    tap.check(re.search(r"event=reused-connection-lost dest=127\.0\.0\.1:"
                        rf"{CLOSER_PORT} .*421 on a reused connection",
                        harness.log_text("relay")),
              "421 on a reused TLS connection: logged as a lost reuse")


def test_config_errors(tap, harness):
    path = h.write_config(harness, """
queue_dir = "{dir}/bad-queue";
routes {{
    "x.test" {{ host = "127.0.0.1:25"; tls = "none";
               auth_user = "u"; auth_password = "p"; }}
}}
""".format(dir=harness.tmp), name="bad.conf")
    result = run([harness.binary("ringrelay"), "-t", "-c", path])
    tap.check(result.returncode != 0 and b"sent only over TLS" in
              result.stderr, "config: AUTH with tls none is rejected",
              result.stderr)
    path = h.write_config(harness, """
queue_dir = "{dir}/bad-queue";
routes {{ "x.test" {{ host = "127.0.0.1:25"; auth_user = "u"; }} }}
""".format(dir=harness.tmp), name="bad2.conf")
    result = run([harness.binary("ringrelay"), "-t", "-c", path])
    tap.check(result.returncode != 0 and b"both auth_user and "
              b"auth_password" in result.stderr,
              "config: auth_user without auth_password is rejected",
              result.stderr)


def test(tap, harness):
    make_certificates(harness)
    with open(harness.path("users"), "w") as users:
        users.write("alice:" + crypt.crypt("s3cret-pw",
                                           crypt.mksalt(crypt.METHOD_SHA512))
                    + "\n")
    tls = ["--tls-cert", harness.path("sink.crt"),
           "--tls-key", harness.path("sink.key")]
    start_dns(harness)
    start_sink(harness, "tls-sink", TLS_PORT, tls)
    start_sink(harness, "plain-sink", PLAIN_PORT, [])
    start_sink(harness, "fail-sink", FAIL_PORT, ["--tls-fail"])
    start_sink(harness, "reuse-sink", REUSE_PORT, tls)
    start_sink(harness, "auth-sink", AUTH_SINK_PORT, [])
    start_sink(harness, "dane-sink", 25, tls, host=DANE_HOST)
    next_conf = h.write_config(harness, NEXT_RELAY_CONFIG.format(
        port=NEXT_RELAY_PORT, dir=harness.tmp, sink=AUTH_SINK_PORT),
        name="next.conf")
    next_relay = h.start_relay(harness, next_conf, port=NEXT_RELAY_PORT,
                               name="next-relay")
    conf = h.write_config(harness, RELAY_CONFIG.format(
        relay=RELAY_PORT, dir=harness.tmp, tls=TLS_PORT, plain=PLAIN_PORT,
        fail=FAIL_PORT, reuse=REUSE_PORT, next=NEXT_RELAY_PORT,
        postfix=POSTFIX_SINK_PORT, broken=BROKEN_TLS_PORT,
        closer=CLOSER_PORT, stall=STALL_PORT))
    relay = h.start_relay(harness, conf, name="relay")
    dane_conf = h.write_config(harness, DANE_RELAY_CONFIG.format(
        port=DANE_RELAY_PORT, dir=harness.tmp), name="dane.conf")
    dane_relay = h.start_relay(harness, dane_conf, port=DANE_RELAY_PORT,
                               name="dane-relay")

    test_policies(tap, harness)
    test_mixed_policies(tap, harness)
    test_verify(tap, harness)
    test_dane(tap, harness)
    test_dane_mx(tap, harness)
    test_reuse(tap, harness)
    test_auth(tap, harness)
    test_discard(tap, harness)
    test_postfix_sink(tap, harness)
    test_may_handshake_failure(tap, harness)
    test_reused_tls_421(tap, harness)
    test_may_handshake_timeout(tap, harness)
    test_config_errors(tap, harness)

    tap.check(harness.stop(relay) == 0, "relay stops cleanly")
    tap.check(harness.stop(next_relay) == 0, "next relay stops cleanly")
    tap.check(harness.stop(dane_relay) == 0, "dane relay stops cleanly")
    for name in ("relay", "next-relay", "dane-relay"):
        log = harness.log_text(name)
        tap.check("Sanitizer" not in log and "runtime error:" not in log,
                  f"{name} log has no sanitizer report", log[-3000:])


if __name__ == "__main__":
    h.main_wrapper(test)

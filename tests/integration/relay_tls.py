#!/usr/bin/env python3
"""Inbound TLS against real clients: STARTTLS with smtplib, swaks,
openssl s_client and Postfix's posttls-finger, the STARTTLS command
injection, implicit TLS, SNI, session resumption, SIGHUP reload of the
certificate, a failed handshake, `ringrelay -t` with a missing
certificate, warnings for expired and future certificates, and AUTH that needs TLS. A throwaway CA and certificates come from the openssl
command in the test's temporary directory.

Usage (inside netns_run.sh): relay_tls.py BUILD_DIR
"""
import datetime
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import harness as h

CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
listen = "127.0.0.1:2525";
tls_listen = "127.0.0.1:4650";
tls_cert = "{dir}/server.crt";
tls_key = "{dir}/server.key";
tls_sni {{
    "mail.example.com" {{ cert = "{dir}/sni.crt"; key = "{dir}/sni.key"; }}
}}
smarthost = "127.0.0.1:2526";
relay_networks = ["127.0.0.1/32"];
"""

# Relays started after the main one, each with one setting under test.
# Only the AUTH test sends mail through one of them to the sink.
OTHER_CONFIG = """
queue_dir = "{queue}";
hostname = "relay.test";
listen = "127.0.0.1:{port}";
smarthost = "127.0.0.1:2526";
relay_networks = ["127.0.0.1/32"];
{extra}
"""

MESSAGE = b"Subject: over TLS\r\n\r\nencrypted hello\r\n"


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, timeout=60, **kwargs)


def make_cert(harness, name, cn):
    """Write NAME.key and NAME.crt, signed by the test CA, valid for cn
    and 127.0.0.1."""
    key = harness.path(name + ".key")
    csr = harness.path(name + ".csr")
    ext = harness.path(name + ".ext")
    with open(ext, "w") as out:
        out.write(f"subjectAltName=DNS:{cn},IP:127.0.0.1\n")
    steps = [
        ["openssl", "req", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
         "-out", csr, "-subj", f"/CN={cn}"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", harness.path("ca.crt"),
         "-CAkey", harness.path("ca.key"), "-CAcreateserial", "-days", "2",
         "-out", harness.path(name + ".crt"), "-extfile", ext],
    ]
    for argv in steps:
        result = run(argv)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[:2]} failed: {result.stderr!r}")


def make_ca(harness):
    result = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                  "-keyout", harness.path("ca.key"),
                  "-out", harness.path("ca.crt"), "-subj", "/CN=Test CA"])
    if result.returncode != 0:
        raise RuntimeError(f"CA failed: {result.stderr!r}")


def client_context(harness):
    context = ssl.create_default_context(cafile=harness.path("ca.crt"))
    return context


def s_client(harness, args, stdin=b"EHLO client.test\nQUIT\n"):
    """Run openssl s_client against the relay; returns its output. With
    -crlf it ends each line of stdin with CRLF."""
    result = run(["openssl", "s_client", "-CAfile", harness.path("ca.crt"),
                  "-crlf", "-ign_eof", *args], input=stdin)
    return result.stdout.decode(errors="replace") + \
        result.stderr.decode(errors="replace")


def peer_cn(output):
    match = re.search(r"subject=\s*CN\s*=\s*(\S+)", output)
    return match.group(1) if match else None


def tls_lines(harness):
    return [l for l in harness.log_text("ringrelay").splitlines()
            if " event=tls " in l]


def test_smtplib_relay(tap, harness, store):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.ehlo("client.test")
        tap.check(client.has_extn("starttls"), "EHLO offers STARTTLS",
                  client.esmtp_features)
        code, text = client.starttls(context=client_context(harness))
        tap.check(code == 220 and text == b"2.0.0 Ready to start TLS",
                  "STARTTLS gets 220 2.0.0", (code, text))
        tap.check(client.sock.version() == "TLSv1.3",
                  "smtplib negotiates TLS 1.3", client.sock.version())
        client.ehlo("client.test")
        tap.check(not client.has_extn("starttls"),
                  "STARTTLS is not offered inside TLS",
                  client.esmtp_features)
        code, text = client.docmd("STARTTLS")
        tap.check(code == 554 and b"5.5.1" in text,
                  "second STARTTLS gets 554 5.5.1", (code, text))
        refused = client.sendmail("a@client.test", ["b@dest.test"],
                                  MESSAGE)
        tap.check(refused == {}, "message accepted over TLS", refused)
    arrived = h.wait_for(lambda: len(h.read_stored(store)) == 1, 30)
    tap.check(arrived, "message over TLS reaches the sink")
    if not arrived:
        return
    content = h.read_stored(store)[0][2]
    tap.check(h.strip_received(content) == MESSAGE,
              "body arrives unchanged", content)
    header = content.split(b"\r\n\r\n", 1)[0]
    tap.check(re.search(rb"with ESMTPS\s+\(TLSv1\.3\s+cipher\s+TLS_\S+"
                        rb"\s+\d+\s+bits\)", header) is not None,
              "Received: names ESMTPS, version and cipher", header)
    lines = tls_lines(harness)
    tap.check(bool(lines) and re.search(
        r"event=tls client=127\.0\.0\.1 mode=starttls tls_version=TLSv1\.3 "
        r"cipher=TLS_\S+ bits=\d+", lines[0]) is not None,
        "event=tls line with version and cipher", lines)


def test_ehlo_again(tap, harness):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.ehlo("client.test")
        client.starttls(context=client_context(harness))
        code, text = client.docmd("MAIL FROM:<a@client.test>")
        tap.check(code == 503 and b"HELO/EHLO first" in text,
                  "MAIL after STARTTLS needs EHLO again", (code, text))


def test_starttls_errors(tap):
    client = h.RawClient(2525)
    client.reply()
    tap.check(client.command(b"STARTTLS\r\n").startswith("503 5.5.1"),
              "STARTTLS before EHLO gets 503")
    client.command(b"HELO client.test\r\n")
    reply = client.command(b"STARTTLS\r\n")
    tap.check(reply.startswith("503 5.5.1 ") and "EHLO first" in reply,
              "STARTTLS after HELO gets 503", reply)
    client.command(b"EHLO client.test\r\n")
    tap.check(client.command(b"STARTTLS x\r\n").startswith("501 5.5.4"),
              "STARTTLS with an argument gets 501")
    client.command(b"MAIL FROM:<a@client.test>\r\n")
    tap.check(client.command(b"STARTTLS\r\n").startswith("503 5.5.1"),
              "STARTTLS in a transaction gets 503")
    client.close()


def test_injection(tap, harness):
    """CVE-2011-0411: plaintext after STARTTLS must not run as commands
    of the TLS session."""
    sock = socket.create_connection(("127.0.0.1", 2525), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"EHLO client.test\r\n")
    while reader.readline()[3:4] == b"-":
        pass
    sock.sendall(b"STARTTLS\r\nRSET\r\n")
    ready = reader.readline()
    tap.check(ready.startswith(b"220 2.0.0"), "220 to the STARTTLS", ready)

    # Nothing may follow the 220 in plaintext: the RSET is discarded.
    sock.settimeout(0.5)
    try:
        extra = sock.recv(100, socket.MSG_PEEK)
    except socket.timeout:
        extra = b""
    tap.check(extra == b"", "no plaintext reply after the 220", extra)
    sock.settimeout(10)
    tls = client_context(harness).wrap_socket(sock,
                                              server_hostname="relay.test")
    tls.sendall(b"EHLO client.test\r\n")
    first = b""
    while b"\r\n" not in first:
        first += tls.recv(1)
    tap.check(first.startswith(b"250-relay.test"),
              "first reply in TLS answers our EHLO, not the RSET", first)
    tls.close()
    reader.close()
    lines = [l for l in tls_lines(harness) if "discarded_bytes=6" in l]
    tap.check(len(lines) == 1, "log counts the 6 discarded bytes",
              tls_lines(harness))


def test_swaks(tap, harness):
    result = run(["swaks", "--server", "127.0.0.1:2525", "--tls",
                  "--from", "a@client.test", "--to", "c@dest.test",
                  "--helo", "client.test", "--timeout", "20"])
    output = result.stdout.decode(errors="replace")
    tap.check(result.returncode == 0, "swaks --tls sends a message",
              output[-2000:])
    tap.check("TLS started" in output, "swaks reports TLS started",
              output[-2000:])


def test_s_client(tap, harness):
    output = s_client(harness, ["-starttls", "smtp", "-connect",
                                "127.0.0.1:2525"])
    tap.check("New, TLSv1.3, Cipher is TLS_" in output,
              "s_client -starttls smtp gets TLS 1.3", output[-1500:])
    tap.check("Verify return code: 0 (ok)" in output,
              "certificate verifies against the test CA", output[-1500:])
    tap.check("250 ENHANCEDSTATUSCODES" in output and "221 2.0.0" in output,
              "SMTP works inside s_client's TLS session", output[-1500:])
    output = s_client(harness, ["-starttls", "smtp", "-tls1_2", "-connect",
                                "127.0.0.1:2525"])
    match = re.search(r"New, TLSv1\.2, Cipher is (\S+)", output)
    tap.check(match is not None and match.group(1).startswith("ECDHE-"),
              "s_client -tls1_2 gets TLS 1.2 with an ECDHE cipher",
              output[-1500:])
    lines = tls_lines(harness)
    tap.check(match is not None and any(
        f"tls_version=TLSv1.2 cipher={match.group(1)} " in l
        for l in lines), "TLS 1.2 session logged with its cipher", lines)


def test_posttls_finger(tap, harness):
    finger = "/usr/sbin/posttls-finger"
    if not os.path.exists(finger):
        tap.check(False, "posttls-finger is installed (postfix package)")
        return
    # Postfix programs read main.cf, and the postfix package is installed
    # without one (tools/deps), so the test gives an empty one.
    config_dir = harness.path("postfix")
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, "main.cf"), "w") as main_cf:
        main_cf.write("compatibility_level = 3.6\n")
    result = run([finger, "-c", "-l", "secure", "-F",
                  harness.path("ca.crt"), "[127.0.0.1]:2525",
                  "relay.test"], env={**os.environ, "MAIL_CONFIG": config_dir})
    output = (result.stdout + result.stderr).decode(errors="replace")
    tap.check("Verified TLS connection established" in output,
              "posttls-finger verifies the TLS session", output[-1500:])


def test_implicit(tap, harness, store):
    with smtplib.SMTP_SSL("127.0.0.1", 4650, timeout=30,
                          context=client_context(harness)) as client:
        code, _ = client.ehlo("client.test")
        tap.check(code == 250 and not client.has_extn("starttls"),
                  "implicit TLS: EHLO works, no STARTTLS offered",
                  client.esmtp_features)
        refused = client.sendmail("a@client.test", ["d@dest.test"],
                                  MESSAGE)
        tap.check(refused == {}, "message accepted over implicit TLS")
    tap.check(h.wait_for(lambda: len(h.read_stored(store)) >= 2, 30),
              "implicit TLS message reaches the sink")
    tap.check(any("mode=implicit" in l for l in tls_lines(harness)),
              "implicit session logged", tls_lines(harness))


def test_large_message(tap, harness, store):
    """A body of many TLS records arrives byte for byte."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    body = b"Subject: large over TLS\r\n\r\n" + line * 40000
    with smtplib.SMTP_SSL("127.0.0.1", 4650, timeout=60,
                          context=client_context(harness)) as client:
        client.ehlo("client.test")
        refused = client.sendmail("a@client.test", ["e@dest.test"], body)
        tap.check(refused == {}, "large message accepted over TLS")

    # Wait for this message itself: a message of an earlier check may
    # reach the sink in the meantime.
    def large_stored():
        return [m for m in h.read_stored(store) if m[1] == ["e@dest.test"]]
    tap.check(h.wait_for(lambda: len(large_stored()) > 0, 30),
              "large message reaches the sink")
    stored = large_stored()
    tap.check(len(stored) == 1 and h.strip_received(stored[0][2]) == body,
              "large message arrives byte for byte",
              len(stored[0][2]) if stored else None)


def test_implicit_early_ehlo(tap, harness):
    """EHLO sent in the same write as the client's last handshake
    message, before the greeting, is answered after the greeting."""
    sock = socket.create_connection(("127.0.0.1", 4650), timeout=10)
    incoming = ssl.MemoryBIO()
    outgoing = ssl.MemoryBIO()
    tls = client_context(harness).wrap_bio(incoming, outgoing,
                                           server_hostname="relay.test")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            data = sock.recv(65536)
            if not data:
                break
            incoming.write(data)
    tls.write(b"EHLO client.test\r\nQUIT\r\n")
    sock.sendall(outgoing.read())
    received = b""
    while b"221 " not in received:
        data = sock.recv(65536)
        if not data:
            break
        incoming.write(data)
        try:
            while True:
                received += tls.read(65536)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
    sock.close()
    lines = received.split(b"\r\n")
    tap.check(len(lines) > 1 and lines[0].startswith(b"220 relay.test") and
              lines[1].startswith(b"250-relay.test") and
              b"221 2.0.0" in received,
              "greeting comes before the reply to an early EHLO", received)


def test_sni(tap, harness):
    output = s_client(harness, ["-connect", "127.0.0.1:4650",
                                "-servername", "mail.example.com"])
    tap.check(peer_cn(output) == "mail.example.com",
              "SNI mail.example.com gets its certificate", output[:1500])
    output = s_client(harness, ["-connect", "127.0.0.1:4650",
                                "-servername", "other.example.com"])
    tap.check(peer_cn(output) == "relay.test",
              "unknown SNI name gets the default certificate",
              output[:1500])


def test_resumption(tap, harness):
    session = harness.path("session.pem")
    output = s_client(harness, ["-connect", "127.0.0.1:4650",
                                "-sess_out", session])
    tap.check("New, TLSv1.3" in output and os.path.exists(session),
              "first connection saves its session", output[-800:])
    output = s_client(harness, ["-connect", "127.0.0.1:4650",
                                "-sess_in", session])
    tap.check("Reused, TLSv1.3" in output, "second connection resumes",
              output[-800:])
    tap.check(any("resumed=yes" in l for l in tls_lines(harness)),
              "resumed session logged", tls_lines(harness))

    # A TLS 1.2 session of the SNI certificate resumes only under the
    # same certificate, never under the default one.
    session = harness.path("session12.pem")
    output = s_client(harness, ["-connect", "127.0.0.1:4650", "-tls1_2",
                                "-servername", "mail.example.com",
                                "-sess_out", session])
    tap.check("New, TLSv1.2" in output and os.path.exists(session),
              "TLS 1.2 connection to the SNI name saves its session",
              output[-800:])
    output = s_client(harness, ["-connect", "127.0.0.1:4650", "-tls1_2",
                                "-servername", "mail.example.com",
                                "-sess_in", session])
    tap.check("Reused, TLSv1.2" in output,
              "TLS 1.2 session resumes under the same SNI name",
              output[-800:])
    output = s_client(harness, ["-connect", "127.0.0.1:4650", "-tls1_2",
                                "-servername", "relay.test",
                                "-sess_in", session])
    tap.check("New, TLSv1.2" in output and "Reused" not in output,
              "TLS 1.2 session does not resume under another SNI name",
              output[-800:])
    tap.check(peer_cn(output) == "relay.test",
              "the other SNI name gets its own certificate", output[:1500])


def test_reload(tap, harness, relay):
    make_cert(harness, "next", "relay2.test")
    os.replace(harness.path("next.key"), harness.path("server.key"))
    os.replace(harness.path("next.crt"), harness.path("server.crt"))
    os.kill(relay.pid, signal.SIGHUP)
    tap.check(h.wait_for(lambda: "event=reload tls=reloaded" in
                         harness.log_text("ringrelay"), 10),
              "SIGHUP reloads the certificate")
    tap.check("restart the daemon to apply other configuration changes"
              in harness.log_text("ringrelay"),
              "reload line says the rest is not reloaded")
    output = s_client(harness, ["-connect", "127.0.0.1:4650"])
    tap.check(peer_cn(output) == "relay2.test",
              "new connection gets the reloaded certificate", output[:1500])

    with open(harness.path("server.key"), "w") as broken:
        broken.write("not a key\n")
    os.kill(relay.pid, signal.SIGHUP)
    tap.check(h.wait_for(lambda: "event=reload-failed tls=kept-old" in
                         harness.log_text("ringrelay"), 10),
              "failed reload is logged")
    line = [l for l in harness.log_text("ringrelay").splitlines()
            if "event=reload-failed" in l]
    tap.check(bool(line) and "server.key" in line[0],
              "failed reload names the file", line)
    output = s_client(harness, ["-connect", "127.0.0.1:4650"])
    tap.check(peer_cn(output) == "relay2.test",
              "failed reload keeps the last good certificate",
              output[:1500])


def test_bad_handshake(tap, harness, relay):
    client = h.RawClient(2525)
    client.reply()
    client.command(b"EHLO client.test\r\n")
    client.command(b"STARTTLS\r\n")
    client.sock.sendall(b"EHLO plain.test\r\n")
    tap.check(client.closed(), "plaintext handshake closes the connection")
    client.close()
    failed = h.wait_for(lambda: "event=tls-failed" in
                        harness.log_text("ringrelay"), 10)
    line = [l for l in harness.log_text("ringrelay").splitlines()
            if "event=tls-failed" in l]
    tap.check(failed and "client=127.0.0.1" in line[0] and
              "error=\"error:" in line[0],
              "failed handshake logged with client and reason", line)
    tap.check(relay.poll() is None, "relay survives the bad handshake")
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as smtp:
        code, _ = smtp.noop()
        tap.check(code == 250, "relay still answers after it")


def test_check_missing_cert(tap, harness):
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue-t"), dir=harness.path("missing")),
        name="missing.conf")
    result = run([harness.binary("ringrelay"), "-t", "-c", config])
    stderr = result.stderr.decode(errors="replace")
    tap.check(result.returncode == 1, "ringrelay -t rejects a missing "
              "certificate", (result.returncode, stderr))
    tap.check("missing/server.crt: cannot open: No such file or directory"
              in stderr, "message names the file and the reason", stderr)


def make_dated_cert(harness, name, not_before, not_after):
    """Write NAME.key and a self-signed NAME.crt valid from not_before to
    not_after (datetime objects), with Python's cryptography package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "relay.test")])
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    with open(harness.path(name + ".key"), "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    with open(harness.path(name + ".crt"), "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))


def test_cert_dates(tap, harness):
    """An expired or not yet valid certificate loads with a warning."""
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    make_dated_cert(harness, "expired", now - 30 * day, now - day)
    make_dated_cert(harness, "future", now + day, now + 30 * day)
    extra = (f'tls_cert = "{harness.path("expired.crt")}";\n'
             f'tls_key = "{harness.path("expired.key")}";\n'
             'tls_sni {\n'
             f'    "mail.example.com" {{ cert = "{harness.path("future.crt")}";'
             f' key = "{harness.path("future.key")}"; }}\n'
             '}\n')
    config = h.write_config(harness, OTHER_CONFIG.format(
        queue=harness.path("queue-dates"), port=2585, extra=extra),
        name="dates.conf")
    result = run([harness.binary("ringrelay"), "-t", "-c", config])
    stderr = result.stderr.decode(errors="replace")
    tap.check(result.returncode == 0, "ringrelay -t accepts an expired "
              "certificate", (result.returncode, stderr))
    tap.check("expired.crt: the certificate is expired (notAfter" in stderr,
              "ringrelay -t warns about an expired certificate", stderr)
    tap.check("future.crt: the certificate is not yet valid (notBefore"
              in stderr, "ringrelay -t warns about a future certificate",
              stderr)

    relay = h.start_relay(harness, config, port=2585, name="dates")
    log = harness.log_text("dates")
    tap.check(re.search(r'level=warning event=tls-cert-warning cert="\S+'
                        r'expired\.crt" problem="expired" not_after="',
                        log) is not None,
              "start logs the expired certificate", log[-1500:])
    tap.check('future.crt" problem="not yet valid" not_before="' in log,
              "start logs the future certificate", log[-1500:])
    os.kill(relay.pid, signal.SIGHUP)
    tap.check(h.wait_for(lambda: harness.log_text("dates").count(
        'problem="expired"') == 2, 10),
        "SIGHUP warns about the expired certificate again")
    output = s_client(harness, ["-starttls", "smtp", "-connect",
                                "127.0.0.1:2585"])
    tap.check("New, TLSv1.3" in output, "expired certificate is served",
              output[-1500:])
    tap.check(harness.stop(relay) == 0, "relay with old certificates stops")


def test_encrypted_key(tap, harness):
    encrypted = harness.path("encrypted.key")
    result = run(["openssl", "pkey", "-in", harness.path("sni.key"),
                  "-aes256", "-passout", "pass:secret", "-out", encrypted])
    tap.check(result.returncode == 0, "openssl writes an encrypted key",
              result.stderr)
    extra = (f'tls_cert = "{harness.path("sni.crt")}";\n'
             f'tls_key = "{encrypted}";\n')
    config = h.write_config(harness, OTHER_CONFIG.format(
        queue=harness.path("queue-enc"), port=2595, extra=extra),
        name="encrypted.conf")
    result = run([harness.binary("ringrelay"), "-t", "-c", config])
    stderr = result.stderr.decode(errors="replace")
    tap.check(result.returncode == 1 and
              f"key file {encrypted}: encrypted private keys are not "
              "supported" in stderr,
              "an encrypted key is named as such", stderr)


def start_other(harness, name, port, extra):
    config = h.write_config(harness, OTHER_CONFIG.format(
        queue=harness.path("queue-" + name), port=port, extra=extra),
        name=name + ".conf")
    return h.start_relay(harness, config, port=port, name=name)


def tls_keys(harness):
    """Return the keys of a valid pair; the reload test broke server.key."""
    return (f'tls_cert = "{harness.path("sni.crt")}";\n'
            f'tls_key = "{harness.path("sni.key")}";\n')


def test_cipher_list(tap, harness):
    cipher = "ECDHE-ECDSA-CHACHA20-POLY1305"
    start_other(harness, "ciphers", 2535,
                tls_keys(harness) + f'tls_ciphers = "{cipher}";')
    output = s_client(harness, ["-starttls", "smtp", "-tls1_2",
                                "-connect", "127.0.0.1:2535"])
    tap.check(f"New, TLSv1.2, Cipher is {cipher}" in output,
              "tls_ciphers sets the TLS 1.2 cipher", output[-1500:])


def test_min_version(tap, harness):
    start_other(harness, "tls13", 2545, tls_keys(harness) +
                'tls_min_version = "1.3";\ntimeout_command = 2s;')
    output = s_client(harness, ["-starttls", "smtp", "-tls1_2",
                                "-connect", "127.0.0.1:2545"])
    tap.check("New, TLSv1.2" not in output and
              "Cipher is (NONE)" in output,
              "tls_min_version 1.3 rejects TLS 1.2", output[-1500:])
    log = harness.log_text("tls13")
    tap.check("event=tls-failed" in log and "UNSUPPORTED_PROTOCOL" in log,
              "rejected TLS 1.2 client is logged", log[-1500:])
    output = s_client(harness, ["-starttls", "smtp", "-connect",
                                "127.0.0.1:2545"])
    tap.check("New, TLSv1.3" in output, "TLS 1.3 still works",
              output[-1500:])

    # A client that never starts the handshake times out without a
    # plaintext 421 in the middle of the TLS stream.
    client = h.RawClient(2545)
    client.reply()
    client.command(b"EHLO client.test\r\n")
    client.command(b"STARTTLS\r\n")
    started = time.monotonic()
    closed = client.closed()
    waited = time.monotonic() - started
    client.close()
    tap.check(closed and 1.0 < waited < 8.0,
              "stalled handshake closes after timeout_command", waited)
    tap.check("waiting=tls-handshake" in harness.log_text("tls13"),
              "stalled handshake is logged as a timeout")
    h.wait_for(lambda: 'error="timeout"' in harness.log_text("tls13"), 10)
    failed = [line for line in harness.log_text("tls13").splitlines()
              if "event=tls-failed" in line and 'error="timeout"' in line]
    tap.check(len(failed) == 1 and "stage=handshake" in failed[0],
              "stalled handshake logs tls-failed", failed)

    # A client that closes after the first bytes of its ClientHello.
    client = h.RawClient(2545)
    client.reply()
    client.command(b"EHLO client.test\r\n")
    client.command(b"STARTTLS\r\n")
    client.sock.sendall(b"\x16\x03\x01\x00\x80\x01\x00")
    client.close()
    closed = h.wait_for(lambda: 'error="client closed the connection"' in
                        harness.log_text("tls13"), 10)
    failed = [line for line in harness.log_text("tls13").splitlines()
              if "event=tls-failed" in line and "client closed" in line]
    tap.check(closed and "mode=starttls stage=handshake" in failed[0],
              "handshake cut by a close logs tls-failed", failed)


def test_not_configured(tap, harness):
    start_other(harness, "plain", 2555, "")
    client = h.RawClient(2555)
    client.reply()
    client.sock.sendall(b"EHLO client.test\r\n")
    ehlo = b""
    while not re.search(rb"(^|\n)250 ", ehlo):
        ehlo += client.sock.recv(4096)
    tap.check(b"STARTTLS" not in ehlo, "no STARTTLS without tls_cert", ehlo)
    tap.check(client.command(b"STARTTLS\r\n").startswith("502 5.5.1"),
              "STARTTLS without tls_cert gets 502")
    client.close()


def auth_users(harness):
    """Write a users file with user "tlsuser", password "secret", as a
    SHA-512 crypt hash from openssl passwd."""
    result = run(["openssl", "passwd", "-6", "secret"])
    if result.returncode != 0:
        raise RuntimeError(f"openssl passwd failed: {result.stderr!r}")
    path = harness.path("users")
    with open(path, "w") as out:
        out.write("tlsuser:" + result.stdout.decode().strip() + "\n")
    return path


def test_auth_over_tls(tap, harness, store):
    """AUTH needs TLS when auth_plaintext is off, works inside STARTTLS
    from outside relay_networks, and relays the message."""
    users = auth_users(harness)
    start_other(harness, "auth", 2565, tls_keys(harness) +
                f'auth_users_file = "{users}";')
    with smtplib.SMTP("127.0.0.1", 2565, timeout=30,
                      source_address=("127.0.0.2", 0)) as client:
        client.ehlo("client.test")
        tap.check(not client.has_extn("auth"),
                  "AUTH is not offered before STARTTLS",
                  client.esmtp_features)
        code, text = client.docmd("AUTH", "PLAIN AHRsc3VzZXIAc2VjcmV0")
        tap.check(code == 538 and text.startswith(b"5.7.11"),
                  "AUTH before STARTTLS gets 538 5.7.11", (code, text))
        client.starttls(context=ssl._create_unverified_context())
        client.ehlo("client.test")
        tap.check(client.has_extn("auth"), "AUTH is offered inside TLS",
                  client.esmtp_features)
        code, text = client.login("tlsuser", "secret")
        tap.check(code == 235, "AUTH PLAIN succeeds inside TLS",
                  (code, text))
        refused = client.sendmail("a@client.test", ["b@far.test"],
                                  b"Subject: auth over tls\r\n\r\nhi\r\n")
        tap.check(refused == {}, "authenticated client relays", refused)

    def arrived():
        return any(b"auth over tls" in m[2] for m in h.read_stored(store))
    tap.check(h.wait_for(arrived, 30), "message of the TLS login arrives")
    content = [m[2] for m in h.read_stored(store)
               if b"auth over tls" in m[2]][:1]
    header = content[0].split(b"\r\n\r\n", 1)[0] if content else b""
    tap.check(re.search(rb"with ESMTPSA\s", header) is not None and
              re.search(rb"authenticated\s+as\s+tlsuser", header) is not None,
              "Received: names ESMTPSA and the user", header)


def test_starttls_voids_auth(tap, harness):
    """A STARTTLS after AUTH voids the authentication (RFC 3207)."""
    start_other(harness, "authplain", 2575, tls_keys(harness) +
                f'auth_users_file = "{harness.path("users")}";\n'
                "auth_plaintext = true;")
    with smtplib.SMTP("127.0.0.1", 2575, timeout=30,
                      source_address=("127.0.0.2", 0)) as client:
        client.ehlo("client.test")
        code, _ = client.login("tlsuser", "secret")
        tap.check(code == 235, "AUTH in plaintext with auth_plaintext",
                  code)
        client.starttls(context=ssl._create_unverified_context())
        client.ehlo("client.test")
        client.mail("a@client.test")
        code, text = client.rcpt("b@far.test")
        tap.check(code == 554 and text.startswith(b"5.7.1"),
                  "relay denied after STARTTLS voided AUTH", (code, text))


def test(tap, harness):
    make_ca(harness)
    make_cert(harness, "server", "relay.test")
    make_cert(harness, "sni", "mail.example.com")
    store = harness.path("store")
    h.start_sink(harness, store, port=2526)
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue"), dir=harness.tmp))
    result = run([harness.binary("ringrelay"), "-t", "-c", config])
    tap.check(result.returncode == 0, "ringrelay -t accepts the TLS keys",
              result.stderr)
    relay = h.start_relay(harness, config)
    test_smtplib_relay(tap, harness, store)
    test_ehlo_again(tap, harness)
    test_starttls_errors(tap)
    test_injection(tap, harness)
    test_swaks(tap, harness)
    test_s_client(tap, harness)
    test_posttls_finger(tap, harness)
    test_implicit(tap, harness, store)
    test_implicit_early_ehlo(tap, harness)
    test_large_message(tap, harness, store)
    test_sni(tap, harness)
    test_resumption(tap, harness)
    test_reload(tap, harness, relay)
    test_bad_handshake(tap, harness, relay)
    test_check_missing_cert(tap, harness)
    test_encrypted_key(tap, harness)
    test_cipher_list(tap, harness)
    test_min_version(tap, harness)
    test_cert_dates(tap, harness)
    test_not_configured(tap, harness)
    test_auth_over_tls(tap, harness, store)
    test_starttls_voids_auth(tap, harness)
    tap.check(relay.poll() is None, "relay is still running")

    # Under ASan and UBSan a leak or an error shows here: the relay exits
    # with a non-zero status and its log has the report.
    status = harness.stop(relay)
    log = harness.log_text("ringrelay")
    tap.check(status == 0, "relay stops cleanly on SIGTERM", status)
    tap.check("Sanitizer" not in log and "runtime error:" not in log,
              "relay log has no sanitizer report", log[-3000:])


if __name__ == "__main__":
    h.main_wrapper(test)

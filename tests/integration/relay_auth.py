#!/usr/bin/env python3
"""SMTP AUTH (RFC 4954) from a client outside relay_networks.

The relay listens on 127.0.0.1:2525 with relay_networks = 127.0.0.1/32,
auth_plaintext = true and a users file with one user per accepted hash
family (yescrypt, bcrypt, SHA-512 crypt). Clients bind 127.0.0.2, so
only AUTH lets them relay. A sink on 127.0.0.1:2527 is the route of
other.test and must receive exactly the authenticated messages, each
with the user in its Received: header.

Logins run through smtplib login() with PLAIN and with LOGIN, and swaks
--auth PLAIN and LOGIN. Failures get a delayed 535 and a 421 after
auth_max_failures. The raw cases are "*" to cancel, an unknown
mechanism, AUTH before EHLO, AUTH twice, AUTH inside a transaction, bad
base64, an empty "=" response and an unauthenticated relay attempt
(554). The log lines are checked, and a second relay without
auth_plaintext neither offers AUTH nor accepts it (538 5.7.11). A users
file with a bad line stops the daemon at start with FILE:LINE.

Usage (inside netns_run.sh): relay_auth.py BUILD_DIR
"""
import base64
import crypt
import os
import re
import signal
import smtplib
import socket
import struct
import subprocess
import time

import harness as h

CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{queue}";
hostname = "relay.test";
resolver = "127.0.0.1:53";
relay_networks = ["127.0.0.1/32"];
routes {{
    "other.test" = "127.0.0.1:2527";
}}
greeting_delay = 0s;
max_errors = 1000;
auth_users_file = "{users}";
auth_plaintext = {plaintext};
"""

OUTSIDE = "127.0.0.2"
SENDER = "sender@client.test"

# user -> (password, salt that picks the hash family)
USERS = {
    "alice": ("correct horse", "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$"),
    "bob": ("b0b:pass", "$2b$05$abcdefghijklmnopqrstuu"),
    "carol@client.test": ("s3cret with spaces", "$6$saltsaltsalt$"),
}


def write_users(harness):
    lines = ["# test users, one per hash family", ""]
    for user, (password, salt) in USERS.items():
        lines.append(f"{user}:{crypt.crypt(password, salt)}")
    path = harness.path("users")
    with open(path, "w") as users:
        users.write("\n".join(lines) + "\n")
    os.chmod(path, 0o644)
    return path


def plain(user, password, authzid=""):
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()) \
        .decode()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def message(subject):
    return (f"From: {SENDER}\r\nTo: rcpt@other.test\r\n"
            f"Subject: {subject}\r\n\r\nauth test\r\n").encode()


def stored_subjects(store):
    subjects = {}
    for _, _, content in h.read_stored(store):
        for line in content.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                subjects[line[9:].decode()] = content
    return subjects


def smtplib_login(tap, mechanism, user):
    password = USERS[user][0]
    with smtplib.SMTP("127.0.0.1", 2525, local_hostname="client.test",
                      source_address=(OUTSIDE, 0), timeout=30) as client:
        client.ehlo()
        tap.check(client.has_extn("auth") and
                  client.esmtp_features["auth"].split() == ["PLAIN",
                                                            "LOGIN"],
                  "EHLO offers AUTH PLAIN LOGIN",
                  client.esmtp_features.get("auth"))
        client.user, client.password = user, password
        method = client.auth_plain if mechanism == "PLAIN" \
            else client.auth_login
        code, text = client.auth(mechanism, method)
        tap.check(code == 235 and text.startswith(b"2.7.0 "),
                  f"smtplib AUTH {mechanism} as {user} gets 235 2.7.0",
                  f"{code} {text}")
        refused = client.sendmail(SENDER, ["rcpt@other.test"],
                                  message(f"smtplib {mechanism}"))
        tap.check(refused == {}, f"AUTH {mechanism} client relays to "
                  "other.test", refused)


def swaks_login(tap, harness, mechanism, user):
    password = USERS[user][0]
    result = subprocess.run(
        ["swaks", "--server", "127.0.0.1:2525", "--local-interface",
         OUTSIDE, "--ehlo", "client.test", "--from", SENDER, "--to",
         "rcpt@other.test", "--auth", mechanism, "--auth-user", user,
         "--auth-password", password, "--header",
         f"Subject: swaks {mechanism}", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    tap.check(result.returncode == 0,
              f"swaks --auth {mechanism} as {user} relays",
              result.stdout[-2000:] + result.stderr[-500:])
    tap.check("235 2.7.0" in result.stdout,
              f"swaks --auth {mechanism} sees 235 2.7.0")
    # swaks echoes the password it sends; the relay log must not.
    return password


def raw_session(port=2525):
    client = h.RawClient(port, source=OUTSIDE, timeout=30)
    client.reply()
    client.command(b"EHLO client.test\r\n")
    return client


def check_sequence_errors(tap):
    client = h.RawClient(2525, source=OUTSIDE)
    client.reply()
    reply = client.command(b"AUTH PLAIN " + plain("alice", "x").encode()
                           + b"\r\n")
    tap.check(reply.startswith("503 5.5.1 "), "AUTH before EHLO gets 503",
              reply)
    client.command(b"EHLO client.test\r\n")
    reply = client.command(b"AUTH CRAM-MD5\r\n")
    tap.check(reply.startswith("504 5.5.4 "),
              "unknown mechanism gets 504 5.5.4", reply)
    reply = client.command(b"AUTH PLAIN\r\n")
    tap.check(reply == "334 ", "AUTH PLAIN without response gets 334",
              reply)
    reply = client.command(b"*\r\n")
    tap.check(reply.startswith("501 5.0.0 "), "'*' cancels with 501 5.0.0",
              reply)
    reply = client.command(b"AUTH LOGIN\r\n")
    tap.check(reply == "334 VXNlcm5hbWU6", "AUTH LOGIN asks Username:",
              reply)
    reply = client.command(b"*\r\n")
    tap.check(reply.startswith("501 5.0.0 "), "LOGIN cancels with '*'",
              reply)
    reply = client.command(b"AUTH PLAIN AHVzZXI=c2Vj\r\n")
    tap.check(reply.startswith("501 5.5.2 "), "bad base64 gets 501 5.5.2",
              reply)
    reply = client.command(b"AUTH PLAIN\r\n")
    reply = client.command(b"not base64!\r\n")
    tap.check(reply.startswith("501 5.5.2 "),
              "bad base64 response line gets 501 5.5.2", reply)
    reply = client.command(b"AUTH PLAIN =\r\n")
    tap.check(reply.startswith("501 5.5.2 Error: malformed PLAIN"),
              "empty initial response '=' is a malformed PLAIN message",
              reply)
    check_transaction(tap, client)


def check_transaction(tap, client):
    """AUTH inside a transaction, relaying before and after AUTH."""
    client.command(b"MAIL FROM:<" + SENDER.encode() + b">\r\n")
    reply = client.command(b"AUTH PLAIN " + plain("alice", "x").encode()
                           + b"\r\n")
    tap.check(reply.startswith("503 5.5.1 "),
              "AUTH inside a transaction gets 503", reply)
    client.command(b"RSET\r\n")
    reply = client.command(b"RCPT TO:<rcpt@other.test>\r\n")
    reply = client.command(b"MAIL FROM:<" + SENDER.encode() + b">\r\n")
    reply = client.command(b"RCPT TO:<rcpt@other.test>\r\n")
    tap.check(reply.startswith("554 5.7.1 "),
              "unauthenticated relay from 127.0.0.2 gets 554 5.7.1", reply)
    client.command(b"RSET\r\n")
    reply = client.command(b"AUTH PLAIN " + plain(
        "alice", USERS["alice"][0]).encode() + b"\r\n")
    tap.check(reply.startswith("235 2.7.0 "), "raw AUTH PLAIN succeeds",
              reply)
    reply = client.command(b"AUTH PLAIN " + plain(
        "alice", USERS["alice"][0]).encode() + b"\r\n")
    tap.check(reply.startswith("503 5.5.1 "), "second AUTH gets 503",
              reply)
    reply = client.command(b"MAIL FROM:<" + SENDER.encode() +
                           b"> AUTH=sender+40client.test\r\n")
    tap.check(reply.startswith("250 "), "MAIL with AUTH= is accepted",
              reply)
    reply = client.command(b"RCPT TO:<rcpt@other.test>\r\n")
    tap.check(reply.startswith("250 "),
              "authenticated raw client may relay", reply)
    client.command(b"QUIT\r\n")
    client.close()


def timed(client, line):
    start = time.monotonic()
    reply = client.command(line)
    return reply, time.monotonic() - start


def check_failures(tap, harness):
    """Three failures: 535 after 1 s and 2 s, then 421 after 4 s."""
    client = raw_session()
    wrong = [plain("alice", "wrong"), plain("nobody", "whatever"),
             plain("bob", "b0b")]
    expected = [("535 5.7.8 ", 1.0), ("535 5.7.8 ", 2.0),
                ("421 4.7.0 ", 4.0)]
    for response, (code, delay) in zip(wrong, expected):
        reply, seconds = timed(client, b"AUTH PLAIN " + response.encode()
                               + b"\r\n")
        tap.check(reply.startswith(code), f"failed AUTH gets {code.strip()}",
                  reply)
        tap.check(delay - 0.1 <= seconds < delay + 2,
                  f"{code.strip()} comes after about {delay:.0f} s",
                  f"{seconds:.2f} s")
    tap.check(client.closed(), "session is closed after 3 failures")
    client.close()

    # LOGIN fails the same way, and a new session starts counting anew.
    client = raw_session()
    client.command(b"AUTH LOGIN\r\n")
    client.command(b64("bob").encode() + b"\r\n")
    reply, seconds = timed(client, b64("wrong").encode() + b"\r\n")
    tap.check(reply.startswith("535 5.7.8 ") and seconds >= 0.9,
              "failed AUTH LOGIN gets a delayed 535", f"{reply} {seconds}")
    reply = client.command(b"AUTH PLAIN " + plain(
        "bob", USERS["bob"][0]).encode() + b"\r\n")
    tap.check(reply.startswith("235 "), "AUTH after a failure may succeed",
              reply)
    client.command(b"QUIT\r\n")
    client.close()

    # A client that half-closes after AUTH still gets the delayed reply.
    client = raw_session()
    client.sock.sendall(b"AUTH PLAIN " + plain("alice", "wrong").encode()
                        + b"\r\n")
    client.sock.shutdown(socket.SHUT_WR)
    reply = client.reply()
    tap.check(reply.startswith("535 5.7.8 "),
              "half-closed client gets its 535", reply)
    tap.check(client.closed(), "session closes after the 535")
    client.close()

    reply = raw_session().command(b"AUTH PLAIN " + plain(
        "alice", "x", authzid="bob").encode() + b"\r\n")
    tap.check(reply.startswith("535 5.7.8 Error: the authorization"),
              "PLAIN authzid of another user gets 535", reply)


def login(port, user, password):
    """Return the reply to AUTH PLAIN in a new session."""
    client = raw_session(port)
    reply = client.command(b"AUTH PLAIN " + plain(user, password).encode()
                           + b"\r\n")
    client.close()
    return reply


def check_reload(tap, harness, relay, users):
    """SIGHUP reads the users file again: a new $2a$ user may log in, a
    locked one may not, and a bad file keeps the users loaded before."""
    log = harness.log_text("ringrelay")
    tap.check("event=auth-users-warning" in log and "mode=0644" in log,
              "a users file readable by others is logged", log[-1500:])
    with open(users, "a") as out:
        out.write("dave:" + crypt.crypt("dave pass",
                                        "$2a$05$abcdefghijklmnopqrstuu")
                  + "\n")
        out.write("eve:!" + crypt.crypt("eve pass", "$6$saltsaltsalt$")
                  + "\n")
        out.write("frank:*\n")
    os.chmod(users, 0o600)
    relay.send_signal(signal.SIGHUP)
    tap.check(h.wait_for(lambda: "event=auth-users-reloaded" in
                         harness.log_text("ringrelay"), 10),
              "SIGHUP reloads the users file")
    line = [l for l in harness.log_text("ringrelay").splitlines()
            if "event=auth-users-reloaded" in l]
    tap.check(bool(line) and "users=6 disabled=2" in line[0],
              "reload line counts users and disabled ones", line)
    reply = login(2525, "dave", "dave pass")
    tap.check(reply.startswith("235 "), "a $2a$ user added by SIGHUP logs in",
              reply)
    reply = login(2525, "eve", "eve pass")
    tap.check(reply.startswith("535 5.7.8 "),
              "a user locked with '!' cannot log in", reply)
    tap.check(h.wait_for(lambda: 'user="eve"' in
                         harness.log_text("ringrelay"), 10) and
              'reason="user is disabled"' in harness.log_text("ringrelay"),
              "a disabled user's login is logged as such")

    with open(users, "a") as out:
        out.write("broken line\n")
    relay.send_signal(signal.SIGHUP)
    tap.check(h.wait_for(lambda: "event=reload-failed auth_users=kept-old"
                         in harness.log_text("ringrelay"), 10),
              "a bad users file on SIGHUP is logged")
    tap.check(f'{users}:9: expected user:hash' in
              harness.log_text("ringrelay"),
              "the failed reload names the file and line")
    reply = login(2525, "dave", "dave pass")
    tap.check(reply.startswith("235 "), "a failed reload keeps the users",
              reply)
    tap.check(harness.log_text("ringrelay").count(
        "event=auth-users-warning") == 1,
        "a reloaded users file with mode 0600 gets no warning")


def check_log(tap, harness, passwords):
    log = harness.log_text("ringrelay")
    failed = [line for line in log.splitlines() if "event=auth-failed" in line]
    tap.check(any(f"client={OUTSIDE} " in line and 'user="alice"' in line
                  and "mechanism=PLAIN" in line for line in failed),
              "failed AUTH is logged with client address and user", failed)
    tap.check(any('user="nobody"' in line for line in failed),
              "failed AUTH of an unknown user is logged", failed)
    reasons = {
        "cancelled by the client": "'*' cancel",
        "invalid base64": "bad base64",
        "malformed response": "malformed response",
        "authorization identity differs from the user name":
            "foreign authzid",
    }
    for reason, case in reasons.items():
        tap.check(any(f'reason="{reason}"' in line and
                      f"client={OUTSIDE} " in line for line in failed),
                  f"{case} is logged as auth-failed", reason)
    tap.check(any("mechanism=LOGIN" in line and "cancelled" in line
                  for line in failed), "LOGIN cancel is logged", failed)
    tap.check(any('user="alice"' in line and "authorization identity" in
                  line for line in failed),
              "foreign authzid is logged with the user", failed)
    tap.check('reason="too many failed AUTH attempts"' in log,
              "the 421 after auth_max_failures is logged")
    tap.check(all(password not in log for password in passwords + [
        "wrong", "whatever"]), "no password appears in the log")
    accepted = [line for line in log.splitlines()
                if "event=accepted" in line]
    tap.check(len(accepted) == 4 and all(" user=" in line
                                         for line in accepted),
              "every accepted message is logged with user=", accepted)
    tap.check(any('user="carol@client.test"' in line for line in accepted),
              "accept line names the swaks PLAIN user", accepted)


def check_sink(tap, store):
    expected = {"smtplib PLAIN": "alice", "smtplib LOGIN": "bob",
                "swaks PLAIN": "carol@client.test", "swaks LOGIN": "alice"}
    arrived = h.wait_for(lambda: len(h.read_stored(store)) >= 4, timeout=30)
    subjects = stored_subjects(store)
    tap.check(arrived and sorted(subjects) == sorted(expected),
              "sink gets each authenticated message", sorted(subjects))
    for subject, user in expected.items():
        content = subjects.get(subject, b"")
        header = content.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ")
        tap.check(f"(authenticated as {user})".encode() in header and
                  b"with ESMTPA" in header,
                  f"Received: of '{subject}' names {user}", header[:400])


def ehlo_lines(client):
    """Send EHLO and return every line of its reply, joined by LF."""
    client.sock.sendall(b"EHLO client.test\r\n")
    while b"\r\n250 " not in client.buffer:
        chunk = client.sock.recv(65536)
        if not chunk:
            break
        client.buffer += chunk
    text, _, client.buffer = client.buffer.partition(b"\r\n250 ")
    end, _, client.buffer = client.buffer.partition(b"\r\n")
    return (text + b"\n250 " + end).decode().replace("\r\n", "\n")


def check_no_plaintext(tap, harness):
    path = h.write_config(harness, CONFIG.format(
        port=2535, queue=harness.path("queue-tls"),
        users=harness.path("users"), plaintext="false"), name="tls.conf")
    relay = h.start_relay(harness, path, port=2535, name="ringrelay-tls")
    client = h.RawClient(2535, source=OUTSIDE)
    client.reply()
    ehlo = ehlo_lines(client)
    tap.check(ehlo.startswith("250-relay.test\n") and "AUTH" not in ehlo,
              "without auth_plaintext EHLO does not offer AUTH", ehlo)
    reply = client.command(b"AUTH PLAIN " + plain(
        "alice", USERS["alice"][0]).encode() + b"\r\n")
    tap.check(reply.startswith("538 5.7.11 Encryption required"),
              "without auth_plaintext AUTH gets 538 5.7.11", reply)
    client.command(b"QUIT\r\n")
    client.close()
    tap.check(harness.stop(relay) == 0, "second relay stops cleanly")


def check_bad_users_file(tap, harness):
    path = harness.path("bad-users")
    with open(path, "w") as users:
        users.write("# ok\nmd5user:" + crypt.crypt("x", "$1$saltsalt$") +
                    "\n")
    config = h.write_config(harness, CONFIG.format(
        port=2545, queue=harness.path("queue-bad"), users=path,
        plaintext="true"), name="bad.conf")
    result = subprocess.run([harness.binary("ringrelay"), "-c", config],
                            capture_output=True, text=True, timeout=30)
    tap.check(result.returncode == 1 and
              f"{path}:2: unsupported hash type" in result.stderr,
              "an MD5 hash stops the daemon with FILE:LINE",
              f"{result.returncode} {result.stderr}")


def slow_session(port, source):
    """Connect from source and send EHLO and a wrong AUTH for the slow
    user at once, without reading the replies."""
    client = h.RawClient(port, source=source, timeout=30)
    client.sock.sendall(b"EHLO client.test\r\nAUTH PLAIN " +
                        plain("slow", "wrong").encode() + b"\r\n")
    return client


def check_show_flags(tap, harness, client, config):
    """ringrelay-queue show of an authenticated message with no other
    flag prints "flags: -". No name server answers, so it stays queued."""
    client.command(b"MAIL FROM:<alice@client.test>\r\n")
    client.command(b"RCPT TO:<rcpt@nowhere.test>\r\n")
    client.command(b"DATA\r\n")
    reply = client.command(message("queued") + b".\r\n")
    match = re.search(r"\b([0-9A-F]{16})\b", reply)
    tap.check(reply.startswith("250 ") and match is not None,
              "authenticated message is queued", reply)
    if match is None:
        return
    result = subprocess.run(
        [harness.binary("tools/ringrelay-queue"), "-c", config, "show",
         match.group(1)], capture_output=True, text=True, timeout=30)
    lines = result.stdout.splitlines()
    tap.check("flags: -" in lines and "auth_user: alice" in lines,
              "show prints flags: - for an authenticated message",
              result.stdout + result.stderr)


def check_sender_match(tap, client):
    """auth_sender_match: alice may send only as alice@... or <>."""
    reply = client.command(b"MAIL FROM:<bob@client.test>\r\n")
    tap.check(reply.startswith("553 5.7.1 "),
              "auth_sender_match rejects another user's sender", reply)
    reply = client.command(b"MAIL FROM:<Alice@client.test>\r\n")
    tap.check(reply.startswith("553 5.7.1 "),
              "auth_sender_match compares the local part exactly", reply)
    reply = client.command(b"MAIL FROM:<alice@client.test>\r\n")
    tap.check(reply.startswith("250 "),
              "auth_sender_match accepts the login's address", reply)
    client.command(b"RSET\r\n")
    reply = client.command(b"MAIL FROM:<>\r\n")
    tap.check(reply.startswith("250 "),
              "auth_sender_match accepts the null sender", reply)
    client.command(b"RSET\r\n")


def check_pending_caps(tap, harness):
    """Bounded password queue: a user with a bcrypt cost-10 hash (about
    80 ms a check) comes first, so unknown users cost as much too."""
    path = harness.path("users-slow")
    with open(path, "w") as users:
        users.write("slow:" + crypt.crypt("slow pass",
                                          "$2b$10$abcdefghijklmnopqrstuu"))
        users.write("\nalice:" + crypt.crypt(USERS["alice"][0],
                                            USERS["alice"][1]) + "\n")
    config = h.write_config(harness, CONFIG.format(
        port=2555, queue=harness.path("queue-caps"), users=path,
        plaintext="true") + "auth_max_pending = 40;\n"
        "auth_max_pending_per_ip = 2;\nauth_sender_match = true;\n",
        name="caps.conf")
    relay = h.start_relay(harness, config, port=2555, name="ringrelay-caps")

    # Six sessions from one address: one check runs, two wait, and the
    # rest find the per-address cap.
    clients = [slow_session(2555, OUTSIDE) for _ in range(6)]
    replies = []
    for client in clients:
        client.reply()
        client.reply()
        replies.append(client.reply())
        client.close()
    busy = [r for r in replies if r.startswith("454 4.7.0 ")]
    tap.check(len(busy) >= 1, "AUTH over the per-address cap gets 454 4.7.0",
              replies)
    tap.check(all(r.startswith(("454 4.7.0 ", "535 5.7.8 "))
                  for r in replies), "other capped sessions get 535", replies)

    # Thirty sessions from thirty addresses send AUTH and reset the
    # connection at once: their queued checks are dropped, not hashed, so
    # a correct login right after them is not delayed by 30 checks.
    for i in range(30):
        client = slow_session(2555, f"127.0.1.{i + 1}")
        time.sleep(0.01)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                               struct.pack("ii", 1, 0))
        client.close()
    client = raw_session(2555)
    reply, seconds = timed(client, b"AUTH PLAIN " + plain(
        "alice", USERS["alice"][0]).encode() + b"\r\n")
    tap.check(reply.startswith("235 "), "login after closed sessions "
              "succeeds", reply)
    tap.check(seconds < 1.2, "checks of closed sessions are not hashed",
              f"{seconds:.2f} s")
    check_sender_match(tap, client)
    check_show_flags(tap, harness, client, config)
    client.close()
    tap.check(harness.stop(relay) == 0, "capped relay stops cleanly")

    log = harness.log_text("ringrelay-caps")
    tap.check('reason="too many pending checks from this address"' in log,
              "AUTH over the cap is logged")
    closed = [line for line in log.splitlines() if "event=auth-failed" in
              line and "session closed before" in line]
    tap.check(len(closed) >= 25, "AUTH of a closed session is logged",
              len(closed))


def test(tap, harness):
    store = harness.path("store")
    h.start_sink(harness, store, port=2527, name="sink")
    users = write_users(harness)
    relay = h.start_relay(harness, h.write_config(harness, CONFIG.format(
        port=2525, queue=harness.path("queue"), users=users,
        plaintext="true")))

    smtplib_login(tap, "PLAIN", "alice")
    smtplib_login(tap, "LOGIN", "bob")
    passwords = [USERS[u][0] for u in USERS]
    swaks_login(tap, harness, "PLAIN", "carol@client.test")
    swaks_login(tap, harness, "LOGIN", "alice")
    check_sequence_errors(tap)
    check_failures(tap, harness)
    check_sink(tap, store)
    # A sink stores a message before its reply reaches the relay, so wait
    # for the relay to log every delivery before reading the log.
    h.wait_for(lambda: harness.log_text("ringrelay").count(
        "event=delivered") >= 4, timeout=30)
    check_no_plaintext(tap, harness)
    check_bad_users_file(tap, harness)
    check_pending_caps(tap, harness)
    check_reload(tap, harness, relay, users)
    tap.check(harness.stop(relay) == 0, "relay stops cleanly on SIGTERM")
    check_log(tap, harness, passwords)


if __name__ == "__main__":
    h.main_wrapper(test)

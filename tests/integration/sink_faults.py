#!/usr/bin/env python3
"""The bench sink's measurements and scripted faults, checked exactly:
loss and duplicates from hand-made X-Blast-* headers, reply faults with a
fixed --seed against the replies a client saw, delays, cut connections,
the connection limit, extension switches, and a blast run.

Usage (inside netns_run.sh): sink_faults.py BUILD_DIR
"""
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time

import harness as h

# Each sink run listens on a port of its own, because the port of the
# run before was seen still bound for a moment after that sink exited
# (io_uring backend).
FIRST_PORT = 2600
STATS_KEYS = ["messages", "bytes", "rcpts", "lost", "duplicates", "copies",
              "sessions_total", "sessions_open", "sessions_peak",
              "command_reads", "pipelined_reads", "tls_sessions",
              "messages_tls", "first_message_wall_us",
              "last_message_wall_us", "msgs_per_s", "latency_p50_ms",
              "latency_p90_ms", "latency_p99_ms", "latency_p999_ms",
              "latency_max_ms"]


PORT = FIRST_PORT


class Sink:
    """One sink run with its own store, stats file and JSON report."""

    port = FIRST_PORT

    def __init__(self, harness, name, options):
        global PORT
        Sink.port += 1
        PORT = Sink.port
        self.harness = harness
        self.name = name
        self.store = harness.path(name + "-store")
        self.stats = harness.path(name + ".stats")
        self.json = harness.path(name + ".json")
        argv = [harness.binary("bench/ringrelay-bench"), "sink",
                "--listen", f"127.0.0.1:{PORT}", "--store", self.store,
                "--stats-file", self.stats, "--json", self.json,
                "--max-seconds", "120"] + options
        self.proc = harness.start(name, argv)
        if not h.wait_port("127.0.0.1", PORT):
            raise RuntimeError(f"sink {name} did not listen:\n"
                               + harness.log_text(name))
        # The connection that wait_port makes is the sink's first
        # session; wait until it has ended.
        h.wait_for(self.probe_ended, 5)

    def probe_ended(self):
        stats = self.read_stats()
        return (stats.get("sessions_total") == "1"
                and stats.get("sessions_open") == "0")

    def read_stats(self):
        try:
            with open(self.stats) as stats:
                return dict(line.rstrip("\n").split("=", 1)
                            for line in stats if "=" in line)
        except OSError:
            return {}

    def stop(self):
        status = self.harness.stop(self.proc)
        with open(self.json) as report:
            self.report = json.load(report)
        return status

    def stored(self):
        return h.read_stored(self.store)


def raw_client():
    return h.RawClient(PORT)


def blast_message(seq, rcpts=None):
    lines = ["From: <sender@client.test>", "To: <user@example.test>",
             f"Subject: message {seq}", f"X-Blast-Seq: {seq}",
             f"X-Blast-Sent: {time.time_ns() // 1000}"]
    if rcpts is not None:
        lines.append(f"X-Blast-Rcpts: {rcpts}")
    return ("\r\n".join(lines) + "\r\n\r\n.leading dot\r\nbody\r\n").encode()


def test_loss_and_duplicates(tap, harness):
    sink = Sink(harness, "loss", ["--seed", "1"])
    seqs = [seq for seq in range(1, 101) if seq != 7] + [9]
    client = smtplib.SMTP("127.0.0.1", PORT, timeout=10)
    for seq in seqs:
        client.sendmail("sender@client.test", ["user@example.test"],
                        blast_message(seq))
    client.sendmail("sender@client.test", ["user@example.test"],
                    b"Subject: no blast headers\r\n\r\nhi\r\n")
    # Seq 200 for two recipients, over two transactions, one of them
    # sent twice: one pair duplicated, none lost.
    for rcpt in ["a@example.test", "b@example.test", "b@example.test"]:
        client.sendmail("sender@client.test", [rcpt],
                        blast_message(200, rcpts=2))
    client.quit()

    h.wait_for(lambda: sink.read_stats().get("messages") == "104", 5)
    live = sink.read_stats()
    tap.check(sorted(live) == sorted(STATS_KEYS),
              "stats file has exactly the documented keys", sorted(live))
    tap.check(sink.stop() == 0, "sink exits 0 on SIGTERM")
    stats = sink.read_stats()
    # Seqs 101..199 are gaps below the highest seq 200, so they count as
    # lost: 1 (seq 7) + 99.
    tap.check(stats.get("messages") == "104", "104 messages counted",
              stats)
    tap.check(stats.get("lost") == "100", "seq 7 and 101..199 lost",
              stats)
    tap.check(stats.get("duplicates") == "2",
              "seq 9 and the repeated pair of seq 200 are duplicates",
              stats)
    tap.check(stats.get("rcpts") == "104", "one recipient per message",
              stats)
    tap.check(stats.get("sessions_open") == "0", "no session open", stats)
    tap.check(sink.report["untracked"] == 1,
              "the message without blast headers is untracked",
              sink.report["untracked"])
    tap.check(sink.report["latency_ms"]["count"] == 103,
              "latency of every tracked message", sink.report["latency_ms"])
    tap.check(float(stats["latency_max_ms"]) < 10000,
              "latency is plausible", stats)
    stored = sink.stored()
    tap.check(len(stored) == 104, "every accepted message is stored",
              len(stored))
    tap.check(stored and stored[0][2].endswith(b"\r\n.leading dot\r\n"
                                               b"body\r\n"),
              "stored content is unstuffed", stored[:1])
    names = sorted(os.listdir(sink.store))
    expected = [f"{number:012d}.msg" for number in range(1, 105)]
    tap.check(names == expected, "stored names are 000000000001.msg and up",
              names[:3] + names[-3:])
    usage = subprocess.run(
        [harness.binary("bench/ringrelay-bench"), "sink", "--help"],
        capture_output=True, text=True, timeout=10).stdout
    tap.check("DIR/NNNNNNNNNNNN.msg\n" in usage
              and "(12-digit sequence" in usage,
              "--help names the stored files as they are", usage)


def test_loss_with_expect(tap, harness):
    sink = Sink(harness, "expect", ["--expect", "20", "--seed", "1"])
    client = smtplib.SMTP("127.0.0.1", PORT, timeout=10)
    for seq in [1, 2, 3, 3, 25]:
        client.sendmail("sender@client.test", ["user@example.test"],
                        blast_message(seq))
    client.quit()
    sink.stop()
    stats = sink.read_stats()
    tap.check(stats.get("lost") == "17", "--expect 20: 17 seqs lost",
              stats)
    tap.check(stats.get("duplicates") == "1", "--expect 20: 1 duplicate",
              stats)
    tap.check(sink.report["outside_seq_range"] == 1,
              "seq 25 is outside --expect 20", sink.report)


REPLY_FAULTS = ["--mail-reply", "452 4.3.1 mailbox full:0.1",
                "--rcpt-reply", "451 4.3.0 try later:0.2",
                "--rcpt-reply", "550 5.1.1 no such user:0.1",
                "--data-reply", "554 5.6.0 content rejected:0.2",
                "--data-reply", "250 2.0.0 custom ok:0.1"]


def run_reply_faults(harness, name, seed, count):
    """Send count messages on one session; returns the sink, the codes
    per stage and the sequence of all replies."""
    sink = Sink(harness, name, ["--seed", str(seed)] + REPLY_FAULTS)
    codes = {"mail": {}, "rcpt": {}, "data": {}}
    sequence = []
    accepted = 0

    def note(stage, code, text):
        codes[stage][code] = codes[stage].get(code, 0) + 1
        sequence.append((stage, code, text))

    client = smtplib.SMTP("127.0.0.1", PORT, timeout=10)
    client.ehlo("client.test")
    for seq in range(1, count + 1):
        code, text = client.mail("sender@client.test")
        note("mail", code, text)
        if code != 250:
            continue
        code, text = client.rcpt("user@example.test")
        note("rcpt", code, text)
        if code != 250:
            client.rset()
            continue
        code, text = client.data(blast_message(seq))
        note("data", code, text)
        if code == 250:
            accepted += 1
    client.quit()
    sink.stop()
    return sink, codes, sequence, accepted


def fired(report, stage, code):
    return sum(rule["count"] for rule in report["faults"][stage]["replies"]
               if rule["code"] == code)


def test_reply_faults(tap, harness):
    sink, codes, sequence, accepted = run_reply_faults(harness, "faults",
                                                       7, 300)
    report = sink.report
    for stage, code in [("mail", 452), ("rcpt", 451), ("rcpt", 550),
                        ("data", 554)]:
        seen = codes[stage].get(code, 0)
        tap.check(seen == fired(report, stage, code) and seen > 0,
                  f"{stage} {code}: client saw what the sink counted",
                  f"client {seen}, sink {fired(report, stage, code)}")
    custom = sum(1 for stage, code, text in sequence
                 if stage == "data" and text == b"2.0.0 custom ok")
    tap.check(custom == fired(report, "data", 250) and custom > 0,
              "2xx data reply carries its own text",
              f"client {custom}, sink {fired(report, 'data', 250)}")
    tap.check(report["messages"] == accepted,
              "messages counts the 2xx bodies only",
              f"sink {report['messages']}, client {accepted}")
    tap.check(report["bodies_rejected"] == codes["data"].get(554, 0),
              "refused bodies are counted as rejected", report)
    tap.check(len(sink.stored()) == accepted,
              "only accepted bodies are stored",
              f"{len(sink.stored())} files, {accepted} accepted")
    tap.check(report["faults"]["seed"] == 7, "seed is reported",
              report["faults"])

    again, _, sequence2, _ = run_reply_faults(harness, "faults-again", 7,
                                              300)
    tap.check(sequence2 == sequence, "same seed gives the same replies")
    _, _, sequence3, _ = run_reply_faults(harness, "faults-other", 8, 300)
    tap.check(sequence3 != sequence, "another seed gives other replies")


def test_connect_faults(tap, harness):
    sink = Sink(harness, "connect",
                ["--seed", "3",
                 "--connect-reply", "421 4.3.2 go away:0.3",
                 "--connect-reply", "554 5.7.0 no service:0.2"])
    seen = {}
    behaved = True
    for _ in range(60):
        client = raw_client()
        greeting = client.reply()
        code = int(greeting[:3])
        seen[code] = seen.get(code, 0) + 1
        if code == 421:
            behaved &= client.closed()
        elif code == 554:
            behaved &= client.command(b"EHLO c.test\r\n").startswith("503 ")
            behaved &= client.command(b"QUIT\r\n").startswith("221 ")
        else:
            behaved &= client.command(b"QUIT\r\n").startswith("221 ")
        client.close()
    sink.stop()
    report = sink.report
    tap.check(seen.get(421, 0) == fired(report, "connect", 421) > 0,
              "421 greetings counted", (seen, report["faults"]["connect"]))
    tap.check(seen.get(554, 0) == fired(report, "connect", 554) > 0,
              "554 greetings counted", (seen, report["faults"]["connect"]))
    tap.check(behaved, "421 closes; 554 answers 503 until QUIT")


def test_max_connections(tap, harness):
    sink = Sink(harness, "limit", ["--max-connections", "2"])
    first, second = raw_client(), raw_client()
    ok = first.reply().startswith("220 ") and second.reply().startswith(
        "220 ")
    third = raw_client()
    reply = third.reply()
    tap.check(ok, "two connections get 220")
    tap.check(reply == "421 4.7.0 too many connections",
              "the third gets 421 4.7.0", reply)
    tap.check(third.closed(), "the third is closed")
    for client in (first, second, third):
        client.close()
    h.wait_for(lambda: sink.read_stats().get("sessions_open") == "0", 5)
    fourth = raw_client()
    tap.check(fourth.reply().startswith("220 "),
              "a slot freed by a close is reused")
    fourth.close()
    sink.stop()
    tap.check(sink.report["faults"]["over_max_connections"] == 1,
              "one connection over the limit", sink.report["faults"])


def timed(function, *args):
    start = time.monotonic()
    result = function(*args)
    return result, time.monotonic() - start


def test_delays(tap, harness):
    sink = Sink(harness, "delay", ["--connect-delay", "200",
                                   "--mail-delay", "100",
                                   "--rcpt-delay", "300",
                                   "--data-delay", "250"])
    client, connect_s = timed(smtplib.SMTP, "127.0.0.1", PORT, "c.test", 10)
    client.ehlo("client.test")
    (mail_code, _), mail_s = timed(client.mail, "sender@client.test")
    (rcpt_code, _), rcpt_s = timed(client.rcpt, "user@example.test")
    (data_code, _), data_s = timed(client.data, blast_message(1))
    client.quit()

    # A client that pipelines everything and half-closes still gets
    # every delayed reply.
    raw = raw_client()
    raw.sock.sendall(b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\n"
                     b"RCPT TO:<b@c.test>\r\nDATA\r\n"
                     + blast_message(2) + b".\r\nQUIT\r\n")
    raw.sock.shutdown(socket.SHUT_WR)
    replies = [raw.reply() for _ in range(7)]
    raw.close()
    sink.stop()
    tap.check([reply[:3] for reply in replies]
              == ["220", "250", "250", "250", "354", "250", "221"],
              "a half-closed pipelining client gets every reply", replies)
    # The sink counts delays on the reactor's millisecond clock, read
    # once per turn, so a delay may end a little early.
    slack = 0.005
    tap.check(connect_s >= 0.2 - slack, "greeting waits 200 ms", connect_s)
    tap.check(mail_code == 250 and mail_s >= 0.1 - slack,
              "MAIL waits 100 ms", mail_s)
    tap.check(rcpt_code == 250 and rcpt_s >= 0.3 - slack,
              "RCPT waits 300 ms", rcpt_s)
    tap.check(data_code == 250 and data_s >= 0.25 - slack,
              "end of data waits 250 ms", data_s)
    tap.check(max(connect_s, mail_s, rcpt_s, data_s) < 2,
              "no delay is far too long",
              (connect_s, mail_s, rcpt_s, data_s))
    delayed = {stage: sink.report["faults"][stage]["delayed"]
               for stage in ("connect", "mail", "rcpt", "data")}
    # Every greeting is delayed, the probe's of Sink() too.
    sessions = sink.report["sessions_total"]
    tap.check(delayed == {"connect": sessions, "mail": 2, "rcpt": 2,
                          "data": 2},
              "each delay is counted once", (delayed, sessions))
    tap.check(sink.report["messages"] == 2, "the delayed messages count")


def test_disconnect_in_data(tap, harness):
    sink = Sink(harness, "cut", ["--seed", "11",
                                 "--disconnect-in-data", "0.5"])
    cut = 0
    delivered = []
    for seq in range(1, 41):
        client = smtplib.SMTP("127.0.0.1", PORT, timeout=10)
        try:
            client.sendmail("sender@client.test", ["user@example.test"],
                            blast_message(seq))
            delivered.append(seq)
            client.quit()
        except smtplib.SMTPServerDisconnected:
            cut += 1
        finally:
            client.close()
    sink.stop()
    report = sink.report
    tap.check(cut > 0 and delivered, "some cut, some delivered",
              (cut, delivered))
    tap.check(report["faults"]["disconnects_in_data"] == cut,
              "every cut connection is counted", (cut, report["faults"]))
    tap.check(report["messages"] == len(delivered)
              and len(sink.stored()) == len(delivered),
              "cut bodies are neither counted nor stored",
              (report["messages"], len(sink.stored()), len(delivered)))
    tap.check(report["lost"] == max(delivered) - len(delivered),
              "cut seqs below the highest delivered one are lost",
              (report["lost"], delivered))
    tap.check(report["duplicates"] == 0, "no duplicates", report)


def run_cut_session(harness, name, body):
    """Send one message with every command after EHLO pipelined, and the
    next transaction right behind its final dot, to a sink that cuts
    every body. Returns the sink's JSON report."""
    sink = Sink(harness, name, ["--disconnect-in-data", "1"])
    client = raw_client()
    client.reply()
    client.command(b"EHLO c.test\r\n")
    envelope = b"MAIL FROM:<a@c.test>\r\nRCPT TO:<b@c.test>\r\nDATA\r\n"
    client.sock.sendall(envelope)
    replies = [client.reply() for _ in range(3)]
    client.sock.sendall(body + b".\r\n" + envelope)
    closed = client.reply()
    client.close()
    h.wait_for(lambda: sink.read_stats().get("sessions_open") == "0", 5)
    sink.stop()
    return replies, closed, sink.report


def test_disconnect_pipelined(tap, harness):
    for name, body in (("cut-body", blast_message(1)), ("cut-empty", b"")):
        replies, closed, report = run_cut_session(harness, name, body)
        tap.check(replies[2].startswith("354"), f"{name}: DATA gets 354",
                  replies)
        tap.check(closed == " <closed>", f"{name}: the sink cuts", closed)
        faults = report["faults"]
        tap.check(faults["disconnects_in_data"] == 1,
                  f"{name}: one cut is counted", faults)
        tap.check(report["bodies_aborted"] == 1,
                  f"{name}: the body is aborted once", report)
        tap.check(report["messages"] == 0, f"{name}: nothing accepted",
                  report)


def test_disconnect_blast(tap, harness):
    """blast pipelines the next MAIL, RCPT and DATA behind each final dot,
    so a cut body must not also count the DATA behind it."""
    for connections, messages in ((1, 10), (4, 40)):
        name = f"cut-blast-{connections}"
        sink = Sink(harness, name, ["--seed", "1",
                                    "--disconnect-in-data", "0.5"])
        result = subprocess.run(
            [harness.binary("bench/ringrelay-bench"), "blast", "--server",
             f"127.0.0.1:{PORT}", "--connections", str(connections),
             "--messages", str(messages), "--pipelining", "on",
             "--timeout", "30"],
            capture_output=True, text=True, timeout=60)
        h.wait_for(lambda: sink.read_stats().get("sessions_open") == "0", 5)
        sink.stop()
        report = sink.report
        cut = report["faults"]["disconnects_in_data"]
        tap.check(cut >= 1, f"{name}: some bodies are cut",
                  result.stdout + result.stderr)
        tap.check(report["bodies_aborted"] == cut,
                  f"{name}: each cut body is aborted once", report)


def run_refused_transactions(harness, name, options, count, with_rcpt):
    """Pipeline count transactions of MAIL, a RCPT that the sink refuses
    (left out unless with_rcpt), DATA and RSET. DATA after a refused RCPT
    gets 554 and is no error; DATA with no RCPT at all gets 503, which
    counts toward --max-errors. Returns the replies, the last of them
    " <closed>" when the sink closed the session."""
    sink = Sink(harness, name, ["--rcpt-reply", "451 4.3.0 later:1"]
                + options)
    rcpt = b"RCPT TO:<b@c.test>\r\n" if with_rcpt else b""
    per_transaction = 4 if with_rcpt else 3
    client = raw_client()
    client.reply()
    client.command(b"EHLO c.test\r\n")
    client.sock.sendall((b"MAIL FROM:<a@c.test>\r\n" + rcpt +
                         b"DATA\r\nRSET\r\n") * count)
    replies = []
    for _ in range(per_transaction * count):
        replies.append(client.reply())
        if replies[-1].endswith("<closed>"):
            break
    if not replies[-1].endswith("<closed>"):
        replies.append(client.command(b"QUIT\r\n"))
    client.close()
    sink.stop()
    return replies


def test_max_errors(tap, harness):
    replies = run_refused_transactions(harness, "errors-default", [], 30,
                                       with_rcpt=True)
    data = replies[2::4][:30]
    tap.check(len(replies) == 121, "no error limit by default: all "
              "replies and QUIT", replies[-3:])
    tap.check(all(reply.startswith("554 5.5.1") for reply in data),
              "each DATA after refused recipients gets 554", data)
    tap.check(replies[-1].startswith("221"), "the session ends with QUIT",
              replies[-1])

    replies = run_refused_transactions(harness, "errors-5-refused",
                                       ["--max-errors", "5"], 30,
                                       with_rcpt=True)
    tap.check(replies[-1].startswith("221"), "--max-errors 5 does not "
              "count DATA after refused recipients", replies[-3:])

    replies = run_refused_transactions(harness, "errors-5",
                                       ["--max-errors", "5"], 30,
                                       with_rcpt=False)
    data = replies[1::3][:5]
    tap.check(all(reply.startswith("503") for reply in data),
              "each DATA without RCPT gets 503", data)
    tap.check(len(replies) == 4 * 3 + 2 + 2,
              "--max-errors 5 closes after the 5th DATA", replies)
    tap.check(replies[-2].startswith("421"),
              "the limit is announced with 421", replies[-2:])
    tap.check(replies[-1] == " <closed>", "then the session closes",
              replies[-1])


def test_rcpt_faults_blast(tap, harness):
    """blast pipelines DATA behind a refused RCPT and gets 554. Over 300
    messages on one connection that is more than 20 refusals, and no
    message may be lost to a closed session."""
    sink = Sink(harness, "rcpt-blast", ["--seed", "3", "--rcpt-reply",
                                        "451 4.3.0 later:0.1"])
    result = subprocess.run(
        [harness.binary("bench/ringrelay-bench"), "blast", "--server",
         f"127.0.0.1:{PORT}", "--connections", "1", "--messages", "300",
         "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    sink.stop()
    refused = fired(sink.report, "rcpt", 451)
    output = result.stdout + result.stderr
    tap.check(refused > 20, "more refused recipients than 20", refused)
    tap.check(re.search(r"failed \(connection\):\s*0\b", result.stdout)
              is not None, "blast loses no connection", output)
    tap.check(sink.report["messages"] + refused == 300,
              "every message is accepted or refused",
              (sink.report["messages"], refused))


def test_421_mid_session(tap, harness):
    sink = Sink(harness, "close421", ["--mail-reply", "421 4.3.0 bye:1"])
    client = raw_client()
    client.reply()
    client.command(b"EHLO c.test\r\n")
    reply = client.command(b"MAIL FROM:<a@c.test>\r\nNOOP\r\n")
    tap.check(reply == "421 4.3.0 bye", "MAIL gets the 421", reply)
    tap.check(client.reply() == " <closed>" and client.closed(),
              "the session closes after a 421")
    client.close()
    sink.stop()


def test_extension_switches(tap, harness):
    sink = Sink(harness, "switches", ["--no-pipelining", "--no-size",
                                      "--no-8bitmime", "--max-size",
                                      "2000"])
    client = smtplib.SMTP("127.0.0.1", PORT, timeout=10)
    client.ehlo("client.test")
    features = set(client.esmtp_features)
    tap.check(not features & {"pipelining", "size", "8bitmime"},
              "EHLO leaves the switched-off extensions out", features)
    client.mail("sender@client.test")
    client.rcpt("user@example.test")
    code, _ = client.data(blast_message(1) + b"x" * 3000 + b"\r\n")
    tap.check(code == 552, "a body over --max-size gets 552", code)
    client.quit()
    sink.stop()

    sink = Sink(harness, "default-ext", [])
    client = smtplib.SMTP("127.0.0.1", PORT, timeout=10)
    client.ehlo("client.test")
    features = set(client.esmtp_features)
    tap.check({"pipelining", "size", "8bitmime"} <= features,
              "by default they are offered", features)
    client.quit()
    sink.stop()


def test_blast(tap, harness):
    sink = Sink(harness, "blast", ["--seed", "5", "--expect", "300",
                                   "--data-reply",
                                   "451 4.3.0 later:0.25"])
    result = subprocess.run(
        [harness.binary("bench/ringrelay-bench"), "blast", "--server",
         f"127.0.0.1:{PORT}", "--connections", "4", "--messages", "300",
         "--size", "800", "--timeout", "60"],
        capture_output=True, text=True, timeout=90)
    match = re.search(r"accepted \(2xx\):\s*(\d+)", result.stdout)
    sink.stop()

    stats = sink.read_stats()
    report = sink.report
    tap.check(match is not None, "blast reports what was accepted",
              result.stdout + result.stderr)
    accepted = int(match.group(1)) if match else -1
    rejected = fired(report, "data", 451)

    tap.check(int(stats["messages"]) == accepted,
              "sink and blast agree on accepted messages",
              (stats, accepted))
    tap.check(accepted + rejected == 300, "every body was answered",
              (accepted, rejected))
    tap.check(int(stats["lost"]) == rejected,
              "refused messages are lost (blast does not retry)",
              (stats, rejected))
    tap.check(stats["duplicates"] == "0", "blast sends no duplicates",
              stats)
    tap.check(report["untracked"] == 0, "blast messages are tracked",
              report)
    tap.check(len(report["series"]) >= 1, "the JSON has a series",
              report["series"])


def run_sink_briefly(harness, options, user=None):
    """Run a sink that must fail at start; --max-seconds bounds it in
    case it starts anyway. Returns (exit status, output)."""
    argv = [harness.binary("bench/ringrelay-bench"), "sink", "--listen",
            f"127.0.0.1:{FIRST_PORT - 1}", "--max-seconds", "5"] + options
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}",
                "--clear-groups"] + argv
    result = subprocess.run(argv, capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout + result.stderr


def test_store_not_writable(tap, harness):
    """A store directory that the sink cannot write must stop it at start.
    root may write any directory, so as root the sink runs as nobody."""
    top = tempfile.mkdtemp(prefix="sink-readonly-")
    store = os.path.join(top, "store")
    try:
        os.chmod(top, 0o755)
        os.mkdir(store, 0o555)
        os.chmod(store, 0o555)
        user = 65534 if os.geteuid() == 0 else None
        status, output = run_sink_briefly(harness, ["--store", store], user)
        tap.check(status == 1, "read-only store exits 1",
                  f"exit {status}\n{output}")
        tap.check(f"cannot write in store directory {store}" in output
                  and "Permission denied" in output,
                  "read-only store message", output)
        tap.check(os.listdir(store) == [], "read-only store stays empty",
                  os.listdir(store))
    finally:
        os.chmod(store, 0o755)
        shutil.rmtree(top)


def test_invalid_listen(tap, harness):
    status, output = run_sink_briefly(harness,
                                      ["--listen", "127.0.0.1:80x"])
    tap.check(status == 2, "invalid --listen exits 2",
              f"exit {status}\n{output}")
    tap.check('invalid --listen "127.0.0.1:80x"' in output,
              "invalid --listen message", output)


def test_json_path_checked(tap, harness):
    missing = harness.path("no-such-dir", "sink.json")
    cases = [("missing dir", missing, "No such file or directory"),
             ("directory", harness.tmp, "Is a directory")]
    for name, path, reason in cases:
        status, output = run_sink_briefly(harness, ["--json", path])
        tap.check(status == 2, f"--json {name} exits 2",
                  f"exit {status}\n{output}")
        tap.check(f"cannot write the --json file {path}: {reason}"
                  in output, f"--json {name} message", output)
        tap.check("listening on" not in output,
                  f"--json {name} fails before listening", output)
    path = harness.path("new.json")
    status, output = run_sink_briefly(harness, ["--json", path,
                                                "--listen", "[::1"])
    tap.check(not os.path.exists(path), "the --json check leaves no file",
              output)


def send_spaced(count, pause):
    for seq in range(1, count + 1):
        with smtplib.SMTP("127.0.0.1", PORT, timeout=10) as client:
            client.sendmail("sender@client.test", ["user@example.test"],
                            blast_message(seq))
        time.sleep(pause)


def test_rate_short_run(tap, harness):
    sink = Sink(harness, "rate-one", [])
    send_spaced(1, 0)
    sink.stop()
    summary = harness.log_text("rate-one")
    tap.check("messages/s:         n/a (fewer than 2 messages" in summary,
              "one message: the rate is n/a", summary)
    tap.check(sink.report["msgs_per_s"] is None,
              "one message: JSON msgs_per_s is null", sink.report)
    stats = sink.read_stats()
    tap.check(stats.get("msgs_per_s") == "0.0",
              "one message: the stats file has 0", stats)

    # Two messages 0.2 s apart: 2 messages over at least 0.2 s.
    sink = Sink(harness, "rate-two", [])
    send_spaced(2, 0.2)
    sink.stop()
    rate = sink.report["msgs_per_s"]
    tap.check(rate is not None and 0 < rate <= 10,
              "two spaced messages: a rate from first to last", rate)
    tap.check(re.search(r"messages/s: +\d+ \(from first to last",
                        harness.log_text("rate-two")) is not None,
              "two spaced messages: the summary has the rate",
              harness.log_text("rate-two"))


def test_session_counters(tap, harness):
    """sessions_peak counts sessions open at once, and pipelined_reads
    the reads of commands that carry more than one line."""
    sink = Sink(harness, "counters", [])
    first = raw_client()
    second = raw_client()
    first.reply()
    second.reply()
    first.command(b"EHLO one.test\r\n")
    # A batch in one send, as a pipelining client sends it (RFC 2920).
    first.sock.sendall(b"MAIL FROM:<a@client.test>\r\n"
                       b"RCPT TO:<b@example.test>\r\nDATA\r\n")
    replies = [first.reply() for _ in range(3)]
    first.sock.sendall(b"Subject: one\r\n\r\nline\r\nline\r\n.\r\n")
    replies.append(first.reply())
    first.command(b"QUIT\r\n")
    second.command(b"QUIT\r\n")
    first.close()
    second.close()
    h.wait_for(lambda: sink.read_stats().get("sessions_open") == "0", 5)
    tap.check([reply[:3] for reply in replies] == ["250", "250", "354",
                                                  "250"],
              "pipelined batch accepted", replies)
    tap.check(sink.stop() == 0, "counters sink exits 0")
    stats = sink.read_stats()
    tap.check(stats.get("sessions_peak") == "2",
              "two sessions open at once", stats)
    tap.check(stats.get("pipelined_reads") == "1",
              "one read carried the pipelined batch", stats)
    # The wait_port probe sends nothing; EHLO, the batch and the QUITs
    # are reads of commands, and the body lines are not.
    tap.check(stats.get("command_reads") == "4",
              "body lines are not counted as commands", stats)
    tap.check(sink.report.get("sessions_peak") == 2,
              "the JSON report has sessions_peak", sink.report)


def test(tap, harness):
    test_session_counters(tap, harness)
    test_loss_and_duplicates(tap, harness)
    test_loss_with_expect(tap, harness)
    test_reply_faults(tap, harness)
    test_connect_faults(tap, harness)
    test_max_connections(tap, harness)
    test_delays(tap, harness)
    test_disconnect_in_data(tap, harness)
    test_disconnect_pipelined(tap, harness)
    test_disconnect_blast(tap, harness)
    test_421_mid_session(tap, harness)
    test_max_errors(tap, harness)
    test_rcpt_faults_blast(tap, harness)
    test_extension_switches(tap, harness)
    test_blast(tap, harness)
    test_store_not_writable(tap, harness)
    test_json_path_checked(tap, harness)
    test_invalid_listen(tap, harness)
    test_rate_short_run(tap, harness)


if __name__ == "__main__":
    h.main_wrapper(test)

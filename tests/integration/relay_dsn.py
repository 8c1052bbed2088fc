#!/usr/bin/env python3
"""DSN parameters through the relay, end to end with smtplib.

Postfix's smtp-sink is the next hop because its dump files record the
MAIL and RCPT arguments it received (X-Mail-Args, X-Rcpt-Args). One
smtp-sink offers DSN and must see RET, ENVID, NOTIFY and ORCPT as the
client sent them. The other runs with -N (no DSN) and must see none. The
test also covers 501 for a bad NOTIFY, 502 for EXPN, and
RCPT TO:<postmaster> and postmaster@HOSTNAME with and without the
postmaster key.

Usage (inside netns_run.sh): relay_dsn.py BUILD_DIR
"""
import os
import shutil
import smtplib

import harness as h

DSN_PORT = 2526
PLAIN_PORT = 2527
BARE_RELAY_PORT = 2528
LATER_PORT = 2529

CONFIG = """
listen = "127.0.0.1:{port}";
queue_dir = "{queue}";
hostname = "relay.test";
retry_interval = {retry};
routes {{
    "dsn.test" = "127.0.0.1:{dsn_port}";
    "plain.test" = "127.0.0.1:{plain_port}";
    "later.test" = "127.0.0.1:{later_port}";
}}
relay_networks = ["127.0.0.1/32"];
{extra}
"""

SENDER = "sender@client.test"
MAIL_OPTIONS = ["RET=HDRS", "ENVID=QQ+2B314159"]
NOTIFY = "NOTIFY=SUCCESS,FAILURE"
ORCPT = "ORCPT=rfc822;x+2Bfoo@dsn.test"
BODY = b"Subject: dsn\r\n\r\nhello\r\n"


def start_smtp_sink(harness, name, port, options=()):
    """Start smtp-sink dumping each transaction into a directory."""
    dump = harness.path(name)
    os.makedirs(dump)
    # smtp-sink switches to the user nobody (-u), which must be able to
    # reach and write the dump directory.
    os.chmod(harness.tmp, 0o711)
    os.chmod(dump, 0o777)
    proc = harness.start(name, [
        "timeout", "120", "smtp-sink", "-u", "nobody", *options,
        "-d", dump + "/%H%M%S.", f"127.0.0.1:{port}", "16"])
    if not h.wait_port("127.0.0.1", port):
        raise RuntimeError(f"smtp-sink did not listen on {port}:\n"
                           + harness.log_text(name))
    return proc, dump


def dumped(dump):
    """Return the header lines of each complete dump file, one list per
    transaction. smtp-sink writes a file while the message arrives, so a
    file counts only once it contains the end of BODY."""
    transactions = []
    for name in sorted(os.listdir(dump)):
        with open(os.path.join(dump, name), "rb") as dump_file:
            data = dump_file.read()
        head, _, content = data.partition(b"\n\n")
        if b"hello" not in content:
            continue
        transactions.append([line.rstrip(b"\r").decode(errors="replace")
                             for line in head.split(b"\n")])
    return transactions


def header_values(lines, name):
    prefix = name + ": "
    return [line[len(prefix):] for line in lines if line.startswith(prefix)]


def send(port, rcpts, mail_options=(), source="127.0.0.1"):
    """Send BODY with smtplib from the loopback address source. rcpts is a
    list of (address, options)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30,
                      source_address=(source, 0)) as client:
        client.ehlo("client.test")
        code, text = client.mail(SENDER, options=list(mail_options))
        if code != 250:
            raise RuntimeError(f"MAIL got {code} {text!r}")
        for address, options in rcpts:
            code, text = client.rcpt(address, options=list(options))
            if code != 250:
                raise RuntimeError(f"RCPT {address} got {code} {text!r}")
        code, text = client.data(BODY)
        if code != 250:
            raise RuntimeError(f"DATA got {code} {text!r}")


# The first retry comes RETRY_INTERVAL_S after the first attempt, plus up
# to 20%, and a restarted relay waits for it.
RETRY_INTERVAL_S = 3
FIRST_RETRY_MAX_S = RETRY_INTERVAL_S * 6 // 5 + 1


def wait_dumps(dump, count, timeout=30):
    h.wait_for(lambda: len(dumped(dump)) >= count, timeout=timeout)
    return dumped(dump)


def test_relayed_to_dsn_peer(tap, dump):
    send(2525, [("x@dsn.test", [NOTIFY, ORCPT]), ("y@dsn.test", [])],
         MAIL_OPTIONS)
    transactions = wait_dumps(dump, 1)
    if not tap.check(len(transactions) == 1, "DSN sink got the message",
                     transactions):
        return
    lines = transactions[0]
    mail_args = header_values(lines, "X-Mail-Args")
    rcpt_args = header_values(lines, "X-Rcpt-Args")
    tap.check(len(mail_args) == 1 and "RET=HDRS" in mail_args[0],
              "RET=HDRS is relayed", mail_args)
    tap.check(len(mail_args) == 1 and
              "ENVID=QQ+2B314159" in mail_args[0],
              "ENVID is relayed xtext-encoded as sent", mail_args)
    first = [arg for arg in rcpt_args if "x@dsn.test" in arg]
    second = [arg for arg in rcpt_args if "y@dsn.test" in arg]
    tap.check(len(first) == 1 and NOTIFY in first[0],
              "NOTIFY list is relayed", rcpt_args)
    tap.check(len(first) == 1 and ORCPT in first[0],
              "ORCPT is relayed xtext-encoded as sent", rcpt_args)
    tap.check(len(second) == 1 and "NOTIFY" not in second[0] and
              "ORCPT" not in second[0],
              "recipient without DSN parameters gets none", rcpt_args)


def test_dropped_for_plain_peer(tap, plain_dump):
    send(2525, [("z@plain.test", [NOTIFY, ORCPT])], MAIL_OPTIONS)
    transactions = wait_dumps(plain_dump, 1)
    if not tap.check(len(transactions) == 1, "sink without DSN got the "
                     "message", transactions):
        return
    args = (header_values(transactions[0], "X-Mail-Args") +
            header_values(transactions[0], "X-Rcpt-Args"))
    tap.check(not any(word in " ".join(args)
                      for word in ("RET=", "ENVID=", "NOTIFY=", "ORCPT=")),
              "no DSN parameter goes to a peer without DSN", args)


def test_replies(tap):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.ehlo("client.test")
        tap.check(client.has_extn("dsn"), "relay offers DSN",
                  client.esmtp_features)
        client.mail(SENDER)
        code, text = client.rcpt("x@dsn.test",
                                 options=["NOTIFY=NEVER,SUCCESS"])
        tap.check(code == 501 and b"5.5.4" in text and b"NEVER" in text,
                  "NOTIFY=NEVER,SUCCESS gets 501 5.5.4", (code, text))
        code, text = client.rcpt("x@dsn.test", options=["ORCPT=x@dsn.test"])
        tap.check(code == 501, "ORCPT without addr-type gets 501",
                  (code, text))
        code, text = client.docmd("EXPN", "staff")
        tap.check(code == 502 and b"5.5.1" in text, "EXPN gets 502 5.5.1",
                  (code, text))
        code, text = client.docmd("ETRN", "dsn.test")
        tap.check(code == 502, "ETRN gets 502", (code, text))


def test_postmaster_configured(tap, dump):
    before = len(dumped(dump))
    send(2525, [("Postmaster", [])])
    transactions = wait_dumps(dump, before + 1)
    if not tap.check(len(transactions) == before + 1,
                     "mail to <postmaster> is relayed", transactions):
        return
    # Dump files are named by the second plus a random number, so the
    # newest one need not sort last.
    rcpt_args = [header_values(lines, "X-Rcpt-Args")
                 for lines in transactions]
    tap.check([["<ops@dsn.test>"]] == [args for args in rcpt_args
                                        if "<ops@dsn.test>" in args],
              "<postmaster> goes to the configured address", rcpt_args)


def test_postmaster_at_hostname(tap, dump):
    """postmaster@HOSTNAME counts as <postmaster> for every client, and
    127.0.0.2 is outside relay_networks."""
    def to_postmaster(transactions):
        return [header_values(lines, "X-Rcpt-Args")
                for lines in transactions].count(["<ops@dsn.test>"])

    for source, address in (("127.0.0.2", "PostMaster@relay.test"),
                            ("127.0.0.2", "postmaster@RELAY.TEST"),
                            ("127.0.0.1", "postMASTER@Relay.Test")):
        before = dumped(dump)
        send(2525, [(address, [])], source=source)
        transactions = wait_dumps(dump, len(before) + 1)
        if not tap.check(len(transactions) == len(before) + 1,
                         f"mail to <{address}> from {source} is relayed",
                         transactions):
            continue
        tap.check(to_postmaster(transactions) == to_postmaster(before) + 1,
                  f"<{address}> goes to the configured address",
                  transactions)
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30,
                      source_address=("127.0.0.2", 0)) as client:
        client.ehlo("client.test")
        client.mail(SENDER)
        code, text = client.rcpt("postmaster@other.test")
    tap.check(code == 554, "postmaster at another domain from outside "
              "relay_networks gets 554", (code, text))


def test_postmaster_unset(tap, harness):
    config = h.write_config(harness, CONFIG.format(
        port=BARE_RELAY_PORT, queue=harness.path("bare-queue"),
        dsn_port=DSN_PORT, plain_port=PLAIN_PORT, later_port=LATER_PORT,
        retry=RETRY_INTERVAL_S, extra=""),
        name="bare.conf")
    relay = h.start_relay(harness, config, port=BARE_RELAY_PORT,
                          name="bare-relay")
    with smtplib.SMTP("127.0.0.1", BARE_RELAY_PORT, timeout=30) as client:
        client.ehlo("client.test")
        client.mail(SENDER)
        code, text = client.rcpt("postmaster")
    tap.check(code == 550 and b"no postmaster address is configured" in text,
              "<postmaster> without the key gets 550 with the reason",
              (code, text))
    with smtplib.SMTP("127.0.0.1", BARE_RELAY_PORT, timeout=30,
                      source_address=("127.0.0.2", 0)) as client:
        client.ehlo("client.test")
        client.mail(SENDER)
        code, text = client.rcpt("PostMaster@relay.test")
    tap.check(code == 550 and b"no postmaster address is configured" in text,
              "postmaster@HOSTNAME without the key gets 550 with the reason",
              (code, text))
    harness.stop(relay)


def test_recovered_after_restart(tap, harness, relay, config):
    """Queue a message for a next hop that is down, restart the relay and
    check that the recovered message still carries its DSN parameters.
    Returns the relay that runs at the end."""
    send(2525, [("w@later.test", [NOTIFY, ORCPT])], MAIL_OPTIONS)
    deferred = h.wait_for(lambda: "event=deferred to=<w@later.test>"
                          in harness.log_text("ringrelay"), timeout=30)
    tap.check(deferred, "message for a next hop that is down is deferred")
    tap.check(harness.stop(relay) == 0, "relay stops with a deferred "
              "message queued")
    _, dump = start_smtp_sink(harness, "later-sink", LATER_PORT)
    relay = h.start_relay(harness, config, name="ringrelay-restarted")
    transactions = wait_dumps(dump, 1, timeout=FIRST_RETRY_MAX_S + 30)
    if not tap.check(len(transactions) == 1, "recovered message is "
                     "delivered after the restart", transactions):
        return relay
    mail_args = " ".join(header_values(transactions[0], "X-Mail-Args"))
    rcpt_args = " ".join(header_values(transactions[0], "X-Rcpt-Args"))
    tap.check("RET=HDRS" in mail_args and "ENVID=QQ+2B314159" in mail_args,
              "RET and ENVID survive the restart", mail_args)
    tap.check(NOTIFY in rcpt_args and ORCPT in rcpt_args,
              "NOTIFY and ORCPT survive the restart", rcpt_args)
    return relay


def test(tap, harness):
    if not tap.check(shutil.which("smtp-sink") is not None,
                     "smtp-sink is installed (Debian package postfix)"):
        return
    _, dump = start_smtp_sink(harness, "dsn-sink", DSN_PORT)
    _, plain_dump = start_smtp_sink(harness, "plain-sink", PLAIN_PORT,
                                    ["-N"])
    config = h.write_config(harness, CONFIG.format(
        port=2525, queue=harness.path("queue"), dsn_port=DSN_PORT,
        plain_port=PLAIN_PORT, later_port=LATER_PORT, retry=RETRY_INTERVAL_S,
        extra='postmaster = "ops@dsn.test";'))
    relay = h.start_relay(harness, config)
    test_replies(tap)
    test_relayed_to_dsn_peer(tap, dump)
    test_dropped_for_plain_peer(tap, plain_dump)
    test_postmaster_configured(tap, dump)
    test_postmaster_at_hostname(tap, dump)
    test_postmaster_unset(tap, harness)
    relay = test_recovered_after_restart(tap, harness, relay, config)
    tap.check(relay.poll() is None, "relay is still running")


if __name__ == "__main__":
    h.main_wrapper(test)

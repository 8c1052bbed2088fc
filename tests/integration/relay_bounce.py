#!/usr/bin/env python3
"""Bounces and delay warnings, end to end.

The bundled sink for bad.test replies to every RCPT with 550 5.1.1, and the
one for later.test with 451 4.2.0. Bounces from ringrelay go to the
senders' domain client.test, routed to a third sink, where Python's email
package parses each as multipart/report. Each case uses its own sender,
so the recipient of a report names its case. The relay runs with
retry_interval = 1s, queue_lifetime = 6s and delay_warning = 2s, so a
deferred recipient is retried at about 0s, 1s, 3s and 7s: it gets one
delay report, then a bounce with status 4.4.7.

Usage (inside netns_run.sh): relay_bounce.py BUILD_DIR
"""
import email
import email.policy
import re
import smtplib

import harness as h

BAD_PORT = 2601
LATER_PORT = 2602
CLIENT_PORT = 2603

CONFIG = """
listen = "127.0.0.1:2525";
queue_dir = "{queue}";
hostname = "relay.test";
retry_interval = 1s;
queue_lifetime = 6s;
delay_warning = 2s;
routes {{
    "bad.test" = "127.0.0.1:{bad}";
    "bad2.test" = "127.0.0.1:{bad}";
    "later.test" = "127.0.0.1:{later}";
    "client.test" = "127.0.0.1:{client}";
}}
relay_networks = ["127.0.0.1/32"];
"""

BODY = (b"Subject: bounce test\r\nMessage-ID: <orig@client.test>\r\n\r\n"
        b"first body line\r\n.leading dot\r\n")


def send(sender, rcpts, mail_options=()):
    """Send BODY through the relay; rcpts is a list of (address,
    options). Returns the queue ID from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
        client.ehlo("client.test")
        code, text = client.mail(sender, options=list(mail_options))
        if code != 250:
            raise RuntimeError(f"MAIL got {code} {text!r}")
        for address, options in rcpts:
            code, text = client.rcpt(address, options=list(options))
            if code != 250:
                raise RuntimeError(f"RCPT {address} got {code} {text!r}")
        code, text = client.data(BODY)
        if code != 250:
            raise RuntimeError(f"DATA got {code} {text!r}")
        return text.decode().split()[-1]


def reports_to(store, address):
    """Return the parsed reports the client.test sink got for address."""
    return [email.message_from_bytes(content, policy=email.policy.default)
            for sender, rcpts, content in h.read_stored(store)
            if rcpts == [address]]


def report_senders(store):
    return [sender for sender, _, _ in h.read_stored(store)]


def status_blocks(report):
    """Return (per-message fields, per-recipient field blocks) of the
    message/delivery-status part."""
    for part in report.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = part.get_payload()
            return blocks[0], blocks[1:]
    return None, []


def third_part(report):
    parts = list(report.iter_parts())
    return parts[2] if len(parts) == 3 else None


def wait_reports(store, address, count, timeout=20):
    h.wait_for(lambda: len(reports_to(store, address)) >= count, timeout)
    return reports_to(store, address)


def test_three_failed_one_report(tap, harness, store):
    queue_id = send("hdrs@client.test",
                    [("a@bad.test", ["ORCPT=rfc822;orig-a@bad.test"]),
                     ("b@bad.test", []), ("c@bad.test", [])],
                    ["RET=HDRS", "ENVID=env-hdrs"])
    wait_reports(store, "hdrs@client.test", 1)
    # A second report would come from the same attempt, so a short wait
    # is enough to see it.
    h.wait_for(lambda: False, 1.5)
    reports = reports_to(store, "hdrs@client.test")
    if not tap.check(len(reports) == 1, "three failures make one report",
                     len(reports)):
        return
    report = reports[0]
    tap.check(report.get_content_type() == "multipart/report",
              "report is multipart/report", report.get_content_type())
    tap.check(report.get_param("report-type") == "delivery-status",
              "report-type is delivery-status",
              report.get_param("report-type"))
    tap.check(report["From"] is not None and
              "MAILER-DAEMON@relay.test" in report["From"],
              "From is MAILER-DAEMON@hostname", report["From"])
    tap.check(report["Auto-Submitted"] == "auto-replied",
              "Auto-Submitted is auto-replied", report["Auto-Submitted"])
    tap.check(report["To"] == "<hdrs@client.test>" or
              report["To"] == "hdrs@client.test",
              "To is the original sender", report["To"])

    fields, rcpts = status_blocks(report)
    if not tap.check(fields is not None and len(rcpts) == 3,
                     "delivery-status has three recipient blocks",
                     (fields, rcpts)):
        return
    tap.check(fields["Reporting-MTA"] == "dns; relay.test",
              "Reporting-MTA is the hostname", fields["Reporting-MTA"])
    tap.check(fields["Original-Envelope-Id"] == "env-hdrs",
              "Original-Envelope-Id is the ENVID",
              fields["Original-Envelope-Id"])
    tap.check(fields["Arrival-Date"] is not None, "Arrival-Date is set",
              fields)
    finals = sorted(block["Final-Recipient"] for block in rcpts)
    tap.check(finals == ["rfc822; a@bad.test", "rfc822; b@bad.test",
                         "rfc822; c@bad.test"],
              "Final-Recipient of each recipient", finals)
    for block in rcpts:
        name = block["Final-Recipient"]
        tap.check(block["Action"] == "failed", f"{name}: Action failed",
                  block["Action"])
        tap.check(block["Status"] == "5.1.1", f"{name}: Status 5.1.1",
                  block["Status"])
        tap.check(block["Diagnostic-Code"] ==
                  "smtp; 550 5.1.1 no such user",
                  f"{name}: Diagnostic-Code has the reply",
                  block["Diagnostic-Code"])
        tap.check(block["Remote-MTA"] == "dns; 127.0.0.1",
                  f"{name}: Remote-MTA is the next hop", block["Remote-MTA"])
    orcpt = [block["Original-Recipient"] for block in rcpts
             if block["Final-Recipient"] == "rfc822; a@bad.test"]
    tap.check(orcpt == ["rfc822;orig-a@bad.test"],
              "Original-Recipient from ORCPT", orcpt)
    tap.check(all(block["Original-Recipient"] is None for block in rcpts
                  if block["Final-Recipient"] != "rfc822; a@bad.test"),
              "no Original-Recipient without ORCPT", rcpts)

    returned = third_part(report)
    tap.check(returned is not None and
              returned.get_content_type() == "text/rfc822-headers",
              "RET=HDRS returns text/rfc822-headers",
              returned and returned.get_content_type())
    text = returned.get_payload() if returned is not None else ""
    tap.check("Subject: bounce test" in text, "headers are returned", text)
    tap.check("first body line" not in text, "body is not returned", text)
    log = harness.log_text("ringrelay")
    tap.check(f"event=bounce-queued orig_id={queue_id} "
              "to=<hdrs@client.test> rcpts=3" in log,
              "bounce-queued is logged with the original ID", queue_id)


def test_two_domains_one_report(tap, store):
    send("domains@client.test", [("p@bad.test", []), ("q@bad2.test", [])])
    wait_reports(store, "domains@client.test", 1)
    h.wait_for(lambda: False, 1.5)
    reports = reports_to(store, "domains@client.test")
    if not tap.check(len(reports) == 1,
                     "failures at two domains make one report",
                     len(reports)):
        return
    finals = sorted(block["Final-Recipient"]
                    for block in status_blocks(reports[0])[1])
    tap.check(finals == ["rfc822; p@bad.test", "rfc822; q@bad2.test"],
              "report lists both domains' recipients", finals)


def test_ret_full(tap, store):
    send("full@client.test", [("x@bad.test", [])], ["RET=FULL"])
    reports = wait_reports(store, "full@client.test", 1)
    if not tap.check(len(reports) == 1, "RET=FULL gets one report",
                     len(reports)):
        return
    returned = third_part(reports[0])
    tap.check(returned is not None and
              returned.get_content_type() == "message/rfc822",
              "RET=FULL returns message/rfc822",
              returned and returned.get_content_type())
    if returned is None:
        return
    inner = returned.get_payload()[0]
    tap.check(inner["Subject"] == "bounce test",
              "returned message has its Subject", inner["Subject"])
    body = inner.get_payload()
    tap.check("first body line" in body, "returned message has its body",
              body)
    tap.check("\n.leading dot" in body and "..leading" not in body,
              "dot-stuffing is undone once", body)


def test_no_report_cases(tap, harness, store):
    never = send("never@client.test", [("x@bad.test", ["NOTIFY=NEVER"])])
    success = send("success@client.test",
                   [("x@bad.test", ["NOTIFY=SUCCESS"])])
    null = send("", [("x@bad.test", [])])
    log = lambda: harness.log_text("ringrelay")
    skipped = h.wait_for(
        lambda: log().count("event=bounce-skipped") >= 3, 20)
    text = log()
    tap.check(skipped, "three reports are skipped", text[-3000:])
    tap.check(f"id={never} event=bounce-skipped" in text,
              "NOTIFY=NEVER skip is logged", never)
    tap.check(f"id={success} event=bounce-skipped" in text,
              "NOTIFY=SUCCESS skip is logged", success)
    tap.check(f"id={null} event=bounce-skipped" in text and
              "reason=\"null sender\"" in text,
              "null sender skip is logged", null)
    h.wait_for(lambda: False, 1.5)
    tap.check(reports_to(store, "never@client.test") == [],
              "NOTIFY=NEVER gets no report")
    tap.check(reports_to(store, "success@client.test") == [],
              "NOTIFY=SUCCESS gets no failure report")
    tap.check(all(sender == "" for sender in report_senders(store)),
              "every report has the null sender", report_senders(store))


def test_bounce_of_bounce_dropped(tap, harness):
    """The sender's own domain rejects the bounce too, and the bounce of
    that bounce, which has the null sender, is dropped."""
    orig = send("loop@bad.test", [("x@bad.test", [])])
    log = lambda: harness.log_text("ringrelay")
    pattern = re.compile(r"id=(\w+) event=bounce-queued orig_id=" + orig)
    h.wait_for(lambda: pattern.search(log()) is not None, 20)
    found = pattern.search(log())
    if not tap.check(found is not None, "first bounce is queued",
                     log()[-3000:]):
        return
    bounce_id = found.group(1)
    dropped = h.wait_for(
        lambda: f"id={bounce_id} event=bounce-skipped" in log(), 20)
    tap.check(dropped, "bounce of the bounce is dropped", log()[-3000:])
    tap.check(f"orig_id={bounce_id}" not in log(),
              "no report is queued about the bounce", bounce_id)


def test_lifetime_and_delay(tap, harness, store):
    send("late@client.test", [("z@later.test", [])], ["ENVID=env-late"])
    send("nodelay@client.test", [("z@later.test", ["NOTIFY=FAILURE"])])
    reports = wait_reports(store, "late@client.test", 2, timeout=30)
    h.wait_for(lambda: len(reports_to(store, "nodelay@client.test")) >= 1,
               10)
    if not tap.check(len(reports) == 2,
                     "deferred recipient gets a delay report and a bounce",
                     len(reports)):
        return

    actions = []
    for report in reports:
        _, blocks = status_blocks(report)
        actions.append([(block["Action"], block["Status"],
                         block["Will-Retry-Until"] is not None)
                        for block in blocks])
    delayed = [a for a in actions if a and a[0][0] == "delayed"]
    failed = [a for a in actions if a and a[0][0] == "failed"]
    tap.check(len(delayed) == 1, "one delay report", actions)
    tap.check(len(failed) == 1, "one failure report", actions)
    tap.check(delayed and delayed[0][0][1] == "4.2.0",
              "delay report has the reply's status", delayed)
    tap.check(delayed and delayed[0][0][2],
              "delay report has Will-Retry-Until", delayed)
    tap.check(failed and failed[0][0][1] == "4.4.7",
              "expired recipient has Status 4.4.7", failed)
    expired = [line for line in harness.log_text("ringrelay").splitlines()
               if "event=bounced to=<z@later.test>" in line and
               "queue_lifetime exceeded" in line]
    tap.check(expired and all(f"dest=127.0.0.1:{LATER_PORT} " in line
                              for line in expired),
              "queue_lifetime bounce logs dest", expired)
    tap.check(expired and all(f"relay=127.0.0.1[127.0.0.1]:{LATER_PORT} "
                              in line for line in expired),
              "queue_lifetime bounce logs relay", expired)

    nodelay = reports_to(store, "nodelay@client.test")
    nodelay_actions = [block["Action"] for report in nodelay
                       for block in status_blocks(report)[1]]
    tap.check(nodelay_actions == ["failed"],
              "NOTIFY=FAILURE gets the bounce without a delay report",
              nodelay_actions)


def test(tap, harness):
    store = harness.path("client-store")
    h.start_sink(harness, harness.path("bad-store"), port=BAD_PORT,
                 name="sink-bad",
                 options=["--rcpt-reply", "550 5.1.1 no such user:1"])
    h.start_sink(harness, harness.path("later-store"), port=LATER_PORT,
                 name="sink-later",
                 options=["--rcpt-reply", "451 4.2.0 mailbox busy:1"])
    h.start_sink(harness, store, port=CLIENT_PORT, name="sink-client")
    config = h.write_config(harness, CONFIG.format(
        queue=harness.path("queue"), bad=BAD_PORT, later=LATER_PORT,
        client=CLIENT_PORT))
    h.start_relay(harness, config)

    test_three_failed_one_report(tap, harness, store)
    test_two_domains_one_report(tap, store)
    test_ret_full(tap, store)
    test_no_report_cases(tap, harness, store)
    test_bounce_of_bounce_dropped(tap, harness)
    test_lifetime_and_delay(tap, harness, store)


if __name__ == "__main__":
    h.main_wrapper(test)

#!/usr/bin/env python3
"""Write the seed corpus of the fuzz targets.

Usage: make_corpus.py CORPUS_DIR MAIL_DIR

Writes CORPUS_DIR/commands/* for fuzz_smtp_commands and CORPUS_DIR/body/*
for fuzz_smtp_body, each file a header in the target's format (see the
comment at the top of each target) followed by the session bytes. MAIL_DIR
contains .eml messages with LF line ends; a few of them are sent with CRLF
line ends inside DATA and BDAT seeds. Existing files of the same names are
overwritten, others are left alone.
"""
import os
import sys

CRLF = b"\r\n"

# fuzz_smtp_commands header: two option bytes, four feed() lengths and
# one more option byte.
WHOLE = bytes([0, 0, 0, 0, 0, 0, 0])
CMD_NO_ERROR_LIMIT = 0x40
CMD_COMMIT_IN_HOOK = 0x80
CMD_SMALL_LINE = 0x20
CMD_SMALL_SIZE = 0x01
CMD_TWO_RCPTS = 0x02
CMD_SLOW_READER = 0x04
CMD_REFUSE_GREETING = 0x08
CMD_POLICY = 0x10
CMD_FAIL_WRITE = 0x20
CMD_TIMEOUT = 0x40
CMD_SHUTDOWN = 0x80
CMD_NO_HOOKS = 0x01
CMD_DAEMON_LINE = 0x02
CMD_REPEAT = 0x0c
CMD_AUTH_PLAINTEXT = 0x80

# fuzz_smtp_body header byte 0.
BODY_BDAT = 0x01
BODY_SMALL_SIZE = 0x02
BODY_SEPARATE_LAST = 0x04
BODY_COMMIT_IN_HOOK = 0x08
BODY_FAIL_WRITE = 0x10

ENVELOPE = b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
MESSAGE = b"Subject: seed\r\n\r\nHello.\r\n"

# The corpus messages that seeds carry: a plain one, one with mixed line
# ends and one with a line that starts with a dot.
MAIL_FILES = [
    "python-email-msg_01.eml",
    "python-email-msg_26.eml",
    "python-email-msg_35.eml",
    "spamassassin-sample-nonspam.eml",
]


def commands_header(options0=0, options1=0, lengths=(0, 0, 0, 0),
                    options6=0):
    return bytes([options0, options1] + list(lengths) + [options6])


def body_header(options=0, lengths=(0, 0, 0, 0), chunks=(0, 0, 0)):
    return bytes([options] + list(lengths) + list(chunks))


def lines(*items):
    return b"".join(item + CRLF for item in items)


def dot_stuff(message):
    out = []
    for line in message.split(CRLF):
        out.append(b"." + line if line.startswith(b".") else line)
    return CRLF.join(out)


def crlf(message):
    return message.replace(b"\r\n", b"\n").replace(b"\n", CRLF)


def command_seeds(mail_dir):
    seeds = {}
    seeds["every-verb"] = WHOLE + ENVELOPE + b"DATA\r\n" + MESSAGE + \
        lines(b".", b"RSET", b"NOOP", b"NOOP anything", b"VRFY someone",
              b"HELP", b"HELP MAIL", b"HELO client.test", b"QUIT")

    seeds["helo-session"] = WHOLE + lines(
        b"HELO client.test", b"MAIL FROM:<>", b"RCPT TO:<x@y.test>",
        b"DATA") + MESSAGE + lines(b".", b"QUIT")

    seeds["lowercase-verbs"] = WHOLE + lines(
        b"ehlo client.test", b"mail from:<a@b.test>", b"rcpt to:<c@d.test>",
        b"data") + MESSAGE + lines(b".", b"quit")

    seeds["pipelined-two-messages"] = WHOLE + ENVELOPE + b"DATA\r\n" + \
        MESSAGE + b".\r\n" + lines(
            b"MAIL FROM:<e@f.test>", b"RCPT TO:<g@h.test>",
            b"RCPT TO:<i@j.test>", b"DATA") + MESSAGE + lines(b".", b"QUIT")

    seeds["pipelined-split-1-2-3-5"] = commands_header(
        0, 0, (1, 2, 3, 5)) + ENVELOPE + b"DATA\r\n" + MESSAGE + \
        lines(b".", b"QUIT")

    seeds["commit-in-hook"] = commands_header(CMD_COMMIT_IN_HOOK) + \
        ENVELOPE + b"DATA\r\n" + MESSAGE + b".\r\n" + ENVELOPE[18:] + \
        b"DATA\r\n" + MESSAGE + lines(b".", b"QUIT")

    seeds["mail-params"] = WHOLE + lines(
        b"EHLO client.test",
        b"MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8",
        b"RSET", b"MAIL FROM:<a@b.test> BODY=7BIT", b"RSET",
        b"MAIL FROM:<a@b.test> BODY=BINARYMIME",
        b"MAIL FROM:<a@b.test> SIZE=99999999999999999999999",
        b"MAIL FROM:<a@b.test> SIZE=1 SIZE=2",
        b"MAIL FROM:<a@b.test> SMTPUTF8=yes",
        b"MAIL FROM:<a@b.test> -X=1",
        b"MAIL FROM:<a@b.test> SIZE=", b"MAIL FROM: <a@b.test>",
        b"RCPT TO:<c@d.test> NOTIFY=NEVER", b"QUIT")

    seeds["size-limit"] = commands_header(0, CMD_SMALL_SIZE) + lines(
        b"EHLO client.test", b"MAIL FROM:<a@b.test> SIZE=101",
        b"MAIL FROM:<a@b.test> SIZE=50", b"RCPT TO:<c@d.test>",
        b"DATA") + b"x" * 120 + lines(b"", b".", b"QUIT")

    seeds["rcpt-limit"] = commands_header(0, CMD_TWO_RCPTS) + lines(
        b"EHLO client.test", b"MAIL FROM:<a@b.test>", b"RCPT TO:<1@d.test>",
        b"RCPT TO:<2@d.test>", b"RCPT TO:<3@d.test>", b"DATA") + \
        MESSAGE + lines(b".", b"QUIT")

    seeds["addresses"] = WHOLE + lines(
        b"EHLO [127.0.0.1]", b"EHLO [IPv6:::1]", b"HELO 127.0.0.1",
        b"EHLO -bad-.test", b"MAIL FROM:<postmaster>",
        b"MAIL FROM:<\"a b\"@b.test>",
        b"RCPT TO:<@relay.test,@other.test:c@d.test>",
        b"RCPT TO:<postmaster>", b"RCPT TO:<Postmaster@d.test>",
        b"RCPT TO:<>", b"RCPT TO:c@d.test", b"RCPT TO:<c@[127.0.0.1]>",
        b"RCPT TO:<" + b"l" * 70 + b"@" + b"d" * 200 + b".test>",
        b"RCPT TO:<a@b", b"QUIT")

    seeds["utf8-addresses"] = WHOLE + lines(
        "EHLO bücher.test".encode(),
        "MAIL FROM:<jöran@bär.test> SMTPUTF8".encode(),
        "RCPT TO:<δοκιμή@παράδειγμα.test>".encode(), b"RSET",
        "MAIL FROM:<jöran@bär.test>".encode(),
        b"MAIL FROM:<a@b.test>", "RCPT TO:<ü@d.test>".encode(),
        b"MAIL FROM:<\xff\xfe@b.test> SMTPUTF8", b"QUIT")

    seeds["utf8-not-offered"] = commands_header(0x08) + lines(
        "EHLO bücher.test".encode(), b"EHLO client.test",
        "MAIL FROM:<jöran@bär.test> SMTPUTF8".encode(), b"QUIT")

    seeds["extensions-off"] = commands_header(0x1f) + lines(
        b"EHLO client.test", b"MAIL FROM:<a@b.test> SIZE=10",
        b"MAIL FROM:<a@b.test> BODY=8BITMIME", b"MAIL FROM:<a@b.test>",
        b"RCPT TO:<c@d.test>", b"BDAT 4 LAST", b"HELP", b"QUIT")

    seeds["bdat-forms"] = WHOLE + ENVELOPE + b"BDAT 5\r\nHello" + \
        b"BDAT 2\r\n\r\n" + b"BDAT 0 LAST\r\n" + ENVELOPE[18:] + \
        b"BDAT 7 last\r\n.dot\r\n\r" + b"BDAT 1 LAST\r\n\n" + lines(
            b"MAIL FROM:<a@b.test>", b"RCPT TO:<c@d.test>",
            b"BDAT x", b"BDAT 5 LAST extra", b"BDAT", b"BDAT  3   LAST") + \
        b"abc" + lines(b"BDAT 99999999999999999999999", b"QUIT")

    # A server without BINARYMIME replies 555 to the MAIL and 503 to each
    # chunk; one with it stores the octets as sent.
    seeds["bdat-binarymime"] = WHOLE + lines(
        b"EHLO client.test", b"MAIL FROM:<a@b.test> BODY=BINARYMIME",
        b"RCPT TO:<c@d.test>") + b"BDAT 9\r\n\x00\n.\n\r\xff\r\n." + \
        b"BDAT 3 LAST\r\nend" + lines(b"DATA", b"QUIT")

    seeds["dsn-params"] = WHOLE + lines(
        b"EHLO client.test", b"MAIL FROM:<a@b.test> RET=HDRS ENVID=QQ314159",
        b"RCPT TO:<c@d.test> NOTIFY=SUCCESS,FAILURE "
        b"ORCPT=rfc822;c@d.test", b"RCPT TO:<e@d.test> NOTIFY=NEVER",
        b"RCPT TO:<f@d.test> NOTIFY=NEVER,DELAY", b"QUIT")

    # "AHUAcA==" is PLAIN for user "u" with password "p", which the
    # harness accepts; "dQ==" and "cA==" are "u" and "p" for LOGIN.
    seeds["auth"] = commands_header(options6=CMD_AUTH_PLAINTEXT) + lines(
        b"AUTH PLAIN AHUAcA==", b"EHLO client.test", b"AUTH CRAM-MD5",
        b"AUTH PLAIN", b"*", b"AUTH LOGIN", b"dQ==", b"eA==",
        b"AUTH PLAIN =", b"AUTH PLAIN AHUAcA=", b"AUTH LOGIN dQ==", b"cA==",
        b"AUTH PLAIN AHUAcA==", b"MAIL FROM:<a@b.test> AUTH=a+2Bb@b.test",
        b"RCPT TO:<c@d.test>", b"QUIT")
    seeds["auth-without-tls"] = WHOLE + lines(
        b"EHLO client.test", b"AUTH PLAIN AHUAcA==",
        b"MAIL FROM:<a@b.test> AUTH=<>", b"QUIT")

    seeds["bdat-out-of-sequence"] = WHOLE + b"BDAT 3\r\nabc" + lines(
        b"EHLO client.test") + b"BDAT 3\r\nabc" + lines(
        b"MAIL FROM:<a@b.test>") + b"BDAT 3\r\nabc" + lines(
        b"RCPT TO:<c@d.test>") + b"BDAT 3\r\nabcDATA\r\n" + \
        b"BDAT 0 LAST\r\n" + lines(b"QUIT")

    seeds["bdat-after-refused-rcpts"] = commands_header(0, CMD_POLICY) + \
        lines(b"EHLO client.test", b"MAIL FROM:<a@b.test>",
              b"RCPT TO:<refused@d.test>") + b"BDAT 3 LAST\r\nabc" + \
        lines(b"DATA", b"QUIT")

    seeds["policy-hooks"] = commands_header(0, CMD_POLICY) + lines(
        b"EHLO client.test", b"MAIL FROM:<refused@b.test>",
        b"MAIL FROM:<custom@b.test>", b"RCPT TO:<refused@d.test>",
        b"RCPT TO:<custom@d.test>", b"RSET", b"MAIL FROM:<nodata@b.test>",
        b"RCPT TO:<c@d.test>", b"DATA", b"BDAT 1 LAST") + b"x" + lines(
        b"RSET", b"MAIL FROM:<a@b.test>", b"RCPT TO:<quit@d.test>",
        b"NOOP")

    seeds["refused-greeting"] = commands_header(0, CMD_REFUSE_GREETING) + \
        lines(b"EHLO client.test", b"MAIL FROM:<a@b.test>") + \
        b"BDAT 3\r\nabc" + lines(b"NOOP", b"QUIT")

    seeds["write-fails"] = commands_header(0, CMD_FAIL_WRITE) + ENVELOPE + \
        b"DATA\r\n" + MESSAGE + b".\r\n" + ENVELOPE[18:] + \
        b"BDAT 4\r\nab\r\n" + b"BDAT 0 LAST\r\n" + lines(b"QUIT")

    # The first piece ends inside the body, whose first write fails: the
    # body is still over the limit and must get 552, as when fed whole.
    seeds["write-fails-too-big"] = commands_header(
        0, CMD_SMALL_SIZE | CMD_FAIL_WRITE, (80, 0, 0, 0)) + ENVELOPE + \
        b"DATA\r\n" + b"x" * 150 + lines(b"", b".", b"QUIT")

    seeds["timeout-in-data"] = commands_header(0, CMD_TIMEOUT) + ENVELOPE + \
        b"DATA\r\nSubject: unfinished\r\n"

    seeds["shutdown-in-bdat"] = commands_header(0, CMD_SHUTDOWN,
                                                (70, 0, 0, 0)) + ENVELOPE + \
        b"BDAT 10\r\nabcdefghij" + b"BDAT 0 LAST\r\n"

    seeds["smuggle-lf-dot-lf"] = WHOLE + ENVELOPE + b"DATA\r\n" + \
        b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@b.test>\r\n" + \
        lines(b".", b"QUIT")

    seeds["smuggle-cr-dot-crlf"] = WHOLE + ENVELOPE + b"DATA\r\n" + \
        b"Subject: a\r\n\r\nx\r.\r\nMAIL FROM:<evil@b.test>\r\n" + \
        lines(b".", b"QUIT")

    seeds["smuggle-crlf-dot-lf"] = WHOLE + ENVELOPE + b"DATA\r\n" + \
        b"Subject: a\r\n\r\nx\r\n.\nMAIL FROM:<evil@b.test>\r\n" + \
        lines(b".", b"QUIT")

    seeds["smuggle-lf-dot-crlf"] = WHOLE + ENVELOPE + b"DATA\r\n" + \
        b"Subject: a\r\n\r\nx\n.\r\nMAIL FROM:<evil@b.test>\r\n" + \
        lines(b".", b"QUIT")

    seeds["long-lines"] = WHOLE + lines(
        b"EHLO client.test", b"NOOP " + b"x" * 600, b"NOOP " + b"y" * 505,
        b"NOOP " + b"z" * 506, b"QUIT")

    seeds["long-lines-small-limit"] = commands_header(CMD_SMALL_LINE) + \
        lines(b"EHLO client.test", b"NOOP " + b"x" * 57,
              b"NOOP " + b"x" * 58, b"NOOP " + b"x" * 200, b"QUIT")

    seeds["long-line-split"] = commands_header(0, 0, (100, 7, 0, 0)) + \
        lines(b"EHLO client.test", b"NOOP " + b"x" * 1000, b"QUIT")

    seeds["bad-line-ends"] = commands_header(CMD_NO_ERROR_LIMIT) + \
        b"EHLO client.test\n" + b"EHLO client.test\r\n" + \
        b"NOOP\r\r\n" + b"NO\rOP\r\n" + b"NOOP\x00\r\n" + \
        b"\x00\x00\r\n" + b"\r\n" + b"NOOPX\r\n" + b"NOOP\tx\r\n" + \
        b"QUIT\n" + b"QUIT\r\n"

    seeds["too-many-errors"] = WHOLE + lines(
        b"EHLO client.test", b"FOO", b"BAR", b"DATA", b"RCPT TO:<c@d.test>",
        b"MAIL FROM:<>", b"MAIL FROM:<>", b"NOOP")

    # Enough HELP replies to pass 64 KiB of queued output, so that a
    # reader that does not read pauses parsing.
    seeds["slow-reader"] = commands_header(0, CMD_SLOW_READER) + \
        lines(b"EHLO client.test") + lines(b"HELP") * 1200 + lines(b"QUIT")

    # Two messages whose commits both wait when fed whole, but not when
    # the first piece ends inside the second DATA, then a timeout.
    seeds["slow-reader-commits-timeout"] = commands_header(
        0, CMD_SLOW_READER | CMD_TIMEOUT, (76, 0, 0, 0)) + lines(
        b"EHLO t", b"MAIL FROM:<>", b"RCPT TO:<c@d>", b"DATA", b".",
        b"MAIL FROM:<>", b"RCPT TO:<c@t>", b"DATA", b".")

    # Fed 256 times, so more than 1 MiB waits unparsed and gets 421.
    seeds["slow-reader-repeated"] = commands_header(
        0, CMD_SLOW_READER, (0, 0, 0, 0), CMD_REPEAT) + \
        lines(b"EHLO client.test") + lines(b"HELP") * 800

    seeds["no-hooks"] = commands_header(0, 0, (0, 0, 0, 0), CMD_NO_HOOKS) + \
        ENVELOPE + b"DATA\r\n" + MESSAGE + b".\r\n" + ENVELOPE[18:] + \
        b"BDAT 4 LAST\r\nabcd" + lines(b"QUIT")

    seeds["daemon-line-limit"] = commands_header(
        0, 0, (0, 0, 0, 0), CMD_DAEMON_LINE) + lines(
        b"EHLO client.test", b"NOOP " + b"x" * 1017, b"NOOP " + b"x" * 1018,
        b"MAIL FROM:<" + b"a" * 64 + b"@" + b"b" * 900 + b".test>", b"QUIT")

    for name in MAIL_FILES[:2]:
        message = dot_stuff(crlf(read_mail(mail_dir, name)))
        if not message.endswith(CRLF):
            message += CRLF
        seeds["mail-" + name[:-4]] = WHOLE + ENVELOPE + b"DATA\r\n" + \
            message + lines(b".", b"QUIT")

    return seeds


def body_seeds(mail_dir):
    data = body_header()
    bdat = body_header(BODY_BDAT)
    seeds = {}
    seeds["data-simple"] = data + MESSAGE + b".\r\n"

    seeds["data-empty"] = data + b".\r\n"

    seeds["data-dot-stuffed"] = data + b"a\r\n..b\r\n.\r\n..\r\n.\r\n"

    seeds["data-then-commands"] = data + MESSAGE + b".\r\n" + \
        ENVELOPE[18:] + b"DATA\r\n" + MESSAGE + b".\r\nQUIT\r\n"

    seeds["data-unfinished"] = data + b"Subject: a\r\n\r\nno end\r\n."

    seeds["data-split-1"] = body_header(0, (1, 1, 1, 1)) + MESSAGE + \
        b".\r\n"

    seeds["data-split-odd"] = body_header(0, (3, 1, 2, 7)) + \
        b"a\r\n.\r\r\n..\r\n.\r\n"

    seeds["data-commit-in-hook"] = body_header(BODY_COMMIT_IN_HOOK) + \
        MESSAGE + b".\r\n"

    seeds["data-too-big"] = body_header(BODY_SMALL_SIZE) + \
        (b"y" * 70 + CRLF) * 5 + b".\r\n"

    seeds["data-write-fails"] = body_header(BODY_FAIL_WRITE, (5, 0, 0, 0)) \
        + MESSAGE + b".\r\n"

    seeds["data-nul-bytes"] = data + b"a\x00b\r\n\x00\r\n.\r\n"

    seeds["data-8bit"] = data + "Subject: ü\r\n\r\nbär\r\n.\r\n".encode()

    seeds["data-long-line"] = data + b"z" * 3000 + b"\r\n.\r\n"

    smuggle = {
        "lf-dot-lf": b"\n.\n",
        "cr-dot-cr": b"\r.\r",
        "cr-dot-crlf": b"\r.\r\n",
        "crlf-dot-lf": b"\r\n.\n",
        "lf-dot-crlf": b"\n.\r\n",
        "crlf-dot-cr": b"\r\n.\r",
        "crlf-dot-cr-cr-lf": b"\r\n.\r\r\n",
    }

    for name, end in smuggle.items():
        seeds["data-smuggle-" + name] = data + b"x" + end + \
            b"MAIL FROM:<evil@b.test>\r\n\r\n.\r\n"
        seeds["bdat-smuggle-" + name] = bdat + b"x" + end + b"y\r\n"

    seeds["bdat-one-chunk"] = bdat + MESSAGE

    seeds["bdat-empty"] = bdat

    seeds["bdat-separate-last"] = body_header(
        BODY_BDAT | BODY_SEPARATE_LAST, (0, 0, 0, 0), (5, 9, 0)) + MESSAGE

    seeds["bdat-crlf-split"] = body_header(BODY_BDAT, (0, 0, 0, 0),
                                           (3, 1, 4)) + b"ab\r\ncd\r\n"

    seeds["bdat-no-final-crlf"] = body_header(BODY_BDAT, (0, 0, 0, 0),
                                              (4, 0, 0)) + b"a\r\nlast"

    seeds["bdat-final-cr"] = bdat + b"a\r\nb\r"

    seeds["bdat-dots"] = body_header(BODY_BDAT, (0, 0, 0, 0), (1, 2, 3)) + \
        b".\r\n..\r\n.a\r\n."

    seeds["bdat-too-big"] = body_header(BODY_BDAT | BODY_SMALL_SIZE,
                                        (0, 0, 0, 0), (100, 0, 0)) + \
        b"w" * 300

    seeds["bdat-write-fails"] = body_header(BODY_BDAT | BODY_FAIL_WRITE,
                                            (0, 0, 0, 0), (2, 0, 0)) + \
        MESSAGE

    seeds["bdat-split-feeds"] = body_header(
        BODY_BDAT | BODY_COMMIT_IN_HOOK, (1, 2, 3, 4), (7, 1, 0)) + MESSAGE

    for name in MAIL_FILES:
        message = crlf(read_mail(mail_dir, name))
        stuffed = dot_stuff(message)
        if not stuffed.endswith(CRLF):
            stuffed += CRLF
        seeds["data-mail-" + name[:-4]] = data + stuffed + b".\r\n"
        seeds["bdat-mail-" + name[:-4]] = body_header(
            BODY_BDAT, (0, 0, 0, 0), (200, 13, 0)) + message

    return seeds


def read_mail(mail_dir, name):
    with open(os.path.join(mail_dir, name), "rb") as mail:
        return mail.read()


def write_seeds(folder, seeds):
    os.makedirs(folder, exist_ok=True)
    for name, content in seeds.items():
        with open(os.path.join(folder, name), "wb") as seed:
            seed.write(content)


def main(argv):
    if len(argv) != 3:
        print("usage: make_corpus.py CORPUS_DIR MAIL_DIR", file=sys.stderr)
        return 2
    corpus, mail_dir = argv[1], argv[2]
    write_seeds(os.path.join(corpus, "commands"), command_seeds(mail_dir))
    write_seeds(os.path.join(corpus, "body"), body_seeds(mail_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

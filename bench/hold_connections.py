#!/usr/bin/env python3
"""Hold many idle SMTP connections open and report a server's memory.

Opens COUNT TCP connections to HOST:PORT (IPv4), at most --pending of
them connecting at a time, and waits until each has received a 220
greeting, which proves the server accepted it. Then it reads VmRSS and
VmHWM of --pid from /proc and prints one line of key=value pairs:

    connections=N vmrss_kib=N vmhwm_kib=N base_vmrss_kib=N seconds=N

base_vmrss_kib is the server's VmRSS before the first connection. Exits
1 when not every connection got its greeting within --timeout seconds.
The caller raises RLIMIT_NOFILE (ulimit -n) above COUNT first.
"""
import argparse
import errno
import selectors
import socket
import sys
import time


def read_memory_kib(pid):
    """Return (VmRSS, VmHWM) of pid in KiB from /proc/PID/status."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def open_connection(selector, address):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    err = sock.connect_ex(address)
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        raise OSError(err, f"connect to {address} failed")
    selector.register(sock, selectors.EVENT_READ, bytearray())


def on_readable(selector, sock, received):
    """Read greeting bytes and return 1 once a whole 220 line arrived."""
    try:
        data = sock.recv(512)
    except BlockingIOError:
        return 0
    if not data:
        raise OSError("server closed a connection before its greeting")
    received.extend(data)
    if b"\n" not in received:
        return 0
    if not received.startswith(b"220"):
        raise OSError(f"unexpected greeting {bytes(received)!r}")
    selector.unregister(sock)
    return 1


def hold(args):
    address = (args.host, args.port)
    selector = selectors.DefaultSelector()
    greeted = []
    opened = 0
    start = time.monotonic()
    deadline = start + args.timeout
    while len(greeted) < args.count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(greeted)} of {args.count} connections "
                               f"greeted after {args.timeout} s")
        while opened < args.count and opened - len(greeted) < args.pending:
            open_connection(selector, address)
            opened += 1
        for key, _ in selector.select(timeout=1.0):
            if on_readable(selector, key.fileobj, key.data):
                greeted.append(key.fileobj)
    seconds = time.monotonic() - start
    # Give the server a moment to finish the work of its last accepts.
    time.sleep(0.5)
    rss, hwm = read_memory_kib(args.pid)
    for sock in greeted:
        sock.close()
    selector.close()
    return len(greeted), rss, hwm, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--pid", type=int, required=True,
                        help="server process whose memory is read")
    parser.add_argument("--pending", type=int, default=200,
                        help="max connections waiting for a greeting")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to get every greeting")
    args = parser.parse_args()
    base_rss, _ = read_memory_kib(args.pid)
    try:
        count, rss, hwm, seconds = hold(args)
    except (OSError, TimeoutError) as error:
        print(f"hold_connections: {error}", file=sys.stderr)
        return 1
    print(f"connections={count} vmrss_kib={rss} vmhwm_kib={hwm} "
          f"base_vmrss_kib={base_rss} seconds={seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

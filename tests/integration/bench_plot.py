#!/usr/bin/env python3
"""bench/plot draws readable PNG files from a blast --json series.

Writes reports with a per-second series (entries with t, accepted,
bytes, rate and p99_ms), runs bench/plot and checks the PNG files it
writes, and that a report without a series fails with a message. A
missing gnuplot is a failure naming its package. bench_smoke.sh plots a
report that blast wrote.

usage: bench_plot.py SOURCE_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from harness import Tap

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """Return (width, height) from a PNG's IHDR chunk, or None."""
    try:
        with open(path, "rb") as png:
            head = png.read(24)
    except OSError:
        return None
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE):
        return None
    return (int.from_bytes(head[16:20], "big"),
            int.from_bytes(head[20:24], "big"))


def write_report(path, report):
    with open(path, "w") as out:
        json.dump(report, out)


def run_plot(plot, report, prefix):
    return subprocess.run([sys.executable, plot, report, prefix],
                          capture_output=True, text=True, timeout=90,
                          stdin=subprocess.DEVNULL)


def main():
    tap = Tap()
    plot = os.path.join(sys.argv[1], "bench", "plot")
    tmp = tempfile.mkdtemp(prefix="ringrelay-plot-test-")
    try:
        if not tap.check(shutil.which("gnuplot") is not None,
                         "gnuplot installed",
                         "gnuplot not found: apt-get install gnuplot-nox "
                         "(tools/deps installs it)"):
            return tap.finish()
        series = [{"t": t, "accepted": 1000 + 10 * t,
                   "bytes": 1024 * (1000 + 10 * t),
                   "rate": 1000.0 + 10 * t, "p99_ms": 2.0 + t / 10}
                  for t in range(1, 21)]
        report = os.path.join(tmp, "blast.json")
        write_report(report, {"messages": 20900, "series": series})
        prefix = os.path.join(tmp, "chart")
        result = run_plot(plot, report, prefix)
        tap.check(result.returncode == 0, "plot exits 0",
                  result.stdout + result.stderr)
        for name in ("throughput", "latency"):
            size = png_size(f"{prefix}-{name}.png")
            tap.check(size == (1000, 500), f"{name} chart is a PNG",
                      f"size {size}")

        # Without "rate", the rate comes from "accepted" per interval.
        nested = [{"t": e["t"], "accepted": e["accepted"]} for e in series]
        write_report(report, {"run": {"per_second": nested}})
        result = run_plot(plot, report, prefix + "-nested")
        tap.check(result.returncode == 0, "plot finds nested series",
                  result.stdout + result.stderr)
        tap.check(png_size(prefix + "-nested-throughput.png") is not None,
                  "nested throughput chart written")
        tap.check(not os.path.exists(prefix + "-nested-latency.png"),
                  "no latency chart without percentiles")

        write_report(report, {"messages": 5})
        result = run_plot(plot, report, prefix + "-empty")
        tap.check(result.returncode == 1, "plot fails without series",
                  f"exit {result.returncode}")
        tap.check("no per-second series" in result.stderr,
                  "plot names the missing series", result.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())

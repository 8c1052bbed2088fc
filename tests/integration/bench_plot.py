#!/usr/bin/env python3
"""bench/plot draws readable PNG files from a blast --json series.

Writes reports with a per-second series (entries with t, accepted,
bytes, rate and p99_ms), runs bench/plot and checks the PNG files it
writes. A report without a series, a value that is not a number and a
PREFIX in a missing directory must fail with a message and no
traceback. A stand-in gnuplot that fails checks that no 0-byte PNG is
left. A missing gnuplot is a failure naming its package. bench_smoke.sh
plots a report that blast wrote.

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


def run_plot(plot, report, prefix, env=None):
    return subprocess.run([sys.executable, plot, report, prefix],
                          capture_output=True, text=True, timeout=90,
                          stdin=subprocess.DEVNULL, env=env)


# Stands in for gnuplot: creates every "set output" file empty, as
# gnuplot does before a plot command fails, then fails.
FAILING_GNUPLOT = """#!/bin/sh
while IFS= read -r line; do
    case $line in
    "set output '"*)
        file=${line#"set output '"}
        : > "${file%"'"}"
        ;;
    esac
done
echo "gnuplot stand-in: plot failed" >&2
exit 1
"""


def check_failure(tap, name, result, message):
    tap.check(result.returncode == 1, f"{name}: exits 1",
              f"exit {result.returncode}\n{result.stderr}")
    tap.check(message in result.stderr, f"{name}: message", result.stderr)
    tap.check("Traceback" not in result.stderr, f"{name}: no traceback",
              result.stderr)


def check_errors(tap, plot, tmp, series):
    report = os.path.join(tmp, "errors.json")
    write_report(report, {"series": series})
    missing = os.path.join(tmp, "no-such-dir", "chart")
    result = run_plot(plot, report, missing)
    check_failure(tap, "missing PREFIX dir", result,
                  f"the directory of PREFIX, {os.path.dirname(missing)}, "
                  f"does not exist")
    tap.check(result.stdout == "", "missing PREFIX dir: no PNG on stdout",
              result.stdout[:200])

    for key, value in (("rate", "fast"), ("p99_ms", [1]), ("t", "x"),
                       ("bytes", True)):
        bad = [dict(entry) for entry in series]
        bad[3][key] = value
        write_report(report, {"series": bad})
        result = run_plot(plot, report, os.path.join(tmp, "bad"))
        check_failure(tap, f"non-numeric {key}", result,
                      f"\"{key}\" is not a number: {value!r}")

    # Null and NaN latencies are gaps, and a key without any value gets
    # no line, because gnuplot fails on a column without valid points.
    gaps = [dict(entry, p99_ms=None, p50_ms=float("nan"))
            for entry in series]
    write_report(report, {"series": gaps})
    prefix = os.path.join(tmp, "gaps")
    result = run_plot(plot, report, prefix)
    tap.check(result.returncode == 0, "latency without values: exits 0",
              result.stderr)
    tap.check(not os.path.exists(prefix + "-latency.png"),
              "latency without values: no latency chart")

    fake_dir = os.path.join(tmp, "fake-bin")
    os.mkdir(fake_dir)
    fake = os.path.join(fake_dir, "gnuplot")
    with open(fake, "w") as out:
        out.write(FAILING_GNUPLOT)
    os.chmod(fake, 0o755)
    env = dict(os.environ, PATH=fake_dir + os.pathsep + os.environ["PATH"])
    write_report(report, {"series": series})
    prefix = os.path.join(tmp, "failed")
    result = run_plot(plot, report, prefix, env)
    check_failure(tap, "gnuplot fails", result, "gnuplot stand-in: plot "
                  "failed")
    for name in ("throughput", "latency"):
        tap.check(not os.path.exists(f"{prefix}-{name}.png"),
                  f"gnuplot fails: no empty {name} PNG left")


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
        check_errors(tap, plot, tmp, series)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())

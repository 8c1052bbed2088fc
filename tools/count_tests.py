#!/usr/bin/env python3
"""Count test results from meson's logs and print "N passed, N failed".

Usage: count_tests.py BUILD_DIR...

Each TAP test point ("ok N" / "not ok N") counts once; a test that printed
no TAP counts once by its meson result. A test whose output contains a
sanitizer report counts one extra failure, because LeakSanitizer and UBSan
reports do not fail a Criterion test by themselves. A build directory
without a test log (the build failed) counts as one failure. Exits 1 when
anything failed.
"""
import json
import os
import re
import sys

TAP_POINT = re.compile(r"^(not ok|ok)\b(.*)$")
SANITIZER = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")
PASSING = {"OK", "EXPECTEDFAIL", "SKIP"}


def count_log(path):
    passed = failed = 0
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            entry = json.loads(line)
            output = (entry.get("stdout") or "") + (entry.get("stderr") or "")
            points = [TAP_POINT.match(l) for l in output.splitlines()]
            points = [p for p in points if p]
            if points:
                for point in points:
                    skipped = "# SKIP" in point.group(2).upper()
                    if point.group(1) == "ok" or skipped:
                        passed += 1
                    else:
                        failed += 1
                if entry.get("result") not in PASSING:
                    failed += 1
            elif entry.get("result") in PASSING:
                passed += 1
            else:
                failed += 1
            if SANITIZER.search(output):
                print(f"sanitizer report in {entry.get('name')} "
                      f"({os.path.dirname(os.path.dirname(path))})")
                failed += 1
    return passed, failed


def main(build_dirs):
    passed = failed = 0
    for build in build_dirs:
        path = os.path.join(build, "meson-logs", "testlog.json")
        if not os.path.exists(path):
            print(f"no test log in {build}")
            failed += 1
            continue
        p, f = count_log(path)
        passed += p
        failed += f
    if not build_dirs:
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

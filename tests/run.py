"""Run the suite with nose2 under coverage: on SQLite, then on TEST_DATABASE_URL if set.

Prints the totals last, as `N passed, M failed`.

`tests/run.py --suite sqlite|postgresql` runs one suite and leaves its coverage data for a later
`tests/run.py --report` (combine, report, fail under FAIL_UNDER %): .ci/run runs the two suites
at different times, the SQLite one beside the live checks.
"""

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
FAIL_UNDER = 90


def run_suite(label, database_url):
    env = dict(os.environ, APP_ENV="testing", COVERAGE_FILE=os.path.join(ROOT, f".coverage.{label}"))
    env.pop("DATABASE_URL", None)
    if database_url:
        env["TEST_DATABASE_URL"] = database_url
    else:
        env.pop("TEST_DATABASE_URL", None)
    print(f"\n=== {label} ===", flush=True)
    command = [
        os.path.join(BIN, "coverage"),
        "run",
        "--source=app,config",
        "-m",
        "nose2",
        "-s",
        ROOT,
        "-t",
        ROOT,
        "tests",
    ]
    process = subprocess.run(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(process.stderr)
    ran = re.search(r"Ran (\d+) tests?", process.stderr)
    total = int(ran.group(1)) if ran else 0
    failed = sum(int(n) for n in re.findall(r"(?:failures|errors|unexpected successes)=(\d+)", process.stderr))
    skipped = sum(int(n) for n in re.findall(r"skipped=(\d+)", process.stderr))
    if process.returncode != 0 and failed == 0:
        failed = max(1, total)
    return total - failed - skipped, failed, skipped


def report_coverage():
    """Combine the suites' coverage data and report it: False if under FAIL_UNDER %."""
    coverage = os.path.join(BIN, "coverage")
    subprocess.run([coverage, "combine"], cwd=ROOT, check=False)
    report = subprocess.run([coverage, "report", f"--fail-under={FAIL_UNDER}"], cwd=ROOT)
    if report.returncode != 0:
        print(f"coverage is under {FAIL_UNDER}%")
    return report.returncode == 0


def print_totals(results):
    passed, failed, skipped = (sum(counts) for counts in zip(*results, strict=True))
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed or passed == 0 else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", choices=("sqlite", "postgresql"), help="run this suite only, no report")
    parser.add_argument("--report", action="store_true", help="only combine and report the coverage data")
    args = parser.parse_args()
    postgres = os.environ.get("TEST_DATABASE_URL")
    if args.report:
        return 0 if report_coverage() else 1
    if args.suite:
        if args.suite == "postgresql" and not postgres:
            sys.exit("--suite postgresql needs TEST_DATABASE_URL")
        return print_totals([run_suite(args.suite, postgres if args.suite == "postgresql" else None)])
    results = [run_suite("sqlite", None)]
    if postgres:
        results.append(run_suite("postgresql", postgres))
    covered = report_coverage()
    return print_totals(results) or (0 if covered else 1)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Run every test: the layering check (one test), the criterion unit
binaries, then the pytest suites (integration, lab). Prints each runner's
own output and, last, one line "N passed, N failed, N skipped" over all of
them. Exit status 0 only if nothing failed."""
import glob
import os
import re
import subprocess
import sys

def run_layering():
    """tests/layering.sh on this tree: every #include points down."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = ["sh", os.path.join(top, "tests", "layering.sh"), top]
    print("== " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    sys.stdout.write(p.stdout)
    return (1, 0, 0) if p.returncode == 0 else (0, 1, 0)

def run_unit(build):
    passed = failed = 0
    for binary in sorted(glob.glob(os.path.join(build, "tests", "test_*"))):
        if not os.access(binary, os.X_OK) or binary.endswith(".d"):
            continue
        print(f"== {binary}", flush=True)
        p = subprocess.run([binary, "--jobs=2"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        sys.stdout.write(p.stdout)
        m = re.search(r"Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+)"
                      r" \| Crashing: (\d+)", p.stdout)
        if m is None:
            print(f"{binary}: no criterion summary (exit {p.returncode})")
            failed += 1
            continue
        passed += int(m.group(2))
        failed += int(m.group(3))
        if p.returncode != 0 and int(m.group(3)) == 0:
            failed += 1
    return passed, failed, 0

def run_pytest(build, paths):
    paths = [p for p in paths if glob.glob(os.path.join(p, "test_*.py"))]
    if not paths:
        return 0, 0, 0
    env = dict(os.environ, MPGW_BUILD=build)
    cmd = ["/usr/bin/python3", "-m", "pytest", "-rs", "-p", "no:cacheprovider"]
    cmd += os.environ.get("PYTEST_ARGS", "").split() + paths
    print("== " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(p.stdout)
    tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    counts = {}
    for n, what in re.findall(r"(\d+) (passed|failed|error|errors|skipped)",
                              tail):
        counts[what] = counts.get(what, 0) + int(n)
    failed = counts.get("failed", 0) + counts.get("error", 0) + \
        counts.get("errors", 0)
    if p.returncode not in (0, 5) and failed == 0:
        failed = 1
    return counts.get("passed", 0), failed, counts.get("skipped", 0)

def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    build = args[0] if args else "build"
    results = [run_layering(), run_unit(build)]
    if "--unit-only" not in sys.argv:
        results.append(run_pytest(build, ["tests/integration", "tests/lab"]))
    passed = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    skipped = sum(r[2] for r in results)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)

if __name__ == "__main__":
    main()

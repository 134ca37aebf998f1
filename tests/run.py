#!/usr/bin/python3
"""Run every test: the layering check (one test), the criterion unit
binaries, with --fuzz=DIR each libFuzzer target in DIR for a few seconds
(one test each), then the pytest suites (integration, lab). Prints each
runner's own output and, last, one line "N passed, N failed, N skipped"
over all of them. Exit status 0 only if nothing failed."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Seconds per fuzz target, and targets run at once (the machine has 2 cores).
FUZZ_SECONDS = int(os.environ.get("MPGW_FUZZ_SECONDS", "10"))
FUZZ_JOBS = 2

def run_layering():
    """tests/layering.sh on this tree: every #include points down."""
    cmd = ["sh", os.path.join(TOP, "tests", "layering.sh"), TOP]
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

def run_fuzz(fuzzdir):
    """Each fuzz_* target in fuzzdir for FUZZ_SECONDS from its committed
    seeds (tests/fuzz/corpus/<target>/), FUZZ_JOBS at a time. What a run
    finds goes to a temporary directory, so the seeds stay as committed; a
    crashing input is kept in fuzzdir/artifacts/. A crash, a leak, a hang
    or a failed check fails that target."""
    targets = sorted(t for t in glob.glob(os.path.join(fuzzdir, "fuzz_*"))
                     if os.access(t, os.X_OK))
    if not targets:
        print(f"{fuzzdir}: no fuzz targets")
        return 0, 1, 0
    artifacts = os.path.join(fuzzdir, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    passed = failed = 0
    pending = list(targets)
    running = []
    while pending or running:
        while pending and len(running) < FUZZ_JOBS:
            t = pending.pop(0)
            name = os.path.basename(t)
            seeds = os.path.join(TOP, "tests", "fuzz", "corpus", name)
            found = tempfile.mkdtemp(prefix=name + ".")
            log = tempfile.TemporaryFile(mode="w+")
            cmd = [t, f"-max_total_time={FUZZ_SECONDS}", "-timeout=10",
                   "-rss_limit_mb=2048", "-print_final_stats=1",
                   f"-artifact_prefix={artifacts}/{name}-", found]
            if os.path.isdir(seeds):
                cmd.append(seeds)
            print("== " + " ".join(cmd), flush=True)
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            running.append((name, p, log, found, os.path.isdir(seeds)))
        name, p, log, found, had_seeds = running.pop(0)
        p.wait()
        log.seek(0)
        out = log.read()
        log.close()
        shutil.rmtree(found, ignore_errors=True)
        runs = re.search(r"stat::number_of_executed_units: (\d+)", out)
        if p.returncode == 0 and had_seeds:
            passed += 1
            print(f"{name}: {runs.group(1) if runs else '?'} inputs in "
                  f"{FUZZ_SECONDS} s, no finding")
        else:
            failed += 1
            why = "no seed corpus" if not had_seeds else \
                f"exit {p.returncode}"
            sys.stdout.write("\n".join(out.splitlines()[-60:]) + "\n")
            print(f"{name}: FAILED ({why}); the input is in {artifacts}/")
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
    for a in sys.argv[1:]:
        if a.startswith("--fuzz="):
            results.append(run_fuzz(a[len("--fuzz="):]))
    if "--unit-only" not in sys.argv:
        results.append(run_pytest(build, ["tests/integration", "tests/lab"]))
    passed = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    skipped = sum(r[2] for r in results)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)

if __name__ == "__main__":
    main()

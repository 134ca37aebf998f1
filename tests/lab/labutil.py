"""Shared pieces for the lab tests that run the real gateway
(test_gateway_lab.py, test_convert_lab.py): a lab instance from lab.sh,
processes inside its namespaces with their output followed line by line,
the gateway with its config and log, small file and config helpers.

Run as root; see tests/lab/README.md for the topology. MPGW_BUILD (default
"build") locates mpgw, libmpgw.so, mpgw-run and linkemu.
"""

import ctypes
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
LAB_SH = os.path.join(HERE, "lab.sh")
BUILD = os.environ.get("MPGW_BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(TOP, BUILD)
MPGW = os.environ.get("MPGW_BIN") or os.path.join(BUILD, "mpgw")
LIB = os.path.join(BUILD, "libmpgw.so")
MPGW_RUN = os.path.join(BUILD, "mpgw-run")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
SINK = os.path.join(HERE, "mptcp_sink.py")
RESULTS = os.path.join(BUILD, "lab-results")

MIB = 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
# Bound on waiting for anything (a line, a process): a hang fails, it does
# not stall the run. Not a performance threshold.
WAIT = 60


def skip_reason(*binaries, tools=()):
    """Why the lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, tc, iptables)"
    for t in ("ip", "tc", "iptables") + tuple(tools):
        if shutil.which(t) is None:
            return "%s is not installed" % t
    r = subprocess.run(["ip", "netns", "list"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return "'ip netns' is unavailable: " + r.stderr.strip()
    if not os.path.exists("/proc/sys/net/mptcp/enabled"):
        return "kernel has no MPTCP (/proc/sys/net/mptcp missing)"
    for b in binaries:
        if not os.access(b, os.X_OK if not b.endswith(".so") else os.R_OK):
            return "%s is not built (make BUILD=%s all)" % (
                b, os.path.relpath(BUILD, TOP))
    return None


def ini(sections):
    """INI text from {section: {key: value}}."""
    out = []
    for sec, kv in sections.items():
        out.append("[%s]" % sec)
        out += ["%s = %s" % (k, v) for k, v in kv.items()]
    return "\n".join(out) + "\n"


class Proc:
    """A process in a lab namespace; its stdout and stderr are read by
    threads, kept as lines, copied to files, and can be waited on."""

    def __init__(self, lab, role, argv, name, env=None):
        self.name = name
        self.argv = argv
        self.cond = threading.Condition()
        self.out, self.err = [], []
        self.files = [open(lab.path(name + ".stdout"), "w"),
                      open(lab.path(name + ".stderr"), "w")]
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns(role)] + list(argv),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, text=True, errors="replace")
        self.threads = [
            threading.Thread(target=self._read, daemon=True,
                             args=(self.p.stdout, self.out, self.files[0])),
            threading.Thread(target=self._read, daemon=True,
                             args=(self.p.stderr, self.err, self.files[1]))]
        for t in self.threads:
            t.start()

    def _read(self, stream, lines, f):
        for line in stream:
            f.write(line)
            f.flush()
            with self.cond:
                lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait(self, pred, what, timeout=WAIT):
        """Wait until pred() (called under the lock) is true; fails if the
        process exits first or the bound runs out."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred()
                if r:
                    return r
                if self.p.poll() is not None and not any(
                        t.is_alive() for t in self.threads):
                    raise AssertionError("%s exited (%s) before %s:\n%s" % (
                        self.name, self.p.returncode, what, self.tail()))
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s (%s):\n%s"
                                         % (what, self.name, self.tail()))
                self.cond.wait(min(left, 0.5))

    def wait_out(self, pred, what, start=0, timeout=WAIT):
        """The first stdout line from index start with pred(line)."""
        def find():
            for ln in self.out[start:]:
                if pred(ln):
                    return ln
            return None
        return self.wait(find, what, timeout)

    def wait_err(self, pred, what, start=0, timeout=WAIT):
        def find():
            for ln in self.err[start:]:
                if pred(ln):
                    return ln
            return None
        return self.wait(find, what, timeout)

    def tail(self, n=40):
        return "\n".join((self.out + self.err)[-n:])

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for t in self.threads:
            t.join(5)
        for f in self.files:
            f.close()


class Lab:
    """One lab.sh instance with a unique suffix, a scratch directory, the
    processes started in it and /etc/netns files written for it."""

    def __init__(self, tag, *args):
        self.suffix = "%s%d" % (tag, os.getpid())
        self.procs = []
        self.etc = []
        self.up = False
        self.dir = tempfile.mkdtemp(prefix="mpgw-lab-%s-" % self.suffix)
        try:
            r = self.sh("up", *args)
            self.up = True
            self.log = r.stdout
            self.env = {}
            for line in self.sh("env").stdout.splitlines():
                k, _, v = line.partition("=")
                self.env[k] = v.strip("'")
        except BaseException:
            self.close()
            raise

    def sh(self, cmd, *args, check=True):
        r = subprocess.run([LAB_SH, cmd, "--suffix", self.suffix, *args],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, MPGW_BUILD=BUILD))
        if check and r.returncode != 0:
            raise AssertionError("lab.sh %s failed (%d):\n%s%s" %
                                 (cmd, r.returncode, r.stdout, r.stderr))
        return r

    def ns(self, role):
        return self.env["LAB_NS_" + role.upper()]

    def ip(self, name):
        return self.env["LAB_" + name]

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data, mode=0o644):
        p = self.path(name)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.chmod(p, mode)
        return p

    def netns_file(self, role, name, text):
        """/etc/netns/NS/NAME: `ip netns exec NS` bind-mounts it over
        /etc/NAME for the processes it starts (and only for those)."""
        d = "/etc/netns/" + self.ns(role)
        if d not in self.etc:
            os.makedirs(d, exist_ok=True)
            self.etc.append(d)
        with open(os.path.join(d, name), "w") as f:
            f.write(text)

    def spawn(self, role, argv, name, env=None):
        p = Proc(self, role, argv, name, env)
        self.procs.append(p)
        return p

    def run(self, role, argv, env=None, timeout=WAIT, input=None):
        """Run to completion in a namespace; bytes stdout/stderr."""
        return subprocess.run(["ip", "netns", "exec", self.ns(role)] +
                              list(argv), env=env, input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)

    def in_ns(self, role, fn):
        """fn() called on a thread inside the role's namespace; returns
        its value. Sockets it makes stay in that namespace for good,
        whichever thread then uses them: a test can be a client or a
        server in the lab without a helper process."""
        box = {}

        def body():
            try:
                fd = os.open("/run/netns/" + self.ns(role), os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise OSError(e, "setns: " + os.strerror(e))
                finally:
                    os.close(fd)
                box["v"] = fn()
            except BaseException as e:  # handed to the caller
                box["e"] = e
        t = threading.Thread(target=body)
        t.start()
        t.join()
        if "e" in box:
            raise box["e"]
        return box["v"]

    def link_bytes(self, role, ifname, direction="tx"):
        import json
        r = subprocess.run(["ip", "-n", self.ns(role), "-j", "-s", "link",
                            "show", "dev", ifname],
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout)[0]["stats64"][direction]["bytes"]

    def close(self):
        for p in self.procs:
            try:
                p.stop()
            except Exception:   # keep tearing down
                pass
        self.procs = []
        if self.up:
            self.sh("down", check=False)
            self.up = False
        else:
            # A failed "up" cleans up after itself; make sure anyway.
            self.sh("down", check=False)
        for d in self.etc:
            shutil.rmtree(d, ignore_errors=True)
        self.etc = []
        keep = os.environ.get("MPGW_LAB_KEEP")
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def bring_up(request, tag, *args):
    """A module's lab, torn down by a finalizer even when tests fail."""
    lab = Lab(tag, *args)
    request.addfinalizer(lab.close)
    return lab


def users_file(lab, user, password):
    r = subprocess.run(["mkpasswd", "-m", "yescrypt", "-s"],
                       input=password.encode(), capture_output=True,
                       check=True)
    return lab.write("users", "%s:%s\n" % (user, r.stdout.decode().strip()),
                     0o600)


def key_file(lab, user):
    """A Convert keys file made by `mpgw key new`; returns (path, b64)."""
    p = lab.path("keys")
    r = subprocess.run([MPGW, "key", "new", user, p], capture_output=True,
                       text=True, check=True)
    return p, r.stdout.strip()


def parse_access(line):
    """Fields of an access line as a dict (values unescaped as given)."""
    i = line.find(" access id=")
    if i < 0:
        return None
    return dict(kv.split("=", 1) for kv in line[i + 8:].split()
                if "=" in kv)


class Gateway:
    """build/mpgw in a lab namespace (gw unless role says otherwise),
    access log on stderr."""

    def __init__(self, lab, name, sections, role="gw"):
        self.lab = lab
        conf = {"gateway": {"workers": "2", "log_level": "info",
                            "access_log": "stderr"}}
        for k, v in sections.items():
            conf.setdefault(k, {}).update(v)
        self.conf = lab.write(name + ".ini", ini(conf))
        r = lab.run(role, [MPGW, "-t", "-c", self.conf])
        assert r.returncode == 0, "mpgw -t rejects %s:\n%s%s\n%s" % (
            self.conf, r.stdout.decode(), r.stderr.decode(), ini(conf))
        self.proc = lab.spawn(role, [MPGW, "-c", self.conf], name)
        self.proc.wait_err(lambda l: " started: " in l, "mpgw start")

    def access(self):
        with self.proc.cond:
            return [a for a in map(parse_access, self.proc.err) if a]

    def mark(self):
        """Position in the log, for waiting on what comes after it."""
        with self.proc.cond:
            return len(self.proc.err)

    def wait_access(self, pred, what, start=0, timeout=WAIT):
        line = self.proc.wait_err(
            lambda l: parse_access(l) is not None and pred(parse_access(l)),
            "access line: " + what, start, timeout)
        return parse_access(line)

    def lines(self, needle, start=0):
        with self.proc.cond:
            return [l for l in self.proc.err[start:] if needle in l]


def results(name, text):
    """A measured result (never asserted on) to build/lab-results/NAME,
    and to stdout."""
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name), "w") as f:
        f.write(text)
    print(text)


def scrape(lab, port, role="gw"):
    """{(name, frozenset(labels)): value} of the mpgw metrics endpoint on
    127.0.0.1:port inside role's namespace."""
    def get():
        with socket.create_connection(("127.0.0.1", port), 10) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    return data.decode()
                data += b
    head, _, body = lab.in_ns(role, get).partition("\r\n\r\n")
    assert head.startswith("HTTP/1."), head
    out = {}
    for ln in body.splitlines():
        if ln.startswith("#"):
            continue
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", ln)
        assert m, "not a sample line: %r" % ln
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(lab, port, name, role="gw", **labels):
    """One sample of that endpoint, e.g. metric(lab, 9124,
    "mpgw_refused_total", reason="proxy")."""
    key = (name, frozenset(labels.items()))
    got = scrape(lab, port, role)
    assert key in got, "no sample %s%s" % (name, labels or "")
    return got[key]


def wait_for(pred, what, timeout=WAIT, interval=0.02):
    """Poll pred() until it is true (returned) or the bound runs out."""
    end = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def ready_line(proc, what="ready"):
    """Waits for a helper's first stdout line (it prints it once it
    listens) and returns it."""
    return proc.wait_out(lambda l: True, what)

"""Helpers shared by the integration tests: paths, ports, bounded waits, the
running-gateway handle, and wrappers around the real clients."""

import ctypes
import hashlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("MPGW_BUILD", "build")
# MPGW_BIN lets the suite be pointed at another implementation of the same
# contract (e.g. to check the tests themselves against a reference server).
MPGW_BIN = os.environ.get("MPGW_BIN") or os.path.join(ROOT, BUILD, "mpgw")
ASAN = os.environ.get("MPGW_ASAN") == "1"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# Bounds on waits. They stop a hung test; they are not performance claims.
# Sanitizer builds start and run several times slower.
SLOW = 4 if ASAN else 1
START_TIMEOUT = 20 * SLOW
STOP_TIMEOUT = 30 * SLOW
CLIENT_TIMEOUT = 30 * SLOW        # one small exchange
BIG_TIMEOUT = 300 * SLOW          # a 64 MiB transfer

# Test users: name -> (password, mkpasswd method).
USERS = {
    "alice": ("Wonderland-7", "yescrypt"),
    "carol": ("carol has spaces", "sha512crypt"),
}

_libc = ctypes.CDLL(None, use_errno=True)

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer")


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def die_with_parent():
    """preexec_fn: SIGKILL this child if the test process dies, so a killed
    pytest leaves no gateway or server behind."""
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (bound, then released)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, proc=None, interval=0.02):
    """Poll pred() until it returns a true value (returned) or timeout
    expires (AssertionError naming what). If proc exits meanwhile, fail at
    once."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s while waiting for %s"
                                 % (proc.returncode, what))
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def accepts(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except OSError:
            return False
        return True


def ipv6_loopback_usable():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def write_ini(path, sections):
    """sections: {section: {key: value}}; a None value leaves the key out.
    Written atomically."""
    lines = []
    for sec, kv in sections.items():
        lines.append("[%s]" % sec)
        for k, v in kv.items():
            if v is not None:
                lines.append("%s = %s" % (k, v))
        lines.append("")
    tmp = "%s.tmp" % path
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)  # a reloading gateway never sees half a file


class Gateway:
    """A running build/mpgw. port is the first listen port; ports all."""

    def __init__(self, proc, conf_path, ports, stderr_path, config):
        self.proc = proc
        self.conf_path = conf_path
        self.ports = ports
        self.port = ports[0]
        self.stderr_path = stderr_path
        self.config = config
        self.stopped = False

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def wait_stderr(self, regex, timeout=10 * SLOW):
        rx = re.compile(regex)
        return wait_until(lambda: rx.search(self.stderr_text()), timeout,
                          "stderr to match %r" % regex)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait for an orderly exit; returns a list of problems."""
        if self.stopped:
            return []
        self.stopped = True
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("mpgw did not exit within %d s of SIGTERM"
                                % STOP_TIMEOUT)
            else:
                if self.proc.returncode != 0:
                    problems.append("mpgw exited with status %d after SIGTERM"
                                    " (expected 0)" % self.proc.returncode)
        else:
            problems.append("mpgw had already exited (status %s) before the "
                            "test ended" % self.proc.returncode)
        text = self.stderr_text()
        for m in SANITIZER_MARKERS:
            if m in text:
                problems.append("sanitizer report in mpgw stderr: %r" % m)
        if problems:
            problems.append("--- mpgw stderr (tail) ---\n" + self.stderr_tail(60))
        return problems


_instance = itertools.count()


def gateway_conf(listen, sections=None):
    """The test defaults with listen (a list of "addr:port") as
    socks5.listen, sections merged over them section by section."""
    conf = {
        "gateway": {"workers": "2", "log_level": "info",
                    "access_log": "stderr"},
        "socks5": {"listen": ",".join(listen), "methods": "none",
                   "handshake_timeout": "10", "idle_timeout": "300"},
        "upstream": {"mptcp": "on", "connect_timeout": "10"},
    }
    for sec, kv in (sections or {}).items():
        conf.setdefault(sec, {}).update(kv)
    return conf


def await_gateway(gw, checks):
    """Wait until every (description, predicate) in checks holds; if one
    does not in time, kill the gateway and fail with its stderr."""
    try:
        for what, pred in checks:
            wait_until(pred, START_TIMEOUT, what, proc=gw.proc)
    except AssertionError as e:
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait()
        gw.stopped = True
        raise AssertionError("%s\n--- mpgw stderr ---\n%s"
                             % (e, gw.stderr_text())) from None
    return gw


def start_gateway(tmpdir, sections, nlisten=1, binary=None):
    """Write the INI (sections merged over test defaults), start mpgw, wait
    until every listen port accepts. Returns a Gateway."""
    binary = binary or MPGW_BIN
    if not os.access(binary, os.X_OK):
        raise AssertionError("%s is not built (run `make`)" % binary)
    ports = [free_port() for _ in range(nlisten)]
    conf = gateway_conf(["127.0.0.1:%d" % p for p in ports], sections)
    n = next(_instance)
    conf_path = os.path.join(tmpdir, "mpgw-%d.ini" % n)
    stderr_path = os.path.join(tmpdir, "mpgw-%d.stderr" % n)
    stdout_path = os.path.join(tmpdir, "mpgw-%d.stdout" % n)
    write_ini(conf_path, conf)
    with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
        proc = subprocess.Popen([binary, "-c", conf_path],
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, cwd=tmpdir,
                                preexec_fn=die_with_parent)
    gw = Gateway(proc, conf_path, ports, stderr_path, conf)
    return await_gateway(gw, [
        ("mpgw to accept on 127.0.0.1:%d" % p,
         lambda p=p: accepts("127.0.0.1", p)) for p in ports])


def tiers(gateway, keys, edge=None, conc=None, edge_keys=None):
    """Two tiers on loopback (DESIGN.md section 5) from the gateway
    fixture: a concentrator with a Convert listener taking keys, and an
    edge whose upstream is via it as user "edge" (signing with edge_keys,
    default keys). edge and conc are sections merged over each one's.
    Returns (edge, concentrator)."""
    def merged(base, extra):
        for k, v in (extra or {}).items():
            base.setdefault(k, {}).update(v)
        return base
    cport = free_port()
    c = gateway(merged({"convert": {"listen": "127.0.0.1:%d" % cport,
                                    "keys": keys}}, conc))
    wait_until(lambda: accepts("127.0.0.1", cport), START_TIMEOUT,
               "the concentrator's Convert listener", proc=c.proc)
    e = gateway(merged({"upstream": {
        "via": "convert://127.0.0.1:%d" % cport, "via_user": "edge",
        "via_keys": edge_keys or keys}}, edge))
    return e, c


def run(argv, timeout=CLIENT_TIMEOUT, input=None, env=None):
    """Run a client; returns CompletedProcess with bytes stdout/stderr."""
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env)


def need_tool(name):
    import pytest
    if shutil.which(name) is None:
        pytest.skip("%s is not installed (make deps-test installs it)" % name)


def curl(*args, timeout=CLIENT_TIMEOUT, **kw):
    """curl -sS with hang protection; returns CompletedProcess."""
    return run(["curl", "-sS", "--max-time", str(timeout - 5), *args],
               timeout=timeout, **kw)


def count_matching_lines(path, regex):
    if not os.path.exists(path):
        return 0
    rx = re.compile(regex)
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return sum(1 for ln in text.splitlines() if rx.search(ln))


def port_regex(port):
    """Matches a line that mentions port as a whole number."""
    return r"(?<![0-9])%d(?![0-9])" % port

"""Running as a service (DESIGN.md section 7): gateway.user gives up root
once the listeners are bound, `mpgw -t` (and start-up) prove that the
files a reload reads stay readable by that user, and the daemon speaks the
NOTIFY_SOCKET protocol a Type=notify unit needs.

A gateway running as nobody cannot read files under a 0700 checkout or
pytest's 0700 temporary directories, so every file it needs lives in a
world-readable directory the test makes (world_dir), and secrets there
are 0600 and owned by nobody."""

import copy
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import gwutil
import socksraw as sr
from gwutil import MPGW_BIN, SLOW, USERS, curl, run

T = 30 * SLOW   # hang protection only

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="switching users needs root (make test runs "
    "as root)")


def _text(r):
    return (r.stdout + r.stderr).decode(errors="replace")


@pytest.fixture
def nobody():
    """(passwd entry of nobody, group entry of nogroup): every Debian host
    has both."""
    try:
        return pwd.getpwnam("nobody"), grp.getgrnam("nogroup")
    except KeyError as e:
        pytest.fail("no %s on this host" % e)


@pytest.fixture
def world_dir():
    """A fresh 0755 directory under /tmp, removed afterwards."""
    d = tempfile.mkdtemp(prefix="mpgw-svc-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def started():
    """Gateways a test started; each must exit 0 after SIGTERM, with no
    sanitizer report."""
    gws = []
    yield gws
    problems = []
    for gw in gws:
        problems += gw.stop()
    if problems:
        pytest.fail("gateway teardown:\n" + "\n".join(problems),
                    pytrace=False)


def start_in(d, sections, env=None, started=None, wait=True):
    """gwutil.start_gateway with the config and logs in d and the
    environment env (added to ours); wait=False returns at once."""
    port = gwutil.free_port()
    conf = gwutil.gateway_conf(["127.0.0.1:%d" % port], sections)
    conf_path = os.path.join(d, "mpgw.ini")
    stderr_path = os.path.join(d, "mpgw.stderr")
    gwutil.write_ini(conf_path, conf)
    os.chmod(conf_path, 0o644)
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen([MPGW_BIN, "-c", conf_path],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err,
                                cwd=d, env=dict(os.environ, **(env or {})),
                                preexec_fn=gwutil.die_with_parent)
    gw = gwutil.Gateway(proc, conf_path, [port], stderr_path, conf)
    if started is not None:
        started.append(gw)
    if not wait:
        return gw
    return gwutil.await_gateway(gw, [
        ("mpgw to accept on 127.0.0.1:%d" % port,
         lambda: gwutil.accepts("127.0.0.1", port))])


def proc_status(pid):
    """/proc/PID/status as {field: value string}."""
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f
                    if ":\t" in line)


def secret_copy(src, d, name, owner):
    """Copy src into d as a 0600 file owned by owner (a passwd entry)."""
    dst = os.path.join(d, name)
    shutil.copyfile(src, dst)
    os.chown(dst, owner.pw_uid, owner.pw_gid)
    os.chmod(dst, 0o600)
    return dst


def none_greeting_gets(port):
    """The method byte a none-only greeting gets from the gateway now."""
    with sr.open_conn(port) as s:
        s.sendall(sr.greeting([sr.M_NONE]))
        return sr.read_method(s)


def check(conf_path, **kw):
    return run([MPGW_BIN, "-t", "-c", conf_path], timeout=T, **kw)


def as_user(pw, gid=None):
    """preexec_fn: run the child as pw (and gid), no supplementary groups."""
    def become():
        os.setgroups([])
        os.setgid(pw.pw_gid if gid is None else gid)
        os.setuid(pw.pw_uid)
    return become


# --- privilege drop ------------------------------------------------------------

@needs_root
def test_drops_to_user_and_still_serves_and_reloads(world_dir, nobody,
                                                    started, origin,
                                                    users_file):
    pw, gr = nobody
    logdir = os.path.join(world_dir, "log")
    os.mkdir(logdir, 0o755)
    os.chown(logdir, pw.pw_uid, gr.gr_gid)
    access = os.path.join(logdir, "access.log")
    gw = start_in(world_dir, {
        "gateway": {"user": "nobody", "group": "nogroup",
                    "access_log": access}}, started=started)
    # The kernel queues connections once the listeners are bound, before
    # the drop; a SOCKS reply needs a worker, and workers start after it.
    assert none_greeting_gets(gw.port) == sr.M_NONE

    st = proc_status(gw.proc.pid)
    assert st["Uid"].split() == [str(pw.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(gr.gr_gid)] * 4, st["Gid"]
    assert st["Groups"].split() == [str(gr.gr_gid)], st["Groups"]
    for cap in ("CapEff", "CapPrm", "CapAmb"):
        assert int(st[cap], 16) == 0, "%s = %s" % (cap, st[cap])
    assert st["NoNewPrivs"].strip() == "1", st["NoNewPrivs"]

    r = curl("--socks5", "127.0.0.1:%d" % gw.port, origin.url("/hello"))
    assert r.returncode == 0 and r.stdout == b"hello\n", _text(r)

    # The access log was opened as nobody, so a reload can reopen it.
    assert os.stat(access).st_uid == pw.pw_uid

    # SIGHUP, read as nobody: now a password is required.
    conf = copy.deepcopy(gw.config)
    conf["socks5"]["methods"] = "userpass"
    conf["auth"] = {"users": secret_copy(users_file, world_dir, "users", pw)}
    gwutil.write_ini(gw.conf_path, conf)
    os.chmod(gw.conf_path, 0o644)
    gw.proc.send_signal(signal.SIGHUP)
    gwutil.wait_until(lambda: none_greeting_gets(gw.port) == sr.M_UNACCEPTABLE,
                      10 * SLOW, "the reloaded config (methods = userpass)",
                      proc=gw.proc)
    r = curl("--socks5", "127.0.0.1:%d" % gw.port, origin.url("/hello"))
    assert r.returncode != 0, "no password, yet: %s" % _text(r)
    r = curl("--socks5", "127.0.0.1:%d" % gw.port,
             "-U", "alice:%s" % USERS["alice"][0], origin.url("/hello"))
    assert r.returncode == 0 and r.stdout == b"hello\n", _text(r)
    gwutil.wait_until(
        lambda: gwutil.count_matching_lines(access, r"user=alice .*result=ok"),
        10 * SLOW, "alice's line in the reopened access log", proc=gw.proc)
    assert "reload failed" not in gw.stderr_text()


@needs_root
def test_user_without_group_takes_the_users_groups(world_dir, nobody,
                                                   started):
    pw, _ = nobody
    gw = start_in(world_dir, {"gateway": {"user": "nobody"}},
                  started=started)
    assert none_greeting_gets(gw.port) == sr.M_NONE   # workers: after drop
    want = sorted({pw.pw_gid} | {g.gr_gid for g in grp.getgrall()
                                 if "nobody" in g.gr_mem})
    st = proc_status(gw.proc.pid)
    assert st["Uid"].split() == [str(pw.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(pw.pw_gid)] * 4, st["Gid"]
    assert sorted(int(g) for g in st["Groups"].split()) == want, st["Groups"]
    assert int(st["CapEff"], 16) == 0, st["CapEff"]


# --- files a reload reads must stay readable -------------------------------------

@needs_root
def test_check_names_the_file_the_user_cannot_read(world_dir, nobody,
                                                   users_file):
    pw, _ = nobody
    users = secret_copy(users_file, world_dir, "users", pwd.getpwnam("root"))
    conf = os.path.join(world_dir, "mpgw.ini")
    port = gwutil.free_port()
    gwutil.write_ini(conf, gwutil.gateway_conf(
        ["127.0.0.1:%d" % port], {"gateway": {"user": "nobody"},
                                  "socks5": {"methods": "userpass"},
                                  "auth": {"users": users}}))
    os.chmod(conf, 0o644)

    r = check(conf)
    assert r.returncode == 1, _text(r)
    err = r.stderr.decode(errors="replace")
    assert "auth.users" in err and users in err, err
    assert "Permission denied" in err, err

    # Start-up refuses the same way, before it listens.
    r = run([MPGW_BIN, "-c", conf], timeout=T)
    assert r.returncode == 1, _text(r)
    assert users in r.stderr.decode(errors="replace"), _text(r)
    assert not gwutil.accepts("127.0.0.1", port)

    # The same file, readable by nobody: accepted.
    os.chown(users, pw.pw_uid, pw.pw_gid)
    r = check(conf)
    assert r.returncode == 0, _text(r)


@needs_root
def test_check_access_log_must_be_writable_by_the_user(world_dir, nobody):
    closed = os.path.join(world_dir, "root-only")
    os.mkdir(closed, 0o755)
    conf = os.path.join(world_dir, "mpgw.ini")
    log = os.path.join(closed, "access.log")
    gwutil.write_ini(conf, gwutil.gateway_conf(
        ["127.0.0.1:%d" % gwutil.free_port()],
        {"gateway": {"user": "nobody", "access_log": log}}))
    os.chmod(conf, 0o644)
    r = check(conf)
    assert r.returncode == 1, _text(r)
    err = r.stderr.decode(errors="replace")
    assert "gateway.access_log" in err and log in err, err
    assert not os.path.exists(log), "the check created the log"

    os.chown(closed, nobody[0].pw_uid, nobody[0].pw_gid)
    r = check(conf)
    assert r.returncode == 0, _text(r)
    assert not os.path.exists(log), "the check created the log"


@needs_root
def test_check_config_itself_must_be_readable(world_dir):
    conf = os.path.join(world_dir, "mpgw.ini")
    gwutil.write_ini(conf, gwutil.gateway_conf(
        ["127.0.0.1:%d" % gwutil.free_port()],
        {"gateway": {"user": "nobody"}}))
    os.chmod(conf, 0o600)
    r = check(conf)
    assert r.returncode == 1, _text(r)
    err = r.stderr.decode(errors="replace")
    assert "config file" in err and conf in err, err


UNKNOWN = [
    ("[gateway]\nworkers = 1\nuser = mpgw-no-such-user\n", 3,
     r"gateway\.user: \"mpgw-no-such-user\" is not a user on this host"),
    ("[gateway]\nuser = nobody\n\ngroup = mpgw-no-such-group\n", 4,
     r"gateway\.group: \"mpgw-no-such-group\" is not a group on this host"),
]


@pytest.mark.parametrize("text,lineno,msg", UNKNOWN, ids=["user", "group"])
def test_unknown_user_or_group_names_file_and_line(tmp_path, text, lineno,
                                                   msg):
    p = tmp_path / "bad.ini"
    p.write_text(text)
    r = check(str(p))
    assert r.returncode == 1, _text(r)
    err = r.stderr.decode(errors="replace")
    assert re.search(r"bad\.ini:%d: %s" % (lineno, msg), err), err


@needs_root
def test_non_root_may_name_only_itself(world_dir, nobody):
    pw, _ = nobody
    conf = os.path.join(world_dir, "mpgw.ini")
    # The checkout may sit in a 0700 directory nobody cannot enter.
    binary = os.path.join(world_dir, "mpgw")
    shutil.copy(MPGW_BIN, binary)
    for user, ok in (("nobody", True), ("daemon", False)):
        gwutil.write_ini(conf, gwutil.gateway_conf(
            ["127.0.0.1:%d" % gwutil.free_port()],
            {"gateway": {"user": user}}))
        os.chmod(conf, 0o644)
        r = subprocess.run([binary, "-t", "-c", conf],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=T, cwd=world_dir, preexec_fn=as_user(pw))
        if ok:
            assert r.returncode == 0, _text(r)
        else:
            assert r.returncode == 1, _text(r)
            assert "needs root" in r.stderr.decode(errors="replace"), \
                _text(r)


# --- NOTIFY_SOCKET ---------------------------------------------------------------

class NotifyListener:
    """The service manager's end: a datagram socket at name (a path, or
    "@name" in the abstract namespace)."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        self.sock.settimeout(gwutil.START_TIMEOUT)

    def next(self, gw):
        """The next message as {key: value}; fails if none comes before the
        bound or the gateway exits."""
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError("no NOTIFY_SOCKET message; gateway %s\n%s"
                                 % ("running" if gw.alive() else "exited",
                                    gw.stderr_tail())) from None
        return dict(line.split("=", 1)
                    for line in data.decode().split("\n") if line)

    def close(self):
        self.sock.close()


def monotonic_usec():
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1000000)


def reload_and_follow(gw, note, conf):
    """Write conf, SIGHUP, and return the RELOADING and READY messages
    with the monotonic times around the signal."""
    gwutil.write_ini(gw.conf_path, conf)
    os.chmod(gw.conf_path, 0o644)
    before = monotonic_usec()
    gw.proc.send_signal(signal.SIGHUP)
    reloading = note.next(gw)
    ready = note.next(gw)
    return before, reloading, ready


def notify_cycle(gw, note, users):
    """READY at start (and the listener accepts by then), RELOADING with
    MONOTONIC_USEC then READY around a SIGHUP that turns on passwords (in
    force when READY comes), STOPPING at SIGTERM."""
    msg = note.next(gw)
    assert msg.get("READY") == "1", msg
    assert "STATUS" in msg, msg
    assert gwutil.accepts("127.0.0.1", gw.port), "READY=1 before listening"
    assert none_greeting_gets(gw.port) == sr.M_NONE

    conf = copy.deepcopy(gw.config)
    conf["socks5"]["methods"] = "userpass"
    conf["auth"] = {"users": users}
    before, reloading, ready = reload_and_follow(gw, note, conf)
    assert reloading.get("RELOADING") == "1", reloading
    assert before <= int(reloading["MONOTONIC_USEC"]) <= monotonic_usec(), \
        reloading
    assert ready.get("READY") == "1", ready
    # READY=1 comes once the new config is in force: no polling needed.
    assert none_greeting_gets(gw.port) == sr.M_UNACCEPTABLE

    # A reload that fails still ends with READY=1 (the old config runs on).
    with open(gw.conf_path, "a") as f:
        f.write("\n[socks5]\nbogus = 1\n")
    gw.proc.send_signal(signal.SIGHUP)
    assert note.next(gw).get("RELOADING") == "1"
    ready = note.next(gw)
    assert ready.get("READY") == "1", ready
    assert "fail" in ready.get("STATUS", ""), ready

    gw.proc.send_signal(signal.SIGTERM)
    msg = note.next(gw)
    assert msg.get("STOPPING") == "1", msg
    assert gw.proc.wait(gwutil.STOP_TIMEOUT) == 0, gw.stderr_tail()
    gw.stopped = True
    text = gw.stderr_text()
    for m in gwutil.SANITIZER_MARKERS:
        assert m not in text, text


def test_notify_socket_path(world_dir, started, users_file):
    note = NotifyListener(os.path.join(world_dir, "notify"))
    try:
        gw = start_in(world_dir, {}, env={"NOTIFY_SOCKET": note.name},
                      started=started, wait=False)
        notify_cycle(gw, note, users_file)
    finally:
        note.close()


@needs_root
def test_notify_socket_abstract_after_privilege_drop(world_dir, nobody,
                                                     started, users_file):
    """An abstract name has no file permissions, so the gateway reaches it
    as nobody too; the reload reads the users file as nobody."""
    name = "@mpgw-test/%d/%s" % (os.getpid(), os.path.basename(world_dir))
    note = NotifyListener(name)
    try:
        gw = start_in(world_dir, {"gateway": {"user": "nobody"}},
                      env={"NOTIFY_SOCKET": name}, started=started,
                      wait=False)
        notify_cycle(gw, note, secret_copy(users_file, world_dir, "users",
                                           nobody[0]))
    finally:
        note.close()

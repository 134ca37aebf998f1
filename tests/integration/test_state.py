"""The shared state ([state] redis, DESIGN.md sections 4 and 7) with a real
Redis (Debian's redis-server, started by the tests on a free loopback
port with its own directory): two mpgw instances on one Redis share the
Convert replay cache and the failed-login throttle; without the Redis
they do not (the controls, so the shared cases can fail); a Redis that
dies makes Convert Auth fail closed (Error 65) and logins fall back to
the in-process throttle, said in the log and the metrics, and both
recover when it is back on the same port, without restarting mpgw.

Convert messages come from convertmsg.py (signed with a key made by `mpgw
key new`) and go to the echo server through the gateway; logins are RFC
1929 on loopback (cleartext is allowed there), from 127.0.0.x source
addresses so that each case has a source of its own."""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import convertmsg as cm
import gwutil
import socksraw as sr
import test_metrics as tm
from gwutil import SLOW, START_TIMEOUT, wait_until

USER = "alice"
REDIS_PASSWORD = "redis-Pass-7"
DB = 5
T = 20 * SLOW


def _need_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make deps-test "
                    "installs it)")


class Redis:
    """A redis-server of our own: no persistence, loopback, a port that
    stays the same across a kill and a restart."""

    def __init__(self, tmpdir, password=None):
        self.dir = str(tmpdir)
        self.port = gwutil.free_port()
        self.password = password
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.dir, "redis-%d.log" % self.starts), "wb")
        argv = ["redis-server", "--port", str(self.port), "--bind",
                "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                self.dir, "--daemonize", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log,
                                     preexec_fn=gwutil.die_with_parent)
        log.close()
        wait_until(self._pong, START_TIMEOUT, "redis-server to answer",
                   proc=self.proc)

    def _pong(self):
        try:
            return self.cli("PING") == "PONG"
        except (OSError, AssertionError):
            return False

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def cli(self, *args, db=0):
        """One command through redis-cli; its output, stripped."""
        argv = ["redis-cli", "-p", str(self.port), "-n", str(db)]
        if self.password:
            argv += ["--no-auth-warning", "-a", self.password]
        r = gwutil.run(argv + list(args), timeout=T)
        assert r.returncode == 0, r.stderr
        return r.stdout.decode().strip()

    def url(self, db=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, db)


@pytest.fixture
def redis(tmp_path):
    _need_redis()
    r = Redis(tmp_path / "redis")
    os.makedirs(r.dir)
    r.start()
    yield r
    r.kill()


@pytest.fixture
def redis_pw(tmp_path):
    """A Redis with a password, and a password file for mpgw (0600)."""
    _need_redis()
    r = Redis(tmp_path / "redis", password=REDIS_PASSWORD)
    os.makedirs(r.dir)
    r.start()
    r.pwfile = str(tmp_path / "redis.pass")
    with open(r.pwfile, "w") as f:
        f.write(REDIS_PASSWORD + "\n")
    os.chmod(r.pwfile, 0o600)
    yield r
    r.kill()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A Convert keys file with a key for USER; (path, key bytes)."""
    path = str(tmp_path_factory.mktemp("state") / "keys")
    r = subprocess.run([gwutil.MPGW_BIN, "key", "new", USER, path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       check=True)
    return path, base64.b64decode(r.stdout.strip())


def start(gateway, keys=None, redis=None, users=None, db=0, pwfile=None,
          auth=None):
    """An mpgw with a metrics endpoint (.mport), a Convert listener
    (.cport) when keys are given, userpass logins when users are, and
    [state] redis when redis is; waits until every worker is connected."""
    mport = gwutil.free_port()
    sec = {"metrics": {"listen": "127.0.0.1:%d" % mport}}
    if keys is not None:
        cport = gwutil.free_port()
        sec["convert"] = {"listen": "127.0.0.1:%d" % cport,
                          "keys": keys[0]}
    if users is not None:
        sec["socks5"] = {"methods": "userpass"}
        sec["auth"] = {"users": users, "fail_limit": "3",
                       "fail_delay_max": "0", "fail_block": "300"}
        sec["auth"].update(auth or {})
    if redis is not None:
        sec["state"] = {"redis": redis.url(db)}
        if pwfile is not None:
            sec["state"]["redis_password_file"] = pwfile
    gw = gateway(sec)
    gw.mport = mport
    wait_until(lambda: gwutil.accepts("127.0.0.1", mport), T,
               "the metrics port", proc=gw.proc)
    if keys is not None:
        gw.cport = cport
        wait_until(lambda: gwutil.accepts("127.0.0.1", cport), T,
                   "the Convert listener", proc=gw.proc)
    if redis is not None:
        wait_redis_up(gw, 1)
    return gw


def metric(gw, name, **labels):
    return tm.sample(tm.scrape(gw.mport), name, **labels)


def wait_redis_up(gw, value):
    wait_until(lambda: metric(gw, "mpgw_state_redis_up") == value, T,
               "mpgw_state_redis_up %d" % value, proc=gw.proc)


def conn(port, src="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(sr.IO_TIMEOUT)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def convert(port, msg, data=b"", src="127.0.0.1"):
    """Send a Convert message and data, half-close, read to EOF."""
    with conn(port, src) as s:
        s.sendall(msg + data)
        s.shutdown(socket.SHUT_WR)
        return sr.recv_until_eof(s)


def signed(key, echo, **kw):
    return cm.message([cm.connect_tlv("127.0.0.1", echo.port)], USER, key,
                      **kw)


def assert_relayed(got, data):
    want = cm.OK_REPLY + data + gwutil.sha256(data).encode()
    assert got == want, got


def login(port, user, password, src):
    """RFC 1929 login; the status byte, or None if the gateway closed the
    connection before choosing a method (refused at accept)."""
    with conn(port, src) as s:
        s.sendall(sr.greeting((sr.M_USERPASS,)))
        try:
            method = s.recv(2)
        except ConnectionResetError:
            return None
        if method == b"":
            return None
        assert method == bytes([5, sr.M_USERPASS]), method
        s.sendall(sr.userpass(user, password))
        return sr.read_userpass_status(s)


def access(gw, regex):
    return gw.wait_stderr(r" access id=\d+ .*" + regex)


# --- the Convert replay cache ------------------------------------------------

def test_replay_to_another_instance_is_refused(gateway, redis_pw, keys, echo):
    """A message accepted by A is Error 32 at B, the nonce lives in the
    configured database of a password-protected Redis, under a key that
    does not name the user; B still serves a fresh message."""
    a = start(gateway, keys, redis_pw, db=DB, pwfile=redis_pw.pwfile)
    b = start(gateway, keys, redis_pw, db=DB, pwfile=redis_pw.pwfile)
    msg = signed(keys[1], echo)
    assert_relayed(convert(a.cport, msg, b"first"), b"first")
    assert convert(b.cport, msg, b"again") == cm.err_reply(
        cm.ERR_NOT_AUTHORIZED)
    access(b, r"user=alice method=convert .*result=convert-replay ")
    assert metric(b, "mpgw_convert_replays_total") == 1
    assert metric(b, "mpgw_state_requests_total", op="replay") == 1
    assert metric(b, "mpgw_state_errors_total", op="replay") == 0
    # And back to A: A remembers it too (its own cache, then Redis).
    assert convert(a.cport, msg) == cm.err_reply(cm.ERR_NOT_AUTHORIZED)
    keys_in_db = redis_pw.cli("KEYS", "mpgw:replay:*", db=DB).split()
    assert len(keys_in_db) == 1 and USER not in keys_in_db[0], keys_in_db
    ttl = int(redis_pw.cli("TTL", keys_in_db[0], db=DB))
    assert 30 < ttl <= 90, ttl     # max_skew 30: window plus max_skew
    assert redis_pw.cli("DBSIZE") == "0"
    assert_relayed(convert(b.cport, signed(keys[1], echo), b"new"), b"new")


def test_without_shared_state_a_replay_passes_elsewhere(gateway, keys, echo):
    """The control: two instances with their own caches each accept the
    same message once (what [state] redis is for)."""
    a = start(gateway, keys)
    b = start(gateway, keys)
    msg = signed(keys[1], echo)
    assert_relayed(convert(a.cport, msg, b"x"), b"x")
    assert_relayed(convert(b.cport, msg, b"y"), b"y")
    assert convert(b.cport, msg) == cm.err_reply(cm.ERR_NOT_AUTHORIZED)


def test_wrong_redis_password_fails_closed(gateway, redis_pw, keys, echo,
                                           tmp_path):
    bad = str(tmp_path / "bad.pass")
    with open(bad, "w") as f:
        f.write("not-the-password\n")
    os.chmod(bad, 0o600)
    mport, cport = gwutil.free_port(), gwutil.free_port()
    gw = gateway({"metrics": {"listen": "127.0.0.1:%d" % mport},
                  "convert": {"listen": "127.0.0.1:%d" % cport,
                              "keys": keys[0]},
                  "state": {"redis": redis_pw.url(),
                            "redis_password_file": bad}})
    gw.mport, gw.cport = mport, cport
    gw.wait_stderr(r"state: worker \d: redis://127\.0\.0\.1:%d/0 "
                   r"unreachable: handshake: .*(WRONGPASS|invalid)"
                   % redis_pw.port)
    wait_until(lambda: gwutil.accepts("127.0.0.1", cport), T,
               "the Convert listener", proc=gw.proc)
    assert metric(gw, "mpgw_state_redis_up") == 0
    assert convert(cport, signed(keys[1], echo)) == cm.err_reply(
        cm.ERR_NETWORK_FAILURE)
    access(gw, r"method=convert .*result=state-unavailable ")


# --- the failed-login throttle -----------------------------------------------

@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_failures_on_a_count_towards_the_block_on_b(gateway, redis, users_file,
                                                    shared):
    """fail_limit 3: two failures at A, one at B block the source at both
    (A learns it at its next password check, then refuses at accept); a
    valid login in between forgives only its own user. Without Redis,
    each instance counts alone and nothing is blocked."""
    r = redis if shared else None
    a = start(gateway, redis=r, users=users_file)
    b = start(gateway, redis=r, users=users_file)
    pw = gwutil.USERS["alice"][0]
    src = "127.0.0.2"
    assert login(a.port, "mallory", "guess-1", src) == 1
    assert login(a.port, "mallory", "guess-2", src) == 1
    assert login(a.port, "alice", pw, src) == 0
    assert login(b.port, "mallory", "guess-3", src) == 1
    if not shared:
        assert login(a.port, "alice", pw, src) == 0
        assert login(b.port, "alice", pw, src) == 0
        return
    b.wait_stderr(r"3 failed logins \(every instance's\): address refused "
                  r"for 300 s")
    # A did not see the third failure: its password check asks Redis.
    assert login(a.port, "alice", pw, src) == 1
    access(a, r"client=127\.0\.0\.2:\d+ user=alice .*result=throttled ")
    # Both now refuse the source at accept, and only that source.
    assert login(a.port, "alice", pw, src) is None
    assert login(b.port, "alice", pw, src) is None
    assert login(a.port, "alice", pw, "127.0.0.3") == 0
    assert metric(a, "mpgw_refused_total", reason="throttle") >= 2
    assert metric(a, "mpgw_state_errors_total", op="throttle") == 0
    assert redis.cli("HGET", "mpgw:fail:127.0.0.2", "n") == "3"
    assert 0 < int(redis.cli("TTL", "mpgw:block:127.0.0.2")) <= 300


def test_a_success_forgives_its_own_failures_everywhere(gateway, redis,
                                                       users_file):
    """alice mistypes twice at A, logs in at B: her failures are off the
    shared count, so two more failures elsewhere do not block."""
    a = start(gateway, redis=redis, users=users_file)
    b = start(gateway, redis=redis, users=users_file)
    pw = gwutil.USERS["alice"][0]
    src = "127.0.0.6"
    assert login(a.port, "alice", "typo-1", src) == 1
    assert login(a.port, "alice", "typo-2", src) == 1
    assert redis.cli("HGET", "mpgw:fail:127.0.0.6", "n") == "2"
    assert login(b.port, "alice", pw, src) == 0
    wait_until(lambda: redis.cli("EXISTS", "mpgw:fail:127.0.0.6") == "0", T,
               "the forgiven failures to leave Redis")
    assert login(b.port, "mallory", "guess-1", src) == 1
    assert login(b.port, "mallory", "guess-2", src) == 1
    assert login(b.port, "alice", pw, src) == 0


# --- Redis goes away and comes back -------------------------------------------

def test_redis_killed_and_restarted(gateway, redis, keys, echo, users_file):
    gw = start(gateway, keys, redis, users=users_file)
    pw = gwutil.USERS["alice"][0]
    assert_relayed(convert(gw.cport, signed(keys[1], echo), b"before"),
                   b"before")

    redis.kill()
    wait_redis_up(gw, 0)
    gw.wait_stderr(r"state: worker \d: redis://127\.0\.0\.1:%d/0 lost: .*"
                   r"Convert Auth is refused \(Error 65\) and logins use the "
                   r"in-process throttle" % redis.port)
    # Convert Auth fails closed: a valid, fresh message is refused.
    assert convert(gw.cport, signed(keys[1], echo), b"during") == \
        cm.err_reply(cm.ERR_NETWORK_FAILURE)
    access(gw, r"user=alice method=convert .*result=state-unavailable ")
    assert metric(gw, "mpgw_state_errors_total", op="replay") == 1
    gw.wait_stderr(r"shared state unavailable: Convert Auth refused with "
                   r"Error 65")
    # Logins still work, and the in-process throttle still blocks.
    assert login(gw.port, "alice", pw, "127.0.0.4") == 0
    for i in range(3):
        assert login(gw.port, "mallory", "guess-%d" % i, "127.0.0.4") == 1
    assert login(gw.port, "alice", pw, "127.0.0.4") is None
    assert metric(gw, "mpgw_state_errors_total", op="throttle") >= 4
    assert metric(gw, "mpgw_refused_total", reason="throttle") >= 1

    redis.start()
    wait_redis_up(gw, 1)
    gw.wait_stderr(r"connected to redis://127\.0\.0\.1:%d/0: shared state "
                   r"is back" % redis.port)
    assert_relayed(convert(gw.cport, signed(keys[1], echo), b"after"),
                   b"after")
    assert redis.cli("KEYS", "mpgw:replay:*") != ""
    assert login(gw.port, "mallory", "guess", "127.0.0.5") == 1
    assert redis.cli("HGET", "mpgw:fail:127.0.0.5", "n") == "1"
    assert login(gw.port, "alice", pw, "127.0.0.5") == 0
    assert metric(gw, "mpgw_state_redis_connections_total",
                  result="ok") >= 4
    tm.promtool_check(tm.scrape(gw.mport))


def test_redis_that_stops_answering_is_dropped(gateway, redis, keys, echo):
    """A Redis that accepts but never answers (SIGSTOP): the question
    fails after STATE_TIMEOUT (1 s) and the message gets Error 65; after
    SIGCONT the connection is made again."""
    gw = start(gateway, keys, redis)
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert convert(gw.cport, signed(keys[1], echo)) == cm.err_reply(
            cm.ERR_NETWORK_FAILURE)
        assert time.monotonic() - t0 < sr.IO_TIMEOUT
        gw.wait_stderr(r"lost: no answer in time")
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    wait_redis_up(gw, 1)
    assert_relayed(convert(gw.cport, signed(keys[1], echo), b"ok"), b"ok")


def test_state_keys_need_no_restart_to_be_checked(tmp_path):
    """mpgw -t: a password in the URL of a config others may read is
    refused, and a name that does not resolve is named."""
    conf = str(tmp_path / "m.ini")
    gwutil.write_ini(conf, {"state": {"redis": "redis://:pw@127.0.0.1:1"}})
    os.chmod(conf, 0o644)
    r = gwutil.run([gwutil.MPGW_BIN, "-t", "-c", conf])
    assert r.returncode == 1
    assert re.search(rb"mode 0644: .*state\.redis holds a password: put it "
                     rb"in state\.redis_password_file", r.stderr), r.stderr
    os.chmod(conf, 0o600)
    r = gwutil.run([gwutil.MPGW_BIN, "-t", "-c", conf])
    assert r.returncode == 0, r.stderr
    gwutil.write_ini(conf, {"state": {"redis": "redis://no-such.invalid"}})
    r = gwutil.run([gwutil.MPGW_BIN, "-t", "-c", conf])
    assert r.returncode == 1 and b"state.redis: no-such.invalid" in \
        r.stderr, r.stderr

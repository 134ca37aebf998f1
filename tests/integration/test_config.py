"""The command line and the config contract (DESIGN.md section 6): `mpgw -t`
on good and bad files (errors name file:line), --help, unknown options, a
bad config refusing to start, SIGHUP reload, and secret files (users,
Convert keys, tls.key) that others can read."""

import base64
import copy
import os
import re
import signal
import socket
import textwrap

import pytest

import gwutil
import socksraw as sr
import tlsutil
from gwutil import MPGW_BIN, ROOT, SLOW, run
from servers import echo_answer

T = 30 * SLOW   # hang protection only


@pytest.fixture
def mpgw():
    if not os.access(MPGW_BIN, os.X_OK):
        pytest.fail("%s is not built (run `make`)" % MPGW_BIN)
    return MPGW_BIN


def _check(mpgw, path):
    return run([mpgw, "-t", "-c", str(path)], timeout=T)


def _text(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def test_example_config_is_valid(mpgw):
    path = os.path.join(ROOT, "conf", "mpgw.ini")
    assert os.path.exists(path), "conf/mpgw.ini (the example config) is missing"
    r = _check(mpgw, path)
    assert r.returncode == 0, _text(r)


def test_design_sample_is_valid(mpgw, tmp_path):
    # The contract keys exactly as DESIGN.md section 6 writes them, inline
    # comments and empty values included.
    p = tmp_path / "design.ini"
    p.write_text(textwrap.dedent("""\
        [gateway]
        workers = auto                 ; or a number
        log_level = info               ; error, warn, info, debug
        access_log = stderr            ; stderr, off, or a file path

        [socks5]
        listen = 127.0.0.1:1080
        methods = none                 ; preference order: none, userpass, tls, tls-userpass, tls-login
        handshake_timeout = 10
        idle_timeout = 300

        [tls]
        listen =                       ; SOCKS5-over-TLS listeners
        cert =
        key =
        client_ca =                    ; when set, client certificates are verified
        require_client_cert = no

        [auth]
        users =                        ; file of "name:crypt-hash" lines
        allow_cleartext_password = no  ; RFC 1929 outside TLS from non-loopback clients

        [convert]
        listen =                       ; e.g. 0.0.0.0:5124
        require_auth = yes
        keys =                         ; file of "name base64-key" lines
        cookie =
        max_skew = 30

        [upstream]
        mptcp = on                     ; on, off
        connect_timeout = 10
        """))
    r = _check(mpgw, p)
    assert r.returncode == 0, _text(r)


def test_valid_values(mpgw, tmp_path, users_file):
    p = tmp_path / "ok.ini"
    p.write_text(textwrap.dedent("""\
        [gateway]
        workers = 3
        log_level = debug
        access_log = off
        [socks5]
        listen = 127.0.0.1:1080, [::1]:1080
        methods = userpass,none
        handshake_timeout = 5s
        idle_timeout = 1h
        [auth]
        users = %s
        [upstream]
        mptcp = off
        connect_timeout = 1m
        relay = splice
        """ % users_file))
    r = _check(mpgw, p)
    assert r.returncode == 0, _text(r)


HEAD = ["; mpgw -t test", "[gateway]", "workers = 2", "log_level = info", ""]

BAD = [
    ("socks5", "bogus_key = 1", "unknown key"),
    ("gateway", "wrokers = 2", "misspelt key"),
    ("socks5", "listen = 127.0.0.1:70000", "port out of range"),
    ("socks5", "listen = 127.0.0.1:http", "port not a number"),
    ("socks5", "listen = 127.0.0.1", "no port"),
    ("socks5", "listen = 127.0.0.1:1080,nonsense", "bad second address"),
    ("socks5", "handshake_timeout = 10x", "bad duration suffix"),
    ("socks5", "idle_timeout = -5", "negative duration"),
    ("upstream", "connect_timeout = soon", "duration not a number"),
    ("gateway", "workers = many", "bad workers"),
    ("gateway", "log_level = loud", "bad log level"),
    ("socks5", "methods = none,carrier-pigeon", "unknown method"),
    ("upstream", "mptcp = maybe", "bad on/off"),
    ("upstream", "relay = sendfile", "bad relay"),
]


@pytest.mark.parametrize("section,line,why", BAD, ids=[b[2] for b in BAD])
def test_bad_value_names_file_and_line(mpgw, tmp_path, section, line, why):
    lines = HEAD + ["[%s]" % section, line, ""]
    if section == "gateway":
        lines = ["; mpgw -t test", "[gateway]", line, ""]
    lineno = lines.index(line) + 1
    p = tmp_path / "bad.ini"
    p.write_text("\n".join(lines))
    r = _check(mpgw, p)
    assert r.returncode == 1, "%s: exit %d\n%s" % (why, r.returncode, _text(r))
    err = r.stderr.decode(errors="replace")
    assert re.search(r"%s:%d:" % (re.escape(p.name), lineno), err), \
        "%s: expected '%s:%d:' in stderr, got %r" % (why, p, lineno, err)


def test_unknown_section(mpgw, tmp_path):
    p = tmp_path / "bad.ini"
    p.write_text("[gateway]\nworkers = 1\n[nosuchsection]\nkey = 1\n")
    r = _check(mpgw, p)
    assert r.returncode == 1, _text(r)
    # inih reports at the key; accept the section header line too.
    assert re.search(r"bad\.ini:[34]:", r.stderr.decode(errors="replace")), \
        r.stderr


def test_missing_file(mpgw, tmp_path):
    p = tmp_path / "does-not-exist.ini"
    r = _check(mpgw, p)
    assert r.returncode == 1, _text(r)
    assert "does-not-exist.ini" in r.stderr.decode(errors="replace")


def test_help(mpgw):
    r = run([mpgw, "--help"], timeout=T)
    assert r.returncode == 0, _text(r)
    out = _text(r)
    assert re.search(r"(?<![\w-])-c\b", out) and re.search(r"(?<![\w-])-t\b", out), out


@pytest.mark.parametrize("argv", [["--no-such-option"], ["-Z"], ["-c"]],
                         ids=["long", "short", "missing-argument"])
def test_bad_command_line(mpgw, argv):
    r = run([mpgw] + argv, timeout=T)
    assert r.returncode != 0, _text(r)


def test_bad_config_refuses_to_start(mpgw, tmp_path):
    port = gwutil.free_port()
    p = tmp_path / "bad.ini"
    p.write_text("[socks5]\nlisten = 127.0.0.1:%d\nhandshake_timeout = x\n" % port)
    r = run([mpgw, "-c", str(p)], timeout=T)
    assert r.returncode != 0, _text(r)
    assert "bad.ini:3:" in r.stderr.decode(errors="replace"), r.stderr
    assert not gwutil.accepts("127.0.0.1", port)


# --- SIGHUP ----------------------------------------------------------------------

def _offered_none_gets(port):
    """The method byte a none-only greeting gets from the gateway now."""
    with sr.open_conn(port) as s:
        s.sendall(sr.greeting([sr.M_NONE]))
        return sr.read_method(s)


def test_sighup_reloads_and_ignores_a_bad_config(gateway, users_file, echo):
    gw = gateway()
    # A session that starts under the old config must survive the reloads.
    live, _ = sr.connect_via(gw.port, "127.0.0.1", echo.port)
    with live:
        live.sendall(b"before ")

        # 1. An invalid file: the gateway must keep running the old config.
        with open(gw.conf_path, "a") as f:
            f.write("\n[socks5]\nbogus = 1\n")
        gw.proc.send_signal(signal.SIGHUP)

        # 2. A valid file that now requires a password.
        conf = copy.deepcopy(gw.config)
        conf["socks5"]["methods"] = "userpass"
        conf.setdefault("auth", {})["users"] = users_file
        gwutil.write_ini(gw.conf_path, conf)
        gw.proc.send_signal(signal.SIGHUP)

        # Poll new connections until the new policy shows (bounded).
        gwutil.wait_until(lambda: _offered_none_gets(gw.port) == sr.M_UNACCEPTABLE,
                          10 * SLOW, "the reloaded config (methods=userpass)",
                          proc=gw.proc)
        assert gw.alive()

        live.sendall(b"after")
        live.shutdown(socket.SHUT_WR)
        assert sr.recv_until_eof(live) == echo_answer(b"before after")


# --- SIGUSR1 ---------------------------------------------------------------------

def _stats_lines(gw):
    return re.findall(r"stats: sessions open (\d+), accepted (\d+);",
                      gw.stderr_text())


def test_sigusr1_logs_counters(gateway, origin):
    """SIGUSR1 logs the counters: three sessions later, "accepted" has grown
    by exactly three, and the gateway keeps serving."""
    gw = gateway({"gateway": {"workers": "1"}})

    def hello():
        r = gwutil.curl("--socks5", "127.0.0.1:%d" % gw.port,
                        "http://127.0.0.1:%d/hello" % origin.port)
        assert r.returncode == 0 and r.stdout == b"hello\n", r.stderr

    # One worker accepts in order: once this request is through, the
    # fixture's readiness probe (connected earlier) has been counted too.
    hello()
    gw.proc.send_signal(signal.SIGUSR1)
    gwutil.wait_until(lambda: len(_stats_lines(gw)) == 1, T, "stats line 1")
    before = int(_stats_lines(gw)[0][1])
    for _ in range(3):
        hello()
    gw.proc.send_signal(signal.SIGUSR1)
    gwutil.wait_until(lambda: len(_stats_lines(gw)) == 2, T, "stats line 2")
    assert int(_stats_lines(gw)[1][1]) == before + 3, _stats_lines(gw)
    assert gw.alive()


# --- secret files (issue 8 defect 9) -----------------------------------------

SECRET_KINDS = ["users", "keys", "tls-key"]


def _secret_setup(kind, tmp_path, users_file, mode):
    """A config naming one secret file of kind, a private copy with mode.
    Returns (config sections, path of the secret file)."""
    if kind == "users":
        with open(users_file) as f:
            text = f.read()
    elif kind == "keys":
        text = "alice %s\n" % base64.b64encode(bytes(range(32))).decode()
    else:
        with open(os.path.join(tlsutil.certs_dir(), "server.key")) as f:
            text = f.read()
    path = tmp_path / ("secret-" + kind)
    path.write_text(text)
    path.chmod(mode)
    port = gwutil.free_port()
    if kind == "users":
        secs = {"socks5": {"methods": "userpass"}, "auth": {"users": path}}
    elif kind == "keys":
        secs = {"convert": {"listen": "127.0.0.1:%d" % port, "keys": path}}
    else:
        secs = {"socks5": {"methods": "tls"},
                "tls": tlsutil.tls_section(tlsutil.certs_dir(), key=path)}
    return secs, str(path)


def _secret_check(mpgw, tmp_path, secs):
    p = tmp_path / "secret.ini"
    gwutil.write_ini(str(p), gwutil.gateway_conf(
        ["127.0.0.1:%d" % gwutil.free_port()], secs))
    return _check(mpgw, p)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o601, 0o620, 0o660],
                         ids=lambda m: "%04o" % m)
@pytest.mark.parametrize("kind", SECRET_KINDS)
def test_secret_file_open_to_others_is_refused(mpgw, tmp_path, users_file,
                                              kind, mode):
    secs, path = _secret_setup(kind, tmp_path, users_file, mode)
    r = _secret_check(mpgw, tmp_path, secs)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, _text(r)
    assert "%s: mode %04o" % (path, mode) in err, err
    assert "chmod 600" in err, err


@pytest.mark.parametrize("kind", SECRET_KINDS)
def test_secret_file_0600_passes_quietly(mpgw, tmp_path, users_file, kind):
    secs, path = _secret_setup(kind, tmp_path, users_file, 0o600)
    r = _secret_check(mpgw, tmp_path, secs)
    assert r.returncode == 0, _text(r)
    assert "UNPROTECTED" not in _text(r)


@pytest.mark.parametrize("kind", SECRET_KINDS)
def test_secret_file_group_readable_warns(mpgw, tmp_path, users_file, kind):
    secs, path = _secret_setup(kind, tmp_path, users_file, 0o640)
    r = _secret_check(mpgw, tmp_path, secs)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, _text(r)
    assert re.search(r"UNPROTECTED SECRET FILE: %s: mode 0640"
                     % re.escape(path), err), err


def test_unprotected_secret_refuses_to_start(mpgw, tmp_path, users_file):
    secs, path = _secret_setup("users", tmp_path, users_file, 0o644)
    port = gwutil.free_port()
    p = tmp_path / "start.ini"
    gwutil.write_ini(str(p), gwutil.gateway_conf(["127.0.0.1:%d" % port],
                                                 secs))
    r = run([mpgw, "-c", str(p)], timeout=T)
    assert r.returncode != 0, _text(r)
    assert "%s: mode 0644" % path in r.stderr.decode(errors="replace")
    assert not gwutil.accepts("127.0.0.1", port)


def test_group_readable_secret_warns_at_start(gateway, tmp_path, users_file):
    secs, path = _secret_setup("users", tmp_path, users_file, 0o640)
    gw = gateway(secs)
    gw.wait_stderr(r"UNPROTECTED SECRET FILE: %s: mode 0640"
                   % re.escape(path))


def test_sighup_keeps_config_when_a_secret_file_is_unprotected(
        gateway, tmp_path, users_file):
    gw = gateway()
    secs, path = _secret_setup("users", tmp_path, users_file, 0o644)
    conf = copy.deepcopy(gw.config)
    for sec, kv in secs.items():
        conf.setdefault(sec, {}).update(kv)
    gwutil.write_ini(gw.conf_path, conf)
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_stderr(r"reload failed, keeping the running config: %s: mode "
                   r"0644" % re.escape(path))
    assert _offered_none_gets(gw.port) == sr.M_NONE
    # The same file made private: the reload goes through.
    os.chmod(path, 0o600)
    gw.proc.send_signal(signal.SIGHUP)
    gwutil.wait_until(lambda: _offered_none_gets(gw.port) ==
                      sr.M_UNACCEPTABLE, 10 * SLOW,
                      "the reloaded config (methods=userpass)", proc=gw.proc)


# --- a UTF-8 byte-order mark (issue 8 defect 10) ------------------------------

@pytest.mark.parametrize("kind", ["users", "keys"])
def test_byte_order_mark_is_refused_with_file_and_line(mpgw, tmp_path,
                                                       users_file, kind):
    secs, path = _secret_setup(kind, tmp_path, users_file, 0o600)
    with open(path, "rb") as f:
        text = f.read()
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + text)
    r = _secret_check(mpgw, tmp_path, secs)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, _text(r)
    assert "%s:1: " % path in err and "byte-order mark" in err, err

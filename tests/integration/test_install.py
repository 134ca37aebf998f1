"""What `make install` puts in place (DESIGN.md section 7): the binary,
the shim, the example config (kept if one is there), the systemd unit, checked by `systemd-analyze verify` with the paths it names
resolvable, and the man pages mpgw(8) and mpgw.ini(5), made from
README.md's reference, checked by mandoc's and groff's linters and against
the config schema."""

import os
import re
import subprocess

import pytest

import gwutil
from gwutil import BUILD, ROOT, SLOW

T = 300 * SLOW   # hang protection only; make may have to link


def _text(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def make_install(**variables):
    """`make install VAR=value...` in the checkout, for the build under
    test. The variables of an outer make (make test) are not passed on."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                        "PREFIX", "DESTDIR", "BINDIR", "SYSCONFDIR",
                        "UNITDIR", "MANDIR")}
    argv = ["make", "--no-print-directory", "-C", ROOT, "BUILD=%s" % BUILD,
            "install"] + ["%s=%s" % kv for kv in sorted(variables.items())]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=T, env=env)
    assert r.returncode == 0, "%s\n%s" % (" ".join(argv), _text(r))
    return r


def unit_keys(path):
    """{(section, key): [values]} of a unit file."""
    keys, sect = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                sect = line.strip("[]")
                continue
            k, v = line.split("=", 1)
            keys.setdefault((sect, k), []).append(v)
    return keys


def verify(unit, prefix):
    """systemd-analyze verify: (exit status, everything it printed). It
    exits 0 on mere warnings (an unknown key, a bad value), so a clean unit
    is status 0 and no output. Documentation= is checked too: man finds
    the pages installed under prefix."""
    r = subprocess.run(["systemd-analyze", "verify", unit],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60 * SLOW,
                       env=dict(os.environ, MANPATH=os.path.join(
                           prefix, "share", "man")))
    return r.returncode, _text(r)


@pytest.fixture
def prefix_install(tmp_path):
    """`make install PREFIX=<tmp>/prefix`: installed paths that exist on
    this host, so verify can resolve ExecStart."""
    prefix = str(tmp_path / "prefix")
    make_install(PREFIX=prefix)
    return prefix


def test_unit_passes_systemd_analyze_verify(prefix_install, tmp_path):
    gwutil.need_tool("systemd-analyze")
    unit = os.path.join(prefix_install, "lib/systemd/system/mpgw.service")
    rc, out = verify(unit, prefix_install)
    assert rc == 0 and out == "", out

    # The check can fail: the same unit with its binary missing does.
    broken = tmp_path / "mpgw.service"
    with open(unit) as f:
        broken.write_text(f.read().replace(prefix_install + "/bin/mpgw ",
                                           prefix_install + "/bin/absent "))
    rc, out = verify(str(broken), prefix_install)
    assert rc != 0 and "absent" in out, out


def test_unit_names_the_installed_paths_and_hardening(prefix_install):
    keys = unit_keys(os.path.join(prefix_install,
                                  "lib/systemd/system/mpgw.service"))
    svc = lambda k: keys.get(("Service", k), [])
    conf = os.path.join(prefix_install, "etc/mpgw/mpgw.ini")
    binary = os.path.join(prefix_install, "bin/mpgw")
    assert svc("Type") == ["notify"]
    assert svc("ExecStart") == ["%s -c %s" % (binary, conf)]
    assert svc("ExecReload")[-1] == "/bin/kill -HUP $MAINPID"
    assert not [v for vs in keys.values() for v in vs
                if re.search(r"@[A-Z]+@", v)], "a placeholder was left unfilled"
    for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                 ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                 ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"),
                 ("ProtectKernelModules", "yes"),
                 ("ProtectControlGroups", "yes"),
                 ("SystemCallFilter", "@system-service")):
        assert svc(k) == [v], "%s=%s" % (k, svc(k))
    assert set(svc("CapabilityBoundingSet")[0].split()) == {
        "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"}
    assert set(svc("RestrictAddressFamilies")[0].split()) == {
        "AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"}
    assert re.fullmatch(r"\d+", svc("LimitNOFILE")[0]), svc("LimitNOFILE")


# --- man pages -------------------------------------------------------------------

MAN_PAGES = ("mpgw.8", "mpgw.ini.5")


def man_page(name):
    path = os.path.join(ROOT, BUILD, "man", name)
    assert os.path.exists(path), "%s is not built (run `make`)" % path
    return path


def rendered(path):
    """The page as man(1) shows it, 100 columns, without overstrikes."""
    r = subprocess.run(["man", "--warnings", "-l", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60 * SLOW,
                       env=dict(os.environ, MANWIDTH="100", MANPAGER="cat",
                                PAGER="cat", MAN_KEEP_FORMATTING=""))
    return r


@pytest.mark.parametrize("name", MAN_PAGES)
def test_man_page_is_lint_clean(name):
    gwutil.need_tool("mandoc")
    gwutil.need_tool("man")
    path = man_page(name)
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60 * SLOW)
    assert r.returncode == 0 and _text(r) == "", _text(r)
    r = rendered(path)
    assert r.returncode == 0 and r.stderr == b"", _text(r)
    assert b"NAME" in r.stdout and b"SEE ALSO" in r.stdout


def schema_keys():
    """(section, key) of every row of conf/conf.c's table."""
    with open(os.path.join(ROOT, "conf", "conf.c")) as f:
        rows = re.findall(r'\{\s*SECT_([A-Z0-9_]+),\s*"([a-z0-9_]+)"',
                          f.read())
    assert rows, "no key table found in conf/conf.c"
    return {(s.lower(), k) for s, k in rows}


def test_ini_page_documents_every_key():
    gwutil.need_tool("man")
    r = rendered(man_page("mpgw.ini.5"))
    assert r.returncode == 0, _text(r)
    documented, sect = set(), None
    for line in r.stdout.decode().splitlines():
        m = re.fullmatch(r" {7}\[([a-z0-9_]+)\]", line)
        if m:
            sect = m.group(1)
            continue
        m = re.match(r" {7}([a-z0-9_]+) \(", line)
        if m:
            documented.add((sect, m.group(1)))
    rules_start = r.stdout.decode().index("[rule.NAME]")
    for s, k in sorted(schema_keys()):
        if s == "rule":
            assert re.search(r"(?m)^ {7}%s \(" % k,
                             r.stdout.decode()[rules_start:]), \
                "rule key %s is not in mpgw.ini(5)" % k
        else:
            assert (s, k) in documented, \
                "%s.%s is not in mpgw.ini(5) (README.md's key table)" % (s, k)


# --- make install ----------------------------------------------------------------

def tree(root):
    """{path relative to root: mode} of every file below root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = os.stat(p).st_mode & 0o7777
    return out


def test_make_install_destdir_prefix_usr(tmp_path):
    dest = str(tmp_path / "dest")
    make_install(DESTDIR=dest, PREFIX="/usr")
    assert tree(dest) == {
        "usr/bin/mpgw": 0o755,
        "usr/bin/mpgw-run": 0o755,
        "usr/lib/mpgw/libmpgw.so": 0o644,
        "usr/lib/systemd/system/mpgw.service": 0o644,
        "usr/share/man/man5/mpgw.ini.5": 0o644,
        "usr/share/man/man8/mpgw.8": 0o644,
        # A /usr install keeps its config in /etc.
        "etc/mpgw/mpgw.ini": 0o644,
    }
    with open(os.path.join(ROOT, "conf", "mpgw.ini"), "rb") as f:
        example = f.read()
    conf = os.path.join(dest, "etc/mpgw/mpgw.ini")
    with open(conf, "rb") as f:
        assert f.read() == example
    # The unit names the paths as they are once DESTDIR is gone.
    keys = unit_keys(os.path.join(dest, "usr/lib/systemd/system/mpgw.service"))
    assert keys[("Service", "ExecStart")] == [
        "/usr/bin/mpgw -c /etc/mpgw/mpgw.ini"]

    # The installed binary takes the installed example.
    r = subprocess.run([os.path.join(dest, "usr/bin/mpgw"), "-t", "-c", conf],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60 * SLOW)
    assert r.returncode == 0, _text(r)
    # The installed launcher finds the installed shim (../lib/mpgw/).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPGW_")}
    if gwutil.ASAN:
        # An ASan-built libmpgw.so in a program that is not: the runtime
        # cannot come first in the library list.
        env["ASAN_OPTIONS"] = "verify_asan_link_order=0:detect_leaks=0"
    r = subprocess.run([os.path.join(dest, "usr/bin/mpgw-run"), "/bin/true"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60 * SLOW, env=env)
    assert r.returncode == 0, _text(r)

    # Installing again keeps an operator's config.
    with open(conf, "ab") as f:
        f.write(b"; edited by the operator\n")
    make_install(DESTDIR=dest, PREFIX="/usr")
    with open(conf, "rb") as f:
        assert f.read() == example + b"; edited by the operator\n"


def test_make_install_default_prefix_layout(tmp_path):
    """PREFIX=/usr/local (the default): config in /usr/local/etc, unit in
    /usr/local/lib/systemd/system (on systemd's unit path)."""
    dest = str(tmp_path / "dest")
    make_install(DESTDIR=dest)
    files = tree(dest)
    for f in ("usr/local/bin/mpgw", "usr/local/etc/mpgw/mpgw.ini",
              "usr/local/lib/systemd/system/mpgw.service",
              "usr/local/share/man/man8/mpgw.8"):
        assert f in files, sorted(files)
    keys = unit_keys(os.path.join(
        dest, "usr/local/lib/systemd/system/mpgw.service"))
    assert keys[("Service", "ExecStart")] == [
        "/usr/local/bin/mpgw -c /usr/local/etc/mpgw/mpgw.ini"]

"""What `make install` puts in place (DESIGN.md section 7): the systemd
unit, checked by `systemd-analyze verify` with the paths it names
resolvable."""

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
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
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


def verify(unit, env=None):
    """systemd-analyze verify: (exit status, everything it printed). It
    exits 0 on mere warnings (an unknown key, a bad value), so a clean unit
    is status 0 and no output."""
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60 * SLOW, env=env)
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
    rc, out = verify(unit)
    assert rc == 0 and out == "", out

    # The check can fail: the same unit with its binary missing does.
    broken = tmp_path / "mpgw.service"
    with open(unit) as f:
        broken.write_text(f.read().replace(prefix_install + "/bin/mpgw ",
                                           prefix_install + "/bin/absent "))
    rc, out = verify(str(broken))
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

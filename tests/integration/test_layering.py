"""tests/layering.sh on made-up trees: every include that points up fails
the check naming file:line, every include that points down passes. (make
test runs the script on the real tree; these tests show it can fail.)"""

import os
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                      "layering.sh")

MODULES = ["lib", "proto", "conf", "auth", "gateway", "client-shim"]
ALLOWED = {
    "lib": {"lib"},
    "proto": {"lib", "proto"},
    "conf": {"lib", "proto", "conf"},
    "auth": {"lib", "proto", "conf", "auth"},
    "gateway": {"lib", "proto", "conf", "auth", "gateway"},
    "client-shim": {"lib", "proto", "client-shim"},
}
UP = [(a, b) for a in MODULES for b in MODULES if b not in ALLOWED[a]]
DOWN = [(a, b) for a in MODULES for b in MODULES if b in ALLOWED[a]]


def make_tree(root, files):
    """files: {relative path: text}; every module folder gets a header."""
    for m in MODULES:
        os.makedirs(os.path.join(root, m), exist_ok=True)
        with open(os.path.join(root, m, "x.h"), "w") as f:
            f.write("/* %s */\n" % m)
    for rel, text in files.items():
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)


def layering(root):
    return subprocess.run(["sh", SCRIPT, str(root)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)


@pytest.mark.parametrize("src,dst", UP, ids=["%s->%s" % e for e in UP])
def test_include_pointing_up_fails(tmp_path, src, dst):
    make_tree(tmp_path, {
        "%s/a.c" % src: '#include "%s/x.h"\n\n#include <stdio.h>\n'
                        '#include "%s/x.h"\n' % (src, dst),
    })
    p = layering(tmp_path)
    assert p.returncode == 1, p.stdout
    assert "%s/a.c:4: %s/ includes %s/" % (src, src, dst) in p.stdout, \
        p.stdout
    assert "%s/a.c:1:" % src not in p.stdout, p.stdout


@pytest.mark.parametrize("src,dst", DOWN, ids=["%s->%s" % e for e in DOWN])
def test_include_pointing_down_passes(tmp_path, src, dst):
    make_tree(tmp_path, {
        "%s/a.c" % src: '#include "%s/x.h"\n#include "x.h"\n' % dst,
    })
    p = layering(tmp_path)
    assert p.returncode == 0, p.stdout


@pytest.mark.parametrize("line", [
    '#include "../gateway/x.h"',
    '  #  include "gateway/x.h"',
    '#include <gateway/x.h>',
    '#include "./../auth/x.h"',
])
def test_other_spellings_are_caught(tmp_path, line):
    make_tree(tmp_path, {"proto/p.h": "/* codec */\n%s\n" % line})
    p = layering(tmp_path)
    assert p.returncode == 1, p.stdout
    assert "proto/p.h:2: proto/ includes " in p.stdout, p.stdout


def test_every_violation_is_listed(tmp_path):
    make_tree(tmp_path, {
        "lib/a.c": '#include "proto/x.h"\n',
        "client-shim/b.c": '#include "lib/x.h"\n#include "auth/x.h"\n',
        "conf/c.h": '#include "gateway/x.h"\n',
    })
    p = layering(tmp_path)
    assert p.returncode == 1, p.stdout
    for where in ("lib/a.c:1:", "client-shim/b.c:2:", "conf/c.h:1:"):
        assert where in p.stdout, p.stdout
    assert "client-shim/b.c:1:" not in p.stdout, p.stdout
    assert "3 include(s) point up" in p.stdout, p.stdout


def test_missing_tree_is_an_error(tmp_path):
    p = layering(tmp_path / "nowhere")
    assert p.returncode == 2, p.stdout

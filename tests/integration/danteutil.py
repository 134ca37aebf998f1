"""Dante (danted, Debian's dante-server) as the reference SOCKS5 server
that the UDP ASSOCIATE and BIND tests run against too, so a difference
from the most complete SOCKS server shows.

Each test starts its own danted on a free loopback port, with its own
config in the test's tmp directory: no authentication, client and socks
pass rules for connect, udpassociate, udpreply, bind and bindreply,
internal on 127.0.0.1, external on lo (its IPv4 and IPv6 addresses, so
targets of both families work). danted needs root for
`user.privileged: root`; elsewhere the Dante cases are skipped.
"""

import os
import shutil
import signal
import subprocess

import gwutil

DANTED = shutil.which("danted") or "/usr/sbin/danted"

CONF = """\
logoutput: stderr
internal: 127.0.0.1 port = {port}
external: lo
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
timeout.negotiate: 30
timeout.io: 0
client pass {{
        from: 127.0.0.0/8 to: 0/0
}}
{rules}socks pass {{
        from: 0/0 to: 0/0
        command: connect udpassociate udpreply bind bindreply
}}
"""


def skip_reason():
    if not os.access(DANTED, os.X_OK):
        return "danted is not installed (make deps-test installs " \
            "dante-server)"
    if os.geteuid() != 0:
        return "danted runs with user.privileged: root; not root here"
    return None


class Dante:
    def __init__(self, tmpdir, rules=""):
        self.port = gwutil.free_port()
        self.conf = os.path.join(tmpdir, "danted-%d.conf" % self.port)
        self.log = os.path.join(tmpdir, "danted-%d.log" % self.port)
        with open(self.conf, "w") as f:
            f.write(CONF.format(port=self.port, rules=rules))
        r = subprocess.run([DANTED, "-V", "-f", self.conf],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert r.returncode == 0, "danted -V: %s" % r.stdout.decode()
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [DANTED, "-f", self.conf, "-p",
                 os.path.join(tmpdir, "danted-%d.pid" % self.port)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                preexec_fn=gwutil.die_with_parent)
        try:
            gwutil.wait_until(lambda: gwutil.accepts("127.0.0.1", self.port),
                              gwutil.START_TIMEOUT, "danted to accept",
                              proc=self.proc)
        except AssertionError:
            self.stop()
            raise

    def stop(self):
        """SIGTERM to the mother process (it ends its children), wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(gwutil.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

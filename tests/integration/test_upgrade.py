"""Zero-downtime upgrade and restart.

SIGUSR2: echod starts its executable anew with its sockets, pid file and
a pipe; once the new process serves, the old one stops accepting, drains
and exits 0. Clients connect without pause across it, over TCP (plain,
reuseport, TLS), a Unix socket and UDP: none is refused, no echo fails or
differs, and a long connection on the old process gets all of its echo.
A bad config, a binary that is not one, or one that exits, leave the old
one serving with the reason logged and its pid file. A config that drops
a line closes the handed socket (and its file).

systemd's fd store, reproduced by the test itself as systemd does it:
echod sends FDSTORE=1 with each socket it binds; a restart stops the old
process (SIGTERM), waits for it, then starts the new one with the stored
descriptors in LISTEN_FDS/LISTEN_FDNAMES. Connections made meanwhile wait
in the kernel's queues: none is refused. A reload that drops a line
removes its socket from the store (FDSTOREREMOVE=1).
"""

import array
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import echodtest
from echodtest import (Deadline, EchodTestCase, free_port, random_payload,
                       scaled, wait_for)
from test_proxy import make_cert

PORT_ATTEMPTS = 5


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def read_pid(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) if text else None
    except FileNotFoundError:
        return None


class Traffic:
    """Clients that connect without pause, one thread per address: each
    connection sends a payload, half-closes and reads the echo to EOF.
    UDP: one datagram and its reply per round."""

    def __init__(self, targets, tls_context=None):
        self.targets = targets  # (kind, address) pairs
        self.tls = tls_context
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = {}
        self.refused = []
        self.failed = []
        self.threads = [threading.Thread(target=self.run, args=(t, i),
                                         daemon=True)
                        for i, t in enumerate(targets)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(scaled(60))

    def count(self, kind):
        with self.lock:
            return self.ok.get(kind, 0)

    def one(self, kind, address, payload):
        if kind == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(scaled(2))
                s.sendto(payload, address)
                try:
                    return s.recv(65536)
                except socket.timeout:
                    return None  # UDP may lose a datagram: retried
        family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(scaled(20))
        try:
            s.connect(address)
            if kind == "tls":
                s = self.tls.wrap_socket(s, server_hostname="localhost")
            s.sendall(payload)
            if kind == "tls":
                got = echodtest.recv_exactly(s, len(payload), scaled(20))
                s.close()
                return got
            s.shutdown(socket.SHUT_WR)
            return echodtest.recv_until_eof(s, scaled(20))
        finally:
            s.close()

    def run(self, target, index):
        kind, address = target
        n = 0
        while not self.stop.is_set():
            n += 1
            payload = random_payload(512 + (n * 37) % 1500, n * 131 + index)
            try:
                got = self.one(kind, address, payload)
            except ConnectionRefusedError as e:
                with self.lock:
                    self.refused.append((kind, repr(e)))
                continue
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.failed.append((kind, repr(e)))
                continue
            if got is None:
                continue
            if got != payload:
                with self.lock:
                    self.failed.append((kind, f"echo of {len(payload)} "
                                        f"bytes came back as {len(got)} "
                                        f"different ones"))
                continue
            with self.lock:
                self.ok[kind] = self.ok.get(kind, 0) + 1


class LongConnection:
    """A connection opened before the upgrade that streams size bytes
    without reading them, so the old process holds its echo queued; it
    reads it all back only once told to."""

    def __init__(self, address, size):
        self.payload = random_payload(size, 77)
        self.sock = echodtest.connect(address)
        self.sent = threading.Event()
        self.error = None
        self.sender = threading.Thread(target=self.send, daemon=True)
        self.sender.start()

    def send(self):
        try:
            self.sock.sendall(self.payload)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = e
        self.sent.set()

    def wait_stalled(self):
        """Returns once the server stopped reading (backpressure)."""
        last, still = -1, 0
        deadline = Deadline(scaled(30))
        while still < 5 and not deadline.expired():
            time.sleep(0.05)
            out = subprocess.run(
                ["ss", "-tnH", "state", "established",
                 f"sport = :{self.sock.getsockname()[1]}"],
                capture_output=True, text=True, check=True).stdout
            queued = sum(int(ln.split()[1]) for ln in out.splitlines())
            still = still + 1 if queued == last else 0
            last = queued

    def finish(self):
        got = echodtest.recv_until_eof(self.sock, scaled(60))
        self.sender.join(scaled(60))
        self.sock.close()
        return got


class Instance:
    """An echod started in the foreground from a config file, logging to
    a file: the process an upgrade starts writes to it too."""

    def __init__(self, testcase, conf, binary=None, env=None, argv=None):
        self.t = testcase
        self.conf = conf
        self.log = os.path.join(testcase.dir, "echod.log")
        self.argv = argv or [binary or echodtest.echod_path(), "-c", conf]
        self.env = env
        self.pass_fds = ()
        self.proc = None

    def start(self, nlisten):
        with open(self.log, "ab") as log:
            start = log.tell()
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=log, cwd=self.t.dir, env=self.env,
                    pass_fds=self.pass_fds)
            finally:
                # Handed over: the child's now, not held here too.
                for fd in self.pass_fds:
                    os.close(fd)
        self.t.addCleanup(self.kill)
        self.wait_log(r"listening on", count=nlisten, start=start)
        return self

    def text(self, start=0):
        with open(self.log, "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    def size(self):
        return os.path.getsize(self.log)

    def wait_log(self, needle, count=1, start=0, timeout=20):
        import re
        rx = re.compile(needle)
        try:
            wait_for(lambda: len(rx.findall(self.text(start))) >= count,
                     scaled(timeout), f"{count}x '{needle}' in the log")
        except AssertionError as e:
            raise AssertionError(f"{e}:\n{self.text()}") from None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class UpgradeTestCase(EchodTestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-up-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.pidfile = os.path.join(self.dir, "echod.pid")
        self.sock = os.path.join(self.dir, "echo.sock")
        self.addCleanup(self.kill_pidfile)

    def kill_pidfile(self):
        """Stops what the pid file names: a process the test started
        (through SIGUSR2), by PID."""
        pid = read_pid(self.pidfile)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(pid), scaled(10), "exit")

    def write_conf(self, lines, extra=()):
        path = os.path.join(self.dir, "echod.conf")
        with open(path, "w") as f:
            f.write("\n".join(list(lines) + list(extra)) + "\n")
        return path

    def config(self, tls=False, udp=True, reuseport=True, unix=True,
               admin=True):
        """Listen lines on fresh ports, and the lines around them."""
        self.ports = {"plain": free_port()}
        lines = [f"listen = 127.0.0.1:{self.ports['plain']}"]
        if reuseport:
            self.ports["reuseport"] = free_port()
            lines.append(f"listen = 127.0.0.1:{self.ports['reuseport']} "
                         "reuseport")
        if tls:
            self.cert, self.key = make_cert(self.dir)
            self.ports["tls"] = free_port()
            lines += [f"listen = 127.0.0.1:{self.ports['tls']} tls",
                      f"tls_certificate = {self.cert}",
                      f"tls_certificate_key = {self.key}"]
        if unix:
            lines.append(f"listen = unix:{self.sock}")
        if udp:
            self.ports["udp"] = free_port(socket.SOCK_DGRAM)
            lines.append(f"listen = 127.0.0.1:{self.ports['udp']} udp")
        if admin:
            self.ports["admin"] = free_port()
            lines.append(f"admin_listen = 127.0.0.1:{self.ports['admin']}")
        self.nlisten = len([ln for ln in lines if ln.startswith("listen")])
        # The drain must outlast the test's own waits, however slow.
        return lines + ["threads = 2", f"pid_file = {self.pidfile}",
                        "log_level = debug", "shutdown_timeout = 10m"]

    def start(self, binary=None, **kw):
        """An echod on the config's ports; retried on a port taken in
        between."""
        for attempt in range(PORT_ATTEMPTS):
            conf = self.write_conf(self.config(**kw))
            inst = Instance(self, conf, binary)
            try:
                inst.start(self.nlisten)
                wait_for(lambda: read_pid(self.pidfile) == inst.proc.pid,
                         scaled(10), "the pid file")
                return inst
            except AssertionError:
                inst.kill()
                if "Address already in use" not in inst.text() or \
                        attempt == PORT_ATTEMPTS - 1:
                    raise

    def targets(self, tls=False):
        t = [("tcp", ("127.0.0.1", self.ports["plain"]))]
        if "reuseport" in self.ports:
            t.append(("reuseport", ("127.0.0.1", self.ports["reuseport"])))
        if tls:
            t.append(("tls", ("127.0.0.1", self.ports["tls"])))
        if os.path.exists(self.sock):
            t.append(("unix", self.sock))
        if "udp" in self.ports:
            t.append(("udp", ("127.0.0.1", self.ports["udp"])))
        return t

    def tls_context(self):
        import ssl
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def assertServes(self, tls=False):
        """One round on each address, from a fresh client."""
        traffic = Traffic(self.targets(tls),
                          self.tls_context() if tls else None)
        for kind, address in traffic.targets:
            payload = b"serving? " + kind.encode()
            for _ in range(5):
                got = traffic.one(kind, address, payload)
                if got is not None:
                    break
            self.assertEqual(got, payload, kind)

    def upgrade(self, inst):
        """SIGUSR2; returns the new pid once the old one exited 0."""
        old = inst.proc.pid
        start = inst.size()
        os.kill(old, signal.SIGUSR2)
        inst.wait_log(r"is serving", start=start)
        new = read_pid(self.pidfile)
        self.assertNotEqual(new, old)
        self.assertTrue(pid_alive(new))
        return new


class SigUsr2(UpgradeTestCase):

    def test_nothing_refused_nor_lost_across_an_upgrade(self):
        echodtest.skip_under_wrapper(self, "the wrapper is what upgrades")
        inst = self.start(tls=True)
        old = inst.proc.pid
        long_conn = LongConnection(("127.0.0.1", self.ports["plain"]),
                                   8 * echodtest.MIB)
        long_conn.wait_stalled()
        traffic = Traffic(self.targets(tls=True), self.tls_context())
        traffic.start()
        self.addCleanup(traffic.finish)
        wait_for(lambda: all(traffic.count(k) >= 20
                             for k, _ in traffic.targets),
                 scaled(30), "traffic before the upgrade")
        before = {k: traffic.count(k) for k, _ in traffic.targets}
        new = self.upgrade(inst)
        # The old process still drains the long connection's echo.
        self.assertIsNone(inst.proc.poll(),
                          "the old echod left before its echo was done")
        wait_for(lambda: all(traffic.count(k) >= before[k] + 20
                             for k, _ in traffic.targets),
                 scaled(30), "traffic after the upgrade")
        got = long_conn.finish()
        self.assertIsNone(long_conn.error)
        self.assertBytesEqual(got, long_conn.payload, "the long echo")
        self.assertEqual(inst.proc.wait(scaled(20)), 0, inst.text())
        wait_for(lambda: all(traffic.count(k) >= before[k] + 40
                             for k, _ in traffic.targets),
                 scaled(30), "traffic after the old one left")
        traffic.finish()
        self.assertEqual(traffic.refused, [], "refused connections")
        self.assertEqual(traffic.failed, [], "failed echoes")
        # Every socket went over; the old one handed them and left
        # the Unix socket's file where it was.
        log = inst.text()
        self.assertIn(f"echod[{old}] info: upgraded: shutting down", log)
        self.assertNotIn("no longer listed", log)
        self.assertTrue(os.path.exists(self.sock))
        self.assertServes(tls=True)
        with socket.create_connection(("127.0.0.1", self.ports["admin"]),
                                      timeout=scaled(10)) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            reply = echodtest.recv_until_eof(s, scaled(10))
        self.assertRegex(reply, rb"^HTTP/1.[01] 200 ", reply)
        # And the new one upgrades in its turn, then stops cleanly.
        os.kill(new, signal.SIGUSR2)
        inst.wait_log(rf"echod\[{new}\] info: upgrade: the new process")
        newer = read_pid(self.pidfile)
        wait_for(lambda: not pid_alive(new), scaled(20), "the old exit")
        os.kill(newer, signal.SIGTERM)
        wait_for(lambda: not pid_alive(newer), scaled(20), "the exit")
        self.assertFalse(os.path.exists(self.pidfile))
        self.assertFalse(os.path.exists(self.sock))

    def test_a_client_pausing_between_messages_keeps_its_connection(self):
        inst = self.start(udp=False, unix=False, admin=False,
                          reuseport=False)
        s = echodtest.connect(("127.0.0.1", self.ports["plain"]))
        self.addCleanup(s.close)
        self.assertEqual(echodtest.exchange(s, b"before\n", scaled(10)),
                         b"before\n")
        self.upgrade(inst)
        # The old process drains it, but a pause of a few tenths is not
        # its end (a stop's drain would close it after a tenth). The
        # quiet counts from the last byte: one goes at once.
        self.assertEqual(echodtest.exchange(s, b"handed\n", scaled(10)),
                         b"handed\n")
        for i in range(3):
            time.sleep(0.3)
            msg = f"after {i}\n".encode()
            self.assertEqual(echodtest.exchange(s, msg, scaled(10)), msg)
        self.assertIsNone(inst.proc.poll())
        s.close()
        self.assertEqual(inst.proc.wait(scaled(20)), 0)

    def test_a_bad_config_keeps_the_old_one_serving(self):
        inst = self.start()
        old = inst.proc.pid
        conf = self.write_conf(self.config_lines_plus("listen = nowhere"))
        start = inst.size()
        inst.proc.send_signal(signal.SIGUSR2)
        inst.wait_log(r"upgrade failed, still serving: .*echod.conf:\d+: "
                      r"'listen' has a bad address: 'nowhere'", start=start)
        self.assertIsNone(inst.proc.poll())
        self.assertEqual(read_pid(self.pidfile), old)
        self.assertTrue(os.path.exists(self.sock))
        self.assertServes()
        # Mended, it goes through.
        with open(conf) as f:
            lines = [ln for ln in f.read().splitlines()
                     if "nowhere" not in ln]
        self.write_conf(lines)
        self.upgrade(inst)
        self.assertEqual(inst.proc.wait(scaled(20)), 0)
        self.assertServes()

    def config_lines_plus(self, line):
        with open(os.path.join(self.dir, "echod.conf")) as f:
            return f.read().splitlines() + [line]

    def test_a_bad_binary_keeps_the_old_one_serving(self):
        echodtest.skip_under_wrapper(self, "the wrapper is what upgrades")
        binary = os.path.join(self.dir, "echod")
        shutil.copy2(echodtest.echod_path(), binary)
        inst = self.start(binary=binary)
        old = inst.proc.pid
        good = binary + ".good"
        os.rename(binary, good)

        def attempt(content, reason):
            with open(binary, "wb") as f:
                f.write(content)
            os.chmod(binary, 0o755)
            start = inst.size()
            inst.proc.send_signal(signal.SIGUSR2)
            inst.wait_log(r"upgrade failed, still serving: " + reason,
                          start=start)
            self.assertIsNone(inst.proc.poll())
            self.assertEqual(read_pid(self.pidfile), old)
            self.assertServes()
            os.unlink(binary)

        attempt(b"\x7fELF garbage\n",
                rf"cannot execute {binary}: Exec format error")
        attempt(b"#!/bin/sh\nexit 3\n",
                r"the new process \(pid \d+\) exited with status 3 before "
                r"it was serving")
        attempt(b"#!/bin/sh\nkill -9 $$\n",
                r"the new process \(pid \d+\) was killed by signal 9")
        os.rename(good, binary)
        new = self.upgrade(inst)
        self.assertEqual(inst.proc.wait(scaled(20)), 0)
        self.assertIn(f"echod[{new}] info: listening on", inst.text())
        self.assertServes()

    def test_a_stop_during_an_upgrade_abandons_it(self):
        echodtest.skip_under_wrapper(self, "the wrapper is what upgrades")
        binary = os.path.join(self.dir, "echod")
        shutil.copy2(echodtest.echod_path(), binary)
        inst = self.start(binary=binary)
        os.rename(binary, binary + ".good")
        with open(binary, "w") as f:  # never says it serves
            f.write("#!/bin/sh\nexec sleep 300\n")
        os.chmod(binary, 0o755)
        inst.proc.send_signal(signal.SIGUSR2)
        inst.wait_log(r"SIGUSR2: upgrading: started .* \(pid \d+\)")
        import re
        child = int(re.search(r"SIGUSR2: upgrading: started .* \(pid (\d+)\)",
                              inst.text()).group(1))
        self.assertTrue(pid_alive(child))
        # A reload would close what the new process was handed.
        inst.proc.send_signal(signal.SIGHUP)
        inst.wait_log(r"SIGHUP: an upgrade is under way, not reloading")
        inst.proc.send_signal(signal.SIGUSR2)
        inst.wait_log(rf"an upgrade is under way already \(pid {child}\)")
        self.assertServes()
        inst.proc.send_signal(signal.SIGTERM)
        self.assertEqual(inst.proc.wait(scaled(20)), 0)
        self.assertIn(f"SIGTERM: upgrade abandoned: stopped the new process "
                      f"(pid {child})", inst.text())
        self.assertFalse(pid_alive(child))
        # Stopped as if there had been no upgrade: nothing left behind.
        self.assertFalse(os.path.exists(self.pidfile))
        self.assertFalse(os.path.exists(self.sock))

    def test_a_config_that_drops_a_line_closes_its_socket(self):
        inst = self.start()
        lines = [ln for ln in self.config_lines_plus("")
                 if "unix:" not in ln and "reuseport" not in ln]
        moved = free_port()
        lines.append(f"listen = 127.0.0.1:{moved}")
        self.write_conf(lines)
        start = inst.size()
        new = self.upgrade(inst)
        self.assertEqual(inst.proc.wait(scaled(20)), 0)
        # Closed once the new one is committed, after its word.
        inst.wait_log(rf"echod\[{new}\] info: unix:{self.sock}: handed "
                      r"over, but no longer listed: closed", start=start)
        inst.wait_log(rf"echod\[{new}\] info: 127.0.0.1:"
                      rf"{self.ports['reuseport']}: handed over", count=2,
                      start=start)
        log = inst.text(start)
        self.assertIn(f"echod[{new}] info: listening on 127.0.0.1:{moved}",
                      log)
        self.assertFalse(os.path.exists(self.sock))
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1",
                                      self.ports["reuseport"]), 5).close()
        del self.ports["reuseport"]
        self.ports["plain"] = moved
        self.assertServes()

    def test_daemonized(self):
        conf = self.write_conf(self.config(reuseport=False, udp=False,
                                           admin=False),
                               ["daemonize = yes"])
        rc = subprocess.run([echodtest.echod_path(), "-c", conf],
                            cwd=self.dir, capture_output=True,
                            timeout=scaled(30)).returncode
        self.assertEqual(rc, 0)
        old = read_pid(self.pidfile)
        self.assertServes()
        os.kill(old, signal.SIGUSR2)
        wait_for(lambda: read_pid(self.pidfile) not in (None, old),
                 scaled(20), "the new pid in the pid file")
        wait_for(lambda: not pid_alive(old), scaled(20), "the old exit")
        new = read_pid(self.pidfile)
        self.assertNotEqual(os.getsid(new), os.getsid(0))
        self.assertServes()
        os.kill(new, signal.SIGTERM)
        wait_for(lambda: not pid_alive(new), scaled(20), "the exit")
        self.assertFalse(os.path.exists(self.pidfile))


class FakeSystemd:
    """What systemd does for a Type=notify service with
    FileDescriptorStoreMax=: keeps what FDSTORE=1 hands it, forgets what
    FDSTOREREMOVE=1 names, and passes the store to the next start."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.store = []  # (name, fd)
        self.messages = []
        self.cond = threading.Condition()
        self.done = threading.Event()
        # Read at once, as systemd does: echod's sends would block on a
        # full queue (net.unix.max_dgram_qlen) otherwise.
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def close(self):
        self.done.set()
        self.reader.join()
        with self.cond:
            for _, fd in self.store:
                os.close(fd)
            self.store = []
        self.sock.close()

    def read(self):
        while not self.done.is_set():
            self.pump()

    def pump(self):
        """Takes one message, if one comes soon."""
        fds = array.array("i")
        try:
            msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(
                16 * fds.itemsize))
        except socket.timeout:
            return None
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        text = msg.decode()
        fields = dict(line.split("=", 1) for line in text.split("\n")
                      if "=" in line)
        with self.cond:
            if fields.get("FDSTORE") == "1":
                for fd in fds:
                    self.store.append((fields.get("FDNAME", "stored"), fd))
            else:
                for fd in fds:
                    os.close(fd)
            if fields.get("FDSTOREREMOVE") == "1":
                for name, fd in [e for e in self.store
                                 if e[0] == fields.get("FDNAME")]:
                    os.close(fd)
                    self.store.remove((name, fd))
            self.messages.append(text)
            self.cond.notify_all()
        return text

    def mark(self):
        """Where wait() looks from: messages after now."""
        with self.cond:
            return len(self.messages)

    def wait(self, text, timeout=20, start=None):
        """Waits for text among the messages since start (default: any
        not waited for yet)."""
        deadline = Deadline(scaled(timeout))
        with self.cond:
            first = self.seen if start is None else start
            while True:
                if text in self.messages[first:]:
                    self.seen = first + self.messages[first:].index(text) + 1
                    return
                if deadline.expired():
                    raise AssertionError(
                        f"no {text!r} from echod: {self.messages}")
                self.cond.wait(min(0.1, deadline.remaining()))

    seen = 0

    def start(self, testcase, conf, env=None):
        """Starts echod as systemd would: NOTIFY_SOCKET, and the store
        as LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID at 3, 4, ...; env adds
        to the environment."""
        import fcntl
        with self.cond:
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
                    for _, fd in self.store]
            names = [n for n, _ in self.store]
        moves = " ".join(f"{3 + i}<&{fd}" for i, fd in enumerate(high))
        closes = " ".join(f"{fd}<&-" for fd in high)
        env = dict(os.environ, NOTIFY_SOCKET=self.path, **(env or {}))
        if names:
            env["LISTEN_FDS"] = str(len(names))
            env["LISTEN_FDNAMES"] = ":".join(names)
        script = ('[ -n "$LISTEN_FDS" ] && export LISTEN_PID=$$; '
                  f'exec "$0" "$@" {moves} {closes}')
        inst = Instance(testcase, conf, env=env,
                        argv=["bash", "-c", script, echodtest.echod_path(),
                              "-c", conf])
        inst.pass_fds = tuple(high)
        inst.start(testcase.nlisten)
        self.wait("READY=1")
        return inst


class FdStore(UpgradeTestCase):

    def setUp(self):
        super().setUp()
        self.systemd = FakeSystemd(self.dir)
        self.addCleanup(self.systemd.close)

    def start_service(self):
        for attempt in range(PORT_ATTEMPTS):
            conf = self.write_conf(self.config())
            try:
                return self.systemd.start(self, conf)
            except AssertionError:
                if attempt == PORT_ATTEMPTS - 1:
                    raise

    def stored_names(self):
        with self.systemd.cond:
            return sorted(n for n, _ in self.systemd.store)

    def test_every_socket_goes_to_the_store(self):
        inst = self.start_service()
        names = self.stored_names()
        # plain, reuseport (2 workers), unix, udp (2 workers), admin
        self.assertEqual(len(names), 7, names)
        self.assertEqual(len(set(names)), 5, names)
        self.assertEqual(len([n for n in names
                              if n.startswith("echod-dgram-")]), 2)
        self.assertTrue(all(n.startswith(("echod-stream-", "echod-dgram-"))
                            and len(n) <= 255 and ":" not in n
                            for n in names), names)
        inst.proc.send_signal(signal.SIGTERM)
        self.assertEqual(inst.proc.wait(scaled(20)), 0)
        # The socket lives on in the store: its file stays.
        self.assertTrue(os.path.exists(self.sock))

    def test_nothing_refused_across_a_restart(self):
        echodtest.skip_under_wrapper(self, "the test starts echod itself")
        inst = self.start_service()
        long_conn = LongConnection(("127.0.0.1", self.ports["plain"]),
                                   4 * echodtest.MIB)
        long_conn.wait_stalled()
        traffic = Traffic(self.targets())
        traffic.start()
        self.addCleanup(traffic.finish)
        wait_for(lambda: all(traffic.count(k) >= 20
                             for k, _ in traffic.targets),
                 scaled(30), "traffic before the restart")
        # systemctl restart: stop, wait, start.
        inst.proc.send_signal(signal.SIGTERM)
        self.systemd.wait("STOPPING=1")
        got = long_conn.finish()
        self.assertBytesEqual(got, long_conn.payload, "the long echo")
        self.assertEqual(inst.proc.wait(scaled(20)), 0)
        before = {k: traffic.count(k) for k, _ in traffic.targets}
        time.sleep(0.3)  # clients keep connecting while nothing accepts
        new = self.systemd.start(self, inst.conf)
        wait_for(lambda: all(traffic.count(k) >= before[k] + 20
                             for k, _ in traffic.targets),
                 scaled(30), "traffic after the restart")
        traffic.finish()
        self.assertEqual(traffic.refused, [], "refused connections")
        self.assertEqual(traffic.failed, [], "failed echoes")
        log = new.text()
        self.assertNotIn("handed over, but no longer listed", log)
        self.assertEqual(len(self.systemd.store), 7, self.stored_names())
        self.assertServes()

    def test_a_restart_with_a_line_changed_binds_it_anew(self):
        inst = self.start_service()
        plain = self.ports["plain"]
        name = [n for n in self.stored_names()
                if n.endswith(f"047f000001{plain:04x}")]
        self.assertEqual(len(name), 1)
        # The plain line takes reuseport: the stored socket, without it,
        # cannot be taken, and holds the port until it goes.
        self.write_conf([ln + " reuseport" if ln.endswith(f":{plain}")
                         else ln for ln in self.config_lines()])
        inst.proc.send_signal(signal.SIGTERM)
        self.assertEqual(inst.proc.wait(scaled(20)), 0)
        self.systemd.start(self, inst.conf)
        self.assertEqual(self.stored_names().count(name[0]), 2)
        self.assertEqual(len(self.stored_names()), 8)
        self.assertServes()

    def test_a_reload_takes_a_dropped_line_out_of_the_store(self):
        inst = self.start_service()
        before = self.stored_names()
        lines = [ln for ln in self.config_lines()
                 if "unix:" not in ln and " udp" not in ln]
        added = free_port()
        lines.append(f"listen = 127.0.0.1:{added}")
        self.write_conf(lines)
        inst.proc.send_signal(signal.SIGHUP)
        self.systemd.wait("READY=1")
        after = self.stored_names()
        gone = [n for n in before if n not in after]
        self.assertEqual(len(gone), 3, (before, after))  # unix, udp x2
        self.assertEqual(len(after), 5, after)
        self.assertTrue(any(n.endswith(f"{added:04x}") for n in after),
                        after)

    def test_a_reload_that_cannot_watch_a_line_leaves_it_out_of_the_store(
            self):
        """A reload binds a new line's socket and stores it; if it then
        cannot watch it (epoll_ctl() fails, as out of memory) the reload
        fails and the socket leaves the store again, so that the port is
        free for the next reload, which serves it."""
        if echodtest.sanitizer() == "tsan":
            self.skipTest(echodtest.WRAPPER_SKIP + "TSan's own epoll_ctl() "
                          "answers before a preloaded library's can")
        # epoll_ctl()'s adds of a listening socket: the admin endpoint's
        # and the plain line's at start (calls 1 and 2), then the new
        # line's on the reload.
        inst = self.start_store_test("epoll_ctl:3")
        lines = self.config_lines()
        added = free_port()
        lines.append(f"listen = 127.0.0.1:{added}")
        self.reload_fails_then_serves(
            inst, lines, added, r"cannot watch the socket",
            r"failcall: epoll_ctl: call 3 fails",
            r"listening on 127\.0\.0\.1:%d" % added)
        echodtest.connect(("127.0.0.1", added)).close()
        self.stop_store_test(inst)

    def test_a_reload_that_cannot_serve_the_admin_endpoint_unstores_it(
            self):
        """The same for the admin endpoint's new address: when
        evconnlistener_new() fails (out of memory), the reload fails and
        the new socket leaves the store; the next reload serves it, and
        the old address's socket leaves the store then."""
        # evconnlistener_new(): the admin endpoint's alone, call 1 at
        # start.
        inst = self.start_store_test("evconnlistener_new:2")
        admin = free_port()
        lines = [ln if not ln.startswith("admin_listen") else
                 f"admin_listen = 127.0.0.1:{admin}"
                 for ln in self.config_lines()]
        self.reload_fails_then_serves(
            inst, lines, admin, r"admin_listen .* cannot serve it",
            r"failcall: evconnlistener_new: call 2 fails",
            r"admin endpoint on 127\.0\.0\.1:%d" % admin)
        self.assertEqual(self.stored(self.ports["admin"]), [])
        self.stop_store_test(inst)

    def start_store_test(self, failures):
        """echod under systemd, a plain line and the admin endpoint, with
        the failcall failures given ("NAME:N,...")."""
        conf = self.write_conf(self.config(reuseport=False, unix=False,
                                           udp=False))
        env = echodtest.failcall_env(self, failures)
        return self.systemd.start(self, conf, env=env)

    def reload_fails_then_serves(self, inst, lines, port, why, failure,
                                 served):
        """Reloads to lines twice: the first fails (the log says why,
        and failcall says failure) and leaves port's new socket out of
        the store; the second serves it (served) and stores it."""
        self.store_reload(inst, lines, r"reload failed.*" + why)
        inst.wait_log(failure)
        self.assertEqual(self.stored(port), [])
        self.store_reload(inst, lines, served)
        self.assertEqual(len(self.stored(port)), 1)

    def stop_store_test(self, inst):
        inst.proc.send_signal(signal.SIGTERM)
        self.assertEqual(inst.proc.wait(scaled(20)), 0)

    def store_reload(self, inst, new_lines, expect):
        """Reloads; returns once echod logged expect and said READY=1
        (after any store message of the reload)."""
        self.write_conf(new_lines)
        start, mark = inst.size(), self.systemd.mark()
        inst.proc.send_signal(signal.SIGHUP)
        inst.wait_log(expect, start=start)
        self.systemd.wait("READY=1", start=mark)

    def stored(self, port):
        """The store's names of 127.0.0.1:port's sockets."""
        return [n for n in self.stored_names()
                if n.endswith(f"047f000001{port:04x}")]

    def config_lines(self):
        with open(os.path.join(self.dir, "echod.conf")) as f:
            return f.read().splitlines()

    def test_sigusr2_under_systemd_says_restart(self):
        inst = self.start_service()
        start = inst.size()
        inst.proc.send_signal(signal.SIGUSR2)
        inst.wait_log(r"SIGUSR2: under systemd, upgrade with 'systemctl "
                      r"restart echod'", start=start)
        self.assertIsNone(inst.proc.poll())
        self.assertEqual(read_pid(self.pidfile), inst.proc.pid)


if __name__ == "__main__":
    echodtest.main()

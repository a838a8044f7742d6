"""systemd integration, checked without systemd: the notify protocol on an
AF_UNIX datagram socket the test binds itself (a path and an abstract
"@name"): FDSTORE=1 for its socket then READY=1 once serving (the fd
store itself is test_upgrade.py's), STATUS= with the connection count,
RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at SIGTERM, WATCHDOG=1
at half of WATCHDOG_USEC and only for the pid WATCHDOG_PID names; and
socket activation through Debian's systemd-socket-activate, which binds,
waits for the first connection and execs echod with LISTEN_FDS/LISTEN_PID
set (the pid stays the same)."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import echodtest
from echodtest import (Deadline, Echod, EchodTestCase, exchange, free_port,
                       scaled, wait_for)

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
PORT_ATTEMPTS = 5


def stored(port):
    """The FDSTORE=1 message that hands systemd 127.0.0.1:port (the name
    is the kind, then the address in hex: test_inherit.c checks it)."""
    return f"FDSTORE=1\nFDNAME=echod-stream-047f000001{port:04x}"


@contextlib.contextmanager
def environment(**env):
    """Sets variables for the processes started inside (None: unset)."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Notify:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, address, bind_to):
        self.address = address  # what NOTIFY_SOCKET says
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.messages = []

    def close(self):
        self.sock.close()

    def receive(self, timeout):
        """The next message, or None if none comes within timeout."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            msg = self.sock.recv(4096).decode()
        except socket.timeout:
            return None
        self.messages.append(msg)
        return msg

    def wait(self, want, timeout=10):
        """Reads messages until one equals (or, for a callable, satisfies)
        want; returns the messages read, want's last."""
        deadline = Deadline(timeout)
        got = []
        while True:
            msg = self.receive(deadline.remaining())
            if msg is None:
                raise AssertionError(
                    f"no notify message {want!r} within "
                    f"{deadline.seconds:g}s; got {got!r}")
            got.append(msg)
            if (want(msg) if callable(want) else msg == want):
                return got

    def collect(self, seconds):
        """Every message arriving within seconds (unscaled)."""
        end = time.monotonic() + seconds
        got = []
        while True:
            msg = self.receive(end - time.monotonic())
            if msg is None:
                return got
            got.append(msg)


class SystemdTestCase(EchodTestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-sd-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def notify_socket(self, abstract=False):
        if abstract:
            name = f"echod-test-{os.getpid()}-{id(self)}"
            n = Notify("@" + name, "\0" + name)
        else:
            path = os.path.join(self.dir, "notify")
            n = Notify(path, path)
        self.addCleanup(n.close)
        return n

    def start_notified(self, notify, *args, env=None, **kw):
        server = Echod(*args, **kw)
        self.addCleanup(server.kill)
        with environment(NOTIFY_SOCKET=notify.address, **(env or {})):
            return server.start()

    def assertEchoes(self, address, payload=b"ping\n"):
        with echodtest.connect(address) as s:
            self.assertEqual(exchange(s, payload, 10), payload)


class NotifyProtocol(SystemdTestCase):

    def check_ready_when_serving(self, notify):
        """Starts echod (stderr to a file, a fixed port) and checks that
        READY=1 comes once the listening line is written and the port
        serves; then STATUS=."""
        log = os.path.join(self.dir, "stderr.log")
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            with open(log, "wb") as f, \
                    environment(NOTIFY_SOCKET=notify.address):
                proc = subprocess.Popen(
                    echodtest.WRAPPER + [echodtest.echod_path(), "--listen",
                                         f"127.0.0.1:{port}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=f)
            self.addCleanup(lambda p=proc: p.poll() is None and
                            (p.kill(), p.wait()))
            first = notify.receive(scaled(10))
            if first is None and proc.poll() is not None:
                continue  # port taken meanwhile
            break
        # Its socket goes to systemd's fd store first, for a restart.
        self.assertEqual(first, stored(port))
        self.assertEqual(notify.receive(scaled(10)), "READY=1")
        with open(log) as f:
            self.assertIn(f"listening on 127.0.0.1:{port}", f.read())
        # Serving now: connect without retrying.
        self.assertEchoes(("127.0.0.1", port))
        self.assertEqual(notify.receive(scaled(10)), "STATUS=0 connections")
        proc.send_signal(signal.SIGTERM)
        self.assertIn("STOPPING=1", notify.wait("STOPPING=1"))
        self.assertEqual(proc.wait(scaled(10)), 0)

    def test_ready_once_serving_on_path_socket(self):
        self.check_ready_when_serving(self.notify_socket())

    def test_ready_once_serving_on_abstract_socket(self):
        self.check_ready_when_serving(self.notify_socket(abstract=True))

    def test_status_counts_connections_at_reload(self):
        notify = self.notify_socket()
        server = self.start_notified(notify)
        self.assertEqual(notify.wait("STATUS=0 connections"),
                         [stored(server.port), "READY=1",
                          "STATUS=0 connections"])
        socks = [self.connect(server.address) for _ in range(2)]
        for s in socks:
            self.assertEqual(exchange(s, b"x", 10), b"x")
        server.send_signal(signal.SIGHUP)
        self.assertEqual(notify.wait(lambda m: m.startswith("STATUS=")),
                         ["RELOADING=1", "READY=1", "STATUS=2 connections"])
        socks[0].close()

        def one_left():
            server.send_signal(signal.SIGHUP)
            got = notify.wait(lambda m: m.startswith("STATUS="))
            return got[-1] == "STATUS=1 connection"

        wait_for(one_left, 10, "STATUS=1 connection", interval=0.05)
        server.stop_cleanly(self)

    def test_failed_reload_still_says_ready(self):
        conf = os.path.join(self.dir, "echod.conf")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:0\n")
        notify = self.notify_socket()
        server = self.start_notified(notify, "-c", conf, listen=(), expect=1)
        notify.wait("STATUS=0 connections")
        with open(conf, "w") as f:
            f.write("garbage\n")
        server.send_signal(signal.SIGHUP)
        self.assertEqual(notify.wait(lambda m: m.startswith("STATUS=")),
                         ["RELOADING=1", "READY=1", "STATUS=0 connections"])
        server.wait_log("reload failed")
        self.assertEchoes(server.address)
        server.stop_cleanly(self)

    def test_stopping_at_sigterm(self):
        notify = self.notify_socket()
        server = self.start_notified(notify)
        notify.wait("STATUS=0 connections")
        server.send_signal(signal.SIGTERM)
        self.assertEqual(notify.wait("STOPPING=1"), ["STOPPING=1"])
        self.assertEqual(server.wait(10), 0, server.stderr())

    def test_unusable_notify_socket_is_a_warning(self):
        with environment(NOTIFY_SOCKET="relative/path"):
            server = self.start_echod()
        server.wait_log(r"warn: NOTIFY_SOCKET: unusable address "
                        r"'relative/path'")
        self.assertEchoes(server.address)
        server.stop_cleanly(self)


class Watchdog(SystemdTestCase):

    def test_watchdog_petted_at_half_the_period(self):
        notify = self.notify_socket()
        # A 1s period: pets every 0.5s, with room for a loaded machine.
        server = self.start_notified(notify,
                                     env={"WATCHDOG_USEC": "1000000",
                                          "WATCHDOG_PID": None})
        notify.wait("READY=1")
        stamps = []
        deadline = Deadline(10)
        while len(stamps) < 5:
            msg = notify.receive(deadline.remaining())
            self.assertIsNotNone(msg, f"only {len(stamps)} WATCHDOG=1 "
                                 f"within {deadline.seconds:g}s")
            if msg == "WATCHDOG=1":
                stamps.append(time.monotonic())
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        mean = sum(gaps) / len(gaps)
        self.assertGreater(mean, 0.3, f"petted too often: {gaps}")
        self.assertLess(mean, scaled(0.8), f"petted too rarely: {gaps}")
        self.assertLess(max(gaps), scaled(1.0),
                        f"a gap reached the whole period: {gaps}")
        # STATUS= rides along with each pet.
        self.assertIn("STATUS=0 connections", notify.messages)
        server.stop_cleanly(self)

    def test_watchdog_pid_of_another_process_means_no_watchdog(self):
        notify = self.notify_socket()
        server = self.start_notified(
            notify, env={"WATCHDOG_USEC": "200000",
                         "WATCHDOG_PID": str(os.getpid())})
        notify.wait("READY=1")
        got = notify.collect(0.6)  # three periods of pets, were they due
        self.assertNotIn("WATCHDOG=1", got)
        server.stop_cleanly(self)

    def test_watchdog_pid_of_echod_itself_means_watchdog(self):
        # The shell execs echod, so its $$ is echod's pid.
        notify = self.notify_socket()
        server = Echod(listen=())
        server.argv = (["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"]
                       + echodtest.WRAPPER
                       + [echodtest.echod_path(), "--listen", "127.0.0.1:0"])
        self.addCleanup(server.kill)
        server.nlisten = 1
        with environment(NOTIFY_SOCKET=notify.address,
                         WATCHDOG_USEC="200000"):
            server.start()
        notify.wait("WATCHDOG=1", timeout=5)
        server.stop_cleanly(self)


class ActivatedEchod(Echod):
    """echod run by systemd-socket-activate, which binds ports, waits for
    the first connection, then execs echod in its own process."""

    def __init__(self, ports, *args):
        super().__init__(listen=(), expect=len(ports))
        self.ports = ports
        self.argv = [SOCKET_ACTIVATE]
        for port in ports:
            self.argv += ["-l", f"127.0.0.1:{port}"]
        self.argv += echodtest.WRAPPER + [echodtest.echod_path()] + list(args)

    def start(self, timeout=10):
        """Returns once systemd-socket-activate listens on every port;
        None if a port was taken first."""
        self.spawn()
        last = self.ports[-1]
        wait_for(lambda: f"Listening on 127.0.0.1:{last} as" in self.stderr()
                 or self.proc.poll() is not None, timeout,
                 "systemd-socket-activate to listen")
        return self if self.alive() else None


@__import__("unittest").skipUnless(SOCKET_ACTIVATE,
                                   "systemd-socket-activate not installed")
class SocketActivation(SystemdTestCase):

    def activate(self, nports, *args):
        for _ in range(PORT_ATTEMPTS):
            ports = [free_port() for _ in range(nports)]
            if len(set(ports)) < nports:
                continue
            server = ActivatedEchod(ports, *args)
            self.addCleanup(server.kill)
            if server.start() is not None:
                return server
            server.wait(10)
        self.fail("no free ports after several attempts")

    def test_serves_the_handed_socket_not_its_own_listen(self):
        server = self.activate(1, "--listen", "127.0.0.1:1",
                               "--threads", "2")
        port = server.ports[0]
        pid = server.pid
        # The first connection makes systemd-socket-activate exec echod.
        self.assertEchoes(("127.0.0.1", port), b"activated\n")
        server.wait_log(r"info: serving 1 socket from systemd; 'listen' is "
                        r"not used")
        server.wait_log(rf"info: listening on 127\.0\.0\.1:{port}$")
        self.assertNotIn("listening on 127.0.0.1:1\n", server.stderr())
        with self.assertRaises(ConnectionRefusedError):
            echodtest.connect(("127.0.0.1", 1), timeout=5).close()
        self.assertEqual(server.pid, pid)
        if not echodtest.WRAPPER:
            self.assertTrue(os.path.samefile(
                os.readlink(f"/proc/{pid}/exe"), echodtest.echod_path()))
        for i in range(3):
            self.assertEchoes(("127.0.0.1", port), f"again {i}\n".encode())
        server.stop_cleanly(self)

    def test_sigusr2_says_to_restart_through_the_activator(self):
        server = self.activate(1)
        self.assertEchoes(("127.0.0.1", server.ports[0]), b"up\n")
        server.wait_log(r"serving 1 socket from systemd")
        server.send_signal(signal.SIGUSR2)
        server.wait_log(r"SIGUSR2: the sockets came from socket "
                        r"activation: restart through what passed them")
        self.assertEchoes(("127.0.0.1", server.ports[0]), b"still\n")
        server.stop_cleanly(self)

    def test_two_handed_sockets(self):
        server = self.activate(2, "--listen", "127.0.0.1:1")
        self.assertEchoes(("127.0.0.1", server.ports[0]), b"first\n")
        server.wait_log(r"info: serving 2 sockets from systemd; 'listen' is "
                        r"not used")
        self.assertEchoes(("127.0.0.1", server.ports[1]), b"second\n")
        self.assertEchoes(("127.0.0.1", server.ports[0]), b"first again\n")
        server.stop_cleanly(self)

    def test_reload_keeps_the_handed_socket(self):
        other = free_port()
        conf = os.path.join(self.dir, "echod.conf")
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{other}\n")
        server = self.activate(1, "-c", conf)
        port = server.ports[0]
        sock = self.connect(("127.0.0.1", port))
        self.assertEqual(exchange(sock, b"a\n", 10), b"a\n")
        server.wait_log("serving 1 socket from systemd")
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{other}\nlog_level = debug\n")
        server.send_signal(signal.SIGHUP)
        server.wait_log("configuration reloaded")
        self.assertEqual(exchange(sock, b"b\n", 10), b"b\n")
        self.assertEchoes(("127.0.0.1", port))
        with self.assertRaises(ConnectionRefusedError):
            echodtest.connect(("127.0.0.1", other), timeout=5).close()
        server.wait_log("received 2 bytes")  # the rest of the file applied
        server.stop_cleanly(self)


class NotActivated(SystemdTestCase):
    """Needs no systemd-socket-activate: the environment says it all."""

    def test_listen_fds_for_another_pid_are_ignored(self):
        with environment(LISTEN_FDS="1", LISTEN_PID="1"):
            server = self.start_echod()
        self.assertNotIn("from systemd", server.stderr())
        self.assertEchoes(server.address)
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

"""Classic daemon operation: -d returns only once the daemon serves, the
pid file names the daemon and is locked (a second echod is refused, a
stale file is taken over) and removed at exit, a start-up error reaches
the terminal, -u drops root after binding; and where the log goes:
journald's "<N>" prefixes when stderr is the journal stream, nothing on
stderr with --syslog."""

import errno
import os
import re
import signal
import socket
import subprocess
import tempfile

import echodtest
from echodtest import (Echod, EchodTestCase, free_port, run_echod, scaled,
                       wait_for)

EX_CONFIG = 78
# Attempts at a fixed port that another process may take meanwhile.
PORT_ATTEMPTS = 5


def proc_state(pid):
    """The state letter of /proc/PID/stat, None if there is no such
    process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    return stat.rpartition(")")[2].split()[0]


def proc_alive(pid):
    # A daemon whose parent exited may stay a zombie if nothing reaps it.
    return proc_state(pid) not in (None, "Z", "X")


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1:]
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def proc_session(pid):
    with open(f"/proc/{pid}/stat") as f:
        # After the command: state, ppid, pgrp, session.
        return int(f.read().rpartition(")")[2].split()[3])


def dead_pid():
    """A pid no process has now."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    raise AssertionError("no free pid")


class DaemonTestCase(EchodTestCase):
    """Runs of echod -d write the terminal's stderr to a file, not a pipe:
    the test waits for the parent to exit, not for the pipe's end, which a
    wrapper's (valgrind's) own copy of stderr in the daemon would hold
    open for the daemon's life."""

    # What echod's command line is run under (a subclass may set it).
    prefix = []

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-daemon-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.pidfile = os.path.join(self.dir, "echod.pid")
        self.addCleanup(self.reap_pidfile, self.pidfile, None)

    def reap_daemon(self, pid):
        """Teardown: SIGKILL a daemon we started, if it still runs."""
        if not proc_alive(pid):
            return
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return
        if echodtest.WRAPPER or os.path.samefile(exe, echodtest.echod_path()):
            os.kill(pid, signal.SIGKILL)

    def run_parent(self, args, cwd=None, timeout=10):
        """Runs echod with args to the parent's exit; returns (exit
        status, what it and the daemon wrote to stderr until then)."""
        log = os.path.join(self.dir, "terminal.log")
        with open(log, "wb") as f:
            proc = subprocess.Popen(
                self.prefix + echodtest.WRAPPER + [echodtest.echod_path()]
                + list(args),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=f, cwd=cwd)
        if "-p" in args:
            self.addCleanup(self.reap_pidfile, args[args.index("-p") + 1],
                            cwd)
        try:
            rc = proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"echod {' '.join(args)}: the parent did "
                                 f"not exit within {scaled(timeout):g}s")
        with open(log, "rb") as f:
            return rc, f.read().decode(errors="replace")

    def reap_pidfile(self, path, cwd):
        """Teardown: the daemon a pid file names, whatever the test saw
        (a relative one may have landed in / after the daemon's chdir)."""
        candidates = [path]
        if not os.path.isabs(path):
            candidates = [os.path.join(cwd or ".", path), "/" + path]
        for candidate in candidates:
            try:
                with open(candidate) as f:
                    self.reap_daemon(int(f.read()))
            except (OSError, ValueError):
                pass

    def daemonize(self, *args, pidfile=None, cwd=None, timeout=10):
        """Runs echod -d on a free fixed port (retrying if someone takes
        it first). Returns (exit status, stderr text, port)."""
        pidfile = self.pidfile if pidfile is None else pidfile
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            rc, err = self.run_parent(
                ["-d", "--listen", f"127.0.0.1:{port}"]
                + (["-p", pidfile] if pidfile else []) + list(args),
                cwd=cwd, timeout=timeout)
            if rc != 0 and "Address already in use" in err:
                continue
            return rc, err, port
        self.fail("no free port after several attempts")

    def read_pid(self, path=None):
        with open(path or self.pidfile) as f:
            text = f.read()
        self.assertRegex(text, r"^[1-9][0-9]*\n$", "pid file contents")
        pid = int(text)
        self.addCleanup(self.reap_daemon, pid)
        return pid

    def assertEchoes(self, address, payload=b"ping\n"):
        with echodtest.connect(address) as s:
            self.assertEqual(echodtest.exchange(s, payload, 10), payload)

    def assertPidWritten(self, pidfile, pid):
        """pidfile comes to hold pid (written once serving, a moment after
        the "listening on" line)."""
        def contents():
            with open(pidfile) as f:
                return f.read()

        self.assertEqual(wait_for(contents, 10, "the pid in the pid file"),
                         f"{pid}\n")

    def terminate_daemon(self, pid, pidfile=None):
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not proc_alive(pid), 10, f"daemon {pid} to exit")
        self.assertFalse(os.path.exists(pidfile or self.pidfile),
                         "pid file left behind")


class Daemonize(DaemonTestCase):

    def test_parent_returns_0_once_serving_and_pidfile_names_daemon(self):
        rc, err, port = self.daemonize()
        self.assertEqual(rc, 0, err)
        pid = self.read_pid()
        # Connect at once, no retry: the parent returned only once the
        # daemon was listening.
        self.assertEchoes(("127.0.0.1", port))
        self.assertTrue(proc_alive(pid))
        self.assertNotEqual(pid, os.getpid())
        # Detached: its own session, not the test's.
        self.assertEqual(proc_session(pid), pid)
        self.terminate_daemon(pid)

    def test_terminal_is_told_where_the_daemon_listens(self):
        # With -l 127.0.0.1:0 the terminal is the only place to learn the
        # port; syslog takes over only once the parent has returned.
        rc, err = self.run_parent(["-d", "-p", self.pidfile, "--listen",
                                   "127.0.0.1:0"])
        self.assertEqual(rc, 0, err)
        pid = self.read_pid()
        m = echodtest.LISTEN_RE.search(err)
        self.assertIsNotNone(m, f"no 'listening on' line on the terminal: "
                                f"{err!r}")
        self.assertEchoes(echodtest.split_address(m.group(1)))
        self.terminate_daemon(pid)

    def test_pidfile_holds_the_daemon_not_the_parent(self):
        log = os.path.join(self.dir, "terminal.log")
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            with open(log, "wb") as f:
                proc = subprocess.Popen(
                    echodtest.WRAPPER + [echodtest.echod_path(), "-d", "-p",
                                         self.pidfile, "--listen",
                                         f"127.0.0.1:{port}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=f)
            rc = proc.wait(scaled(10))
            with open(log) as f:
                err = f.read()
            if "Address already in use" not in err:
                break
        self.assertEqual(rc, 0, err)
        pid = self.read_pid()
        self.assertNotEqual(pid, proc.pid)
        self.assertTrue(proc_alive(pid))
        self.assertEchoes(("127.0.0.1", port))
        self.terminate_daemon(pid)

    def test_sigterm_removes_pidfile_and_stops_serving(self):
        rc, err, port = self.daemonize()
        self.assertEqual(rc, 0, err)
        pid = self.read_pid()
        self.assertEchoes(("127.0.0.1", port))
        self.terminate_daemon(pid)
        with self.assertRaises(ConnectionRefusedError):
            echodtest.connect(("127.0.0.1", port), timeout=5).close()

    def test_daemon_busy_port_fails_on_the_terminal(self):
        holder, port = echodtest.bound_port(listen=True)
        self.addCleanup(holder.close)
        rc, err = self.run_parent(["-d", "-p", self.pidfile, "--listen",
                                   f"127.0.0.1:{port}"])
        self.assertEqual(rc, 1, err)
        self.assertIn(f"127.0.0.1:{port}", err)
        self.assertIn("Address already in use", err)
        if os.path.exists(self.pidfile):
            with open(self.pidfile) as f:
                self.assertEqual(f.read(), "",
                                 "a failed start left a pid in the pid file")

    def test_daemon_bad_config_fails_on_the_terminal(self):
        conf = os.path.join(self.dir, "bad.conf")
        with open(conf, "w") as f:
            f.write("threads = 2000\n")
        rc, err = self.run_parent(["-d", "-c", conf, "-p", self.pidfile])
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertEqual(
            err,
            f"echod: {conf}:1: 'threads' must be a whole number from 0 to "
            f"1024, not '2000'\n")


class PidFile(DaemonTestCase):

    def test_second_echod_with_same_pidfile_is_refused(self):
        rc, err, port = self.daemonize()
        self.assertEqual(rc, 0, err)
        pid = self.read_pid()
        for extra in ([], ["-d"]):
            with self.subTest(second=" ".join(["echod"] + extra)):
                rc2, err = self.run_parent(extra + ["-p", self.pidfile,
                                                    "--listen",
                                                    "127.0.0.1:0"])
                self.assertEqual(rc2, 1, err)
                self.assertIn(f"pid file {self.pidfile} is held by a running "
                              f"echod (pid {pid})", err)
                self.assertNotIn("listening on", err)
                # The first one is undisturbed.
                with open(self.pidfile) as f:
                    self.assertEqual(f.read(), f"{pid}\n")
                self.assertTrue(proc_alive(pid))
                self.assertEchoes(("127.0.0.1", port))
        self.terminate_daemon(pid)

    def test_stale_pidfile_is_taken_over(self):
        stale = dead_pid()
        with open(self.pidfile, "w") as f:
            # Longer than any live pid: no leftover digits may remain.
            f.write(f"{stale}0000000000\n")
        rc, err, port = self.daemonize()
        self.assertEqual(rc, 0, err)
        pid = self.read_pid()
        self.assertNotEqual(pid, stale)
        self.assertTrue(proc_alive(pid))
        self.assertEchoes(("127.0.0.1", port))
        self.terminate_daemon(pid)

    def test_foreground_pidfile_holds_echod_pid(self):
        server = self.start_echod("-p", self.pidfile)
        self.assertEchoes(server.address)
        self.assertPidWritten(self.pidfile, server.pid)
        server.stop_cleanly(self)
        self.assertFalse(os.path.exists(self.pidfile))

    def test_failed_start_leaves_no_pid_file(self):
        # The file is created and locked before binding; a start that then
        # fails must not leave an empty pid file for scripts to trip on.
        holder, port = echodtest.bound_port(listen=True)
        self.addCleanup(holder.close)
        for extra in ([], ["-d"]):
            with self.subTest(daemonize=bool(extra)):
                rc, err = self.run_parent(extra + ["-p", self.pidfile,
                                                   "--listen",
                                                   f"127.0.0.1:{port}"])
                self.assertEqual(rc, 1, err)
                self.assertFalse(os.path.exists(self.pidfile),
                                 "a failed start left its pid file")

    def test_unwritable_pidfile_fails_with_exit_1(self):
        path = os.path.join(self.dir, "no-such-dir", "echod.pid")
        r = run_echod(["-p", path, "--listen", "127.0.0.1:0"])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(f"pid file {path}: No such file or directory", err)
        self.assertNotIn("listening on", err)


class RelativePaths(DaemonTestCase):
    """-d changes directory to /; paths given relative to where echod was
    started must still mean that place."""

    def test_relative_pidfile_is_written_where_echod_started(self):
        name = f"echod-relative-{os.getpid()}.pid"
        self.addCleanup(lambda: os.path.exists("/" + name) and
                        os.unlink("/" + name))
        rc, err, port = self.daemonize(pidfile=name, cwd=self.dir)
        self.assertEqual(rc, 0, err)
        stray = "/" + name
        if os.path.exists(stray):
            with open(stray) as f:
                self.addCleanup(self.reap_daemon, int(f.read()))
        self.assertTrue(os.path.exists(os.path.join(self.dir, name)),
                        f"pid file not in the starting directory (found in "
                        f"/: {os.path.exists(stray)})")
        pid = self.read_pid(os.path.join(self.dir, name))
        self.terminate_daemon(pid, os.path.join(self.dir, name))

    def test_relative_config_file_is_reread_on_sighup(self):
        conf = os.path.join(self.dir, "echod.conf")
        with open(conf, "w") as f:
            f.write("threads = 1\n")
        rc, err, port = self.daemonize("-c", "echod.conf", cwd=self.dir)
        self.assertEqual(rc, 0, err)
        pid = self.read_pid()
        with open(conf, "w") as f:
            # The command line's --listen wins; max_connections = 1 shows
            # whether the file was reread.
            f.write("threads = 1\nmax_connections = 1\n")
        first = self.connect(("127.0.0.1", port))
        self.assertEqual(echodtest.exchange(first, b"a\n", 10), b"a\n")
        os.kill(pid, signal.SIGHUP)

        def refused():
            with echodtest.connect(("127.0.0.1", port)) as s:
                s.settimeout(scaled(0.2))
                try:
                    return s.recv(1) == b""  # closed at once: refused
                except socket.timeout:
                    return False

        wait_for(refused, 5, "max_connections = 1 from the reread file")
        self.terminate_daemon(pid)


class Privileges(DaemonTestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root")

    def privileged_port(self):
        for port in range(1000, 600, -1):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError as e:
                    if e.errno == errno.EADDRINUSE:
                        continue
                    raise
                return port
        self.skipTest("no free port below 1024")

    def test_user_nobody_binds_a_privileged_port_then_drops_root(self):
        port = self.privileged_port()
        server = Echod("-u", "nobody", "--threads", "2",
                       listen=(f"127.0.0.1:{port}",))
        self.addCleanup(server.kill)
        server.start()
        server.wait_log(r"running as user nobody \(uid 65534\)")
        self.assertEchoes(server.address)
        self.assertEqual(proc_status(server.pid, "Uid"), ["65534"] * 4)
        self.assertEqual(proc_status(server.pid, "Gid"), ["65534"] * 4)
        # Every thread, not just the main one.
        for tid in os.listdir(f"/proc/{server.pid}/task"):
            with open(f"/proc/{server.pid}/task/{tid}/status") as f:
                uid = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
            self.assertEqual(uid, ["65534"] * 4, f"thread {tid}")
        self.assertNotIn("0", proc_status(server.pid, "Groups"))
        server.stop_cleanly(self)

    def start_as_nobody_with_pidfile(self, piddir):
        pidfile = os.path.join(piddir, "echod.pid")
        server = self.start_echod("-u", "nobody", "-p", pidfile)
        server.wait_log(r"running as user nobody")
        self.assertEchoes(server.address)
        self.assertPidWritten(pidfile, server.pid)
        return server, pidfile

    def test_user_removes_pidfile_from_a_directory_it_may_write(self):
        piddir = os.path.join(self.dir, "run")
        os.mkdir(piddir)
        os.chown(piddir, 65534, 65534)
        os.chmod(self.dir, 0o755)
        server, pidfile = self.start_as_nobody_with_pidfile(piddir)
        self.assertNotIn("pid file", server.stderr())
        server.stop_cleanly(self)
        self.assertFalse(os.path.exists(pidfile), "pid file left behind")

    def test_user_empties_pidfile_it_cannot_remove_and_says_so(self):
        # A root-owned directory, as /run is: nobody cannot unlink there.
        piddir = os.path.join(self.dir, "run")
        os.mkdir(piddir, 0o755)
        os.chmod(self.dir, 0o755)
        server, pidfile = self.start_as_nobody_with_pidfile(piddir)
        server.wait_log(r"warn(ing)?: pid file " + re.escape(pidfile) +
                        r": user nobody cannot remove it from " +
                        re.escape(piddir) +
                        r", so at exit it will be emptied instead")
        server.stop_cleanly(self)
        with open(pidfile) as f:
            self.assertEqual(f.read(), "", "a stale pid was left behind")
        self.assertRegex(server.stderr(),
                         r"pid file .*: cannot remove it \(Permission "
                         r"denied\); emptied it")


class UnknownUser(DaemonTestCase):
    """Needs no root: the user is looked up before anything else."""

    def test_unknown_user_exits_78_before_binding(self):
        port = free_port()
        r = run_echod(["-u", "no_such_user", "--listen",
                       f"127.0.0.1:{port}"])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, EX_CONFIG, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].endswith(
            "error: user 'no_such_user' does not exist"), err)
        self.assertNotIn("listening on", err)

    def test_unknown_user_with_daemonize_exits_78(self):
        rc, err = self.run_parent(["-d", "-u", "no_such_user", "-p",
                                   self.pidfile, "--listen", "127.0.0.1:0"])
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("user 'no_such_user' does not exist", err)
        self.assertFalse(os.path.exists(self.pidfile))


class Syslog(DaemonTestCase):
    """What echod sends to syslog, as a syslog daemon would receive it:
    echod runs in a private mount namespace (root only) whose /dev holds
    only null and a datagram socket of the test's, bound where /dev/log
    is expected. Nothing in echod knows."""

    # unshare -m, then: $1 becomes /dev, with the real /dev/null in it.
    SCRIPT = ('d=$1; shift; mount --bind /dev/null "$d/null" && '
              'mount --rbind "$d" /dev && exec "$@"')

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root for a mount namespace")
        dev = os.path.join(self.dir, "dev")
        os.mkdir(dev)
        open(os.path.join(dev, "null"), "w").close()
        self.syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.syslog.close)
        self.syslog.bind(os.path.join(dev, "log"))
        self.received = []
        self.prefix = ["unshare", "-m", "--propagation", "private", "sh",
                       "-c", self.SCRIPT, "sh", dev]

    def wait_syslog(self, regex, timeout=10):
        """Waits for a datagram matching regex; returns the match."""
        pattern = re.compile(regex)
        deadline = echodtest.Deadline(timeout)
        while True:
            for line in self.received:
                m = pattern.search(line)
                if m:
                    return m
            self.syslog.settimeout(max(deadline.remaining(), 0.001))
            try:
                self.received.append(self.syslog.recv(4096).decode())
            except socket.timeout:
                self.fail(f"no syslog message like {regex!r}; got "
                          f"{self.received}")

    def test_syslog_receives_the_log(self):
        # LOG_DAEMON (3 << 3) at LOG_INFO (6): priority 30.
        proc = subprocess.Popen(
            self.prefix + echodtest.WRAPPER + [
                echodtest.echod_path(), "--syslog", "-v", "--listen",
                "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and
                        (proc.kill(), proc.wait()))
        m = self.wait_syslog(r"^<30>.* echod\[(\d+)\]: listening on "
                             r"127\.0\.0\.1:(\d+)$")
        self.assertEqual(int(m.group(1)), proc.pid)
        self.assertEchoes(("127.0.0.1", int(m.group(2))), b"0123456789")
        self.wait_syslog(r"^<31>.* echod\[\d+\]: received 10 bytes from "
                         r"127\.0\.0\.1:\d+$")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(scaled(10)), 0)
        self.wait_syslog(r"^<30>.* echod\[\d+\]: stopped$")
        self.assertEqual(proc.stderr.read(), b"")

    def test_daemon_logs_to_syslog_once_serving(self):
        rc, err, port = self.daemonize()
        self.assertEqual(rc, 0, err)
        # The terminal heard where it listens; syslog hears the rest.
        self.assertIn(f"listening on 127.0.0.1:{port}", err)
        pid = self.read_pid()
        self.assertEchoes(("127.0.0.1", port))
        os.kill(pid, signal.SIGHUP)
        self.wait_syslog(rf"^<30>.* echod\[{pid}\]: configuration "
                         rf"reloaded$")
        os.kill(pid, signal.SIGTERM)
        self.wait_syslog(rf"^<30>.* echod\[{pid}\]: SIGTERM: shutting "
                         rf"down, 0 connections open$")
        self.wait_syslog(rf"^<30>.* echod\[{pid}\]: stopped$")


class Logging(DaemonTestCase):

    def start_to_file(self, env, *args):
        """Starts echod with stderr to a file; returns (proc, log path)."""
        log = os.path.join(self.dir, "stderr.log")
        with open(log, "wb") as f:
            st = os.fstat(f.fileno())
            proc = subprocess.Popen(
                echodtest.WRAPPER + [echodtest.echod_path()] + list(args),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=f, env=dict(os.environ, **env(st)))
        self.addCleanup(lambda: proc.poll() is None and
                        (proc.kill(), proc.wait()))
        return proc, log

    def read_log(self, path):
        with open(path, "rb") as f:
            return f.read().decode()

    def test_journal_stream_lines_carry_priorities(self):
        proc, log = self.start_to_file(
            lambda st: {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
            "--listen", "127.0.0.1:0", "--max-connections", "1")
        m = wait_for(lambda: echodtest.LISTEN_RE.search(self.read_log(log)),
                     10, "the listening line")
        address = echodtest.split_address(m.group(1))
        first = self.connect(address)
        self.assertEqual(echodtest.exchange(first, b"a\n", 10), b"a\n")
        second = self.connect(address)  # refused: a warning
        self.assertEqual(echodtest.recv_until_eof(second, 10), b"")
        wait_for(lambda: "max_connections" in self.read_log(log), 10,
                 "the refusal warning")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(scaled(10)), 0)
        lines = self.read_log(log).splitlines()
        self.assertEqual(lines[0], f"<6>info: listening on {m.group(1)}")
        self.assertIn(f"<4>warn: {m.group(1)}: max_connections (1) reached, "
                      f"refusing connections", lines)
        self.assertEqual(lines[-1], "<6>info: stopped")
        for line in lines:
            self.assertRegex(line, r"^<[0-7]>(error|warn|info|debug): ")

    def test_other_journal_stream_keeps_timestamps(self):
        proc, log = self.start_to_file(
            lambda st: {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"},
            "--listen", "127.0.0.1:0")
        wait_for(lambda: "listening on" in self.read_log(log), 10,
                 "the listening line")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(scaled(10)), 0)
        for line in self.read_log(log).splitlines():
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                                   r"echod\[\d+\] (error|warn|info|debug): ")

    def test_syslog_still_says_why_a_start_failed_on_stderr(self):
        # Where syslog is not listening (or not read), a start that fails
        # must still tell whoever started echod.
        holder, port = echodtest.bound_port(listen=True)
        self.addCleanup(holder.close)
        r = run_echod(["--syslog", "--listen", f"127.0.0.1:{port}"])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertEqual(err, f"echod: cannot listen on 127.0.0.1:{port}: "
                         "Address already in use\n")

    def test_syslog_writes_nothing_to_stderr(self):
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            proc = subprocess.Popen(
                echodtest.WRAPPER + [echodtest.echod_path(), "--syslog",
                                     "--listen", f"127.0.0.1:{port}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            self.addCleanup(lambda p=proc: p.poll() is None and
                            (p.kill(), p.wait()))

            def serving():
                if proc.poll() is not None:
                    return "exited"
                try:
                    s = echodtest.connect(("127.0.0.1", port), timeout=1)
                except ConnectionRefusedError:
                    return None
                return s

            s = wait_for(serving, 10, "echod --syslog to accept")
            if s == "exited":
                continue  # the port was taken meanwhile; try another
            with s:
                self.assertEqual(echodtest.exchange(s, b"syslog\n", 10),
                                 b"syslog\n")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=scaled(10))
            self.assertEqual(proc.returncode, 0, err.decode())
            self.assertEqual(err, b"")
            self.assertEqual(out, b"")
            return
        self.fail("no free port after several attempts")


if __name__ == "__main__":
    echodtest.main()

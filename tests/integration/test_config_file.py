"""The config file: -c FILE applies its keys, options on the command line
win over it, no --config means the built-in defaults, a bad file is refused
with exit 78 and one "FILE:LINE: message" line, and --check-config prints
"configuration OK" or the error, resolving addresses without binding
them. The shipped conf/echod.conf passes --check-config."""

import os
import socket
import tempfile

import echodtest
from echodtest import (Echod, EchodTestCase, free_port, run_echod)

EX_CONFIG = 78
SHIPPED_CONF = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "conf",
    "echod.conf"))


def worker_thread_names(server):
    """The names of echod's threads that are not the main thread (which
    runs worker 0), once it serves: the "listening on" lines come before
    the workers start, an echo only once every worker exists."""
    with echodtest.connect(server.address) as s:
        assert echodtest.exchange(s, b"t\n", 10) == b"t\n"
    names = []
    task = f"/proc/{server.pid}/task"
    for tid in os.listdir(task):
        if tid == str(server.pid):
            continue
        with open(f"{task}/{tid}/comm") as f:
            names.append(f.read().strip())
    return sorted(names)


def thread_count(server):
    """echod's workers, the main thread's among them: its threads that
    are the main one or named as a worker. (A sanitizer's runtime may
    run a thread of its own.)"""
    return 1 + sum(n.startswith("echod-worker")
                   for n in worker_thread_names(server))


class ConfigTestCase(EchodTestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-conf-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def write_conf(self, text, name="echod.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, *args, listen=(), expect=1):
        server = Echod(*args, listen=listen, expect=expect)
        self.addCleanup(server.kill)
        return server.start()

    def assertEchoes(self, address, payload=b"ping\n"):
        with echodtest.connect(address) as s:
            self.assertEqual(echodtest.exchange(s, payload, 10), payload)

    def assertRefused(self, address):
        with self.assertRaises(ConnectionRefusedError,
                               msg=f"{address} accepted a connection"):
            echodtest.connect(address, timeout=5).close()

    def assertConfigError(self, args, message):
        """echod exits 78 with exactly "echod: MESSAGE" on stderr and
        nothing on stdout, serving nothing."""
        r = run_echod(args)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, EX_CONFIG,
                         f"echod {' '.join(args)}: stderr:\n{err}")
        self.assertEqual(err, f"echod: {message}\n")
        self.assertEqual(r.stdout, b"")


class FileApplies(ConfigTestCase):

    def test_listen_and_threads_from_file(self):
        path = self.write_conf("listen = 127.0.0.1:0\nthreads = 3\n")
        server = self.start("-c", path)
        self.assertEqual(len(server.addresses), 1)
        self.assertEqual(server.address[0], "127.0.0.1")
        self.assertEqual(thread_count(server), 3)
        self.assertEchoes(server.address)
        server.stop_cleanly(self)

    def test_worker_threads_are_named_for_their_worker(self):
        # As top -H and ps -L show them; the main thread is worker 0.
        server = self.start("--threads", "3", listen=("127.0.0.1:0",))
        names = [n for n in worker_thread_names(server)
                 if echodtest.sanitizer() is None or
                 n.startswith("echod-worker")]
        self.assertEqual(names, ["echod-worker1", "echod-worker2"])
        server.stop_cleanly(self)

    def test_long_config_option(self):
        path = self.write_conf("listen = 127.0.0.1:0\nthreads = 2\n")
        server = self.start("--config", path)
        self.assertEqual(thread_count(server), 2)
        self.assertEchoes(server.address)
        server.stop_cleanly(self)

    def test_two_listen_lines_both_served(self):
        path = self.write_conf("listen = 127.0.0.1:0\n"
                               "listen = 127.0.0.2:0\n")
        server = self.start("-c", path, expect=2)
        hosts = sorted(h for h, _ in server.addresses)
        self.assertEqual(hosts, ["127.0.0.1", "127.0.0.2"])
        for address in server.addresses:
            self.assertEchoes(address)
        server.stop_cleanly(self)

    def test_log_level_debug_from_file_logs_reads(self):
        path = self.write_conf("listen = 127.0.0.1:0\nlog_level = debug\n")
        server = self.start("-c", path)
        self.assertEchoes(server.address, b"12345")
        server.wait_log(r"received 5 bytes from 127\.0\.0\.1:\d+")
        server.stop_cleanly(self)

    def test_max_connections_from_file(self):
        path = self.write_conf("listen = 127.0.0.1:0\nmax_connections = 1\n")
        server = self.start("-c", path)
        first = self.connect(server.address)
        self.assertEqual(echodtest.exchange(first, b"one\n", 10), b"one\n")
        second = self.connect(server.address)
        # Past max_connections a connection is accepted and closed at once.
        self.assertEqual(echodtest.recv_until_eof(second, 10), b"")
        self.assertEqual(echodtest.exchange(first, b"two\n", 10), b"two\n")
        server.wait_log(r"max_connections \(1\) reached")
        server.stop_cleanly(self)

    def test_comments_blank_lines_and_quoted_values(self):
        path = self.write_conf(
            "# a comment\n"
            "\n"
            "   # an indented comment\n"
            "listen = \"127.0.0.1:0\"   # a quoted value, then a comment\n"
            "\tthreads\t=\t2\t\n"
            "log_level = debug # trailing comment\r\n")
        server = self.start("-c", path)
        self.assertEqual(thread_count(server), 2)
        self.assertEchoes(server.address, b"abc")
        server.wait_log(r"received 3 bytes from")
        server.stop_cleanly(self)


class CommandLineOverrides(ConfigTestCase):

    def test_cli_listen_replaces_file_listen(self):
        port_a = free_port()
        path = self.write_conf(f"listen = 127.0.0.1:{port_a}\nthreads = 2\n")
        server = self.start("-c", path, "--listen", "127.0.0.2:0")
        self.assertEqual(len(server.addresses), 1, server.stderr())
        self.assertEqual(server.address[0], "127.0.0.2")
        self.assertNotIn(f"listening on 127.0.0.1:{port_a}", server.stderr())
        self.assertEchoes(server.address)
        self.assertRefused(("127.0.0.1", port_a))
        # The file's other keys still apply.
        self.assertEqual(thread_count(server), 2)
        server.stop_cleanly(self)

    def test_cli_threads_beats_file_threads(self):
        path = self.write_conf("listen = 127.0.0.1:0\nthreads = 2\n")
        server = self.start("-c", path, "--threads", "3")
        self.assertEqual(thread_count(server), 3)
        server.stop_cleanly(self)

    def test_cli_log_level_beats_file_log_level(self):
        path = self.write_conf("listen = 127.0.0.1:0\nlog_level = debug\n")
        server = self.start("-c", path, "--log-level", "info")
        self.assertEchoes(server.address, b"quiet\n")
        # Stop, so every line echod wrote has been read.
        server.stop_cleanly(self)
        self.assertNotIn("received", server.stderr())

    def test_cli_option_before_config_option_still_wins(self):
        path = self.write_conf("listen = 127.0.0.1:0\nthreads = 2\n")
        server = self.start("--threads", "3", "-c", path)
        self.assertEqual(thread_count(server), 3)
        server.stop_cleanly(self)


class BuiltInDefaults(ConfigTestCase):

    def test_no_config_uses_default_threads_and_level(self):
        # threads = 0: one worker per online CPU, the first on the main
        # thread; log_level = info: reads are not logged.
        server = self.start(listen=("127.0.0.1:0",))
        self.assertEqual(thread_count(server),
                         os.sysconf("SC_NPROCESSORS_ONLN"))
        self.assertEchoes(server.address, b"x\n")
        server.stop_cleanly(self)
        self.assertNotIn("received", server.stderr())

    def test_no_config_listens_on_127_0_0_1_8888(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", 8888))
            except OSError:
                self.skipTest("127.0.0.1:8888 is in use on this machine")
        server = self.start()  # no --listen, no --config
        self.assertEqual(server.address, ("127.0.0.1", 8888))
        self.assertEchoes(server.address)
        server.stop_cleanly(self)


class FileErrors(ConfigTestCase):

    def test_unknown_key_names_file_and_line(self):
        path = self.write_conf("# echod\n" * 11 + "max_conns = 5\n")
        self.assertConfigError(["-c", path, "--listen", "127.0.0.1:0"],
                               f"{path}:12: unknown key 'max_conns'")

    def test_misspelt_key_suggests_the_right_one(self):
        path = self.write_conf("listen = 127.0.0.1:0\nmax_bufer = 2m\n")
        self.assertConfigError(
            ["-c", path],
            f"{path}:2: unknown key 'max_bufer' (did you mean "
            f"'max_buffer'?)")

    def test_duplicate_single_key(self):
        path = self.write_conf("threads = 2\nlisten = 127.0.0.1:0\n"
                               "threads = 3\n")
        self.assertConfigError(
            ["-c", path], f"{path}:3: 'threads' is already set on line 1")

    def test_threads_out_of_range(self):
        path = self.write_conf("listen = 127.0.0.1:0\nthreads = 2000\n")
        self.assertConfigError(
            ["-c", path],
            f"{path}:2: 'threads' must be a whole number from 0 to 1024, "
            f"not '2000'")

    def test_out_of_range_in_file_is_78_even_if_cli_overrides_it(self):
        # The file itself is wrong; the command line does not excuse it.
        path = self.write_conf("threads = 2000\n")
        self.assertConfigError(
            ["-c", path, "--threads", "1", "--listen", "127.0.0.1:0"],
            f"{path}:1: 'threads' must be a whole number from 0 to 1024, "
            f"not '2000'")

    def test_garbage_line(self):
        path = self.write_conf("listen = 127.0.0.1:0\n\ngarbage\n")
        self.assertConfigError(
            ["-c", path], f"{path}:3: expected 'key = value', got 'garbage'")

    def test_bad_size(self):
        path = self.write_conf("max_buffer = 1q\n")
        self.assertConfigError(
            ["-c", path],
            f"{path}:1: 'max_buffer' must be a size from 4k to 1g (k, m or "
            f"g suffix), not '1q'")

    def test_key_without_value(self):
        path = self.write_conf("threads =\n")
        self.assertConfigError(["-c", path],
                               f"{path}:1: 'threads' has no value")

    def test_bad_listen_address(self):
        path = self.write_conf("listen = nohost\n")
        r = run_echod(["-c", path])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, EX_CONFIG, err)
        self.assertTrue(err.startswith(f"echod: {path}:1: 'listen' has a "
                                       f"bad address: "), err)
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_missing_file(self):
        path = os.path.join(self.dir, "absent.conf")
        self.assertConfigError(["-c", path],
                               f"{path}: No such file or directory")

    def test_bad_file_serves_nothing(self):
        port = free_port()
        path = self.write_conf(f"listen = 127.0.0.1:{port}\nbogus = 1\n")
        r = run_echod(["-c", path])
        self.assertEqual(r.returncode, EX_CONFIG, r.stderr.decode())
        self.assertNotIn(b"listening on", r.stderr)
        self.assertRefused(("127.0.0.1", port))


class CheckConfig(ConfigTestCase):

    def assertCheckOK(self, args):
        r = run_echod(["--check-config"] + args)
        self.assertEqual(r.returncode, 0,
                         f"--check-config {args}: {r.stderr.decode()}")
        self.assertEqual(r.stdout, b"configuration OK\n")
        self.assertEqual(r.stderr, b"")

    def test_good_file_is_ok(self):
        path = self.write_conf("listen = 127.0.0.1:0\nthreads = 4\n"
                               "max_buffer = 2m\nlog_level = debug\n")
        self.assertCheckOK(["-c", path])

    def test_fractional_duration_is_ok(self):
        path = self.write_conf("listen = 127.0.0.1:0\n"
                               "idle_timeout = 1.5s\n")
        self.assertCheckOK(["-c", path])

    def test_no_file_is_ok(self):
        self.assertCheckOK([])

    def test_shipped_conf_is_ok(self):
        self.assertTrue(os.path.isfile(SHIPPED_CONF), SHIPPED_CONF)
        self.assertCheckOK(["-c", SHIPPED_CONF])

    def test_bad_file_prints_error_and_exits_78(self):
        path = self.write_conf("listen = 127.0.0.1:0\nthreads = 2000\n")
        self.assertConfigError(
            ["--check-config", "-c", path],
            f"{path}:2: 'threads' must be a whole number from 0 to 1024, "
            f"not '2000'")

    def test_unknown_key_prints_error_and_exits_78(self):
        path = self.write_conf("max_conns = 5\n")
        self.assertConfigError(["--check-config", "-c", path],
                               f"{path}:1: unknown key 'max_conns'")

    def test_unresolvable_host_fails(self):
        path = self.write_conf("listen = no.such.host.invalid:1\n")
        r = run_echod(["--check-config", "-c", path], timeout=30)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, EX_CONFIG, err)
        self.assertEqual(r.stdout, b"")
        self.assertIn("no.such.host.invalid", err)
        self.assertTrue(err.startswith("echod: "), err)
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_unresolvable_host_on_command_line_fails(self):
        r = run_echod(["--check-config", "--listen",
                       "no.such.host.invalid:1"], timeout=30)
        self.assertEqual(r.returncode, EX_CONFIG, r.stderr.decode())
        self.assertIn(b"no.such.host.invalid", r.stderr)
        self.assertNotIn(b"configuration OK", r.stdout)

    def test_does_not_bind_a_busy_port(self):
        holder, port = echodtest.bound_port(listen=True)
        self.addCleanup(holder.close)
        path = self.write_conf(f"listen = 127.0.0.1:{port}\n")
        self.assertCheckOK(["-c", path])
        # And the holder still owns the port: nothing else listened on it.
        with echodtest.connect(("127.0.0.1", port)):
            conn, _ = holder.accept()
            conn.close()

    def test_does_not_start_serving(self):
        port = free_port()
        self.assertCheckOK(["--listen", f"127.0.0.1:{port}"])
        self.assertRefused(("127.0.0.1", port))

    def test_one_address_in_two_words_is_refused(self):
        port = free_port()
        path = self.write_conf(f"listen = 127.0.0.1:{port}\n"
                               f"# the same socket, by name\n"
                               f"listen = localhost:{port}\n")
        message = (f"{path}:3: listen 'localhost:{port}' binds "
                   f"127.0.0.1:{port}, which '127.0.0.1:{port}' also binds, "
                   f"listed at {path}:1")
        self.assertConfigError(["--check-config", "-c", path], message)
        # Starting is refused the same way, before anything is bound.
        r = run_echod(["-c", path], timeout=30)
        self.assertEqual(r.returncode, EX_CONFIG, r.stderr.decode())
        self.assertIn(message, r.stderr.decode())

    def test_wildcard_and_an_address_of_its_port_clash(self):
        port = free_port()
        self.assertConfigError(
            ["--check-config", "-l", f"127.0.0.1:{port}", "-l",
             f"*:{port}"],
            f"--listen: listen '*:{port}' binds [::]:{port}, which "
            f"'127.0.0.1:{port}' also binds, listed at --listen")

    def test_unknown_user_fails(self):
        self.assertConfigError(
            ["--check-config", "--listen", "127.0.0.1:0", "--user",
             "no_such_user"], "user 'no_such_user' does not exist")


if __name__ == "__main__":
    echodtest.main()

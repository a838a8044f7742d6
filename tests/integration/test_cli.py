"""echod's command line: usage errors exit 64 with one line naming the bad
option or value, --help and --version, a busy port exits 1, and SIGINT
and SIGTERM stop it cleanly with status 0."""

import signal
import subprocess

import echodtest
from echodtest import EchodTestCase, run_echod

EX_USAGE = 64


class UsageErrors(EchodTestCase):

    def assertUsageError(self, args, *words):
        r = run_echod(args)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, EX_USAGE,
                         f"echod {' '.join(args)}: stderr:\n{err}")
        lines = err.splitlines()
        self.assertEqual(len(lines), 1,
                         f"want exactly one line on stderr, got:\n{err}")
        for word in words:
            self.assertIn(word, lines[0])
        self.assertEqual(r.stdout, b"")

    def test_threads_above_1024_is_usage_error(self):
        self.assertUsageError(["--threads", "2000"], "--threads", "2000")

    def test_threads_not_a_number_is_usage_error(self):
        self.assertUsageError(["--threads", "x"], "--threads", "x")

    def test_threads_negative_is_usage_error(self):
        self.assertUsageError(["--threads=-1"], "--threads", "-1")

    def test_short_threads_option_is_checked_too(self):
        self.assertUsageError(["-t", "1025"], "1025")

    def test_max_buffer_bad_suffix_is_usage_error(self):
        self.assertUsageError(["--max-buffer", "1q"], "--max-buffer", "1q")

    def test_max_buffer_below_4k_is_usage_error(self):
        self.assertUsageError(["--max-buffer", "1k"], "--max-buffer", "1k")

    def test_listen_without_port_is_usage_error(self):
        self.assertUsageError(["--listen", "nohost"], "--listen", "nohost")

    def test_listen_unbracketed_ipv6_is_usage_error(self):
        self.assertUsageError(["--listen", "::1:80"], "--listen", "::1:80")

    def test_listen_port_65536_is_usage_error(self):
        self.assertUsageError(["--listen", "127.0.0.1:65536"], "--listen",
                              "127.0.0.1:65536")

    def test_listen_same_fixed_address_twice_is_usage_error(self):
        self.assertUsageError(["--listen", "127.0.0.1:5",
                               "--listen", "127.0.0.1:5"], "127.0.0.1:5")

    def test_log_level_unknown_is_usage_error(self):
        self.assertUsageError(["--log-level", "loud"], "--log-level", "loud")

    def test_unknown_option_is_usage_error(self):
        self.assertUsageError(["--bogus"], "--bogus")

    def test_missing_option_argument_is_usage_error(self):
        self.assertUsageError(["--threads"], "threads")

    def test_extra_positional_argument_is_usage_error(self):
        self.assertUsageError(["--listen", "127.0.0.1:0", "extra"], "extra")


class HelpAndVersion(EchodTestCase):

    def test_version_prints_name_and_version(self):
        for flag in ("--version", "-V"):
            r = run_echod([flag])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, b"echod 0.1.0\n")
            self.assertEqual(r.stderr, b"")

    def test_help_exits_0_and_mentions_every_option(self):
        for flag in ("--help", "-h"):
            r = run_echod([flag])
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.decode()
            for option in ("-l", "--listen", "-t", "--threads",
                           "--max-buffer", "--log-level", "-v", "--verbose",
                           "-h", "--help", "-V", "--version"):
                self.assertRegex(out, rf"(?<![\w-]){option}(?![\w-])",
                                 f"--help does not mention {option}")


class Startup(EchodTestCase):

    def test_busy_port_exits_1_naming_address(self):
        holder, port = echodtest.bound_port(listen=True)
        self.addCleanup(holder.close)
        r = run_echod(["--listen", f"127.0.0.1:{port}"])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(f"127.0.0.1:{port}", err)
        self.assertIn("Address already in use", err)

    def test_busy_port_among_several_exits_1(self):
        holder, port = echodtest.bound_port(listen=True)
        self.addCleanup(holder.close)
        r = run_echod(["--listen", "127.0.0.1:0",
                       "--listen", f"127.0.0.1:{port}"])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(f"127.0.0.1:{port}", err)
        self.assertIn("Address already in use", err)

    def test_listening_line_names_actual_port(self):
        server = self.start_echod()
        host, port = server.address
        self.assertEqual(host, "127.0.0.1")
        self.assertNotEqual(port, 0)
        with self.connect(server.address) as s:
            self.assertEqual(echodtest.exchange(s, b"ping\n", 10), b"ping\n")
        server.stop_cleanly(self)


class Signals(EchodTestCase):

    def test_sigterm_exits_0(self):
        server = self.start_echod()
        server.stop_cleanly(self, signal.SIGTERM)

    def test_sigint_exits_0(self):
        server = self.start_echod()
        server.stop_cleanly(self, signal.SIGINT)

    def test_sigterm_at_once_after_listening_line_exits_0(self):
        # A supervisor may stop echod as soon as it says it is listening:
        # by then SIGTERM must already mean a clean stop.
        for attempt in range(20):
            proc = subprocess.Popen(
                echodtest.WRAPPER + [echodtest.echod_path(), "--listen",
                                     "127.0.0.1:0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
            self.addCleanup(proc.wait)
            self.addCleanup(proc.kill)
            log = []
            for line in proc.stderr:  # ends at EOF if echod dies first
                log.append(line.decode(errors="replace"))
                if "listening on" in log[-1]:
                    proc.send_signal(signal.SIGTERM)
                    break
            log.append(proc.stderr.read().decode(errors="replace"))
            proc.stderr.close()
            rc = proc.wait(echodtest.scaled(10))
            self.assertEqual(rc, 0, f"attempt {attempt}: echod exited with "
                             f"{rc}:\n{''.join(log)}")

    def test_sigint_with_open_connections_exits_0(self):
        server = self.start_echod("--threads", "2")
        socks = [self.connect(server.address) for _ in range(4)]
        for i, s in enumerate(socks):
            msg = f"conn {i}\n".encode()
            self.assertEqual(echodtest.exchange(s, msg, 10), msg)
        server.stop_cleanly(self, signal.SIGINT)


if __name__ == "__main__":
    echodtest.main()

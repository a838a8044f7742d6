"""Logging: one "listening on ADDR" line per listener, and with -v (or
--log-level debug) one "received N bytes from HOST:PORT" line per read,
naming the peer's real address; at the default level, no such lines."""

import echodtest
from echodtest import EchodTestCase, SEED_MESSAGE, exchange, recv_exactly


class Logging(EchodTestCase):

    def test_listening_line_ends_with_address(self):
        server = self.start_echod()
        lines = [l for l in server.stderr_lines() if "listening on" in l]
        self.assertEqual(len(lines), 1, server.stderr())
        self.assertRegex(lines[0],
                         rf"listening on 127\.0\.0\.1:{server.port}\n$")
        server.stop_cleanly(self)

    def assertLogsReads(self, *args):
        server = self.start_echod(*args)
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)
            port = s.getsockname()[1]
            server.wait_log(
                rf"received 19 bytes from 127\.0\.0\.1:{port}$", 10)
            # One line per read: round trips keep the reads apart.
            for msg in (b"abcde", b"0123456", b"x" * 300):
                s.sendall(msg)
                self.assertEqual(recv_exactly(s, len(msg)), msg)
                server.wait_log(rf"received {len(msg)} bytes from "
                                rf"127\.0\.0\.1:{port}$", 10)
        server.stop_cleanly(self)

    def test_verbose_logs_each_read_with_peer_address(self):
        self.assertLogsReads("-v")

    def test_long_verbose_logs_each_read(self):
        self.assertLogsReads("--verbose")

    def test_log_level_debug_logs_each_read(self):
        self.assertLogsReads("--log-level", "debug")

    def test_default_level_does_not_log_reads(self):
        server = self.start_echod()
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)
        server.stop_cleanly(self)  # all of stderr has been read now
        self.assertNotRegex(server.stderr(), r"received \d+ bytes")

    def test_log_level_info_does_not_log_reads(self):
        server = self.start_echod("--log-level", "info")
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)
        server.stop_cleanly(self)
        self.assertNotRegex(server.stderr(), r"received \d+ bytes")

    def test_nothing_on_stdout(self):
        server = self.start_echod("-v")
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)
        server.stop_cleanly(self)
        self.assertEqual(server.stdout(), "")


if __name__ == "__main__":
    echodtest.main()

"""echo-client's command line and exit codes: -n, -m, -s, -q, -t against
the real echod; exit 1 when the echo is wrong, short, too long, refused
or late (against small misbehaving Python servers); exit 64 on usage
errors; --help and --version."""

import socket
import threading

import echodtest
from echodtest import EchodTestCase, recv_exactly, run_client

EX_USAGE = 64


class FakeServer(threading.Thread):
    """A loopback server that answers each connection with
    reply(received bytes) after reading `expect` bytes, then closes."""

    def __init__(self, expect, reply):
        super().__init__(daemon=True)
        self.expect, self.reply = expect, reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(echodtest.scaled(30))
        self.port = self.sock.getsockname()[1]

    def run(self):
        try:
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    data = recv_exactly(conn, self.expect, 30)
                    conn.sendall(self.reply(data))
                    conn.shutdown(socket.SHUT_WR)
                    conn.settimeout(echodtest.scaled(5))
                    try:
                        while conn.recv(65536):
                            pass
                    except OSError:
                        pass
        except OSError:
            return  # closed by the test, or nobody came

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self.sock.close()
        self.join(10)
        assert not self.is_alive(), "fake server thread did not stop"


class AgainstEchod(EchodTestCase):

    def setUp(self):
        self.server = self.start_echod()
        self.port = str(self.server.port)

    def tearDown(self):
        if self.server.alive():
            self.server.stop_cleanly(self)

    def assertClient(self, args, stdout, timeout=60):
        r = run_client(list(args) + ["127.0.0.1", self.port], timeout)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), stdout)

    def test_default_five_greetings(self):
        self.assertClient([], "Received: Hello from client!\n" * 5)

    def test_n_sets_connection_count(self):
        self.assertClient(["-n", "3"], "Received: Hello from client!\n" * 3)
        self.assertClient(["-n", "1"], "Received: Hello from client!\n")
        self.assertClient(["--count", "100"],
                          "Received: Hello from client!\n" * 100)

    def test_m_sets_message(self):
        self.assertClient(["-n", "2", "-m", "custom text"],
                          "Received: custom text\n" * 2)

    def test_m_drops_one_trailing_newline_when_printing(self):
        self.assertClient(["-n", "1", "-m", "line\n"], "Received: line\n")

    def test_s_sends_verified_random_payload(self):
        self.assertClient(["-s", "1m"],
                          "Received: 1048576 bytes, verified\n" * 5)
        self.assertClient(["-n", "1", "-s", "100"],
                          "Received: 100 bytes, verified\n")

    def test_q_prints_nothing_and_exits_0(self):
        self.assertClient(["-q"], "")
        self.assertClient(["-q", "-s", "64k", "-n", "3"], "")

    def test_t_generous_timeout_succeeds(self):
        self.assertClient(["-t", "30", "-n", "1"],
                          "Received: Hello from client!\n")


class Failures(EchodTestCase):

    def fake(self, expect, reply):
        server = FakeServer(expect, reply)
        self.addCleanup(server.close)
        server.start()
        return server

    def assertFails(self, args, *words, timeout=30):
        r = run_client([str(a) for a in args], timeout)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, f"stdout {r.stdout!r}, "
                         f"stderr {err!r}")
        for word in words:
            self.assertIn(word, err)
        return r

    def test_refused_exits_1(self):
        holder, port = echodtest.bound_port()  # bound, never listening
        self.addCleanup(holder.close)
        self.assertFails(["-n", "1", "127.0.0.1", port],
                         "Connection refused")

    def test_no_reply_times_out_exits_1(self):
        # Listens but never accepts: connect succeeds, no echo ever comes.
        holder, port = echodtest.bound_port(listen=True)
        self.addCleanup(holder.close)
        self.assertFails(["-n", "1", "-t", "1", "127.0.0.1", port],
                         "timed out")

    def test_altered_echo_exits_1(self):
        msg = b"Hello from client!\n"
        server = self.fake(len(msg), lambda d: d.upper())
        self.assertFails(["-n", "1", "127.0.0.1", server.port],
                         f"connection 1/1 to 127.0.0.1:{server.port}: echo "
                         "differs at byte offset 1 of 19 (sent 0x65, "
                         "received 0x45)")

    def test_short_echo_exits_1(self):
        msg = b"Hello from client!\n"
        server = self.fake(len(msg), lambda d: d[:5])
        self.assertFails(["-n", "1", "-t", "5", "127.0.0.1", server.port],
                         f"connection 1/1 to 127.0.0.1:{server.port}: ",
                         "5 of 19 bytes")

    def test_too_long_echo_exits_1(self):
        msg = b"Hello from client!\n"
        server = self.fake(len(msg), lambda d: d + b"extra")
        self.assertFails(["-n", "1", "127.0.0.1", server.port],
                         f"connection 1/1 to 127.0.0.1:{server.port}: "
                         "received more than the 19 bytes sent")

    def test_corrupted_random_payload_exits_1(self):
        def flip_one(d):
            b = bytearray(d)
            b[len(b) // 2] ^= 0x01
            return bytes(b)
        server = self.fake(65536, flip_one)
        r = self.assertFails(["-n", "1", "-s", "64k", "127.0.0.1",
                              server.port])
        self.assertNotIn(b"verified", r.stdout)


class Usage(EchodTestCase):

    def assertUsage(self, args, *words):
        r = run_client(args, 10)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, EX_USAGE,
                         f"echo-client {' '.join(args)}: {err}")
        for word in words:
            self.assertIn(word, err)
        self.assertEqual(r.stdout, b"")

    def test_bad_count(self):
        self.assertUsage(["-n", "x"], "x")
        self.assertUsage(["-n", "0"], "0")
        self.assertUsage(["-n", "-1"], "-1")

    def test_bad_size(self):
        self.assertUsage(["-s", "1q"], "1q")
        self.assertUsage(["-s", "0"], "0")

    def test_bad_timeout(self):
        self.assertUsage(["-t", "soon"], "soon")

    def test_empty_message(self):
        self.assertUsage(["-m", ""])

    def test_unknown_option(self):
        self.assertUsage(["--bogus"], "--bogus")

    def test_missing_value(self):
        self.assertUsage(["-n"])

    def test_bad_port(self):
        self.assertUsage(["127.0.0.1", "65536"], "65536")
        self.assertUsage(["127.0.0.1", "0"])
        self.assertUsage(["127.0.0.1", "http"], "http")

    def test_extra_argument(self):
        self.assertUsage(["127.0.0.1", "8888", "extra"], "extra")


class HelpAndVersion(EchodTestCase):

    def test_version(self):
        r = run_client(["--version"], 10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"echo-client 0.1.0\n")

    def test_help_mentions_every_option(self):
        r = run_client(["--help"], 10)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for option in ("-n", "-m", "-s", "-t", "-q", "-h", "--help", "-V",
                       "--version"):
            self.assertRegex(out, rf"(?<![\w-]){option}(?![\w-])",
                             f"--help does not mention {option}")


if __name__ == "__main__":
    echodtest.main()

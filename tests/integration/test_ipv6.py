"""IPv6: echod listens on [::1], logs "listening on [::1]:PORT", echoes
byte-exact to Python sockets and to echo-client; "*:PORT" serves IPv4 and
IPv6 clients on one socket. Skipped only when this host cannot bind [::1]
at all (a skip fails in CI)."""

import socket

import echodtest
from echodtest import (EchodTestCase, MIB, exchange, random_payload,
                       run_client)


class IPv6(EchodTestCase):

    def setUp(self):
        if not echodtest.ipv6_loopback_available():
            self.skipTest("cannot bind [::1] on this host")
        self.server = self.start_echod(listen=("[::1]:0",))

    def tearDown(self):
        if self.server.alive():
            self.server.stop_cleanly(self)

    def test_listening_line_is_bracketed(self):
        self.assertEqual(self.server.address[0], "::1")
        self.assertRegex(self.server.stderr(),
                         rf"listening on \[::1\]:{self.server.port}\b")

    def test_echo_over_ipv6_byte_exact(self):
        payload = random_payload(MIB, seed=6)
        with self.connect(self.server.address, family=socket.AF_INET6) as s:
            self.assertBytesEqual(exchange(s, payload, 60), payload)

    def test_half_close_over_ipv6(self):
        with self.connect(self.server.address, family=socket.AF_INET6) as s:
            self.assertEqual(exchange(s, b"six\n", 10, half_close=True),
                             b"six\n")

    def test_verbose_names_ipv6_peer(self):
        server = self.start_echod("-v", listen=("[::1]:0",))
        with self.connect(server.address, family=socket.AF_INET6) as s:
            self.assertEqual(exchange(s, b"0123456789", 10), b"0123456789")
            port = s.getsockname()[1]
            server.wait_log(rf"received 10 bytes from \[::1\]:{port}$", 10)
        server.stop_cleanly(self)

    def test_client_over_ipv6(self):
        r = run_client(["-n", "2", "::1", self.server.port], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(),
                         "Received: Hello from client!\n" * 2)


class DualStack(EchodTestCase):
    """"*:PORT" is one socket for every address of both families: IPv4
    clients reach it as well as IPv6 ones."""

    def test_wildcard_serves_ipv4_and_ipv6(self):
        server = self.start_echod(listen=("*:0",))
        self.assertEqual(server.address[0], "::")
        with self.connect(("127.0.0.1", server.port),
                          family=socket.AF_INET) as s:
            self.assertEqual(exchange(s, b"over IPv4\n", 10), b"over IPv4\n")
        with self.connect(("::1", server.port), family=socket.AF_INET6) as s:
            self.assertEqual(exchange(s, b"over IPv6\n", 10), b"over IPv6\n")
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

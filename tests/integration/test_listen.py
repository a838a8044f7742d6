"""Listen addresses: several --listen addresses are all announced and all
served, the short -l form works, and each listener logs the address it
really got."""

import socket

import echodtest
from echodtest import EchodTestCase, exchange


class Listen(EchodTestCase):

    def assertServes(self, address, tag):
        msg = f"via {tag}\n".encode()
        with self.connect(address) as s:
            self.assertEqual(exchange(s, msg, 10, half_close=True), msg)

    def test_two_listen_addresses_both_served(self):
        server = self.start_echod(listen=("127.0.0.1:0", "127.0.0.2:0"))
        self.assertEqual(len(server.addresses), 2)
        hosts = sorted(h for h, _ in server.addresses)
        self.assertEqual(hosts, ["127.0.0.1", "127.0.0.2"])
        for address in server.addresses:
            self.assertServes(address, address)
        server.stop_cleanly(self)

    def test_three_loopback_addresses_all_served(self):
        # All of 127.0.0.0/8 is loopback on Linux.
        server = self.start_echod(listen=("127.0.0.1:0", "127.0.0.2:0",
                                          "127.0.0.3:0"))
        hosts = sorted(h for h, _ in server.addresses)
        self.assertEqual(hosts, ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
        for address in server.addresses:
            self.assertServes(address, address)
        server.stop_cleanly(self)

    def test_ipv4_and_ipv6_listeners_both_served(self):
        if not echodtest.ipv6_loopback_available():
            self.skipTest("cannot bind [::1] on this host")
        server = self.start_echod(listen=("127.0.0.1:0", "[::1]:0"))
        hosts = sorted(h for h, _ in server.addresses)
        self.assertEqual(hosts, ["127.0.0.1", "::1"])
        for address in server.addresses:
            self.assertServes(address, address)
        server.stop_cleanly(self)

    def test_short_l_option(self):
        server = echodtest.Echod("-l", "127.0.0.1:0", "-l", "127.0.0.2:0",
                                 listen=(), expect=2)
        self.addCleanup(server.kill)
        server.start()
        self.assertEqual(len(server.addresses), 2)
        for address in server.addresses:
            self.assertServes(address, "-l")
        server.stop_cleanly(self)

    def test_connection_to_unlisted_address_is_refused(self):
        server = self.start_echod(listen=("127.0.0.1:0",))
        # Same port, other loopback address: echod did not bind it.
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.4", server.port),
                                     timeout=5).close()
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

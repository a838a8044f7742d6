"""The park (server/park.c): a plain connection is served from there while
quiet, with no event of its own. The worker waits on the park itself
(server/loop.c) unless a libevent timer is pending; then every connection
starts in the park and stays there, however busy. While libevent waits
instead (here: while a connection to a proxy_protocol listener has not
sent its header, whose deadline is a libevent timer), the first
ECHOD_PARK_FIRST_ABOVE (256) a worker holds start with an event of their
own, later ones in the park; a parked one that gets busy leaves it, and
any comes back once silent for ECHOD_PARK_AFTER_MS (2 s), giving up its
bufferevent if it had one. echod_connections_parked counts them. Every
echo, across every move, comes back byte for byte.
"""

import socket
import time

import echodtest
from echodtest import (admin_address, EchodTestCase, exchange, metric,
                       random_payload, scaled, scrape, wait_for)

FIRST = 256  # ECHOD_PARK_FIRST_ABOVE
QUIET = FIRST + 44
BUSY = 5
ROUNDS = 50
# ECHOD_PARK_AFTER_MS, and up to half of it again for the check's period.
PARK_SECONDS = 3


class Park(EchodTestCase):

    def start(self, *args):
        server = self.start_echod("--threads", "1", "--admin-listen",
                                  "127.0.0.1:0", *args)
        return server, admin_address(server)

    def parked(self, admin):
        return metric(scrape(admin), "echod_connections_parked")

    def busy_rounds(self, socks):
        """Message after message, on the first BUSY in turn."""
        for r in range(ROUNDS):
            for i, s in enumerate(socks[:BUSY]):
                msg = b"round %d on %d\n" % (r, i)
                self.assertBytesEqual(exchange(s, msg, 10), msg)

    def test_busy_connections_stay_while_the_worker_waits_there(self):
        server, admin = self.start()
        socks = [self.connect(server.address) for _ in range(QUIET)]
        for i, s in enumerate(socks):
            self.assertBytesEqual(exchange(s, b"hello %d\n" % i, 10),
                                  b"hello %d\n" % i)
        # No timer pending: even the first ones started in the park.
        self.assertEqual(self.parked(admin), QUIET)
        # The scrape's connection has gone, and its hold with it.
        time.sleep(scaled(0.5))
        self.busy_rounds(socks)
        self.assertEqual(self.parked(admin), QUIET)
        server.stop_cleanly(self)

    def test_busy_connections_leave_and_come_back(self):
        server = self.start_echod(
            "--threads", "1", "--admin-listen", "127.0.0.1:0",
            "--proxy-protocol-timeout", "1h",
            listen=("127.0.0.1:0", "127.0.0.1:0 proxy_protocol"))
        admin = admin_address(server)
        # No PROXY header yet: its deadline is a libevent timer, so
        # libevent waits for the worker until this one closes.
        hold = socket.create_connection(server.addresses[1])
        self.addCleanup(hold.close)
        socks = [self.connect(server.address) for _ in range(QUIET)]
        for i, s in enumerate(socks):
            self.assertBytesEqual(exchange(s, b"hello %d\n" % i, 10),
                                  b"hello %d\n" % i)
        # Those beyond the first started in the park, and one read each
        # kept them there (a slow run may have parked earlier ones too).
        self.assertGreaterEqual(self.parked(admin), QUIET - FIRST)
        # The first ones, silent, follow.
        wait_for(lambda: self.parked(admin) == QUIET,
                 scaled(PARK_SECONDS * 3), "every quiet one to be parked")

        self.busy_rounds(socks)
        self.assertEqual(self.parked(admin), QUIET - BUSY)

        # Quiet again: back in the park, within the check's period.
        wait_for(lambda: self.parked(admin) == QUIET,
                 scaled(PARK_SECONDS * 3), "the busy ones to be parked")
        # The worker waits there itself again: busy ones stay.
        hold.close()
        time.sleep(scaled(0.5))
        self.busy_rounds(socks)
        self.assertEqual(self.parked(admin), QUIET)
        for i, s in enumerate(socks):
            msg = random_payload(1000 + i, i)
            self.assertBytesEqual(exchange(s, msg, 10), msg)
        server.stop_cleanly(self)

    def test_a_connection_that_fell_behind_is_parked_too(self):
        """Its echo queued in a bufferevent for a while: once the queue is
        out and it is silent, it is parked without it, and echoes on."""
        server, admin = self.start("--max-buffer", "64k")
        s = echodtest.small_buffer_socket(server.address, 4096)
        self.addCleanup(s.close)
        # Sent without reading until echod stops taking it: its echo
        # filled the small window and queued up to max_buffer. (Read
        # while sending, a fast reader and a slow echod, say under
        # valgrind, may never let anything queue.) More than the kernel
        # can hold on the way: echod's socket buffers grow to 4 MiB for
        # sending and 32 MiB for receiving (tcp_wmem, tcp_rmem).
        payload = random_payload(64 * 1024 * 1024, 1)
        view = memoryview(payload)
        sent = echodtest.send_until_stalled([s], view, stall=1.0,
                                            timeout=120)[0]
        self.assertLess(sent, len(payload), "echod never stopped reading")
        wait_for(lambda: metric(scrape(admin),
                                "echod_backpressure_pauses_total") > 0,
                 scaled(10), "the pause to be counted")
        self.assertBytesEqual(
            echodtest.pump(s, view, sent, 120, strict=True), payload)
        s.setblocking(True)
        s.settimeout(scaled(10))
        wait_for(lambda: self.parked(admin) == 1,
                 scaled(PARK_SECONDS * 3), "the connection to be parked")
        for n in (1, 100, 70000):
            msg = random_payload(n, n)
            self.assertBytesEqual(exchange(s, msg, 30), msg)
        server.stop_cleanly(self)

    def test_the_end_leaves_the_park(self):
        """Closed by the peer, reset, or by idle_timeout while parked: the
        count goes back to zero."""
        server, admin = self.start("--idle-timeout", "8s")
        a = self.connect(server.address)
        b = self.connect(server.address)
        c = self.connect(server.address)
        for s in (a, b, c):
            self.assertBytesEqual(exchange(s, b"x", 10), b"x")
        wait_for(lambda: self.parked(admin) == 3,
                 scaled(PARK_SECONDS * 2), "the three to be parked")
        a.shutdown(socket.SHUT_WR)
        self.assertEqual(a.recv(1), b"")
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
        b.close()
        # c is closed by the idle timeout.
        wait_for(lambda: self.parked(admin) == 0, scaled(15),
                 "every connection to leave the park")
        c.settimeout(scaled(10))
        self.assertEqual(c.recv(1), b"")
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

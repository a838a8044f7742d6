"""Limits: --max-connections and --max-connections-per-ip refuse past the
limit with a prompt EOF (never a hang) while the admitted connections keep
echoing, and admit again once one closes; --idle-timeout closes silent
connections but never an active one or one held back by a slow reader;
TCP keepalive is on by default and off with --tcp-keepalive no; --backlog
sizes the listen queue."""

import re
import socket
import time

import echodtest
from echodtest import (MIB, Deadline, EchodTestCase, recv_exactly, scaled,
                       stats, wait_for)

# A refused connection must see EOF within this long.
REFUSE_EOF_SECONDS = 2.0


def recv_outcome(sock, timeout):
    """What the next recv sees: "eof", "reset", "data" or "timeout"."""
    sock.settimeout(scaled(timeout))
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    return "eof" if data == b"" else "data"


class Limits(EchodTestCase):

    def connect_from(self, server, source=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        if source is not None:
            s.bind((source, 0))
        s.settimeout(scaled(10))
        s.connect(server.address)
        return s

    def assert_echoes(self, sock, msg=b"ping\n"):
        sock.sendall(msg)
        self.assertEqual(recv_exactly(sock, len(msg), 10), msg)

    def assert_refused(self, sock, send=b""):
        """The connection was accepted and closed at once: EOF promptly."""
        if send:
            sock.sendall(send)
        start = time.monotonic()
        outcome = recv_outcome(sock, REFUSE_EOF_SECONDS)
        self.assertEqual(outcome, "eof",
                         f"a connection past the limit saw {outcome} "
                         f"(after {time.monotonic() - start:.2f}s), "
                         f"want EOF within {REFUSE_EOF_SECONDS}s")

    def admitted_eventually(self, server, source=None, timeout=10):
        """Connects until a connection echoes (the limit's slot is freed
        asynchronously, once echod sees the close). Returns (socket, number
        of refusals seen on the way)."""
        deadline = Deadline(timeout)
        refusals = 0
        while True:
            s = self.connect_from(server, source)
            s.sendall(b"again\n")
            got = recv_exactly(s, 6, 10)
            if got == b"again\n":
                return s, refusals
            self.assertEqual(got, b"", "neither echo nor EOF")
            refusals += 1
            s.close()
            self.assertFalse(deadline.expired(),
                             "no connection admitted after one closed")
            time.sleep(0.02)

    def test_max_connections(self):
        t0 = time.monotonic()
        server = self.start_echod("--max-connections", "3", "--threads", "2")
        admitted = [self.connect_from(server) for _ in range(3)]
        for s in admitted:
            self.assert_echoes(s)

        # The 4th: EOF promptly, whether it sends or not.
        self.assert_refused(self.connect_from(server))
        self.assert_refused(self.connect_from(server), send=b"x" * 1000)
        refused = 2
        server.wait_log(r"max_connections \(3\) reached")

        # The first three are unaffected.
        for s in admitted:
            self.assert_echoes(s, b"still here\n")

        # Close one: a new connection is served once echod notices.
        admitted.pop().close()
        newcomer, more = self.admitted_eventually(server)
        refused += more
        self.assert_echoes(newcomer, b"newcomer\n" * 1000)
        # Full again.
        self.assert_refused(self.connect_from(server))
        refused += 1

        st = stats(server)
        self.assertEqual(st["current"], 3, st)
        self.assertEqual(st["refused"], refused, st)
        self.assertEqual(st["total"], 4, st)
        # The warning is rate-limited: at most one per second (and one
        # for the second under way), however long a loaded machine took.
        elapsed = time.monotonic() - t0
        warnings = [l for l in server.stderr_lines()
                    if "max_connections (3) reached" in l]
        self.assertGreaterEqual(len(warnings), 1)
        self.assertLessEqual(len(warnings), int(elapsed) + 2,
                             f"{len(warnings)} warnings in {elapsed:.1f}s: "
                             + "".join(warnings))
        server.stop_cleanly(self)

    def test_refusal_burst_is_rate_limited_in_the_log(self):
        server = self.start_echod("--max-connections", "1", "--threads", "1")
        keep = self.connect_from(server)
        self.assert_echoes(keep)
        start = time.monotonic()
        for _ in range(200):
            s = self.connect_from(server)
            self.assert_refused(s)
            s.close()
        elapsed = time.monotonic() - start
        warnings = [l for l in server.stderr_lines()
                    if "max_connections (1) reached" in l]
        self.assertGreaterEqual(len(warnings), 1)
        self.assertLessEqual(len(warnings), int(elapsed) + 2,
                             f"{len(warnings)} warnings in {elapsed:.1f}s")
        self.assertEqual(stats(server)["refused"], 200)
        self.assert_echoes(keep)
        server.stop_cleanly(self)

    def test_max_connections_per_ip(self):
        server = self.start_echod("--max-connections-per-ip", "2",
                                  "--threads", "2")
        a = [self.connect_from(server, "127.0.0.2") for _ in range(2)]
        for s in a:
            self.assert_echoes(s)
        self.assert_refused(self.connect_from(server, "127.0.0.2"))
        self.assert_refused(self.connect_from(server, "127.0.0.2"),
                            send=b"z" * 1000)
        server.wait_log(r"max_connections_per_ip \(2\) reached for "
                        r"127\.0\.0\.2")
        # Another address has its own two.
        b = [self.connect_from(server, "127.0.0.3") for _ in range(2)]
        for s in b:
            self.assert_echoes(s)
        self.assert_refused(self.connect_from(server, "127.0.0.3"))
        for s in a + b:
            self.assert_echoes(s, b"all four still echo\n")
        # Closing one of 127.0.0.2's frees its slot, and only its.
        a.pop().close()
        s, more = self.admitted_eventually(server, "127.0.0.2")
        self.assert_echoes(s)
        self.assert_refused(self.connect_from(server, "127.0.0.2"))
        self.assert_refused(self.connect_from(server, "127.0.0.3"))
        st = stats(server)
        self.assertEqual(st["current"], 4, st)
        self.assertEqual(st["refused"], 5 + more, st)
        server.stop_cleanly(self)

    # Idle timeout.

    def test_idle_connection_is_closed(self):
        server = self.start_echod("--idle-timeout", "500ms", "--threads", "2")
        start = time.monotonic()
        s = self.connect_from(server)
        outcome = recv_outcome(s, 3.0)
        elapsed = time.monotonic() - start
        self.assertEqual(outcome, "eof", "an idle connection was not closed")
        self.assertGreaterEqual(elapsed, 0.45,
                                f"closed after {elapsed:.2f}s, before the "
                                f"500ms idle timeout")
        # One that echoed and then went quiet goes too.
        s = self.connect_from(server)
        self.assert_echoes(s)
        start = time.monotonic()
        self.assertEqual(recv_outcome(s, 3.0), "eof")
        self.assertGreaterEqual(time.monotonic() - start, 0.4)
        wait_for(lambda: stats(server)["current"] == 0, 5,
                 "current connections to return to 0", interval=0.1)
        server.stop_cleanly(self)

    def test_active_connection_stays_open(self):
        # Traffic every 0.2s against a 2s timeout: a loaded machine would
        # have to stall the test ten times over to make it look idle.
        server = self.start_echod("--idle-timeout", "2s", "--threads", "2")
        s = self.connect_from(server)
        end = time.monotonic() + 5.0
        n = 0
        while time.monotonic() < end:
            self.assert_echoes(s, b"%d" % (n % 10))
            n += 1
            time.sleep(0.2)
        self.assertGreaterEqual(n, 5)
        self.assert_echoes(s, b"still open\n")
        server.stop_cleanly(self)

    def test_slow_reader_is_not_idle(self):
        """Output queued and reading paused for longer than the idle
        timeout: not idle; everything comes back once the peer reads."""
        server = self.start_echod("--idle-timeout", "500ms", "--max-buffer",
                                  "64k", "--threads", "2")
        # Beyond what loopback's kernel buffers alone can hold.
        payload = echodtest.random_payload(32 * MIB, seed=501)
        view = memoryview(payload)
        s = echodtest.small_buffer_socket(server.address)
        self.addCleanup(s.close)

        # Send without reading until the sends stall (echod paused).
        sent = echodtest.send_until_stalled([s], view, 1.0)[0]
        self.assertLess(sent, len(payload), "echod took 32 MiB from a peer "
                        "that does not read")
        # Stalled for 1s already; hold on for three idle timeouts more.
        time.sleep(1.5)
        try:
            s.send(b"")  # raises if a reset has come in meanwhile
        except ConnectionResetError:
            self.fail("echod reset a blocked slow reader (closed it as "
                      "idle?)")
        st = stats(server)
        self.assertEqual(st["current"], 1,
                         f"echod closed a blocked slow reader as idle: {st}")

        # Read everything back while sending the rest.
        received = echodtest.pump(s, view, sent, 60, strict=True)
        self.assertBytesEqual(received, payload)
        # Quiet again now: the idle timeout applies once more.
        self.assertEqual(recv_outcome(s, 3.0), "eof")
        server.stop_cleanly(self)

    def test_slow_reader_of_kernel_buffered_echo_is_not_idle(self):
        """All of the echo written into echod's socket, none queued in
        echod, and the peer reading it slowly for several idle timeouts:
        bytes still move, so the connection is not idle."""
        server = self.start_echod("--idle-timeout", "500ms", "--threads", "2")
        payload = echodtest.random_payload(256 * 1024, seed=502)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        # A small receive buffer keeps the echo in echod's send queue,
        # where only the kernel knows it is still on its way.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(scaled(10))
        s.connect(server.address)
        s.sendall(payload)
        received = bytearray()
        start = time.monotonic()
        while len(received) < len(payload):
            chunk = s.recv(4096)
            self.assertNotEqual(chunk, b"", "echod closed a connection "
                                f"whose echo was still being read, after "
                                f"{len(received)} bytes and "
                                f"{time.monotonic() - start:.1f}s")
            received += chunk
            time.sleep(0.05)
        self.assertGreater(time.monotonic() - start, 1.5,
                           "the echo was read too fast to prove anything")
        self.assertBytesEqual(bytes(received), payload)
        self.assert_echoes(s, b"still open after a slow read\n")
        # Quiet now: the idle timeout applies again.
        self.assertEqual(recv_outcome(s, 3.0), "eof")
        server.stop_cleanly(self)

    # Keepalive and backlog, as the kernel reports them.

    def ss(self, *args):
        return echodtest.ss(*args)

    def server_side_sockets(self, server, count):
        """ss -tnoi's entries of echod's accepted sockets, one per
        connection (the local port is echod's)."""
        port = server.port
        out = self.ss("-tnoi", "state", "established",
                      f"( sport = :{port} )")
        entries = [l for l in out.splitlines()
                   if re.search(rf"127\.0\.0\.1:{port}\s", l)]
        self.assertEqual(len(entries), count, out)
        return entries

    def test_keepalive_on_by_default(self):
        server = self.start_echod("--threads", "2")
        socks = [self.connect_from(server) for _ in range(3)]
        for s in socks:
            self.assert_echoes(s)
        for line in self.server_side_sockets(server, 3):
            # The first probe is due within echod's 60 s of idleness, not
            # the kernel's default two hours ("timer:(keepalive,119min,0)").
            # ss writes the time left as "1min", "59sec", "1min2sec" or
            # "5.123ms" (5.123 s).
            m = re.search(r"timer:\(keepalive,(?:(\d+)min)?"
                          r"(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?,", line)
            self.assertIsNotNone(m, line)
            mins, secs, ms = (int(g or 0) for g in m.groups())
            self.assertLessEqual(mins * 60 + secs + ms / 1000, 60, line)
        server.stop_cleanly(self)

    def test_keepalive_off(self):
        server = self.start_echod("--threads", "2", "--tcp-keepalive", "no")
        socks = [self.connect_from(server) for _ in range(3)]
        for s in socks:
            self.assert_echoes(s)
        for line in self.server_side_sockets(server, 3):
            self.assertNotIn("keepalive", line)
        server.stop_cleanly(self)

    def test_backlog(self):
        server = self.start_echod("--backlog", "16", "--threads", "1")
        out = self.ss("-ltn", f"( sport = :{server.port} )")
        lines = out.splitlines()
        self.assertEqual(len(lines), 1, out)
        # State Recv-Q Send-Q Local Peer: Send-Q is the backlog.
        self.assertEqual(lines[0].split()[2], "16", out)
        s = self.connect_from(server)
        self.assert_echoes(s)
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

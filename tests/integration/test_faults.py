"""Faults: echod out of descriptors (EMFILE) backs off instead of spinning,
says so in the log at a bounded rate, keeps serving what it has and
accepts again once descriptors free up; peers that reset mid-stream,
close with echo still owed to them, or connect and never send are all
freed promptly: the connection count returns to 0, the descriptor count
to its baseline, and echod still answers."""

import re
import selectors
import socket
import struct
import sys
import time
import echodtest
from echodtest import (MIB, Deadline, Echod, EchodTestCase, cpu_seconds,
                       exchange, recv_exactly, scaled, stats, wait_for)

# The descriptor limit echod runs under in the EMFILE test, and how many
# connections the test opens against it.
FD_LIMIT = 64
EMFILE_CONNECTIONS = 100
# CPU echod may burn over CPU_WINDOW seconds while out of descriptors: a
# listener that retries accept(2) at once burns the whole window.
CPU_WINDOW = 2.0
CPU_LIMIT = 0.3
ACCEPT_WARNING_RE = r"accept on .*(Too many open files|EMFILE)"
TIMEOUT_FACTOR = echodtest.TIMEOUT_SCALE


def linger_reset(sock):
    """Closes with SO_LINGER 0: the peer gets a reset, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


class OutOfDescriptors(EchodTestCase):

    def test_emfile_backs_off_and_recovers(self):
        echodtest.skip_under_wrapper(
            self, "valgrind needs descriptors of its own under the limit")
        server = Echod("--threads", "1")
        server.argv = ["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}",
                       "--"] + server.argv
        self.addCleanup(server.kill)
        server.start()
        baseline = server.open_fds()
        self.assertLess(baseline, FD_LIMIT // 2)

        # Connect them all (the kernel completes the handshake from the
        # backlog whether or not echod accepts) and send one byte each.
        socks = []
        for i in range(EMFILE_CONNECTIONS):
            s = self.connect(server.address)
            s.sendall(b"%c" % (ord("a") + i % 26))
            socks.append(s)
        server.wait_log(ACCEPT_WARNING_RE)
        wait_for(lambda: server.open_fds() >= FD_LIMIT - 2, 10,
                 "echod to use up its descriptors")

        served = self.echoed(socks, range(len(socks)), 3)
        self.assertGreater(len(served), 0)
        self.assertLess(len(served), EMFILE_CONNECTIONS,
                        "echod served more connections than it has fds")
        sys.stderr.write(f"\n  {len(served)} of {EMFILE_CONNECTIONS} served "
                         f"under a limit of {FD_LIMIT} fds (baseline "
                         f"{baseline})\n")

        # Saturated: echod must sit (almost) idle, not spin on accept.
        before_lines = len(server.stderr_lines())
        before = cpu_seconds(server.pid)
        start = time.monotonic()
        time.sleep(CPU_WINDOW)
        used = cpu_seconds(server.pid) - before
        window = time.monotonic() - start
        sys.stderr.write(f"  CPU while out of fds: {used:.2f}s in "
                         f"{window:.2f}s\n")
        self.assertLess(used, CPU_LIMIT * TIMEOUT_FACTOR,
                        f"echod burned {used:.2f}s of CPU in {window:.2f}s "
                        f"while out of descriptors: accept is spinning")
        # The warning is rate-limited: about one a second, not thousands.
        warnings = [l for l in server.stderr_lines()[before_lines:]
                    if re.search(ACCEPT_WARNING_RE, l)]
        self.assertLessEqual(len(warnings), int(window) + 2,
                             "".join(warnings[:10]))

        # Established connections keep echoing.
        for i in served:
            msg = b"still echoing %d\n" % i
            socks[i].sendall(msg)
            self.assertEqual(recv_exactly(socks[i], len(msg), 10), msg)

        # Close some: as many waiting connections get served.
        closing = served[:10]
        for i in closing:
            socks[i].close()
        waiting = [i for i in range(len(socks)) if i not in served]
        newly = self.echoed(socks, waiting, 10, want=len(closing))
        self.assertGreaterEqual(
            len(newly), len(closing),
            f"closed {len(closing)} connections; only {len(newly)} waiting "
            f"ones were served afterwards")
        for i in newly:
            msg = b"late but served\n"
            socks[i].sendall(msg)
            self.assertEqual(recv_exactly(socks[i], len(msg), 10), msg)
        server.stop_cleanly(self)

    def echoed(self, socks, indices, timeout, want=None):
        """Waits up to timeout for the one byte each socket in indices
        sent to come back; returns the indices that got it (all of them
        once `want` have, if want is given)."""
        pending = {}
        with selectors.DefaultSelector() as sel:
            for i in indices:
                socks[i].setblocking(False)
                sel.register(socks[i], selectors.EVENT_READ, i)
                pending[i] = True
            got = []
            deadline = Deadline(timeout)
            while pending and not deadline.expired():
                if want is not None and len(got) >= want:
                    break
                for key, _ in sel.select(min(0.1, deadline.remaining())):
                    i = key.data
                    try:
                        b = key.fileobj.recv(16)
                    except BlockingIOError:
                        continue
                    self.assertEqual(b, b"%c" % (ord("a") + i % 26),
                                     f"connection {i}")
                    sel.unregister(key.fileobj)
                    del pending[i]
                    got.append(i)
        for i in indices:
            socks[i].setblocking(True)
            socks[i].settimeout(scaled(10))
        return sorted(got)


class MisbehavingPeers(EchodTestCase):

    def settle(self, server, baseline_fds, what):
        """Waits for every connection to be freed: stats current=0 and
        the descriptor count back at its baseline; then echod answers."""
        wait_for(lambda: stats(server)["current"] == 0, 10,
                 f"current connections to return to 0 after {what}",
                 interval=0.1)
        wait_for(lambda: server.open_fds() == baseline_fds, 10,
                 f"echod's fd count to return to {baseline_fds} after "
                 f"{what} (now {server.open_fds()})", interval=0.05)
        with self.connect(server.address) as s:
            msg = b"still answering after " + what.encode() + b"\n"
            self.assertEqual(exchange(s, msg, 10), msg)
        wait_for(lambda: server.open_fds() == baseline_fds, 10,
                 "fd count back at baseline after a clean connection",
                 interval=0.05)

    def start_measured(self, *args):
        server = self.start_echod("--threads", "2", *args)
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, b"warm\n", 10), b"warm\n")
        wait_for(lambda: stats(server)["current"] == 0, 10,
                 "the warm-up connection to be freed", interval=0.05)
        return server, server.open_fds()

    def test_reset_mid_stream(self):
        server, baseline = self.start_measured()
        payload = echodtest.random_payload(8 * MIB, seed=11)
        socks = []
        for i in range(20):
            s = self.connect(server.address)
            s.setblocking(False)
            socks.append(s)
        # Data flows both ways on all of them, then each is reset at a
        # different point.
        sent = [0] * len(socks)
        recvd = [0] * len(socks)
        stop_at = [(i + 1) * 150000 for i in range(len(socks))]
        alive = set(range(len(socks)))
        deadline = Deadline(60)
        with selectors.DefaultSelector() as sel:
            for i, s in enumerate(socks):
                sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE,
                             i)
            while alive:
                self.assertFalse(deadline.expired(), "data stopped flowing")
                for key, events in sel.select(0.5):
                    i = key.data
                    s = socks[i]
                    if events & selectors.EVENT_WRITE:
                        try:
                            sent[i] += s.send(payload[sent[i]:
                                                      sent[i] + 65536])
                        except BlockingIOError:
                            pass
                        if sent[i] == len(payload):
                            sel.modify(s, selectors.EVENT_READ, i)
                    if events & selectors.EVENT_READ:
                        try:
                            chunk = s.recv(65536)
                        except BlockingIOError:
                            chunk = None
                        if chunk == b"":
                            self.fail(f"connection {i}: EOF mid-stream")
                        if chunk:
                            self.assertEqual(
                                chunk, payload[recvd[i]:recvd[i] + len(chunk)])
                            recvd[i] += len(chunk)
                    if recvd[i] >= stop_at[i]:
                        sel.unregister(s)
                        linger_reset(s)
                        alive.discard(i)
        self.settle(server, baseline, "peers reset mid-stream")
        server.stop_cleanly(self)

    def test_close_with_output_pending(self):
        """Peers send 8 MiB, read none and close: echod has echo queued
        for them (and unread input from them) when they go."""
        server, baseline = self.start_measured("--max-buffer", "256k")
        payload = echodtest.random_payload(8 * MIB, seed=12)
        view = memoryview(payload)
        socks = []
        for _ in range(10):
            socks.append(echodtest.small_buffer_socket(server.address))
        echodtest.send_until_stalled(socks, view, 0.5)
        self.assertEqual(stats(server)["current"], len(socks))
        for s in socks:
            s.close()
        self.settle(server, baseline, "peers closed with output pending")
        server.stop_cleanly(self)

    def test_silent_peers(self):
        """Connect and never send: freed when they close (FIN), reset, or
        half-close without having sent anything."""
        server, baseline = self.start_measured()
        socks = [self.connect(server.address) for _ in range(30)]
        wait_for(lambda: stats(server)["current"] == len(socks), 10,
                 "echod to take every silent connection", interval=0.05)
        for i, s in enumerate(socks):
            if i % 3 == 0:
                s.close()
            elif i % 3 == 1:
                linger_reset(s)
            else:
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_exactly(s, 1, 10), b"",
                                 "half-closed silent peer: want EOF")
                s.close()
        self.settle(server, baseline, "silent peers")
        server.stop_cleanly(self)

    def test_mixed_faults_on_one_thread(self):
        """All the above at once on a single worker."""
        server, baseline = self.start_measured("--threads", "1",
                                               "--max-buffer", "64k")
        payload = echodtest.random_payload(2 * MIB, seed=13)
        socks = []
        for i in range(30):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.settimeout(scaled(10))
            s.connect(server.address)
            socks.append(s)
        for i, s in enumerate(socks):
            if i % 3 != 2:
                s.setblocking(False)
                try:
                    s.send(payload)
                except BlockingIOError:
                    pass
        time.sleep(0.2)  # let echo queue up; correctness does not hinge on it
        for i, s in enumerate(socks):
            if i % 3 == 0:
                linger_reset(s)
            else:
                s.close()
        self.settle(server, baseline, "mixed faults")
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

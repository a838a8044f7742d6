"""Backpressure: a peer that sends 64 MiB without reading must be paused
once --max-buffer is queued (its sends block), echod's resident memory
must stay bounded meanwhile, other connections are still served during
the stall, and once the peer reads, every byte comes back exact."""

import sys
import time

import echodtest
from echodtest import EchodTestCase, MIB, exchange

PAYLOAD = 64 * MIB
# How long the sender must make no progress to count as paused.
STALL_SECONDS = 1.0
# echod's RSS may grow over its idle size by at most max_buffer plus one
# read slice (64 KiB) per stalled peer, plus this for everything else
# (measured: 1m and one peer grow it by ~1.2 MiB; the slack is wide so
# that allocator noise on a loaded machine cannot break it). A server
# without backpressure holds tens of MiB here (whatever the kernel's
# socket buffers don't).
SLACK_KIB = 4 * 1024
READ_SLICE_KIB = 64


def growth_limit_kib(peers, max_buffer_kib):
    return peers * (max_buffer_kib + READ_SLICE_KIB) + SLACK_KIB
# Small client-side socket buffers, so the kernel cannot soak up the
# payload on the client's behalf.
CLIENT_SOCKBUF = 64 * 1024


class SlowReader(EchodTestCase):

    def setUp(self):
        # Sanitizers and valgrind keep freed memory: RSS says nothing there.
        self.check_rss = echodtest.rss_is_meaningful()

    def slow_socket(self, address):
        s = echodtest.small_buffer_socket(address, CLIENT_SOCKBUF)
        self.addCleanup(s.close)
        return s

    def send_until_stalled(self, server, sock, view, timeout=60):
        """Sends without reading until no byte goes out for STALL_SECONDS.
        Returns (bytes sent, peak RSS in KiB)."""
        peak = server.rss_kib()

        def sample():
            nonlocal peak
            peak = max(peak, server.rss_kib())
        sent = echodtest.send_until_stalled([sock], view, STALL_SECONDS,
                                            timeout, each=sample)
        return sent[0], peak

    def read_back(self, server, sock, view, sent, timeout=120):
        """Reads everything back while sending the rest. Returns (received
        bytes, peak RSS in KiB)."""
        peak = 0

        def sample(sent, received):
            nonlocal peak
            peak = max(peak, server.rss_kib())
        received = echodtest.pump(sock, view, sent, timeout, each=sample,
                                  strict=True)
        return received, peak

    def test_slow_reader_is_paused_with_bounded_memory(self):
        server = self.start_echod("--max-buffer", "1m", "--threads", "1")
        # Warm up the worker (allocations that happen once), then measure.
        with self.connect(server.address) as warm:
            self.assertEqual(exchange(warm, b"warm up\n", 10), b"warm up\n")
        idle = server.rss_kib()

        payload = echodtest.random_payload(PAYLOAD, seed=99)
        view = memoryview(payload)
        sock = self.slow_socket(server.address)
        sent, peak = self.send_until_stalled(server, sock, view)
        self.assertLess(sent, PAYLOAD, "echod took all 64 MiB from a peer "
                        "that does not read: no backpressure")
        stalled_rss = server.rss_kib()
        sys.stderr.write(f"\n  stalled after {sent / MIB:.1f} MiB; echod RSS "
                         f"idle {idle} KiB, stalled {stalled_rss} KiB, "
                         f"peak {peak} KiB\n")
        if self.check_rss:
            self.assertLess(peak - idle, growth_limit_kib(1, 1024),
                            f"echod grew by {peak - idle} KiB for a stalled "
                            f"peer")

        # The stall is per connection: another peer is served meanwhile.
        with self.connect(server.address) as other:
            msg = b"still serving others\n" * 100
            self.assertEqual(exchange(other, msg, 10), msg)

        received, peak2 = self.read_back(server, sock, view, sent)
        self.assertBytesEqual(received, payload)
        sys.stderr.write(f"  peak RSS while draining {peak2} KiB\n")
        if self.check_rss:
            self.assertLess(peak2 - idle, growth_limit_kib(1, 1024),
                            f"echod grew by {peak2 - idle} KiB while the "
                            f"peer drained")
        sock.close()
        server.stop_cleanly(self)

    def test_held_back_peer_costs_no_cpu(self):
        """Holding back means not reading: while a peer is stalled, echod
        waits in epoll rather than spinning on a readable socket it will
        not read. Its CPU over two seconds stays near zero."""
        server = self.start_echod("--max-buffer", "64k", "--threads", "1")
        payload = echodtest.random_payload(PAYLOAD, seed=98)
        sock = self.slow_socket(server.address)
        sent, _ = self.send_until_stalled(server, sock, memoryview(payload))
        self.assertLess(sent, PAYLOAD, "no backpressure at all")
        before = echodtest.cpu_seconds(server.pid)
        time.sleep(2.0)  # the window measured, not a synchronisation
        spent = echodtest.cpu_seconds(server.pid) - before
        # A spin burns the whole 2 s; idle echod wakes once a second.
        self.assertLess(spent, 0.3, f"echod used {spent:.2f}s of CPU in 2s "
                        f"with its only peer stalled")
        sock.close()  # else the stop waits out shutdown_timeout for it
        server.stop_cleanly(self)

    def test_several_stalled_peers_stay_bounded(self):
        server = self.start_echod("--max-buffer", "64k", "--threads", "2")
        with self.connect(server.address) as warm:
            self.assertEqual(exchange(warm, b"warm up\n", 10), b"warm up\n")
        idle = server.rss_kib()
        # Kernel buffers on loopback autotune to ~20 MiB per connection:
        # a smaller payload could fit in them with no backpressure at all.
        payload = echodtest.random_payload(48 * MIB, seed=7)
        view = memoryview(payload)
        socks, sents, peak = [], [], idle
        for _ in range(4):
            sock = self.slow_socket(server.address)
            sent, p = self.send_until_stalled(server, sock, view)
            self.assertLess(sent, len(payload), "no backpressure")
            socks.append(sock)
            sents.append(sent)
            peak = max(peak, p)
        if self.check_rss:
            self.assertLess(peak - idle, growth_limit_kib(4, 64),
                            f"echod grew by {peak - idle} KiB for 4 stalled "
                            f"peers")
        for sock, sent in zip(socks, sents):
            received, _ = self.read_back(server, sock, view, sent)
            self.assertBytesEqual(received, payload)
            sock.close()
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

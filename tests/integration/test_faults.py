"""Faults: peers that reset mid-stream,
close with echo still owed to them, or connect and never send are all
freed promptly: the connection count returns to 0, the descriptor count
to its baseline, and echod still answers."""

import selectors
import socket
import struct
import time
import echodtest
from echodtest import (MIB, Deadline, EchodTestCase, exchange, recv_exactly,
                       scaled, stats, wait_for)



def linger_reset(sock):
    """Closes with SO_LINGER 0: the peer gets a reset, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


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

"""Many connections at once: 1,000 concurrent connections, each with its
own content, all open together while every one is verified; --threads 1
and --threads 4 each serve 200; closed connections release their fds."""

import errno
import os
import selectors
import socket

import echodtest
from echodtest import Deadline, EchodTestCase, wait_for


def content(conn, rnd, size):
    """Distinct, recognisable bytes for one connection and round."""
    head = f"<conn {conn} round {rnd}>".encode()
    body = echodtest.random_payload(size - len(head), seed=conn * 1000 + rnd)
    return head + body


class Peer:
    def __init__(self, index, sock):
        self.index, self.sock = index, sock
        self.out, self.sent, self.want = b"", 0, b""
        self.got = bytearray()


def open_all(address, n, timeout):
    """n non-blocking connections, all established before returning."""
    peers = []
    deadline = Deadline(timeout)
    with selectors.DefaultSelector() as sel:
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            peers.append(Peer(i, s))
            err = s.connect_ex(address)
            if err not in (0, errno.EINPROGRESS):
                raise AssertionError(f"connect {i}: {os.strerror(err)}")
            sel.register(s, selectors.EVENT_WRITE, peers[-1])
        pending = n
        while pending:
            if deadline.expired():
                raise AssertionError(f"{pending} of {n} connections not "
                                     f"established in {deadline.seconds:g}s")
            for key, _ in sel.select(deadline.remaining()):
                err = key.fileobj.getsockopt(socket.SOL_SOCKET,
                                             socket.SO_ERROR)
                if err:
                    raise AssertionError(
                        f"connect {key.data.index}: {os.strerror(err)}")
                sel.unregister(key.fileobj)
                pending -= 1
    return peers


def echo_round(peers, rnd, size, timeout):
    """Sends each peer its own content and reads it back, all at once.
    Returns the peers whose echo differs."""
    deadline = Deadline(timeout)
    with selectors.DefaultSelector() as sel:
        for p in peers:
            p.out = content(p.index, rnd, size + p.index % 97)
            p.sent, p.got = 0, bytearray()
            sel.register(p.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                         p)
        pending = len(peers)
        while pending:
            if deadline.expired():
                short = [p.index for p in peers if len(p.got) < len(p.out)]
                raise AssertionError(
                    f"round {rnd}: {len(short)} connections incomplete after "
                    f"{deadline.seconds:g}s, e.g. {short[:10]}")
            for key, events in sel.select(min(deadline.remaining(), 1.0)):
                p = key.data
                if events & selectors.EVENT_WRITE and p.sent < len(p.out):
                    try:
                        p.sent += p.sock.send(p.out[p.sent:p.sent + 65536])
                    except BlockingIOError:
                        pass
                    if p.sent == len(p.out):
                        sel.modify(p.sock, selectors.EVENT_READ, p)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = p.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise AssertionError(
                            f"round {rnd}: connection {p.index} closed by "
                            f"echod after {len(p.got)} bytes")
                    p.got += chunk
                    if len(p.got) >= len(p.out):
                        sel.unregister(p.sock)
                        pending -= 1
    return [p.index for p in peers if bytes(p.got) != p.out]


class Concurrency(EchodTestCase):

    def run_concurrent(self, server, n, rounds=2, size=2048):
        baseline_fds = server.open_fds()
        peers = open_all(server.address, n, 30)
        try:
            for rnd in range(rounds):
                bad = echo_round(peers, rnd, size, 120)
                self.assertEqual(bad, [], f"round {rnd}: wrong echo on "
                                 f"{len(bad)} connections")
                # Every connection has been served and none closed yet:
                # echod holds them all at once.
                self.assertGreaterEqual(server.open_fds(), baseline_fds + n)
        finally:
            for p in peers:
                p.sock.close()
        wait_for(lambda: server.open_fds() <= baseline_fds, 30,
                 f"echod to close its {n} connections (fds back to "
                 f"{baseline_fds}, now {server.open_fds()})")

    def test_1000_concurrent_connections_each_verified(self):
        server = self.start_echod()
        self.run_concurrent(server, 1000)
        server.stop_cleanly(self)

    def test_threads_1_serves_200_concurrent_connections(self):
        server = self.start_echod("--threads", "1")
        self.run_concurrent(server, 200, rounds=3)
        server.stop_cleanly(self)

    def test_threads_4_serves_200_concurrent_connections(self):
        server = self.start_echod("--threads", "4")
        self.run_concurrent(server, 200, rounds=3)
        server.stop_cleanly(self)

    def test_threads_0_one_per_cpu_serves_200_concurrent_connections(self):
        server = self.start_echod("--threads", "0")
        self.run_concurrent(server, 200)
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

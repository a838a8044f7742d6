#!/usr/bin/env python3
"""Descriptors: echod fits its soft RLIMIT_NOFILE to max_connections (up
to the hard limit, warning when that is too low), and when it runs out of
descriptors anyway (EMFILE) it backs off instead of spinning, says so at a
bounded rate, keeps serving what it has and accepts again once
descriptors free up. Not under valgrind: valgrind keeps descriptors of
its own under the limit, which is what these tests measure."""

import re
import selectors
import sys
import time

import echodtest
from echodtest import (Deadline, Echod, EchodTestCase, cpu_seconds,
                       exchange, recv_exactly, scaled, wait_for)

# The descriptor limit echod runs under in the EMFILE test, and how many
# connections the test opens against it.
FD_LIMIT = 64
EMFILE_CONNECTIONS = 100
# CPU echod may burn over CPU_WINDOW seconds while out of descriptors: a
# listener that retries accept(2) at once burns the whole window.
CPU_WINDOW = 2.0
CPU_LIMIT = 0.3
# What a listener out of descriptors says: "ADDR: accept, pausing for
# 100ms: Too many open files".
ACCEPT_WARNING_RE = r"accept, pausing .*(Too many open files|EMFILE)"
TIMEOUT_FACTOR = echodtest.TIMEOUT_SCALE


class Descriptors(EchodTestCase):

    def assertEchoes(self, address, payload=b"ping\n"):
        with self.connect(address) as s:
            self.assertEqual(exchange(s, payload, 10), payload)

    def start_with_nofile(self, soft, hard, *args):
        echodtest.skip_under_wrapper(
            self, "valgrind keeps descriptors of its own under the limit")
        server = echodtest.Echod(*args)
        server.argv = ["prlimit", f"--nofile={soft}:{hard}",
                       "--"] + server.argv
        self.addCleanup(server.kill)
        return server.start()

    def nofile(self, server):
        """echod's soft and hard RLIMIT_NOFILE, from /proc."""
        with open(f"/proc/{server.pid}/limits") as f:
            line = [l for l in f if l.startswith("Max open files")][0]
        return tuple(int(v) for v in line.split()[3:5])

    def test_descriptor_limit_is_raised_for_max_connections(self):
        # 1000 connections + 64 for echod itself + 6 for its one worker
        # (libevent's epoll and wake-up, the park and the worker's own
        # wake-up, the timerfds of its park check and idle sweep).
        server = self.start_with_nofile(256, 4096, "--max-connections",
                                        "1000", "--threads", "1")
        self.assertEqual(self.nofile(server), (1070, 4096))
        self.assertNotIn("descriptor limit", server.stderr())
        self.assertEchoes(server.address)
        server.stop_cleanly(self)

    def test_descriptor_limit_too_low_is_a_warning(self):
        server = self.start_with_nofile(256, 512, "--max-connections",
                                        "1000", "--threads", "1")
        server.wait_log(r"warn(ing)?: max_connections is 1000: the "
                        r"descriptor limit is 512 \(hard limit 512\), "
                        r"below the 1070 that max_connections needs$")
        self.assertEqual(self.nofile(server), (512, 512))
        self.assertEchoes(server.address)
        server.stop_cleanly(self)

    def test_emfile_backs_off_and_recovers(self):
        self.emfile_backs_off_and_recovers("127.0.0.1:0")

    def test_emfile_backs_off_and_recovers_on_a_worker_socket(self):
        """reuseport: the socket is in the worker's own set (loop.c),
        taken out while accepting pauses and put back after."""
        self.emfile_backs_off_and_recovers("127.0.0.1:0 reuseport")

    def emfile_backs_off_and_recovers(self, listen):
        echodtest.skip_under_wrapper(
            self, "valgrind needs descriptors of its own under the limit")
        server = Echod("--threads", "1", listen=(listen,))
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



if __name__ == "__main__":
    echodtest.main()

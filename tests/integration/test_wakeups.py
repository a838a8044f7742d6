"""echod's loops wait for work with no timeout. Their periodic work (the
housekeeping, the park's check, the idle sweep, the watchdog) runs on
timerfds (server/tick.c), not as libevent timers: with one pending, every
epoll_wait() that blocks would be handed a timeout, and the kernel would
arm and cancel a timer at each one, once per message on a loop serving a
few connections. Read off strace while a connection is served message by
message: each epoll_wait() echod makes waits forever (-1) or not at all
(0: the park's own set, polled when the loop says it is ready)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import echodtest
from echodtest import (EchodTestCase, admin_address, exchange,
                       recv_until_eof, scaled, wait_for)

# What follows the events array of a call or of its resumed end (strace
# prints a call that another thread interrupts in two parts): maxevents,
# the timeout, epoll_pwait()'s mask and its size if any, the result.
# glibc's epoll_wait() is epoll_pwait() where the kernel has no
# epoll_wait (arm64).
ARGS = re.compile(r"\], \d+, (-?\d+)(?:, [^)]*)?\) += (-?\d+)")
SYSCALLS = "trace=epoll_wait,epoll_pwait"
WAITS = 40  # blocking waits to see, at the least


class Wakeups(EchodTestCase):

    def setUp(self):
        super().setUp()
        echodtest.skip_under_wrapper(self, "it traces echod's system calls")
        if shutil.which("strace") is None:
            self.skipTest("strace is not installed (build.sh installs it)")

    def waits(self, path):
        """(timeout, result) of each epoll_wait() in strace's output."""
        calls = []
        if not os.path.exists(path):  # strace has yet to make it
            return calls
        with open(path, errors="replace") as f:
            for line in f:
                m = "epoll_" in line and ARGS.search(line)
                if m:
                    calls.append((int(m.group(1)), int(m.group(2))))
        return calls

    def served_under_strace(self, *args, before=None):
        server = self.start_echod(*args)
        if before is not None:
            before(server)
        sock = self.connect(server.address)
        # Out of the park from its first reads: the park's check runs.
        for i in range(3):
            self.assertBytesEqual(exchange(sock, b"warm %d\n" % i, 10),
                                  b"warm %d\n" % i)
        with tempfile.TemporaryDirectory(prefix="echod-wakeups-") as d:
            out = os.path.join(d, "strace.out")
            tracer = subprocess.Popen(
                ["strace", "-f", "-qq", "-e", SYSCALLS, "-o", out, "-p",
                 str(server.proc.pid)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
            try:
                # One message at a time, with a pause between: the loop
                # blocks in epoll_wait() before each, as a quiet
                # connection's does.
                n = 0

                def enough():
                    nonlocal n
                    if tracer.poll() is not None:
                        self.fail("strace could not trace echod: " +
                                  tracer.stderr.read().decode(
                                      errors="replace"))
                    msg = b"message %d\n" % n
                    n += 1
                    self.assertBytesEqual(exchange(sock, msg, 10), msg)
                    time.sleep(0.005)
                    return sum(1 for _, r in self.waits(out) if r > 0) \
                        >= WAITS
                wait_for(enough, scaled(60),
                         f"{WAITS} epoll_wait() calls under strace",
                         interval=0)
            finally:
                tracer.send_signal(signal.SIGINT)
                _, err = tracer.communicate(timeout=scaled(30))
            calls = self.waits(out)
        self.assertNotEqual(calls, [], err)
        timed = [c for c in calls if c[0] > 0]
        self.assertEqual(timed, [], "epoll_wait() calls with a timeout "
                         "(timeout ms, result) while serving")
        server.stop_cleanly(self)

    def test_one_thread_waits_without_a_timeout(self):
        self.served_under_strace("--threads", "1")

    def test_workers_wait_without_a_timeout_with_an_idle_timeout_set(self):
        # The main loop (worker 0, which serves the connection) and
        # worker 1, each with its idle sweep running.
        self.served_under_strace("--threads", "2", "--idle-timeout", "60s")

    def test_a_scrape_leaves_no_timer_behind(self):
        """The admin endpoint is served on the main loop, which at
        --threads 1 serves the echo connection too. While an HTTP
        connection is open, evhttp keeps timers there: a scraper that
        kept its connection would hand every wait a timeout. So echod
        ends each one with its reply."""
        def scrape(server):
            s = socket.create_connection(admin_address(server),
                                         timeout=scaled(10))
            self.addCleanup(s.close)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            # Ended at once, well before the endpoint's 10 s timeout
            # would end a connection kept open.
            reply = recv_until_eof(s, timeout=5)
            self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK"), reply)
            self.assertIn(b"\r\nConnection: close\r\n", reply)
            # The client keeps its end open, as a scraper would.
        self.served_under_strace("--threads", "1", "--admin-listen",
                                 "127.0.0.1:0", before=scrape)


if __name__ == "__main__":
    echodtest.main()

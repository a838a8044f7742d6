"""The hand-off (server/worker.c): without reuseport the main thread
accepts and queues each socket for a worker thread. When a queue cannot
grow, out of memory, the socket is closed and counted as a connection
ended in error, so that the open-connections gauge (accepted less ended)
comes back to 0 instead of keeping it for ever.

The failure is made by tests/failcall/ (reallocarray, whose only caller
in echod is that queue). A sanitizer's or valgrind's allocator takes the
call before any preloaded library can, so there the test says it is
meaningless and skips; the plain build runs it.
"""

import echodtest
from echodtest import (EchodTestCase, admin_address, exchange, metric,
                       scrape, wait_for)


class OutOfMemory(EchodTestCase):

    def test_a_socket_the_queue_cannot_take_ends_counted(self):
        if not echodtest.plain_allocator():
            self.skipTest(echodtest.WRAPPER_SKIP + "a sanitizer's or "
                          "valgrind's allocator answers reallocarray")
        # Worker 0 runs on the main thread and queues nothing: the first
        # growth of a queue is worker 1's, for the second connection.
        env = echodtest.failcall_env(self, "reallocarray:1")
        server = self.start_echod("--threads", "2", "--admin-listen",
                                  "127.0.0.1:0", env=env)
        admin = admin_address(server)
        got = []
        for i in range(4):
            with self.connect(server.address) as s:
                try:
                    got.append(exchange(s, b"hand me off %d\n" % i, 30,
                                        half_close=True))
                except OSError:  # reset, or closed before the shutdown
                    got.append(b"")
        self.assertEqual(got, [b"hand me off 0\n", b"",
                               b"hand me off 2\n", b"hand me off 3\n"])
        server.wait_log(r"failcall: reallocarray: call 1 fails")
        server.wait_log(r"worker 1: out of memory, dropping a connection")
        label = {"listener": "127.0.0.1:0"}

        def settled():
            m = scrape(admin)
            return (metric(m, "echod_connections_closed_total",
                           reason="eof") == 3 and
                    metric(m, "echod_connections_active") == 0)
        wait_for(settled, 10, "three closes counted and the sockets closed")
        m = scrape(admin)
        self.assertEqual(metric(m, "echod_connections_closed_total",
                                reason="error"), 1)
        self.assertEqual(metric(m, "echod_listener_connections_accepted_total",
                                **label), 4)
        self.assertEqual(metric(m, "echod_listener_connections_active",
                                **label), 0)
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

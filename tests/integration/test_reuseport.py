#!/usr/bin/env python3
"""The reuseport listen parameter: each worker thread accepts on a
listening socket of its own (SO_REUSEPORT), so no accept hand-off runs
between threads, and several echod processes can share one port: the
kernel spreads connections over all of them. A process without it cannot
bind the port they hold. Limits, counters, reloads and stops work as on
any listener."""
import os
import signal
import tempfile

import echodtest
from echodtest import (admin_address, connect, Echod, EchodTestCase, free_port,
                       metric, recv_exactly, recv_until_eof, run_client,
                       run_echod, scrape, wait_for)


class ReuseportTest(EchodTestCase):
    def start(self, spec, *args):
        server = Echod("--threads", "2", "--admin-listen", "127.0.0.1:0",
                       *args, listen=(spec,))
        self.addCleanup(server.kill)
        server.start()
        return server, admin_address(server)

    def test_processes_share_a_port(self):
        port = free_port()
        spec = f"127.0.0.1:{port} reuseport"
        a, admin_a = self.start(spec)
        b, admin_b = self.start(spec)
        r = run_echod(["-l", f"127.0.0.1:{port}"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"Address already in use", r.stderr)
        r = run_client(["-q", "-n", "200", "127.0.0.1", str(port)])
        self.assertEqual(r.returncode, 0, r.stderr)
        label = {"listener": spec}
        counts = [metric(scrape(x), "echod_listener_connections_accepted_"
                         "total", **label) for x in (admin_a, admin_b)]
        self.assertEqual(sum(counts), 200)
        # The kernel's hash over 200 connections: both take some.
        self.assertGreater(min(counts), 0, counts)
        for x in (admin_a, admin_b):
            self.assertEqual(
                metric(scrape(x), "echod_connections_accepted_total"),
                metric(scrape(x), "echod_listener_connections_accepted_"
                       "total", **label))
        a.stop_cleanly(self)
        r = run_client(["-q", "-n", "50", "127.0.0.1", str(port)])
        self.assertEqual(r.returncode, 0, r.stderr)  # b alone now
        b.stop_cleanly(self)

    def test_every_mode_and_the_limits(self):
        free, _ = self.start("127.0.0.1:0 reuseport")
        host, port = free.address
        for mode in ("pingpong", "stream", "connrate", "hold"):
            r = run_client(["--load", "--mode", mode, "-c", "8", "-d", "0.5",
                            host, str(port)], timeout=120)
            self.assertEqual(r.returncode, 0, (mode, r.stderr))
        free.stop_cleanly(self)
        server, admin = self.start("127.0.0.1:0 reuseport",
                                   "--max-connections", "3")
        held = [self.connect(server.address) for _ in range(3)]
        for i, s in enumerate(held):
            s.sendall(b"%d" % i)
            self.assertEqual(recv_exactly(s, 1), b"%d" % i)
        over = self.connect(server.address)
        self.assertEqual(recv_until_eof(over), b"")
        server.wait_log(r"max_connections \(3\) reached")
        m = scrape(admin)
        self.assertEqual(metric(m, "echod_connections_refused_total",
                                reason="max_connections"), 1)
        self.assertEqual(metric(m, "echod_connections_active"), 3)
        for s in held + [over]:
            s.close()
        server.stop_cleanly(self)

    def test_reload_closes_and_opens_every_socket(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-reuseport-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "echod.conf")
        port, other = free_port(), free_port()

        def write(*lines):
            with open(conf, "w") as f:
                f.write("".join(f"listen = {ln}\n" for ln in lines))
        write(f"127.0.0.1:{port} reuseport", f"127.0.0.1:{other}")
        server = Echod("-c", conf, "--threads", "2", listen=(), expect=2)
        self.addCleanup(server.kill)
        server.start()
        r = run_client(["-q", "-n", "20", "127.0.0.1", str(port)])
        self.assertEqual(r.returncode, 0, r.stderr)
        write(f"127.0.0.1:{other}")
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"configuration reloaded", start=mark)
        for _ in range(20):  # no worker's socket is left
            with self.assertRaises(ConnectionRefusedError):
                connect(("127.0.0.1", port), timeout=5)
        write(f"127.0.0.1:{other}", f"127.0.0.1:{port} reuseport")
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"configuration reloaded", start=mark)
        wait_for(lambda: run_client(["-q", "-n", "20", "127.0.0.1",
                                     str(port)]).returncode == 0,
                 10, "the reuseport line back")
        server.stop_cleanly(self)

    def test_parameters_that_do_not_fit(self):
        for spec, why in (("127.0.0.1:0 udp reuseport", b"is for TCP"),
                          ("unix:/tmp/echod-rp.sock reuseport",
                           b"not a Unix socket"),
                          ("127.0.0.1:0 reuseport reuseport",
                           b"given twice")):
            r = run_echod(["--check-config", "-l", spec])
            self.assertEqual(r.returncode, 64, r.stderr)
            self.assertIn(why, r.stderr)


if __name__ == "__main__":
    echodtest.main()

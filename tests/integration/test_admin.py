#!/usr/bin/env python3
"""The admin endpoint (admin_listen): /metrics parsed strictly and checked
against traffic the test made itself (connections, bytes, closes by
reason, refusals, datagrams, reloads), clean for `promtool check
metrics`; /healthz 200 while serving and 503 once the drain begins; 404
and 405; its own connection limit, request size limit and timeout; a
reload that moves it, and one that cannot."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import echodtest
from echodtest import (Echod, EchodTestCase, admin_address, bound_port,
                       connect, exchange, http, metric, parse_metrics,
                       recv_exactly, run_echod, scaled, scrape, wait_for)


def start(test, *args, listen=("127.0.0.1:0",), admin="127.0.0.1:0",
          env=None):
    server = Echod("--admin-listen", admin, *args, listen=listen, env=env)
    test.addCleanup(server.kill)
    server.start()
    return server, admin_address(server)


class MetricsTest(EchodTestCase):
    def test_counts_match_the_traffic_made(self):
        server, admin = start(self, "--threads", "2")
        before = scrape(admin)
        label = {"listener": "127.0.0.1:0"}
        self.assertEqual(metric(before, "echod_connections_active"), 0)
        self.assertEqual(
            metric(before, "echod_listener_connections_accepted_total",
                   **label), 0)
        sizes = [1, 100, 5000, 70000, 3]
        for i, n in enumerate(sizes):
            with self.connect(server.address) as s:
                payload = bytes([i]) * n
                self.assertEqual(exchange(s, payload, 30, half_close=True),
                                 payload)
        total = sum(sizes)
        # Closes are counted by the workers as they happen: poll. A close
        # is counted first, and leaves echod_connections_active once its
        # socket is closed, a moment later: wait for both.

        def settled():
            m = scrape(admin)
            return (metric(m, "echod_connections_closed_total",
                           reason="eof") == len(sizes) and
                    metric(m, "echod_connections_active") == 0)
        wait_for(settled, 10, "five closes counted and their sockets closed")
        after = scrape(admin)
        self.assertEqual(metric(after, "echod_connections_accepted_total"),
                         len(sizes))
        self.assertEqual(metric(after, "echod_bytes_received_total"), total)
        self.assertEqual(metric(after, "echod_bytes_sent_total"), total)
        self.assertEqual(metric(after, "echod_connections_active"), 0)
        self.assertEqual(
            metric(after, "echod_listener_connections_accepted_total",
                   **label), len(sizes))
        self.assertEqual(
            metric(after, "echod_listener_connections_active", **label), 0)
        self.assertEqual(
            metric(after, "echod_listener_bytes_received_total", **label),
            total)
        self.assertEqual(
            metric(after, "echod_listener_bytes_sent_total", **label), total)
        self.assertEqual(
            metric(after, "echod_connection_duration_seconds_count"),
            len(sizes))
        for why in ("idle", "error", "shutdown", "fault", "handshake"):
            self.assertEqual(metric(after, "echod_connections_closed_total",
                                    reason=why), 0, why)
        self.assertEqual(
            metric(after, "echod_build_info", version=self.version()), 1)
        self.assertLessEqual(
            abs(metric(after, "echod_start_time_seconds") - time.time()),
            120)
        self.assertGreater(metric(after, "process_open_fds"), 3)
        self.assertGreater(metric(after, "process_resident_memory_bytes"),
                           1 << 20)
        self.assertGreaterEqual(metric(after, "process_cpu_seconds_total"),
                                0)
        self.assertEqual(metric(after, "echod_draining"), 0)
        server.stop_cleanly(self)

    def version(self):
        out = subprocess.run([echodtest.echod_path(), "--version"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.split()[1]

    def test_open_connections_and_idle_closes(self):
        server, admin = start(self, "--idle-timeout", "300ms")
        socks = [self.connect(server.address) for _ in range(3)]
        for s in socks:
            s.sendall(b"x")
            recv_exactly(s, 1)
        m = scrape(admin)
        self.assertEqual(metric(m, "echod_connections_active"), 3)
        self.assertEqual(metric(m, "echod_listener_connections_active",
                                listener="127.0.0.1:0"), 3)
        # Counted at the close, inactive once the socket is closed.

        def settled():
            m = scrape(admin)
            return (metric(m, "echod_connections_closed_total",
                           reason="idle") == 3 and
                    metric(m, "echod_connections_active") == 0)
        wait_for(settled, 10, "three idle closes counted, sockets closed")
        m = scrape(admin)
        self.assertEqual(metric(m, "echod_connections_active"), 0)
        # They lived at least the idle timeout: above the 0.1 s bucket.
        self.assertEqual(metric(m, "echod_connection_duration_seconds_bucket",
                                le="0.1"), 0)
        self.assertEqual(metric(m, "echod_connection_duration_seconds_bucket",
                                le="5"), 3)
        self.assertGreaterEqual(
            metric(m, "echod_connection_duration_seconds_sum"), 0.9)
        for s in socks:
            s.close()

    def test_refusals_by_reason(self):
        server, admin = start(self, "--max-connections-per-ip", "1")
        first = self.connect(server.address)
        first.sendall(b"a")
        recv_exactly(first, 1)
        for _ in range(2):
            with self.connect(server.address) as s:
                s.settimeout(scaled(10))
                self.assertEqual(s.recv(1), b"")  # refused: EOF
        m = scrape(admin)
        self.assertEqual(metric(m, "echod_connections_refused_total",
                                reason="max_connections_per_ip"), 2)
        self.assertEqual(metric(m, "echod_connections_refused_total",
                                reason="max_connections"), 0)
        self.assertEqual(metric(m, "echod_listener_connections_refused_total",
                                listener="127.0.0.1:0"), 2)
        self.assertEqual(metric(m, "echod_connections_accepted_total"), 1)
        first.close()

    def test_backpressure_pauses_are_counted(self):
        server, admin = start(self, "--max-buffer", "64k")
        s = echodtest.small_buffer_socket(server.address, 4096)
        self.addCleanup(s.close)
        echodtest.send_until_stalled([s], memoryview(bytes(1 << 22)),
                                     stall=0.5)
        self.assertGreaterEqual(
            metric(scrape(admin), "echod_backpressure_pauses_total"), 1)

    def test_udp_listener_counts_datagrams(self):
        server, admin = start(self, listen=("127.0.0.1:0 udp",))
        host, port = server.address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(scaled(10))
            for i in range(4):
                u.sendto(b"d" * (i + 1), (host, port))
                self.assertEqual(u.recvfrom(100)[0], b"d" * (i + 1))
        label = {"listener": "127.0.0.1:0 udp"}
        # A batch is counted once its replies are sent: poll.
        wait_for(lambda: metric(scrape(admin),
                                "echod_udp_datagrams_sent_total",
                                **label) == 4, 10, "four datagrams counted")
        m = scrape(admin)
        self.assertEqual(metric(m, "echod_udp_datagrams_received_total",
                                **label), 4)
        self.assertEqual(metric(m, "echod_udp_datagrams_sent_total",
                                **label), 4)
        self.assertEqual(metric(m, "echod_udp_datagrams_dropped_total",
                                reason="reflector_port", **label), 0)
        self.assertEqual(metric(m, "echod_bytes_received_total"), 10)
        # No stream listener: no stream family at all.
        self.assertFalse(any(k[0].startswith("echod_listener_") for k in m))

    def test_promtool_check_metrics_is_clean(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool,
                             "promtool missing (build.sh installs it)")
        server, admin = start(self, listen=("127.0.0.1:0",
                                            "127.0.0.1:0 udp"))
        with self.connect(server.addresses[0]) as s:
            exchange(s, b"scrape me", 10, half_close=True)
        status, _, body = http(admin, "/metrics")
        self.assertEqual(status, 200)
        r = subprocess.run([promtool, "check", "metrics"], input=body,
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout + r.stderr, b"")

    def test_parser_catches_bad_expositions(self):
        """The strict parser these tests lean on fails what it must."""
        good = ("# HELP a_total x\n# TYPE a_total counter\na_total 1\n")
        parse_metrics(good)
        for bad in (good.rstrip("\n"),
                    good + "# TYPE a_total counter\n",
                    good + "a_total 2\n",
                    "a_total 1\n",
                    good + "# TYPE b gauge\nb{x=\"1} 1\n",
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                    "h_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n"):
            with self.assertRaises(AssertionError, msg=bad):
                parse_metrics(bad)


class HealthTest(EchodTestCase):
    def test_healthz_is_ok_then_draining(self):
        server, admin = start(self, "--shutdown-timeout", "30s")
        self.assertEqual(http(admin, "/healthz")[::2], (200, b"ok\n"))
        # A connection with echo owed keeps the drain going.
        s = echodtest.small_buffer_socket(server.address, 4096)
        self.addCleanup(s.close)
        echodtest.send_until_stalled([s], memoryview(bytes(1 << 22)),
                                     stall=0.3)
        server.send_signal(signal.SIGTERM)
        server.wait_log(r"shutting down")
        status, _, body = http(admin, "/healthz")
        self.assertEqual((status, body), (503, b"draining\n"))
        self.assertEqual(metric(scrape(admin), "echod_draining"), 1)
        s.close()
        self.assertEqual(server.wait(), 0, server.stderr())

    def test_other_paths_and_methods(self):
        server, admin = start(self)
        self.assertEqual(http(admin, "/")[0], 404)
        self.assertEqual(http(admin, "/metricsx")[0], 404)
        self.assertEqual(http(admin, "/metrics?x=1")[0], 200)
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            status, headers, _ = http(admin, "/metrics", method=method)
            self.assertEqual(status, 405, method)
            self.assertEqual(headers.get("Allow"), "GET, HEAD")
        status, headers, body = http(admin, "/healthz", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(http(admin, "/nothing", method="POST")[0], 404)

    def test_requests_are_logged_at_debug_only(self):
        server, admin = start(self)
        http(admin, "/healthz")
        http(admin, "/metrics")
        self.assertFalse([ln for ln in server.stderr_lines()
                          if "admin endpoint on" not in ln
                          and ("/healthz" in ln or "/metrics" in ln)])
        quiet, admin2 = start(self, "-v")
        http(admin2, "/healthz")
        quiet.wait_log(r"debug: admin endpoint: GET /healthz from "
                       r"127\.0\.0\.1:\d+")


class LimitsTest(EchodTestCase):
    def raw(self, admin):
        s = socket.create_connection(admin, timeout=scaled(30))
        self.addCleanup(s.close)
        return s

    def test_a_closed_admin_connection_leaves_its_descriptor_alone(self):
        """evhttp closes an HTTP/1.0 connection after the reply; the echo
        connection accepted next on this loop (--threads 1: the main
        loop) usually gets the same descriptor, and must be watched."""
        server, admin = start(self, "--threads", "1")
        for i in range(10):
            s = self.raw(admin)
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            self.assertIn(b"200 OK", echodtest.recv_until_eof(s))
            s.close()
            with self.connect(server.address) as e:
                e.settimeout(scaled(5))
                e.sendall(b"echo %d" % i)
                self.assertEqual(recv_exactly(e, 6), b"echo %d" % i)

    def test_every_reply_closes_its_connection(self):
        """A client that asks to keep the connection (HTTP/1.1 by
        default, HTTP/1.0 with "keep-alive") gets one "Connection: close"
        and the end of the connection after each reply, whatever the
        path or method: no connection stays to keep timers on the main
        loop."""
        server, admin = start(self, "--threads", "1")
        requests = [
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            b"Connection: keep-alive\r\n\r\n",
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
            b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n"
            b"Connection: Keep-Alive\r\n\r\n",
        ]
        for req in requests:
            s = self.raw(admin)
            s.sendall(req)
            reply = echodtest.recv_until_eof(s, timeout=scaled(10))
            head = reply.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")
            self.assertEqual(
                [h for h in head if h.startswith(b"connection:")],
                [b"connection: close"], reply)

    def test_oversized_request_head_is_refused(self):
        server, admin = start(self)
        s = self.raw(admin)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                  b"a" * 9000 + b"\r\n\r\n")
        reply = echodtest.recv_until_eof(s, timeout=scaled(10))
        self.assertRegex(reply.split(b"\r\n", 1)[0],
                         rb"^HTTP/1\.1 4\d\d ")
        self.assertEqual(http(admin, "/healthz")[0], 200)

    def test_connection_limit_and_timeout(self):
        """16 silent connections fill the endpoint: a 17th waits, unserved,
        until the silent ones time out (10 s), then it is answered."""
        server, admin = start(self)
        silent = [self.raw(admin) for _ in range(16)]
        t0 = time.monotonic()
        late = self.raw(admin)
        late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        late.settimeout(2)
        with self.assertRaises(socket.timeout):
            late.recv(100)  # not served while 16 are open
        late.settimeout(scaled(30))
        reply = echodtest.recv_until_eof(late, timeout=scaled(30))
        waited = time.monotonic() - t0
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply)
        self.assertGreaterEqual(waited, 9)
        for s in silent:  # each closed by the timeout
            s.settimeout(scaled(5))
            self.assertEqual(s.recv(1), b"")
        self.assertEqual(http(admin, "/healthz")[0], 200)


    def test_out_of_memory_for_a_connection_pauses_then_serves(self):
        """The endpoint makes each connection's bufferevent ahead of it
        (evhttp would make one of its own, uncounted, if it had none):
        out of memory for the next one, accepting pauses until the sweep
        makes it, and every request is served."""
        # Call 1 at start; call 2 is the one after the first request.
        env = echodtest.failcall_env(self, "bufferevent_socket_new:2")
        server, admin = start(self, env=env)
        for _ in range(4):
            self.assertEqual(http(admin, "/healthz")[::2], (200, b"ok\n"))
        server.wait_log(r"failcall: bufferevent_socket_new: call 2 fails")
        server.wait_log(r"admin endpoint: out of memory, pausing")
        self.assertEqual(metric(scrape(admin), "echod_draining"), 0)
        server.stop_cleanly(self)


class ConfigTest(EchodTestCase):
    def test_bad_addresses(self):
        r = run_echod(["--check-config", "--admin-listen", "nonsense"])
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn(b"--admin-listen 'nonsense': expected HOST:PORT",
                      r.stderr)
        tmp = tempfile.TemporaryDirectory(prefix="echod-admin-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "echod.conf")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:0\n\nadmin_listen = 127.0.0.1\n")
        r = run_echod(["--check-config", "-c", conf])
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(f"{conf}:3: 'admin_listen' '127.0.0.1': expected "
                      "HOST:PORT".encode(), r.stderr)
        busy, port = bound_port(listen=True)
        self.addCleanup(busy.close)
        r = run_echod(["-l", "127.0.0.1:0", "--admin-listen",
                       f"127.0.0.1:{port}"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr.decode(),
                         rf"admin_listen 127\.0\.0\.1:{port}: "
                         r"Address already in use")

    def test_reload_moves_the_endpoint_and_counts(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-admin-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "echod.conf")
        held = []
        ports = []
        for _ in range(3):
            s, p = bound_port()
            held.append(s)
            ports.append(p)
        for s in held[:2]:
            s.close()

        def write(port):
            with open(conf, "w") as f:
                f.write(f"listen = 127.0.0.1:0\n"
                        f"admin_listen = 127.0.0.1:{port}\n")
        write(ports[0])
        server = Echod("-c", conf, listen=(), expect=1)
        self.addCleanup(server.kill)
        server.start()
        first = admin_address(server)
        self.assertEqual(first[1], ports[0])
        self.assertEqual(http(first, "/healthz")[0], 200)
        # Moved: the new address serves, the old one is gone.
        write(ports[1])
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"configuration reloaded", start=mark)
        second = admin_address(server, start=mark)
        self.assertEqual(second[1], ports[1])
        self.assertEqual(http(second, "/healthz")[0], 200)
        with self.assertRaises(ConnectionRefusedError):
            connect(first, timeout=5)
        # A busy address fails the reload; the endpoint stays.
        held[2].listen(4)
        write(ports[2])
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"reload failed, keeping the running configuration:"
                        rf" admin_listen 127\.0\.0\.1:{ports[2]}: Address "
                        r"already in use", start=mark)
        held[2].close()
        m = scrape(second)
        self.assertEqual(metric(m, "echod_config_reloads_total",
                                result="success"), 1)
        self.assertEqual(metric(m, "echod_config_reloads_total",
                                result="failure"), 1)
        # Off: the endpoint closes.
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:0\n")
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"configuration reloaded", start=mark)
        with self.assertRaises(ConnectionRefusedError):
            connect(second, timeout=5)
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

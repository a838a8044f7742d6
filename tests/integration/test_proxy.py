#!/usr/bin/env python3
"""The proxy_protocol listen parameter: a PROXY v1 or v2 header before a
connection's bytes names its client, which replaces the socket's peer in
the logs, the connection log and max_connections_per_ip; the header is
never echoed, the bytes after it are, byte for byte, on plain and TLS
listeners. A missing, malformed or oversized header, or none within
proxy_protocol_timeout, closes that connection at once and is counted.
echo-client --proxy v1|v2 [--proxy-source] speaks it in every mode."""
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import echodtest
from echodtest import (Echod, EchodTestCase, admin_address, metric,
                       random_payload, recv_exactly, recv_until_eof,
                       run_client, run_echod, scaled, scrape, stats,
                       wait_for)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport, dst="127.0.0.1", dport=8888, proto="TCP4"):
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src=None, sport=0, dst="127.0.0.1", dport=8888, local=False,
       tlvs=b""):
    if local:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    if ":" in src:
        body = (socket.inet_pton(socket.AF_INET6, src) +
                socket.inet_pton(socket.AF_INET6, dst) +
                struct.pack("!HH", sport, dport))
        fam = 0x21
    else:
        body = (socket.inet_aton(src) + socket.inet_aton(dst) +
                struct.pack("!HH", sport, dport))
        fam = 0x11
    body += tlvs
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def make_cert(directory):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class ProxyTestCase(EchodTestCase):
    def start(self, *args, listen=("127.0.0.1:0 proxy_protocol",)):
        server = Echod("-v", "--log-connections", "yes", "--admin-listen",
                       "127.0.0.1:0", *args, listen=listen)
        self.addCleanup(server.kill)
        server.start()
        return server, admin_address(server)

    def closed_lines(self, server, n):
        wait_for(lambda: len([ln for ln in server.stderr_lines()
                              if "connection closed" in ln]) >= n,
                 10, f"{n} connection log lines")
        return [ln for ln in server.stderr_lines()
                if "connection closed" in ln]


class HeaderTest(ProxyTestCase):
    def test_v1_and_v2_name_the_client_and_are_not_echoed(self):
        server, admin = self.start()
        payload = random_payload(100000, seed=7)
        cases = [(v1("192.0.2.1", 40001), "192.0.2.1:40001"),
                 (v2("192.0.2.2", 40002), "192.0.2.2:40002"),
                 (v2("2001:db8::5", 40003, "::1"), "[2001:db8::5]:40003"),
                 (v1("2001:db8::6", 40004, "::1", 80, "TCP6"),
                  "[2001:db8::6]:40004"),
                 (v2("192.0.2.3", 40005, tlvs=b"\x04\x00\x03abc"),
                  "192.0.2.3:40005")]
        for header, client in cases:
            with self.connect(server.address) as s:
                # Header and data in one write: only the data comes back.
                s.sendall(header + payload)
                self.assertBytesEqual(recv_exactly(s, len(payload)),
                                      payload)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_until_eof(s), b"")
            server.wait_log(r"PROXY v\d header: client " + re.escape(client))
        lines = self.closed_lines(server, len(cases))
        for (_, client), line in zip(cases, lines):
            self.assertIn(f"client={client} ", line)
            self.assertIn("bytes_in=100000 bytes_out=100000 reason=eof",
                          line)
        # The debug log of reads names the real client too.
        self.assertTrue(any("bytes from 192.0.2.1:40001" in ln
                            for ln in server.stderr_lines()))
        server.stop_cleanly(self)

    def test_header_in_pieces_and_local(self):
        server, _ = self.start()
        header = v2("198.51.100.9", 999)
        with self.connect(server.address) as s:
            for i in range(0, len(header), 5):
                s.sendall(header[i:i + 5])
                time.sleep(0.02)
            s.sendall(b"after the header")
            self.assertEqual(recv_exactly(s, 16), b"after the header")
        server.wait_log(r"PROXY v2 header: client 198\.51\.100\.9:999")
        # LOCAL (a balancer's health check): the socket's own address.
        with self.connect(server.address) as s:
            s.sendall(v2(local=True) + b"ping")
            self.assertEqual(recv_exactly(s, 4), b"ping")
        server.wait_log(r"PROXY v2 header: client the connection's own")
        with self.connect(server.address) as s:
            s.sendall(b"PROXY UNKNOWN\r\nv1 unknown")
            self.assertEqual(recv_exactly(s, 10), b"v1 unknown")
        server.stop_cleanly(self)

    def test_bad_headers_close_at_once_and_are_counted(self):
        server, admin = self.start()
        bad = [(b"GET / HTTP/1.0\r\n\r\n", "not a PROXY protocol header"),
               (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "bad address"),
               (b"PROXY " + b"x" * 120, "longer than 107 bytes"),
               (V2_SIG + b"\x21\x11\xff\xff", "longer than the limit"),
               (V2_SIG + b"\x31\x11\x00\x0c" + bytes(12), "unknown version"),
               (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "malformed")]
        for data, why in bad:
            with self.connect(server.address) as s:
                t0 = time.monotonic()
                s.sendall(data)
                self.assertEqual(recv_until_eof(s, timeout=scaled(10)), b"")
                self.assertLess(time.monotonic() - t0, scaled(3))
            server.wait_log(rf"debug: 127\.0\.0\.1:\d+: .*{why}")
        wait_for(lambda: metric(scrape(admin),
                                "echod_connections_closed_total",
                                reason="proxy") == len(bad),
                 10, "bad headers counted")
        self.assertEqual(
            len([ln for ln in self.closed_lines(server, len(bad))
                 if "reason=proxy" in ln]), len(bad))
        server.stop_cleanly(self)

    def test_no_header_in_time(self):
        server, admin = self.start("--proxy-protocol-timeout", "400ms")
        silent = self.connect(server.address)
        partial = self.connect(server.address)
        partial.sendall(b"PROXY TCP4 1.2.")
        t0 = time.monotonic()
        for s in (silent, partial):
            self.assertEqual(recv_until_eof(s, timeout=scaled(10)), b"")
        self.assertGreaterEqual(time.monotonic() - t0, 0.35)
        # The timeout runs from accept: a byte now and then buys no time.
        trickle = self.connect(server.address)
        t0 = time.monotonic()
        trickle.settimeout(0.1)
        closed = False
        for b in b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2"[:40]:
            try:
                trickle.sendall(bytes([b]))
                if trickle.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        self.assertTrue(closed, "a trickled header outlived the timeout")
        self.assertLess(time.monotonic() - t0, scaled(3))
        trickle.close()
        server.wait_log(r"no whole PROXY header within "
                        r"proxy_protocol_timeout")
        wait_for(lambda: metric(scrape(admin),
                                "echod_connections_closed_total",
                                reason="proxy") == 3, 10, "all counted")
        server.stop_cleanly(self)

    def test_a_drain_closes_a_connection_still_in_its_header(self):
        server, _ = self.start("--proxy-protocol-timeout", "60s")
        s = self.connect(server.address)
        s.sendall(b"PROXY TCP4")
        time.sleep(0.1)
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(timeout=scaled(10)), 0,
                         server.stderr())
        self.assertLess(time.monotonic() - t0, scaled(5))
        s.close()

    def test_a_drain_serves_a_header_that_comes_soon(self):
        # Accepted just before the stop, its header may be on its way.
        server, _ = self.start("--proxy-protocol-timeout", "60s",
                               "--shutdown-timeout", "60s")
        s = self.connect(server.address)
        wait_for(lambda: stats(server)["current"] == 1, 10, "it accepted")
        accepted = time.monotonic()
        server.send_signal(signal.SIGTERM)
        # Well past a tenth since the accept, well short of a second.
        time.sleep(max(0.0, accepted + 0.3 - time.monotonic()))
        s.sendall(v1("203.0.113.9", 9) + b"late header\n")
        self.assertEqual(recv_exactly(s, 12), b"late header\n")
        server.wait_log(r"SIGTERM: shutting down, 1 connection open")
        s.close()
        self.assertEqual(server.wait(timeout=scaled(10)), 0,
                         server.stderr())

    def test_max_connections_per_ip_counts_real_clients(self):
        server, admin = self.start("--max-connections-per-ip", "1")
        a1 = self.connect(server.address)
        a1.sendall(v1("203.0.113.1", 1) + b"a")
        self.assertEqual(recv_exactly(a1, 1), b"a")
        b1 = self.connect(server.address)  # same proxy, another client
        b1.sendall(v2("203.0.113.2", 2) + b"b")
        self.assertEqual(recv_exactly(b1, 1), b"b")
        a2 = self.connect(server.address)  # the first client again
        a2.sendall(v1("203.0.113.1", 3) + b"x")
        self.assertEqual(recv_until_eof(a2, timeout=scaled(10)), b"")
        server.wait_log(r"max_connections_per_ip reached for "
                        r"203\.0\.113\.1:3 \(through 127\.0\.0\.1:\d+\)")
        m = scrape(admin)
        self.assertEqual(metric(m, "echod_connections_refused_total",
                                reason="max_connections_per_ip"), 1)
        self.assertIn("reason=refused", self.closed_lines(server, 1)[0])
        # Its slot comes back when it closes.
        a1.close()
        wait_for(lambda: metric(scrape(admin),
                                "echod_connections_active") == 1,
                 10, "the first client's connection closed")
        a3 = self.connect(server.address)
        a3.sendall(v1("203.0.113.1", 4) + b"y")
        self.assertEqual(recv_exactly(a3, 1), b"y")
        for s in (b1, a2, a3):
            s.close()
        server.stop_cleanly(self)


class TlsAndClientTest(ProxyTestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-proxy-")
        self.addCleanup(tmp.cleanup)
        self.cert, self.key = make_cert(tmp.name)

    def start_tls(self, *args):
        return self.start("--tls-certificate", self.cert,
                          "--tls-certificate-key", self.key, *args,
                          listen=("127.0.0.1:0 proxy_protocol tls",))

    def test_header_before_the_handshake(self):
        server, _ = self.start_tls()
        raw = self.connect(server.address)
        raw.sendall(v2("192.0.2.77", 7777))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"over TLS")
            self.assertEqual(recv_exactly(s, 8), b"over TLS")
        server.wait_log(r"PROXY v2 header: client 192\.0\.2\.77:7777")
        server.stop_cleanly(self)

    def test_echo_client_every_mode(self):
        server, admin = self.start_tls()
        tls = ["--tls", "--insecure"]
        host, port = server.address
        for version in ("v1", "v2"):
            r = run_client(tls + ["-n", "3", "-s", "100k", "--proxy",
                                  version, "--proxy-source",
                                  "192.0.2.50:5050", host, str(port)])
            self.assertEqual(r.returncode, 0, r.stderr)
        server.wait_log(r"PROXY v1 header: client 192\.0\.2\.50:5050")
        # Small writes and a long deadline: under valgrind TLS is slow.
        slow = ["-s", "16k", "-t", "60s"]
        for mode in ("pingpong", "stream", "connrate", "hold"):
            r = run_client(tls + slow + ["--load", "--mode", mode, "-c", "4",
                                         "-d", "0.5", "--proxy", "v2", host,
                                         str(port)], timeout=180)
            self.assertEqual(r.returncode, 0, (mode, r.stderr))
        plain, _ = self.start()
        host, port = plain.address
        for mode in ("pingpong", "stream", "connrate", "hold"):
            r = run_client(slow + ["--load", "--mode", mode, "-c", "4", "-d",
                                   "0.5", "--proxy", "v1", host, str(port)],
                           timeout=180)
            self.assertEqual(r.returncode, 0, (mode, r.stderr))
        r = run_client(["-n", "2", "--proxy", "v1", host, str(port)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(metric(scrape(admin),
                                "echod_connections_closed_total",
                                reason="proxy"), 0)
        server.stop_cleanly(self)
        plain.stop_cleanly(self)

    def test_without_a_header_a_proxy_listener_refuses(self):
        """echo-client without --proxy against a proxy listener fails: the
        echo would otherwise be taken for a header."""
        server, _ = self.start()
        host, port = server.address
        r = run_client(["-n", "1", host, str(port)])
        self.assertEqual(r.returncode, 1, r.stderr)


class ConfigTest(EchodTestCase):
    def test_parameter_and_options(self):
        for bad, why in (("127.0.0.1:0 udp proxy_protocol", "PROXY header"),
                         ("127.0.0.1:0 proxy_protocol proxy_protocol",
                          "given twice")):
            r = run_echod(["--check-config", "-l", bad])
            self.assertEqual(r.returncode, 64, r.stderr)
            self.assertIn(why.encode(), r.stderr)
        r = run_echod(["--check-config", "-l",
                       "unix:/tmp/x.sock proxy_protocol",
                       "--proxy-protocol-timeout", "2s"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for args in (["--proxy", "v3"], ["--proxy-source", "1.2.3.4:5"],
                     ["--proxy", "v1", "-u"],
                     ["--proxy", "v1", "--proxy-source", "*:5"]):
            r = run_client(args + ["127.0.0.1", "9"])
            self.assertEqual(r.returncode, 64, (args, r.stderr))


if __name__ == "__main__":
    echodtest.main()

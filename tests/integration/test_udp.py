#!/usr/bin/env python3
"""UDP echo (RFC 862, `listen = ADDR udp`): nc -u, socat UDP: and Python
get each datagram back unchanged, up to 65,507 bytes, from the address
they sent it to (a wildcard listener answers 127.0.0.2 from 127.0.0.2);
each worker has its own socket on the port (SO_REUSEPORT); no reply goes
to the echo, daytime, qotd, chargen or time ports; udp_rate_limit caps
replies per source and second, and 0 lifts it; a reload opens and closes
UDP listeners; echo-client -u verifies replies, and tells a lost
datagram from a corrupted one. Counted in SIGUSR1's line."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import echodtest
from echodtest import (Echod, EchodTestCase, bound_port,
                       ipv6_loopback_available, run_client, run_echod, scaled,
                       ss, wait_for)

UDP_RE = (r"udp in=(\d+) out=(\d+) refused_port=(\d+) rate_limited=(\d+) "
          r"send_full=(\d+)")


def tool(test, name):
    path = shutil.which(name)
    if path is None:
        test.fail(f"{name} not found (build.sh installs it)")
    return path


class UDPTestCase(EchodTestCase):

    def start_udp(self, *args, listen=("127.0.0.1:0 udp",)):
        return self.start_echod(*args, listen=listen)

    def udp_counts(self, server, **want):
        """The counters of SIGUSR1's line; with want, asked again until
        those have the values given (a worker counts a reply just after
        sending it, so a client can be quicker than the count)."""
        got = {}

        def ask():
            mark = len(server.stderr_lines())
            server.send_signal(signal.SIGUSR1)
            m = server.wait_log(UDP_RE, start=mark)
            got.update(zip(("in", "out", "refused_port", "rate_limited",
                            "send_full"), map(int, m.groups())))
            return all(got[k] == v for k, v in want.items())
        wait_for(ask, 10, f"counters {want}", interval=0.05)
        return got

    def socket(self, family=socket.AF_INET, bind=None):
        s = socket.socket(family, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        if bind is not None:
            s.bind(bind)
        s.settimeout(scaled(5))
        return s


class Echo(UDPTestCase):

    def test_every_size_comes_back_unchanged(self):
        server = self.start_udp()
        s = self.socket()
        s.connect(server.address)
        for size in (0, 1, 100, 1472, 9000, 65507):
            data = os.urandom(size)
            s.send(data)
            self.assertEqual(s.recv(70000), data, f"{size} bytes")
        self.udp_counts(server, **{"in": 6, "out": 6})
        server.stop_cleanly(self)

    def test_nc_u(self):
        server = self.start_udp()
        host, port = server.address
        r = subprocess.run([tool(self, "nc"), "-u", "-w", "1", host,
                            str(port)], input=b"hello over udp\n",
                           capture_output=True, timeout=scaled(30))
        self.assertEqual(r.stdout, b"hello over udp\n", r.stderr)
        server.stop_cleanly(self)

    def test_socat_udp(self):
        server = self.start_udp()
        host, port = server.address
        r = subprocess.run([tool(self, "socat"), "-t", "1", "-",
                            f"UDP:{host}:{port}"], input=b"socat datagram\n",
                           capture_output=True, timeout=scaled(30))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"socat datagram\n")
        server.stop_cleanly(self)

    def test_wildcard_answers_from_the_address_written_to(self):
        server = self.start_udp(listen=("*:0 udp",))
        port = server.address[1]
        for dst in ("127.0.0.1", "127.0.0.2"):
            s = self.socket()
            s.connect((dst, port))  # drops replies from elsewhere
            s.send(b"to " + dst.encode())
            self.assertEqual(s.recv(100), b"to " + dst.encode())
        if ipv6_loopback_available():
            s = self.socket(socket.AF_INET6)
            s.connect(("::1", port))
            s.send(b"v6")
            self.assertEqual(s.recv(100), b"v6")
        server.stop_cleanly(self)

    def test_a_socket_per_worker_on_one_port(self):
        server = self.start_udp("--threads", "3")
        port = server.address[1]
        lines = [ln for ln in ss("-uan", f"sport = :{port}").splitlines()
                 if ln.strip()]
        self.assertEqual(len(lines), 3, lines)
        # Many sources (so the kernel spreads them): all answered.
        for i in range(50):
            s = self.socket()
            s.sendto(b"%d" % i, server.address)
            self.assertEqual(s.recv(100), b"%d" % i)
            s.close()
        server.stop_cleanly(self)

    def test_udp_beside_tcp_on_one_port(self):
        probe, port = bound_port()
        probe.close()
        server = self.start_udp(listen=(f"127.0.0.1:{port}",
                                        f"127.0.0.1:{port} udp"))
        with self.connect(("127.0.0.1", port)) as t:
            t.sendall(b"tcp\n")
            self.assertEqual(t.recv(10), b"tcp\n")
        s = self.socket()
        s.sendto(b"udp", ("127.0.0.1", port))
        self.assertEqual(s.recv(10), b"udp")
        server.stop_cleanly(self)


class Guards(UDPTestCase):

    def test_no_reply_to_reflector_ports(self):
        server = self.start_udp()
        for port in (7, 13, 17, 19, 37):
            try:
                s = self.socket(bind=("127.0.0.1", port))
            except OSError as e:
                self.fail(f"cannot bind UDP port {port} (the tests run "
                          f"as root in CI): {e}")
            s.sendto(b"loop?", server.address)
            s.settimeout(0.3)
            with self.assertRaises(socket.timeout, msg=f"port {port}"):
                s.recv(100)
        counts = self.udp_counts(server, refused_port=5)
        self.assertEqual(counts["out"], 0)
        server.stop_cleanly(self)

    def test_rate_limit_per_source(self):
        server = self.start_udp("--udp-rate-limit", "50")
        s = self.socket()
        for i in range(200):
            s.sendto(b"x", server.address)
        time.sleep(0.5)
        s.settimeout(0.2)
        got = 0
        try:
            while True:
                s.recv(10)
                got += 1
        except socket.timeout:
            pass
        # 200 sent in far less than a second: at most 50 a second, so
        # 100 if the burst straddled a second's turn.
        self.assertGreaterEqual(got, 1)
        self.assertLessEqual(got, 100)
        self.udp_counts(server, **{"in": 200, "out": got,
                                   "rate_limited": 200 - got})
        server.stop_cleanly(self)

    def test_rate_limit_0_answers_all(self):
        server = self.start_udp("--udp-rate-limit", "0")
        s = self.socket()
        s.connect(server.address)
        for i in range(2000):
            s.send(b"%d" % i)
            self.assertEqual(s.recv(100), b"%d" % i)
        self.udp_counts(server, **{"in": 2000, "rate_limited": 0})
        server.stop_cleanly(self)


class Client(UDPTestCase):

    def client(self, address, *args):
        host, port = address
        return run_client(list(args) + [host, port], timeout=60)

    def test_echo_client_u(self):
        server = self.start_udp()
        r = self.client(server.address, "-u")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(b"Received: Hello from client!"), 5)
        r = self.client(server.address, "-u", "-s", "65507", "-n", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(b"Received: 65507 bytes, verified"),
                         3)
        server.stop_cleanly(self)

    def test_loss_and_corruption_are_told_apart(self):
        # A UDP socket that never answers: every try is lost.
        silent, port = bound_port(socket.AF_INET)
        silent.close()
        silent = self.socket(bind=("127.0.0.1", port))
        r = self.client(("127.0.0.1", port), "-u", "-n", "1", "-t",
                        "200ms", "--retries", "2")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"no reply within 200ms, 3 tries: the datagram or "
                      b"its echo was lost", r.stderr)
        # One that answers with a changed byte.
        liar = self.socket(bind=("127.0.0.1", 0))

        def answer_wrong():
            data, peer = liar.recvfrom(70000)
            liar.sendto(data[:3] + b"?" + data[4:], peer)
        t = threading.Thread(target=answer_wrong)
        t.start()
        r = self.client(liar.getsockname(), "-u", "-n", "1")
        t.join(10)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"the reply differs: 19 bytes for the 19 sent, first "
                      b"difference at byte offset 3", r.stderr)

    def load(self, server, *args):
        host, port = server.address
        r = run_client(["-u", "--load", "-d", "1", "--warmup", "0.2",
                        "--json"] + list(args) + [host, port], timeout=120)
        return r, json.loads(r.stdout)

    def test_load_pingpong(self):
        server = self.start_udp("--udp-rate-limit", "0")
        r, res = self.load(server, "-c", "8", "-s", "1200")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(res["errors"], 0)
        self.assertGreater(res["messages"], 100)
        self.assertEqual(res["bytes"], res["messages"] * 1200)
        server.stop_cleanly(self)

    def test_load_counts_loss_apart_from_corruption(self):
        # 50 replies a second to one source: most datagrams go unanswered.
        server = self.start_udp("--udp-rate-limit", "50")
        r, res = self.load(server, "-c", "4", "-t", "100ms")
        self.assertEqual(r.returncode, 1)
        detail = res["error_detail"]
        self.assertGreater(detail["lost"], 0)
        self.assertEqual(detail["mismatch"], 0)
        self.assertGreater(res["messages"], 0)
        self.assertIn(b"lost: no reply within 100 ms", r.stderr)
        server.stop_cleanly(self)

    def test_load_drops_a_late_echo(self):
        """The first datagram's echo comes after -t: it counts as lost,
        and when it does come it is not taken for the next one's."""
        srv = self.socket(bind=("127.0.0.1", 0))
        srv.settimeout(0.2)
        stop = threading.Event()

        def serve():
            first = True
            while not stop.is_set():
                try:
                    data, peer = srv.recvfrom(70000)
                except socket.timeout:
                    continue
                if first:
                    first = False
                    threading.Timer(0.4, srv.sendto, (data, peer)).start()
                else:
                    srv.sendto(data, peer)
        t = threading.Thread(target=serve)
        t.start()
        try:
            host, port = srv.getsockname()
            r = run_client(["-u", "--load", "-c", "1", "-d", "1",
                            "--warmup", "0", "-t", "150ms", "--json", host,
                            port], timeout=60)
        finally:
            stop.set()
            t.join(10)
        res = json.loads(r.stdout)
        self.assertEqual(res["error_detail"]["lost"], 1, r.stderr)
        self.assertEqual(res["error_detail"]["mismatch"], 0, r.stderr)
        self.assertGreater(res["messages"], 10)

    def test_usage(self):
        r = run_client(["-u", "-s", "65508"])
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"a datagram carries at most 65507 bytes", r.stderr)
        r = run_client(["-u", "--tls"])
        self.assertEqual(r.returncode, 64)
        r = run_client(["--retries", "3"])
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"option --retries needs -u/--udp", r.stderr)


class Config(UDPTestCase):

    def test_reload_opens_and_closes_udp_listeners(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-udp-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "echod.conf")
        p1, p2 = bound_port(socket.AF_INET), bound_port(socket.AF_INET)
        (a, port1), (b, port2) = p1, p2
        a.close()
        b.close()
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{port1} udp\n")
        server = Echod("-c", conf, listen=(), expect=1)
        self.addCleanup(server.kill)
        server.start()
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{port2} udp\n")
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"configuration reloaded", start=mark)
        s = self.socket()
        s.sendto(b"new", ("127.0.0.1", port2))
        self.assertEqual(s.recv(10), b"new")
        old = self.socket()
        old.connect(("127.0.0.1", port1))
        old.send(b"old")
        with self.assertRaises(ConnectionRefusedError):
            old.recv(10)
        server.stop_cleanly(self)

    def test_nonsense_is_refused(self):
        for line, why in (("unix:/tmp/x.sock udp", b"'udp' needs an IP "
                           b"address"),
                          ("127.0.0.1:7 udp tls", b"DTLS is not served"),
                          ("127.0.0.1:7 udp delay=1s", b"faults (they act "
                           b"on streams)"),
                          ("127.0.0.1:7 udp udp", b"given twice")):
            r = run_echod(["--check-config", "-l", line])
            self.assertEqual(r.returncode, 64, line)
            self.assertIn(why, r.stderr, line)


if __name__ == "__main__":
    echodtest.main()

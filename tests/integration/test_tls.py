#!/usr/bin/env python3
"""TLS listeners (`listen = ADDR tls`): openssl s_client, ncat --ssl,
socat OPENSSL:, Python's ssl and echo-client --tls get their bytes back
exactly; mutual TLS refuses a client without a certificate when
tls_verify_client = yes and takes one signed by tls_client_certificate;
SIGHUP re-reads the certificate (the next handshake sees the new one, an
open connection carries on, a bad file keeps the old); a plaintext client,
garbage, a truncated or a stalled handshake close only that connection
and are counted; a slow TLS reader is held back like a plain one; a tls
listener without a usable certificate is a config error naming the file
and OpenSSL's reason. Certificates are made by `openssl` into a temporary
directory."""

import json
import os
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

import echodtest
from echodtest import (MIB, Echod, EchodTestCase, random_payload,
                       recv_exactly, run_client, run_echod, scaled, stats,
                       wait_for)

CERTS = None  # the temporary directory of setUpModule()


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def make_cert(name, cn, ca=True, san=None):
    """name.key and name.pem in CERTS: signed by the test CA, or the CA
    itself (ca=None: self-signed, trusted by no one)."""
    key, pem = (os.path.join(CERTS, name + ext) for ext in (".key", ".pem"))
    if ca is None or name == "ca":
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                "-out", pem, "-days", "2", "-subj", f"/CN={cn}")
        return key, pem
    csr = os.path.join(CERTS, name + ".csr")
    ext = os.path.join(CERTS, name + ".ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\n" if san else "")
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
            "-out", csr, "-subj", f"/CN={cn}")
    openssl("x509", "-req", "-in", csr, "-CA", cert("ca"), "-CAkey",
            os.path.join(CERTS, "ca.key"), "-CAcreateserial", "-out", pem,
            "-days", "2", "-extfile", ext)
    return key, pem


def cert(name):
    return os.path.join(CERTS, name + ".pem")


def key(name):
    return os.path.join(CERTS, name + ".key")


def setUpModule():
    global CERTS, _tmp
    _tmp = tempfile.TemporaryDirectory(prefix="echod-tls-")
    CERTS = _tmp.name
    make_cert("ca", "echod test CA")
    make_cert("server", "localhost", san="DNS:localhost,IP:127.0.0.1")
    make_cert("server2", "localhost", san="DNS:localhost,IP:127.0.0.1")
    make_cert("client", "echod test client")
    make_cert("stranger", "not from the CA", ca=None)


def tearDownModule():
    _tmp.cleanup()


def tool(test, name):
    path = shutil.which(name)
    if path is None:
        test.fail(f"{name} not found (build.sh installs it)")
    return path


def client_context(certfile=None, keyfile=None, alpn=None):
    ctx = ssl.create_default_context(cafile=cert("ca"))
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_pump(s, payload, sent=0, timeout=60):
    """Sends payload[sent:] on the TLS socket s while reading the echo,
    in one thread (an SSL object must not be used by two at once), until
    len(payload) bytes came back or the peer closed. Returns them."""
    view = memoryview(payload)
    got = bytearray()
    s.setblocking(False)
    deadline = time.monotonic() + scaled(timeout)
    with selectors.DefaultSelector() as sel:
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while len(got) < len(payload):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out: sent {sent}, received "
                                     f"{len(got)} of {len(payload)}")
            sel.select(0.5)
            try:
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        return bytes(got)
                    got.extend(chunk)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            if sent < len(payload):
                try:
                    sent += s.send(view[sent:sent + 65536])
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                if sent == len(payload):
                    sel.modify(s, selectors.EVENT_READ)
    s.setblocking(True)
    return bytes(got)


class RawTLS:
    """A TLS client over memory BIOs, so that a test decides which
    records leave in one TCP write: echod's OpenSSL reads ahead, and what
    it holds past the record it was asked for must still be served."""

    def __init__(self, test, address, tls13=False):
        self.sock = test.connect(address)
        self.sock.settimeout(scaled(10))
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = client_context()
        if tls13:  # the client's Finished is then its last flight
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname="localhost")

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def feed(self):
        data = self.sock.recv(1 << 16)
        if data:
            self.inc.write(data)
        else:
            self.inc.write_eof()
        return data

    def handshake(self, send_last=True):
        """Until the handshake is done; its last flight (the client's
        Finished) is sent only if send_last."""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.feed()
        if send_last:
            self.flush()

    def read_to_end(self, want):
        """What comes back until want bytes did, or the stream ended (a
        close_notify or a close); and whether it ended."""
        got = bytearray()
        while len(got) < want:
            try:
                data = self.obj.read(1 << 16)
            except ssl.SSLWantReadError:
                if not self.feed():
                    return bytes(got), True
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return bytes(got), True
            if not data:
                return bytes(got), True
            got += data
        return bytes(got), False


class TLSTestCase(EchodTestCase):

    def tls_args(self, *extra):
        return ["--tls-certificate", cert("server"),
                "--tls-certificate-key", key("server")] + list(extra)

    def start_tls(self, *extra, listen=None):
        return self.start_echod(*self.tls_args(*extra),
                                listen=listen or ("127.0.0.1:0 tls",))

    def tls_connect(self, address, ctx=None, name="localhost"):
        raw = self.connect(address)
        s = (ctx or client_context()).wrap_socket(raw, server_hostname=name)
        self.addCleanup(s.close)
        return s

    def client(self, server, *args, timeout=60):
        host, port = server.address
        return run_client(list(args) + [host, port], timeout=timeout)


class Clients(TLSTestCase):

    def test_python_ssl_byte_exact(self):
        server = self.start_tls()
        payload = random_payload(4 * MIB, seed=51)
        s = self.tls_connect(server.address)
        self.assertBytesEqual(tls_pump(s, payload), payload)
        server.stop_cleanly(self)

    def test_pingpong_of_every_size_across_records(self):
        """Each message is echoed whole before the next is sent, so no
        later bytes arrive to wake a read: a size that stops a read in the
        middle of a record (the read watermarks) must still come back."""
        server = self.start_tls()
        s = self.tls_connect(server.address)
        s.settimeout(scaled(10))
        # Each item is sent as these writes (so as these records), then
        # waited for: 1000 + 65536 stops a 64 KiB read 1000 bytes short
        # of its last record.
        for i, sizes in enumerate([[1], [64], [895], [896], [897], [1000],
                                   [2000], [4096], [16383], [16384],
                                   [16385], [20000], [65535], [65536],
                                   [70000], [1000, 65000], [1000, 65536],
                                   [100, 3, 5000],
                                   [3]]):
            payload = random_payload(sum(sizes), seed=i)
            n, at = len(payload), 0
            for k in sizes:
                s.sendall(payload[at:at + k])
                at += k
            got = b""
            while len(got) < n:
                chunk = s.recv(n - len(got))
                self.assertTrue(chunk, f"EOF after {len(got)} of {n}")
                got += chunk
            self.assertBytesEqual(got, payload, f"{n}-byte echo")
        s.close()
        server.stop_cleanly(self)

    def test_a_fin_with_echo_still_queued_gets_all_of_it(self):
        """A peer that sends, then shuts its side (a bare FIN, no
        close_notify) before reading a byte: the echo queued then is all
        written, and only then does echod close."""
        server = self.start_tls("--max-buffer", "16m")
        s = self.tls_connect(server.address)
        payload = random_payload(4 * MIB, seed=77)
        s.sendall(payload)
        # The TCP socket's shutdown, under the TLS session.
        socket.socket.shutdown(s, socket.SHUT_WR)
        s.settimeout(scaled(20))
        got = bytearray()
        while len(got) < len(payload):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
        self.assertBytesEqual(bytes(got), payload)

    def test_bytes_sent_with_the_last_handshake_flight_are_echoed(self):
        """The client's Finished and its first bytes in one TCP write:
        echod's OpenSSL reads them in one read, and the bytes, held in the
        SSL when the handshake ends, are echoed though the socket has
        nothing more to say."""
        server = self.start_tls()
        c = RawTLS(self, server.address, tls13=True)
        c.handshake(send_last=False)
        msg = b"first bytes, with the Finished\n"
        c.obj.write(msg)
        c.flush()
        got, _ = c.read_to_end(len(msg))
        self.assertBytesEqual(got, msg)
        server.stop_cleanly(self)

    def test_a_close_notify_with_the_last_bytes_ends_the_stream(self):
        """Bytes and then a close_notify in one TCP write, the TCP
        connection left open: the echo comes back, then echod's own end of
        the stream, though the socket never says the peer is done."""
        server = self.start_tls()
        c = RawTLS(self, server.address)
        c.handshake()
        msg = b"last words\n"
        c.obj.write(msg)
        try:
            c.obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # its close_notify is written; the server's to come
        c.flush()
        got, ended = c.read_to_end(len(msg) + 1)
        self.assertBytesEqual(got, msg)
        self.assertTrue(ended, "echod did not end the stream")
        server.stop_cleanly(self)

    def test_openssl_s_client(self):
        server = self.start_tls()
        host, port = server.address
        data = b"over TLS with s_client\n" * 100
        p = subprocess.Popen([tool(self, "openssl"), "s_client", "-quiet",
                              "-connect", f"{host}:{port}", "-servername",
                              "localhost", "-CAfile", cert("ca"),
                              "-verify_return_error"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            p.stdin.write(data)
            p.stdin.flush()
            got = b""
            deadline = time.monotonic() + scaled(30)
            while len(got) < len(data) and time.monotonic() < deadline:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                got += chunk
        finally:
            p.kill()
            p.communicate()
        self.assertBytesEqual(got, data)
        server.stop_cleanly(self)

    def test_ncat_ssl(self):
        server = self.start_tls()
        _, port = server.address
        data = random_payload(256 * 1024, seed=52)
        r = subprocess.run([tool(self, "ncat"), "--ssl", "--ssl-verify",
                            "--ssl-trustfile", cert("ca"), "localhost",
                            str(port)],
                           input=data, capture_output=True,
                           timeout=scaled(60))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, data)
        server.stop_cleanly(self)

    def test_socat_openssl(self):
        server = self.start_tls()
        _, port = server.address
        data = b"socat speaks TLS\n" * 1000
        r = subprocess.run([tool(self, "socat"), "-t", "10", "-",
                            f"OPENSSL:localhost:{port},cafile={cert('ca')}"],
                           input=data, capture_output=True,
                           timeout=scaled(60))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, data)
        server.stop_cleanly(self)

    def test_echo_client_tls(self):
        server = self.start_tls()
        r = self.client(server, "--tls", "--ca", cert("ca"), "-s", "1m",
                        "-n", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(b"Received: 1048576 bytes, "
                                        b"verified"), 3)
        # The server's name is checked: 127.0.0.1 is in the certificate,
        # a name that is not fails, naming why.
        r = self.client(server, "--tls", "--ca", cert("ca"), "--sni",
                        "elsewhere.example", "-n", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"TLS handshake failed", r.stderr)
        self.assertIn(b"hostname mismatch", r.stderr)
        r = self.client(server, "--tls", "-n", "1")  # system CAs only
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"unable to get local issuer certificate", r.stderr)
        r = self.client(server, "--tls", "--insecure", "-n", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        server.stop_cleanly(self)

    def test_plain_and_tls_side_by_side(self):
        server = self.start_tls(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))
        plain, tls = server.addresses
        with self.connect(plain) as s:
            s.sendall(b"plain\n")
            self.assertEqual(recv_exactly(s, 6), b"plain\n")
        s = self.tls_connect(tls)
        s.sendall(b"secret\n")
        self.assertEqual(recv_exactly(s, 7), b"secret\n")
        server.stop_cleanly(self)

    def test_a_drain_ends_tls_with_close_notify(self):
        server = self.start_tls()
        s = client_context().wrap_socket(self.connect(server.address),
                                         server_hostname="localhost",
                                         suppress_ragged_eofs=False)
        self.addCleanup(s.close)
        s.sendall(b"before the drain\n")
        self.assertEqual(recv_exactly(s, 17), b"before the drain\n")
        server.send_signal(signal.SIGTERM)
        s.settimeout(scaled(10))
        # An EOF without close_notify would raise SSLEOFError here.
        self.assertEqual(s.recv(1), b"")
        self.assertEqual(server.wait(), 0, server.stderr())

    def test_sni_and_alpn_are_recorded(self):
        server = self.start_tls("--log-level", "debug")
        s = self.tls_connect(server.address,
                             client_context(alpn=["echo-test", "h2"]))
        self.assertEqual(s.selected_alpn_protocol(), "echo-test")
        s.sendall(b"x")
        recv_exactly(s, 1)
        server.wait_log(r"TLS handshake done: TLSv1\.3 \S+, sni localhost, "
                        r"alpn echo-test")
        server.stop_cleanly(self)


class Load(TLSTestCase):
    """echo-client --load --tls: every mode verifies every byte over TLS;
    connrate makes a handshake per cycle."""

    def load(self, server, mode, *args):
        host, port = server.address
        r = run_client(["--tls", "--ca", cert("ca"), "--load", "--mode",
                        mode, "-d", "1", "--warmup", "0.2", "--json"] +
                       list(args) + [host, port], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_every_mode(self):
        server = self.start_tls()
        res = self.load(server, "pingpong", "-c", "8")
        self.assertEqual(res["errors"], 0)
        self.assertGreater(res["messages"], 100)
        res = self.load(server, "stream", "-c", "4", "-s", "16k")
        self.assertEqual(res["errors"], 0)
        self.assertGreater(res["bytes"], 1 << 20)
        res = self.load(server, "connrate", "-c", "4")
        self.assertEqual(res["errors"], 0)
        self.assertGreater(res["connects"], 20)
        res = self.load(server, "hold", "-c", "100")
        self.assertEqual((res["established"], res["echoed"]), (100, 100))
        # connrate's cycles were handshakes.
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGUSR1)
        m = server.wait_log(r"tls handshakes=(\d+) failed=(\d+)", start=mark)
        self.assertGreater(int(m.group(1)), res["established"] + 20)
        server.stop_cleanly(self)

    def test_a_failed_handshake_is_a_connect_error(self):
        server = self.start_tls()
        host, port = server.address
        r = run_client(["--tls", "--load", "--mode", "pingpong", "-c", "2",
                        "-d", "1", "-t", "2s", host, port], timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"TLS handshake with 127.0.0.1:", r.stderr)
        self.assertIn(b"unable to get local issuer certificate", r.stderr)
        server.stop_cleanly(self)


class MutualTLS(TLSTestCase):

    def test_yes_refuses_a_client_without_certificate(self):
        server = self.start_tls("--tls-verify-client", "yes",
                                "--tls-client-certificate", cert("ca"))
        r = self.client(server, "--tls", "--ca", cert("ca"), "-n", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"certificate required", r.stderr)
        r = self.client(server, "--tls", "--ca", cert("ca"), "--cert",
                        cert("client"), "--key", key("client"), "-n", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        # One from outside the CA is refused too.
        r = self.client(server, "--tls", "--ca", cert("ca"), "--cert",
                        cert("stranger"), "--key", key("stranger"), "-n", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"unknown ca", r.stderr)
        server.stop_cleanly(self)

    def test_optional_takes_clients_with_and_without(self):
        server = self.start_tls("--tls-verify-client", "optional",
                                "--tls-client-certificate", cert("ca"))
        r = self.client(server, "--tls", "--ca", cert("ca"), "-n", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.client(server, "--tls", "--ca", cert("ca"), "--cert",
                        cert("client"), "--key", key("client"), "-n", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        server.stop_cleanly(self)


class Reload(TLSTestCase):

    def test_sighup_swaps_the_certificate_and_keeps_a_bad_one_out(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-tls-reload-")
        self.addCleanup(tmp.cleanup)
        live_cert = os.path.join(tmp.name, "live.pem")
        live_key = os.path.join(tmp.name, "live.key")
        shutil.copy(cert("server"), live_cert)
        shutil.copy(key("server"), live_key)
        conf = os.path.join(tmp.name, "echod.conf")
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:0 tls\n"
                    f"tls_certificate = {live_cert}\n"
                    f"tls_certificate_key = {live_key}\n")
        server = Echod("-c", conf, listen=(), expect=1)
        self.addCleanup(server.kill)
        server.start()

        def peer_der():
            s = self.tls_connect(server.address)
            der = s.getpeercert(binary_form=True)
            s.close()
            return der

        def der_of(name):
            with open(cert(name)) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        self.assertEqual(peer_der(), der_of("server"))
        old = self.tls_connect(server.address)
        shutil.copy(cert("server2"), live_cert)
        shutil.copy(key("server2"), live_key)
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"configuration reloaded", start=mark)
        self.assertEqual(peer_der(), der_of("server2"))
        old.sendall(b"still here\n")
        self.assertEqual(recv_exactly(old, 11), b"still here\n")
        # A bad file: logged, and the certificate in use stays.
        with open(live_cert, "w") as f:
            f.write("not a certificate\n")
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"reload failed, keeping the running configuration: "
                        r"tls_certificate '.*live\.pem': .*no start line",
                        start=mark)
        self.assertEqual(peer_der(), der_of("server2"))
        server.stop_cleanly(self)


class BadPeers(TLSTestCase):

    def assert_closed(self, s):
        s.settimeout(scaled(10))
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass

    def test_each_bad_handshake_closes_only_its_connection(self):
        server = self.start_tls("--handshake-timeout", "500ms",
                                "--log-level", "debug")
        good = self.tls_connect(server.address)
        # A plaintext client on a TLS port.
        with self.connect(server.address) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            self.assert_closed(s)
        # Garbage.
        with self.connect(server.address) as s:
            s.sendall(random_payload(4096, seed=53))
            self.assert_closed(s)
        # A handshake cut short: the first bytes of a real ClientHello.
        hello = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_context().wrap_bio(*hello, server_hostname="localhost")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        with self.connect(server.address) as s:
            s.sendall(hello[1].read()[:40])
            s.shutdown(socket.SHUT_WR)
            self.assert_closed(s)
        # A handshake that never comes: closed at handshake_timeout.
        with self.connect(server.address) as s:
            t0 = time.monotonic()
            self.assert_closed(s)
            self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        counts = []

        def counted():
            # The server may note a handshake a moment after the client.
            mark = len(server.stderr_lines())
            server.send_signal(signal.SIGUSR1)
            m = server.wait_log(r"tls handshakes=(\d+) failed=(\d+) "
                                r"timed_out=(\d+)", start=mark)
            counts[:] = [int(g) for g in m.groups()]
            return counts == [1, 4, 1]
        wait_for(counted, 10, "handshakes=1 failed=4 timed_out=1",
                 interval=0.05)
        log = server.stderr()
        self.assertRegex(log, r"127\.0\.0\.1:\d+: TLS handshake failed: "
                         r".*(http request|wrong version number)")
        self.assertIn("TLS handshake not done within handshake_timeout", log)
        # The good connection never noticed.
        good.sendall(b"unharmed\n")
        self.assertEqual(recv_exactly(good, 9), b"unharmed\n")
        server.stop_cleanly(self)


class Backpressure(TLSTestCase):

    def test_a_slow_tls_reader_is_held_back(self):
        server = self.start_tls("--max-buffer", "256k")
        raw = socket.create_connection(server.address)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s = client_context().wrap_socket(raw, server_hostname="localhost")
        self.addCleanup(s.close)
        payload = random_payload(48 * MIB, seed=54)
        view = memoryview(payload)
        rss0 = server.rss_kib()
        # Send without reading until nothing more is taken for 1.5s.
        s.setblocking(False)
        sent, last = 0, time.monotonic()
        deadline = time.monotonic() + scaled(60)
        while time.monotonic() - last < 1.5 and sent < len(payload):
            self.assertLess(time.monotonic(), deadline)
            try:
                sent += s.send(view[sent:sent + 65536])
                last = time.monotonic()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                time.sleep(0.01)
        self.assertLess(sent, 24 * MIB, "echod kept reading a slow reader")
        grown = server.rss_kib() - rss0
        if echodtest.rss_is_meaningful():
            self.assertLess(grown, 16 * 1024,
                            f"echod grew {grown} KiB holding a slow reader")
        # Reading now brings everything back, in order.
        self.assertBytesEqual(tls_pump(s, payload, sent), payload)
        server.stop_cleanly(self)

    def test_a_fast_tls_sender_is_held_back_too(self):
        """Records made in advance and sent as fast as the socket takes
        them: echod's OpenSSL reads ahead, and what echod drains from the
        SSL past the bufferevent's read is only what it holds already,
        never the socket's whole queue, which such a sender keeps full
        (megabytes, once a fast exchange has grown the socket's receive
        buffer): its peak stays near max_buffer."""
        server = self.start_tls("--max-buffer", "256k")
        c = RawTLS(self, server.address)
        c.handshake()
        c.sock.settimeout(scaled(30))
        for rnd, (size, pause) in enumerate(((32 * MIB, 0), (48 * MIB, 1.5))):
            payload = random_payload(size, seed=55 + rnd)
            for off in range(0, len(payload), 16384):
                c.obj.write(payload[off:off + 16384])
            wire = c.out.read()
            peak0 = server.peak_rss_kib()
            sent = [0]

            def sender():
                view = memoryview(wire)
                try:
                    while sent[0] < len(wire):
                        sent[0] += c.sock.send(
                            view[sent[0]:sent[0] + (1 << 20)])
                except OSError:
                    pass  # the test is over (its socket closed)
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            # The second round stops reading until nothing more is taken.
            last, seen = time.monotonic(), -1
            deadline = time.monotonic() + scaled(60)
            while pause and time.monotonic() - last < pause:
                self.assertLess(time.monotonic(), deadline)
                if sent[0] != seen:
                    seen, last = sent[0], time.monotonic()
                time.sleep(0.05)
            if pause:
                self.assertLess(sent[0], 24 * MIB, "echod kept reading")
            got = bytearray()
            while len(got) < len(payload):
                try:
                    got += c.obj.read(1 << 20)
                except ssl.SSLWantReadError:
                    self.assertTrue(c.feed(), "echod closed early")
            t.join(scaled(30))
            self.assertBytesEqual(bytes(got), payload)
        grown = server.peak_rss_kib() - peak0
        sys.stderr.write(f"\n  peak RSS grew {grown} KiB\n")
        if echodtest.rss_is_meaningful():
            self.assertLess(grown, 4 * 1024,
                            f"echod's peak grew {grown} KiB for a "
                            f"max_buffer of 256 KiB")
        server.stop_cleanly(self)

    def test_a_peer_that_resets_with_echo_queued_is_closed(self):
        """A peer that stops reading, then resets: the write of its queued
        echo fails (libevent reports it as an EOF while writing, a dirty
        shutdown being allowed), and the connection is closed rather than
        written to again and again."""
        server = self.start_tls("--max-buffer", "256k")
        raw = socket.create_connection(server.address)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s = client_context().wrap_socket(raw, server_hostname="localhost")
        payload = random_payload(48 * MIB, seed=55)
        view = memoryview(payload)
        s.setblocking(False)
        sent, last = 0, time.monotonic()
        while time.monotonic() - last < 1.0 and sent < len(payload):
            try:
                sent += s.send(view[sent:sent + 65536])
                last = time.monotonic()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                time.sleep(0.01)
        self.assertLess(sent, len(payload), "the peer never fell behind")
        before = stats(server)
        self.assertEqual(before["current"], 1)
        # Bytes count as sent once written: an echo queued behind a full
        # socket is not among them.
        self.assertLess(before["out"], before["in"])
        # A reset: close with a zero linger.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()
        wait_for(lambda: stats(server)["current"] == 0, scaled(10),
                 "the reset connection closed", interval=0.1)
        # What was never written is not counted, nor taken back.
        self.assertEqual(stats(server)["out"], before["out"])
        cpu = echodtest.cpu_seconds(server.pid)
        time.sleep(1)
        self.assertLess(echodtest.cpu_seconds(server.pid) - cpu, 0.5,
                        "echod is busy with no connection")
        server.stop_cleanly(self)


def mapped(pid):
    """The file names of the shared objects process pid has mapped."""
    with open(f"/proc/{pid}/maps") as f:
        return {os.path.basename(line.split()[-1]) for line in f
                if len(line.split()) >= 6}


class Module(TLSTestCase):
    """TLS is echod-tls.so, beside echod in a build (ECHOD_MODULE_DIR once
    installed), loaded the first time a tls listener is configured: an
    echod with none never maps OpenSSL."""

    def test_plain_echod_maps_no_openssl(self):
        server = self.start_echod()
        with self.connect(server.address) as s:
            self.assertEqual(echodtest.exchange(s, b"plain\n", 10),
                             b"plain\n")
        libs = mapped(server.pid)
        for lib in ("echod-tls.so", "libssl.so.3", "libcrypto.so.3"):
            self.assertNotIn(lib, libs)
        server.stop_cleanly(self)

    def test_a_tls_listener_loads_it_and_a_reload_too(self):
        server = self.start_tls()
        self.assertIn("echod-tls.so", mapped(server.pid))
        self.assertIn("libssl.so.3", mapped(server.pid))
        server.stop_cleanly(self)

        # Started plain, then given a tls listener by SIGHUP.
        tmp = tempfile.TemporaryDirectory(prefix="echod-tls-module-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "echod.conf")
        port = echodtest.free_port()
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:0\n")
        server = Echod("-c", conf, listen=(), expect=1)
        self.addCleanup(server.kill)
        server.start()
        self.assertNotIn("echod-tls.so", mapped(server.pid))
        with open(conf, "a") as f:
            f.write(f"listen = 127.0.0.1:{port} tls\n"
                    f"tls_certificate = {cert('server')}\n"
                    f"tls_certificate_key = {key('server')}\n")
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(rf"listening on 127\.0\.0\.1:{port}\b",
                        start=mark)
        s = self.tls_connect(("127.0.0.1", port))
        payload = random_payload(100000, seed=7)
        self.assertBytesEqual(tls_pump(s, payload), payload)
        self.assertIn("echod-tls.so", mapped(server.pid))
        server.stop_cleanly(self)

    def copy_of_echod(self, module=None):
        """echod copied alone into a temporary directory, with module
        beside it as echod-tls.so if given."""
        tmp = tempfile.TemporaryDirectory(prefix="echod-tls-module-")
        self.addCleanup(tmp.cleanup)
        exe = os.path.join(tmp.name, "echod")
        shutil.copy(echodtest.echod_path(), exe)
        if module is not None:
            shutil.copy(module, os.path.join(tmp.name, "echod-tls.so"))
        return exe

    def run_copy(self, exe, *args):
        return subprocess.run(list(echodtest.WRAPPER) + [exe] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=scaled(10))

    def test_without_it_tls_is_a_config_error_and_plain_works(self):
        exe = self.copy_of_echod()
        r = self.run_copy(exe, "--check-config", "-l", "127.0.0.1:0 tls",
                          *self.tls_args())
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"cannot load TLS support: ", r.stderr)
        self.assertIn(b"echod-tls.so", r.stderr)
        r = self.run_copy(exe, "-l", "127.0.0.1:0 tls", *self.tls_args())
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"cannot load TLS support: ", r.stderr)
        r = self.run_copy(exe, "--check-config", "-l", "127.0.0.1:0")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_module_not_of_this_echod_is_refused(self):
        # A shared object, but not echod's TLS module.
        other = next(p for p in ("/lib/x86_64-linux-gnu/libz.so.1",
                                 "/usr/lib/x86_64-linux-gnu/libz.so.1")
                     if os.path.exists(p))
        exe = self.copy_of_echod(module=other)
        r = self.run_copy(exe, "--check-config", "-l", "127.0.0.1:0 tls",
                          *self.tls_args())
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"is not this echod's", r.stderr)


class Config(TLSTestCase):

    def check(self, *args):
        return run_echod(["--check-config"] + list(args))

    def test_a_tls_listener_needs_a_certificate(self):
        r = self.check("-l", "127.0.0.1:0 tls")
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"a tls listener needs tls_certificate and "
                      b"tls_certificate_key", r.stderr)
        r = self.check("-l", "127.0.0.1:0 tls", "--tls-certificate",
                       "/nonexistent.pem", "--tls-certificate-key",
                       key("server"))
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"tls_certificate '/nonexistent.pem': ", r.stderr)
        r = self.check("-l", "127.0.0.1:0 tls", "--tls-certificate",
                       cert("server"), "--tls-certificate-key",
                       key("client"))
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"tls_certificate_key '" + key("client").encode() +
                      b"': ", r.stderr)
        self.assertIn(b"key values mismatch", r.stderr)
        r = self.check("-l", "127.0.0.1:0 tls", *self.tls_args())
        self.assertEqual(r.returncode, 0, r.stderr)
        # Starting fails the same way, before listening.
        r = run_echod(["-l", "127.0.0.1:0 tls", "--tls-certificate",
                       "/nonexistent.pem", "--tls-certificate-key",
                       key("server")])
        self.assertEqual(r.returncode, 78, r.stderr)

    def test_tls_keys_are_checked(self):
        r = self.check("--tls-certificate", "server.pem")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn(b"must be an absolute path, not 'server.pem'",
                      r.stderr)
        r = self.check("--tls-protocols", "TLSv1.1")
        self.assertEqual(r.returncode, 64, r.stderr)
        r = self.check("--tls-verify-client", "maybe")
        self.assertEqual(r.returncode, 64, r.stderr)
        r = self.check("-l", "127.0.0.1:0 tls", "--tls-verify-client", "yes",
                       *self.tls_args())
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"tls_verify_client needs tls_client_certificate",
                      r.stderr)
        r = self.check("-l", "127.0.0.1:0 tls delay=1s", *self.tls_args())
        self.assertEqual(r.returncode, 64, r.stderr)

    def test_protocols_are_enforced(self):
        server = self.start_tls("--tls-protocols", "TLSv1.3")
        ctx = client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises(ssl.SSLError):
            self.tls_connect(server.address, ctx)
        s = self.tls_connect(server.address)
        self.assertEqual(s.version(), "TLSv1.3")
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

"""Half-close: when the peer shuts down its write side, echod still echoes
everything it received, then closes (a FIN, never a reset). Checked with
real tools (netcat-openbsd's `nc -N`, socat, ncat, which all shut down
their write side at EOF on stdin) and with Python sockets, including
while echod's output to a peer is at its --max-buffer limit."""

import os
import shutil
import socket
import subprocess
import tempfile

import echodtest
from echodtest import (EchodTestCase, MIB, exchange, random_payload,
                       recv_until_eof, scaled)

# Tool -> Debian package that provides it.
TOOLS = {"nc": "netcat-openbsd", "socat": "socat", "ncat": "ncat"}


class HalfClose(EchodTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="echod-halfclose-")
        cls.file_1mib = os.path.join(cls.tmp.name, "1mib")
        cls.payload_1mib = random_payload(MIB, seed=11)
        with open(cls.file_1mib, "wb") as f:
            f.write(cls.payload_1mib)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.server = self.start_echod()
        self.host, self.port = self.server.address

    def tearDown(self):
        if self.server.alive():
            self.server.stop_cleanly(self)

    def tool(self, name):
        path = shutil.which(name)
        if path is None:
            self.fail(f"{name} not found: install Debian package "
                      f"{TOOLS[name]}")
        return path

    def run_tool(self, argv, stdin_bytes=None, stdin_file=None, timeout=60):
        if stdin_file is not None:
            with open(stdin_file, "rb") as f:
                r = subprocess.run(argv, stdin=f, capture_output=True,
                                   timeout=scaled(timeout))
        else:
            r = subprocess.run(argv, input=stdin_bytes, capture_output=True,
                               timeout=scaled(timeout))
        self.assertEqual(r.returncode, 0,
                         f"{' '.join(argv)} exited {r.returncode}: "
                         f"{r.stderr.decode(errors='replace')}")
        return r.stdout

    # netcat-openbsd: -N shuts the socket down after EOF on stdin.

    def test_nc_N_gets_small_data_back(self):
        out = self.run_tool([self.tool("nc"), "-N", self.host,
                             str(self.port)], stdin_bytes=b"data")
        self.assertEqual(out, b"data")

    def test_nc_N_gets_1mib_file_back(self):
        out = self.run_tool([self.tool("nc"), "-N", self.host,
                             str(self.port)], stdin_file=self.file_1mib)
        self.assertBytesEqual(out, self.payload_1mib)

    # socat: at EOF on stdin it shuts down the socket's write side and
    # waits up to -t seconds for the other direction to end.

    def test_socat_gets_small_data_back(self):
        out = self.run_tool([self.tool("socat"), "-t30", "-",
                             f"TCP:{self.host}:{self.port}"],
                            stdin_bytes=b"hello socat\n")
        self.assertEqual(out, b"hello socat\n")

    def test_socat_gets_1mib_file_back(self):
        out = self.run_tool([self.tool("socat"), "-t30", "-",
                             f"TCP:{self.host}:{self.port}"],
                            stdin_file=self.file_1mib)
        self.assertBytesEqual(out, self.payload_1mib)

    # ncat (7.93): half-closes at EOF on stdin by default (--no-shutdown
    # turns that off) and reads on until the server closes.

    def test_ncat_gets_small_data_back(self):
        out = self.run_tool([self.tool("ncat"), self.host, str(self.port)],
                            stdin_bytes=b"hello ncat\n")
        self.assertEqual(out, b"hello ncat\n")

    def test_ncat_gets_1mib_file_back(self):
        out = self.run_tool([self.tool("ncat"), self.host, str(self.port)],
                            stdin_file=self.file_1mib)
        self.assertBytesEqual(out, self.payload_1mib)

    # Python sockets.

    def test_all_data_echoed_before_close_after_shutdown_wr(self):
        payload = random_payload(256 * 1024, seed=3)
        with self.connect(self.server.address) as s:
            s.sendall(payload)  # fits in the socket buffers unread
            s.shutdown(socket.SHUT_WR)
            # A reset would raise ConnectionResetError here.
            self.assertBytesEqual(recv_until_eof(s, 30), payload)

    def test_1mib_with_half_close_while_reading(self):
        payload = random_payload(MIB, seed=4)
        with self.connect(self.server.address) as s:
            got = exchange(s, payload, 60, half_close=True)
        self.assertBytesEqual(got, payload)

    def test_half_close_after_several_messages(self):
        with self.connect(self.server.address) as s:
            for i in range(10):
                s.sendall(f"line {i}\n".encode())
            s.shutdown(socket.SHUT_WR)
            want = b"".join(f"line {i}\n".encode() for i in range(10))
            self.assertEqual(recv_until_eof(s, 10), want)


class HalfCloseAtBufferLimit(EchodTestCase):
    """EOF arrives while echod has stopped reading (output at max-buffer):
    everything must still come back."""

    def test_eof_while_output_full_still_echoes_everything(self):
        server = self.start_echod("--max-buffer", "4k", "--threads", "1")
        payload = random_payload(8 * MIB, seed=5)
        with self.connect(server.address) as s:
            got = exchange(s, payload, 120, half_close=True)
        self.assertBytesEqual(got, payload)
        server.stop_cleanly(self)

    def test_eof_read_with_echo_queued_still_echoes_everything(self):
        """The peer writes several MiB without reading and half-closes
        while echod holds most of it as queued echo (max_buffer is larger
        than the payload, the peer's receive buffer tiny): echod reads the
        EOF with echo still queued, then writes every byte, then closes."""
        server = self.start_echod("--max-buffer", "64m", "--threads", "1")
        payload = random_payload(12 * MIB, seed=6)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(scaled(60))
        s.connect(server.address)
        s.sendall(payload)  # echod takes it all: its queue holds 64m
        s.shutdown(socket.SHUT_WR)
        # echod has read every byte (and the EOF right behind them)
        # before the peer reads any of its echo.
        echodtest.wait_for(
            lambda: echodtest.stats(server)["in"] == len(payload), 30,
            "echod to read the whole payload", interval=0.05)
        self.assertBytesEqual(recv_until_eof(s, 60), payload)
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

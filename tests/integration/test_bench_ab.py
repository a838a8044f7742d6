#!/usr/bin/env python3
"""bench/ab, the fine-grained A/B: it compares servers slice by slice, and
says so by its exit status when one does not echo (1) or does not run (2)."""

import os
import subprocess
import sys
import tempfile
import unittest

import echodtest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
AB = os.path.join(REPO, "bench", "ab")

# A server that answers every read with as many bytes, all wrong.
MANGLER = r"""
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
def serve(c):
    with c:
        while True:
            b = c.recv(65536)
            if not b:
                return
            c.sendall(bytes((x ^ 0xff) for x in b))
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def ab(*args):
    build = os.path.dirname(os.path.dirname(echodtest.client_path()))
    return subprocess.run(
        [sys.executable, AB, "--unpinned", "--slices", "2", "--slice-s",
         "0.3", "--warmup-s", "0.1", "--build-dir", build] + list(args),
        capture_output=True, text=True,
        timeout=echodtest.scaled(120))


def echod_spec(name):
    return f"{name}={echodtest.echod_path()} --listen 127.0.0.1:{{port}}"


class BenchAbTest(unittest.TestCase):
    def test_two_servers_are_compared_slice_by_slice(self):
        r = ab(echod_spec("one"), echod_spec("two"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 slices of 0.3 s each, unpinned", r.stdout)
        rows = {line.split("|")[1].strip(): line
                for line in r.stdout.splitlines()
                if line.startswith("| one ") or line.startswith("| two ")}
        self.assertEqual(set(rows), {"one", "two"})
        # The second is read against the first: two ratios, each with
        # its quartiles.
        cells = [c.strip() for c in rows["two"].split("|")[1:-1]]
        self.assertEqual(len(cells), 5)
        for cell in cells[3:]:
            ratio, quart = cell.split(" ", 1)
            self.assertGreater(float(ratio), 0)
            self.assertRegex(quart, r"^\(\d+\.\d+–\d+\.\d+\)$")

    def test_tls_makes_the_load_speak_tls(self):
        with tempfile.TemporaryDirectory(prefix="echod-ab-") as d:
            key, pem = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                 "-subj", "/CN=localhost", "-keyout", key, "-out", pem],
                check=True, capture_output=True, timeout=60)
            specs = [f"{name}={echodtest.echod_path()} --listen "
                     f"'127.0.0.1:{{port}} tls' --tls-certificate {pem} "
                     f"--tls-certificate-key {key}"
                     for name in ("tls1", "tls2")]
            r = ab("--tls", *specs)
            self.assertEqual(r.returncode, 0, r.stderr)
            for name in ("tls1", "tls2"):
                self.assertRegex(r.stdout, rf"\n\| {name} \| [0-9.]+ \|")
            # Plain bytes to a TLS listener are a failed handshake.
            r = ab(*specs)
            self.assertNotEqual(r.returncode, 0, r.stdout)

    def test_a_server_that_echoes_wrong_bytes_fails_with_1(self):
        r = ab(echod_spec("echod"),
               f"mangler={sys.executable} -c '{MANGLER}' {{port}}")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("mangler: failed verification", r.stderr)
        self.assertNotIn("| echod ", r.stdout)

    def test_a_server_that_never_listens_is_broken_2(self):
        r = ab(echod_spec("echod"), "gone=/bin/false {port}")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("gone: not listening", r.stderr)

    def test_a_command_without_a_port_is_refused(self):
        r = ab(echod_spec("echod"), "other=/bin/true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no {port}", r.stderr)

    def test_a_missing_program_is_broken_2(self):
        r = ab(echod_spec("echod"), "nope=/nonexistent/server {port}")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("nope: cannot run /nonexistent/server", r.stderr)


if __name__ == "__main__":
    echodtest.main()

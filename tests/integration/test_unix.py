#!/usr/bin/env python3
"""Unix stream sockets: `listen = unix:/PATH` serves nc -U, socat and
Python clients byte for byte, half-close included; the socket file gets
unix_mode (and the user's ownership with -u), a stale file is replaced, a
live one or a file that is not a socket is an error naming it, the file
is removed at exit and when a reload drops the line, and systemd's
socket activation of a path works. echo-client -U PATH speaks to it in
every mode."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile

import echodtest
from echodtest import (EchodTestCase, Echod, MIB, exchange, random_payload,
                       run_echod, scaled, wait_for)


class UnixTestCase(EchodTestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-unix-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "echod.sock")

    def start_unix(self, *args, path=None):
        return self.start_echod(*args, listen=(f"unix:{path or self.path}",))

    def tool(self, name):
        path = shutil.which(name)
        if path is None:
            self.fail(f"{name} not found (build.sh installs it)")
        return path


class Serving(UnixTestCase):

    def test_listening_line_names_the_path(self):
        server = self.start_unix()
        self.assertEqual(server.address, self.path)
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode))
        server.stop_cleanly(self)

    def test_python_client_byte_exact_with_half_close(self):
        server = self.start_unix()
        payload = random_payload(4 * MIB, seed=21)
        with self.connect(self.path) as s:
            got = exchange(s, payload, 60, half_close=True)
        self.assertBytesEqual(got, payload)
        server.stop_cleanly(self)

    def test_nc_U_gets_its_data_back(self):
        server = self.start_unix()
        data = random_payload(256 * 1024, seed=22)
        r = subprocess.run([self.tool("nc"), "-N", "-U", self.path],
                           input=data, capture_output=True,
                           timeout=scaled(60))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, data)
        server.stop_cleanly(self)

    def test_socat_unix_connect_gets_its_data_back(self):
        server = self.start_unix()
        data = b"over a Unix socket\n" * 1000
        r = subprocess.run([self.tool("socat"), "-t", "30", "-",
                            f"UNIX-CONNECT:{self.path}"],
                           input=data, capture_output=True,
                           timeout=scaled(60))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, data)
        server.stop_cleanly(self)

    def test_beside_tcp_and_debug_names_the_peer(self):
        server = self.start_echod("-v", listen=("127.0.0.1:0",
                                                f"unix:{self.path}"))
        tcp, path = server.addresses
        self.assertEqual(path, self.path)
        with self.connect(tcp) as s:
            self.assertEqual(exchange(s, b"tcp\n", 10), b"tcp\n")
        with self.connect(path) as s:
            self.assertEqual(exchange(s, b"unix\n", 10), b"unix\n")
        server.wait_log(r"received 5 bytes from unix socket$")
        server.stop_cleanly(self)


class Client(UnixTestCase):
    """echo-client -U PATH, sequential and in every --load mode."""

    def test_seed_over_a_unix_socket(self):
        server = self.start_unix()
        r = echodtest.run_client(["-U", self.path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(),
                         "Received: Hello from client!\n" * 5)
        server.stop_cleanly(self)

    def test_every_load_mode_over_a_unix_socket(self):
        server = self.start_unix()
        for mode in ("pingpong", "stream", "connrate", "hold"):
            with self.subTest(mode=mode):
                r = echodtest.run_client(
                    ["--load", "--json", "--mode", mode, "-c", "4", "-d",
                     "0.5", "--warmup", "0.1", "-U", self.path])
                self.assertEqual(r.returncode, 0, r.stderr)
                j = json.loads(r.stdout.decode().splitlines()[-1])
                self.assertEqual(j["errors"], 0, j)
                if mode == "hold":
                    self.assertEqual(j["echoed"], 4, j)
                else:
                    self.assertGreater(j["bytes"], 0, j)
        server.stop_cleanly(self)

    def test_nobody_listening_names_the_socket(self):
        r = echodtest.run_client(["-n", "1", "-U", self.path])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode(),
                         f"echo-client: connection 1/1 to unix:{self.path}: "
                         f"cannot connect: No such file or directory\n")


class SocketFile(UnixTestCase):

    def mode(self):
        return stat.S_IMODE(os.lstat(self.path).st_mode)

    def test_default_mode_is_0660(self):
        server = self.start_unix()
        self.assertEqual(oct(self.mode()), oct(0o660))
        server.stop_cleanly(self)

    def test_unix_mode_sets_the_mode_and_a_reload_changes_it(self):
        conf = os.path.join(self.dir, "echod.conf")
        with open(conf, "w") as f:
            f.write(f"listen = unix:{self.path}\nunix_mode = 0600\n")
        server = Echod("-c", conf, listen=(), expect=1)
        self.addCleanup(server.kill)
        server.start()
        self.assertEqual(oct(self.mode()), oct(0o600))
        with open(conf, "w") as f:
            f.write(f"listen = unix:{self.path}\nunix_mode = 0666\n")
        start = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log("configuration reloaded", start=start)
        self.assertEqual(oct(self.mode()), oct(0o666))
        server.stop_cleanly(self)

    def test_removed_at_exit(self):
        server = self.start_unix()
        self.assertTrue(os.path.exists(self.path))
        server.stop_cleanly(self)
        self.assertFalse(os.path.exists(self.path), "socket file left")

    def test_stale_file_is_replaced(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.close()  # the file stays; nobody listens on it
        server = self.start_unix()
        self.assertIn("replaced a stale socket file", server.stderr())
        with self.connect(self.path) as c:
            self.assertEqual(exchange(c, b"fresh\n", 10), b"fresh\n")
        server.stop_cleanly(self)

    def test_live_socket_is_an_error_naming_it(self):
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(self.path)
        holder.listen(1)
        r = run_echod(["--listen", f"unix:{self.path}"])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(f"cannot listen on unix:{self.path}: Address already "
                      f"in use", err)
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode),
                        "echod removed a live socket")

    def test_file_that_is_not_a_socket_is_left_alone(self):
        with open(self.path, "w") as f:
            f.write("precious\n")
        r = run_echod(["--listen", f"unix:{self.path}"])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(f"cannot listen on unix:{self.path}: a file that is "
                      f"not a socket is in the way", err)
        with open(self.path) as f:
            self.assertEqual(f.read(), "precious\n")

    def test_reload_adds_and_removes_the_file(self):
        conf = os.path.join(self.dir, "echod.conf")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:0\n")
        server = Echod("-c", conf, listen=(), expect=1)
        self.addCleanup(server.kill)
        server.start()
        for text, exists in ((f"listen = 127.0.0.1:0\n"
                              f"listen = unix:{self.path}\n", True),
                             ("listen = 127.0.0.1:0\n", False)):
            with open(conf, "w") as f:
                f.write(text)
            start = len(server.stderr_lines())
            server.send_signal(signal.SIGHUP)
            server.wait_log("configuration reloaded", start=start)
            self.assertEqual(os.path.exists(self.path), exists, text)
        server.stop_cleanly(self)

    def test_user_owns_the_file(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to switch users")
        server = self.start_unix("-u", "nobody")
        st = os.lstat(self.path)
        self.assertEqual((st.st_uid, st.st_gid), (65534, 65534))
        with self.connect(self.path) as c:
            self.assertEqual(exchange(c, b"as nobody\n", 10),
                             b"as nobody\n")
        server.stop_cleanly(self)


class SocketActivation(UnixTestCase):

    def test_systemd_hands_over_a_path(self):
        activate = self.tool("systemd-socket-activate")
        proc = subprocess.Popen(
            [activate, "-l", self.path, "--"] + echodtest.WRAPPER +
            [echodtest.echod_path(), "--listen", "127.0.0.1:1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and
                        (proc.kill(), proc.wait()))
        # The file appears at bind(2), a moment before listen(2): until
        # then a connect is refused.
        conns = []

        def listening():
            try:
                conns.append(self.connect(self.path))
                return True
            except (FileNotFoundError, ConnectionRefusedError):
                return False
        wait_for(listening, 10, "systemd-socket-activate to listen",
                 interval=0.02)
        with conns[0] as c:  # starts echod
            self.assertEqual(exchange(c, b"activated\n", 20),
                             b"activated\n")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(scaled(10)), 0)
        err = proc.stderr.read().decode()
        self.assertIn("serving 1 socket from systemd", err)
        self.assertIn(f"listening on unix:{self.path}", err)
        self.assertNotIn("socket options", err)


if __name__ == "__main__":
    echodtest.main()

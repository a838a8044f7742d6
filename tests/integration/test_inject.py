#!/usr/bin/env python3
"""Injected faults, the listen parameters for testing clients: delay=
echoes each chunk no sooner than TIME after it came, in order, within
max_buffer; rate= trickles no faster than SIZE per second; close_after=
echoes exactly SIZE bytes then sends a FIN (no reset, whatever the client
still sends); reset_after= echoes exactly SIZE bytes then resets; stall
never reads, so senders block; chance= gives the faults to that share of
connections. Checked with Python clients, echo-client --expect-close and
--expect-reset, nc and socat. A plain listener beside faulty ones is
untouched, a reload changes faults for new connections only, and a drain
delivers delayed echo before exiting. Times are asserted as lower bounds;
rates as an upper bound the promise itself sets, and a wide lower one."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import echodtest
from echodtest import (MIB, Deadline, Echod, EchodTestCase, exchange, pump,
                       random_payload, recv_exactly, recv_until_eof,
                       run_client, run_echod, scaled, send_until_stalled,
                       small_buffer_socket, stats, wait_for)


def tool(test, name):
    path = shutil.which(name)
    if path is None:
        test.fail(f"{name} not found (build.sh installs it)")
    return path


class FaultTestCase(EchodTestCase):

    def start_faulty(self, params, *args):
        return self.start_echod(*args, listen=(f"127.0.0.1:0 {params}",))

    def client(self, server, *args, timeout=60):
        host, port = server.address
        return run_client(list(args) + [host, port], timeout=timeout)


class Delay(FaultTestCase):

    def test_each_chunk_comes_back_no_sooner_than_the_delay(self):
        server = self.start_faulty("delay=300ms")
        with self.connect(server.address) as s:
            first, second = b"first chunk\n", b"second chunk\n"
            t0 = time.monotonic()
            s.sendall(first)
            time.sleep(0.15)
            t1 = time.monotonic()
            s.sendall(second)
            got = recv_exactly(s, len(first))
            t_first = time.monotonic()
            got += recv_exactly(s, len(second))
            t_second = time.monotonic()
        self.assertBytesEqual(got, first + second)
        self.assertGreaterEqual(t_first - t0, 0.3)
        self.assertGreaterEqual(t_second - t1, 0.3)
        server.stop_cleanly(self)

    def test_big_echo_is_intact_and_in_order(self):
        server = self.start_faulty("delay=50ms")
        r = self.client(server, "-n", "2", "-s", "4m")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(b"Received: 4194304 bytes, "
                                        b"verified"), 2)
        server.stop_cleanly(self)

    def test_delayed_bytes_count_against_max_buffer(self):
        """A client that sends without reading is held back after about
        max_buffer bytes, delayed or not, and then gets it all back."""
        # Echo moves at most max_buffer per delay: 256k/50ms, 5 MiB/s.
        server = self.start_faulty("delay=50ms", "--max-buffer", "256k")
        payload = random_payload(16 * MIB, seed=41)
        s = small_buffer_socket(server.address)
        try:
            sent = send_until_stalled([s], memoryview(payload), stall=1.5)[0]
            # 256k held by echod, the rest in the two sockets' buffers
            # (6 MiB at most by Debian's tcp_rmem).
            self.assertLess(sent, 12 * MIB)
            got = pump(s, memoryview(payload), sent, timeout=120)
        finally:
            s.close()
        self.assertBytesEqual(got, payload)
        server.stop_cleanly(self)

    def test_sigterm_delivers_delayed_echo_first(self):
        server = self.start_faulty("delay=500ms")
        with self.connect(server.address) as s:
            s.sendall(b"owed before exit\n")
            time.sleep(0.1)
            server.send_signal(signal.SIGTERM)
            got = recv_exactly(s, 17)
        self.assertEqual(got, b"owed before exit\n")
        self.assertEqual(server.wait(), 0, server.stderr())


class Rate(FaultTestCase):

    RATE = 20 * 1024
    BURST = 1024  # fault_rate_burst(20k): a twentieth of a second's worth

    def test_trickles_at_the_rate(self):
        server = self.start_faulty("rate=20k")
        size = 100 * 1024
        payload = random_payload(size, seed=42)
        with self.connect(server.address) as s:
            t0 = time.monotonic()
            s.sendall(payload)
            got, samples = b"", []
            deadline = Deadline(60)
            while len(got) < size and not deadline.expired():
                s.settimeout(max(deadline.remaining(), 0.001))
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                samples.append((time.monotonic() - t0, len(got)))
            elapsed = time.monotonic() - t0
        self.assertBytesEqual(got, payload)
        # Never faster than the rate, plus one burst (the promise: noise
        # can only make it slower) ...
        for t, n in samples:
            self.assertLessEqual(n, self.BURST + self.RATE * t + 1,
                                 f"{n} bytes after {t:.3f}s")
        # ... and not much slower either: about 4.95s.
        self.assertGreaterEqual(elapsed, (size - self.BURST) / self.RATE)
        self.assertLess(elapsed, scaled(15), "far slower than rate=20k")
        server.stop_cleanly(self)


    def test_echo_client_verifies_a_trickle(self):
        server = self.start_faulty("rate=8k")
        t0 = time.monotonic()
        r = self.client(server, "-n", "1", "-s", "16k")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"Received: 16384 bytes, verified", r.stdout)
        # 16 KiB at 8 KiB/s, less the first burst of 409 bytes.
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        server.stop_cleanly(self)


class CloseAfter(FaultTestCase):

    def test_nc_sees_exactly_the_bytes_then_eof(self):
        server = self.start_faulty("close_after=10")
        host, port = server.address
        r = subprocess.run([tool(self, "nc"), "-N", host, str(port)],
                           input=b"hello world, more than ten\n",
                           capture_output=True, timeout=scaled(30))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"hello worl")
        server.stop_cleanly(self)

    def test_a_client_still_sending_gets_a_fin_not_a_reset(self):
        server = self.start_faulty("close_after=64k")
        payload = random_payload(4 * MIB, seed=43)
        with self.connect(server.address) as s:
            # pump() reads to EOF: a reset would raise instead.
            got = exchange(s, payload, timeout=60, half_close=True)
        self.assertBytesEqual(got, payload[:64 * 1024])
        wait_for(lambda: stats(server)["current"] == 0, 10,
                 "the connection to be freed", interval=0.1)
        server.stop_cleanly(self)

    def test_echo_client_expect_close(self):
        server = self.start_faulty("close_after=1000")
        r = self.client(server, "-n", "3", "-s", "64k", "--expect-close",
                        "1000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(
            b"Received: 1000 of 65536 bytes, verified, then the server "
            b"closed the connection, as expected"), 3, r.stdout)
        # The wrong count, or the wrong way of ending, fails.
        r = self.client(server, "-n", "1", "-s", "64k", "--expect-close",
                        "999")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"echoed more than 999 bytes; expected a close there",
                      r.stderr)
        r = self.client(server, "-n", "1", "-s", "64k", "--expect-reset",
                        "1000")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"server closed the connection after echoing 1000 of "
                      b"65536 bytes; expected a reset after 1000", r.stderr)
        # Without --expect-close, the close is a failure that names the
        # exact count.
        r = self.client(server, "-n", "1", "-s", "64k")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, rb"server closed the connection after "
                         rb"echoing 1000 of 65536 bytes \(first byte back "
                         rb"after [0-9.]+ms\)")
        server.stop_cleanly(self)

    def test_close_after_0_closes_before_any_echo(self):
        server = self.start_faulty("close_after=0")
        r = self.client(server, "-n", "1", "--expect-close", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        server.stop_cleanly(self)


class ResetAfter(FaultTestCase):

    def test_python_client_gets_exactly_the_bytes_then_a_reset(self):
        server = self.start_faulty("reset_after=100k")
        payload = random_payload(MIB, seed=44)
        with self.connect(server.address) as s:
            s.sendall(payload[:200 * 1024])
            got = b""
            with self.assertRaises(ConnectionResetError):
                while True:
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "EOF instead of a reset")
                    got += chunk
        self.assertBytesEqual(got, payload[:100 * 1024])
        server.stop_cleanly(self)

    def test_socat_reports_the_reset(self):
        server = self.start_faulty("reset_after=100")
        host, port = server.address
        p = subprocess.Popen([tool(self, "socat"), "-d", "-",
                              f"TCP:{host}:{port}"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            # Keep stdin open: socat is still reading when the reset
            # comes, and says so.
            p.stdin.write(b"r" * 200)
            p.stdin.flush()
            out, err = p.communicate(timeout=scaled(30))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(out, b"r" * 100)
        self.assertIn(b"Connection reset by peer", err)
        server.stop_cleanly(self)

    def test_echo_client_expect_reset(self):
        server = self.start_faulty("reset_after=4k")
        r = self.client(server, "-n", "3", "-s", "1m", "--expect-reset",
                        "4k")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(
            b"Received: 4096 of 1048576 bytes, verified, then the server "
            b"reset the connection, as expected"), 3, r.stdout)
        r = self.client(server, "-n", "1", "-s", "1m", "--expect-close",
                        "4k")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"server reset the connection after echoing 4096 of "
                      b"1048576 bytes; expected a close after 4096", r.stderr)
        server.stop_cleanly(self)


class Stall(FaultTestCase):

    def test_a_sender_blocks_and_nothing_comes_back(self):
        server = self.start_faulty("stall")
        payload = bytes(64 * MIB)
        s = small_buffer_socket(server.address)
        try:
            sent = send_until_stalled([s], memoryview(payload), stall=1.5)[0]
            self.assertLess(sent, 16 * MIB, "echod read from a stall")
            with self.assertRaises(BlockingIOError):
                s.recv(1)
            self.assertEqual(stats(server)["in"], 0)
        finally:
            s.close()
        server.stop_cleanly(self)

    def test_a_stalled_connection_ends_when_its_peer_closes(self):
        server = self.start_faulty("stall")
        with self.connect(server.address) as s:
            s.sendall(b"never read")
            wait_for(lambda: stats(server)["current"] == 1, 10,
                     "the connection to be open", interval=0.05)
        wait_for(lambda: stats(server)["current"] == 0, 10,
                 "the stalled connection to be freed", interval=0.05)
        server.stop_cleanly(self)


    def test_echo_client_times_out_on_a_stall(self):
        server = self.start_faulty("stall")
        r = self.client(server, "-n", "1", "-t", "500ms")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"timed out after 500ms (received 0 of 19 bytes)",
                      r.stderr)
        server.stop_cleanly(self)


class Chance(FaultTestCase):

    def test_faults_go_to_their_share_of_connections(self):
        server = self.start_faulty("close_after=0 chance=0.5")
        faulty = 0
        for _ in range(1000):
            with self.connect(server.address) as s:
                s.sendall(b"?")
                got = s.recv(1)
                faulty += got == b""
        # Binomial(1000, 0.5): 350..650 is over 9 standard deviations.
        self.assertGreater(faulty, 350)
        self.assertLess(faulty, 650)
        server.stop_cleanly(self)

    def test_echo_client_sees_chance_0_and_1(self):
        server = self.start_echod(listen=("127.0.0.1:0 close_after=0 "
                                          "chance=0",
                                          "127.0.0.1:0 close_after=0 "
                                          "chance=1"))
        never, always = server.addresses
        r = run_client(["-n", "50", never[0], never[1]], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_client(["-n", "50", "--expect-close", "0", always[0],
                        always[1]], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        server.stop_cleanly(self)


class OutOfMemory(FaultTestCase):
    """Echo a delay or a rate holds back moves to the output when it is
    due (evbuffer_remove_buffer()). When that move fails, as it does out
    of memory, that connection ends then and there, and alone: echod
    serves the next one and exits cleanly, having touched nothing of the
    one it freed (valgrind's memcheck and ASan check that in CI)."""

    def start_failing(self, params):
        env = echodtest.failcall_env(self, "evbuffer_remove_buffer:1")
        return self.start_echod(listen=(f"127.0.0.1:0 {params}",), env=env)

    def check_ends_alone(self, params):
        server = self.start_failing(params)
        with self.connect(server.address) as s:
            s.sendall(b"no memory to echo this\n")
            try:
                got = recv_until_eof(s)
            except ConnectionResetError:
                got = b""
        self.assertEqual(got, b"")
        server.wait_log(r"failcall: evbuffer_remove_buffer: call 1 fails")
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, b"the next one\n"), b"the next one\n")
        wait_for(lambda: stats(server)["current"] == 0, 10,
                 "the connections to be freed", interval=0.1)
        server.stop_cleanly(self)

    def test_a_failed_move_when_delayed_echo_comes_due(self):
        # Due later: the move is the delay's timer's.
        self.check_ends_alone("delay=20ms")

    def test_a_failed_move_of_trickled_echo(self):
        # Due at once: the move is the read's.
        self.check_ends_alone("rate=1m")


class BesideAndReload(FaultTestCase):

    def test_a_plain_listener_is_untouched(self):
        server = self.start_echod(listen=("127.0.0.1:0",
                                          "127.0.0.1:0 delay=5s rate=1k",
                                          "127.0.0.1:0 reset_after=0"))
        plain, slow, reset = server.addresses
        payload = random_payload(8 * MIB, seed=45)
        slow_sock = self.connect(slow)
        # Reset at once: the reset may beat connect() back.
        reset_sock = socket.socket()
        try:
            reset_sock.connect(reset)
        except ConnectionResetError:
            pass
        try:
            slow_sock.sendall(b"s" * 4096)
            with self.connect(plain) as s:
                t0 = time.monotonic()
                s.sendall(b"ping\n")
                self.assertEqual(recv_exactly(s, 5), b"ping\n")
                first = time.monotonic() - t0
                got = exchange(s, payload, timeout=60, half_close=True)
            self.assertBytesEqual(got, payload)
            # Wide: the delayed listener's 5s is what it must not get.
            self.assertLess(first, 2.5)
        finally:
            slow_sock.close()
            reset_sock.close()
        server.stop_cleanly(self)

    def test_reload_changes_faults_for_new_connections_only(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-inject-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "echod.conf")
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{port} delay=400ms\n")
        server = Echod("-c", conf, listen=(), expect=1)
        self.addCleanup(server.kill)
        server.start()
        old = self.connect(server.address)
        try:
            # Accepted before the reload, not merely queued by the kernel:
            # its first echo comes back (delayed).
            old.sendall(b"a")
            self.assertEqual(recv_exactly(old, 1), b"a")
            with open(conf, "w") as f:
                f.write(f"listen = 127.0.0.1:{port} close_after=5\n")
            mark = len(server.stderr_lines())
            server.send_signal(signal.SIGHUP)
            server.wait_log(r"new connections on 127\.0\.0\.1:\d+ with "
                            r"faults: close_after=5", start=mark)
            with self.connect(server.address) as new:
                new.sendall(b"0123456789")
                self.assertEqual(recv_until_eof(new), b"01234")
            t0 = time.monotonic()
            old.sendall(b"0123456789")
            self.assertEqual(recv_exactly(old, 10), b"0123456789")
            self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        finally:
            old.close()
        server.stop_cleanly(self)

    def test_nonsense_combinations_are_config_errors(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-inject-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "echod.conf")
        with open(conf, "w") as f:
            f.write("# faults\nlisten = 127.0.0.1:7 stall delay=1s\n")
        r = run_echod(["--check-config", "-c", conf])
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(f"{conf}:2: 'listen' has parameters that do not fit: "
                      f"'stall' never reads, so 'delay=' has nothing to act "
                      f"on".encode(), r.stderr)
        r = run_echod(["--check-config", "-l", "127.0.0.1:7 chance=2"])
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn(b"has a bad parameter 'chance=2': '2' is more than 1",
                      r.stderr)


if __name__ == "__main__":
    echodtest.main()

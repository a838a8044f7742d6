"""Signals: SIGTERM stops gracefully (listeners close at once, a stream in
flight is echoed to its last byte, quiet connections are closed, exit 0,
shutdown_timeout bounds it, a second SIGTERM stops at once); SIGHUP
rereads the config file (log_level, max_buffer and the listen set apply
while open connections keep echoing; a broken file is logged and ignored;
a restart-only key says so); SIGUSR1 logs one line of exact counters."""

import os
import selectors
import signal
import socket
import tempfile
import threading
import time

import echodtest
from echodtest import (Deadline, Echod, EchodTestCase, MIB, exchange,
                       scaled, stats, wait_for)

CHUNK = 64 * 1024


class Streamer(threading.Thread):
    """Echoes chunk after chunk on one connection until told to stop or
    the server closes it; counts the bytes that came back exact."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.sock = echodtest.connect(address)
        self.payload = echodtest.random_payload(CHUNK, 7)
        self.echoed = 0
        self.outcome = None  # "eof", "stopped" or the exception's name
        self.mismatch = False
        self.stop_flag = threading.Event()

    def run(self):
        try:
            while not self.stop_flag.is_set():
                self.sock.sendall(self.payload)
                got = echodtest.recv_exactly(self.sock, CHUNK, 30)
                if len(got) < CHUNK:
                    self.outcome = "eof"
                    return
                if got != self.payload:
                    self.mismatch = True
                    self.outcome = "mismatch"
                    return
                self.echoed += CHUNK
            self.outcome = "stopped"
        except (ConnectionResetError, BrokenPipeError) as e:
            self.outcome = type(e).__name__
        except AssertionError as e:  # recv_exactly's timeout
            self.outcome = f"timeout: {e}"
        finally:
            self.sock.close()

    def wait_echoed(self, n, timeout=10):
        wait_for(lambda: self.echoed >= n or self.outcome is not None,
                 timeout, f"{n} bytes streamed")
        if self.outcome is not None:
            raise AssertionError(f"stream ended early: {self.outcome}")

    def finish(self):
        self.stop_flag.set()
        self.join(scaled(30))


class SignalTestCase(EchodTestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-signals-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.conf = os.path.join(self.dir, "echod.conf")

    def write_conf(self, text):
        """Replaces the config file in one step (as an editor would)."""
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.conf)

    def start_with_conf(self, text, *args, expect=1):
        self.write_conf(text)
        server = Echod("-c", self.conf, *args, listen=(), expect=expect)
        self.addCleanup(server.kill)
        return server.start()

    def streamer(self, address):
        s = Streamer(address)
        self.addCleanup(s.finish)
        s.start()
        return s

    def reload(self, server, text=None):
        """Writes text (if given) and sends SIGHUP; returns the new stderr
        lines up to and including the reload's verdict."""
        if text is not None:
            self.write_conf(text)
        start = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"configuration reloaded|reload failed", start=start)
        return server.stderr_lines()[start:]

    def new_listen_lines(self, lines):
        return [echodtest.split_address(m.group(1))
                for m in map(echodtest.LISTEN_RE.search, lines)
                if m and "no longer listening" not in m.string]

    def assertEchoes(self, address_or_sock, payload=b"ping\n"):
        if isinstance(address_or_sock, socket.socket):
            self.assertEqual(exchange(address_or_sock, payload, 10), payload)
            return
        with echodtest.connect(address_or_sock) as s:
            self.assertEqual(exchange(s, payload, 10), payload)

    def assertRefused(self, address):
        with self.assertRaises(ConnectionRefusedError,
                               msg=f"{address} accepted a connection"):
            echodtest.connect(address, timeout=5).close()

    def assertRefusedSoon(self, address, timeout=2):
        """address refuses connections within timeout: for just after
        "shutting down" is logged, which comes before the listeners
        close."""
        def refused():
            try:
                echodtest.connect(address, timeout=5).close()
            except ConnectionRefusedError:
                return True
            except ConnectionResetError:
                # Taken into the backlog as the listener closed: reset,
                # and the next one is refused.
                return False
            return False

        wait_for(refused, timeout, f"{address} to refuse connections")

    def assertClosedByServer(self, sock, timeout=5):
        """The server closes sock: EOF (or a reset) within timeout."""
        try:
            rest = echodtest.recv_until_eof(sock, timeout)
        except ConnectionResetError:
            return
        self.assertEqual(rest, b"", "bytes after the echo")


class GracefulStop(SignalTestCase):

    def test_sigterm_mid_64mib_stream_echoes_all_then_closes_exit_0(self):
        server = self.start_echod("--threads", "2",
                                  "--shutdown-timeout", "60s")
        sock = self.connect(server.address, timeout=60)
        payload = echodtest.random_payload(64 * MIB, 64)
        view = memoryview(payload)
        signalled_at = refused_checked_at = None

        def midway(sent, received):
            nonlocal signalled_at, refused_checked_at
            if signalled_at is None and sent >= 16 * MIB:
                server.send_signal(signal.SIGTERM)
                signalled_at = received
            if (signalled_at is not None and refused_checked_at is None
                    and "SIGTERM: shutting down" in server.stderr()):
                # Mid-stream: the listener closes.
                self.assertRefusedSoon(server.address)
                refused_checked_at = received
        received = echodtest.pump(sock, view, 0, 120, each=midway,
                                  strict=True)
        self.assertIsNotNone(signalled_at)
        self.assertLess(signalled_at, len(payload))
        self.assertIsNotNone(refused_checked_at,
                             "never saw 'SIGTERM: shutting down'")
        self.assertLess(refused_checked_at, len(payload),
                        "the refusal was not checked mid-stream")
        self.assertBytesEqual(received, payload)
        # Quiet now: the server closes the connection, then exits 0.
        self.assertEqual(echodtest.recv_until_eof(sock, 10), b"")
        self.assertEqual(server.wait(10), 0, server.stderr())
        self.assertIn("SIGTERM: shutting down, 1 connection open",
                      server.stderr())
        self.assertNotIn("shutdown_timeout reached", server.stderr())

    def test_idle_connections_closed_at_sigterm_and_exit_is_quick(self):
        # A 60s shutdown_timeout: an exit well within it shows echod did
        # not wait for it (the margin is a loaded machine's).
        server = self.start_echod("--threads", "2",
                                  "--shutdown-timeout", "60s")
        socks = [self.connect(server.address) for _ in range(3)]
        for i, s in enumerate(socks):
            self.assertEchoes(s, f"idle {i}\n".encode())
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for s in socks:
            self.assertEqual(echodtest.recv_until_eof(s, 20), b"")
        self.assertEqual(server.wait(30), 0, server.stderr())
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 20, f"exit took {elapsed:.2f}s with only "
                        f"idle connections")
        self.assertIn("SIGTERM: shutting down, 3 connections open",
                      server.stderr())

    def test_a_connection_that_has_sent_nothing_yet_gets_a_moment(self):
        # Accepted just before the stop, its first bytes may be on
        # their way: a tenth of quiet is not its end, a second is.
        server = self.start_echod("--shutdown-timeout", "60s")
        late = self.connect(server.address)
        silent = self.connect(server.address)
        wait_for(lambda: stats(server)["current"] == 2, 10, "both accepted")
        accepted = time.monotonic()
        server.send_signal(signal.SIGTERM)
        # Well past a tenth since the accept, well short of a second.
        time.sleep(max(0.0, accepted + 0.3 - time.monotonic()))
        self.assertEchoes(late, b"first bytes, late\n")
        server.wait_log("SIGTERM: shutting down, 2 connections open")
        # The silent one is closed once its moment is up.
        self.assertEqual(echodtest.recv_until_eof(silent, scaled(20)), b"")
        late.close()
        self.assertEqual(server.wait(30), 0, server.stderr())

    def test_listener_closed_at_sigterm_while_connection_finishes(self):
        server = self.start_echod("--shutdown-timeout", "60s")
        stream = self.streamer(server.address)
        stream.wait_echoed(4 * CHUNK)
        start = len(server.stderr_lines())
        server.send_signal(signal.SIGTERM)
        server.wait_log("SIGTERM: shutting down, 1 connection open",
                        start=start)
        self.assertRefusedSoon(server.address)
        # The open connection is still served after the refusal.
        n = stream.echoed
        stream.wait_echoed(n + 4 * CHUNK)
        self.assertTrue(server.alive())
        stream.finish()
        self.assertEqual(stream.outcome, "stopped")
        self.assertEqual(server.wait(10), 0, server.stderr())

    def test_shutdown_timeout_closes_streaming_connection(self):
        server = self.start_echod("--shutdown-timeout", "1s")
        stream = self.streamer(server.address)
        stream.wait_echoed(4 * CHUNK)
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait_log("SIGTERM: shutting down, 1 connection open")
        n = stream.echoed
        stream.wait_echoed(n + 4 * CHUNK)  # still streaming, not idle
        rc = server.wait(10)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, server.stderr())
        self.assertGreaterEqual(elapsed, 0.9, "exited before the timeout")
        # Wide: the machine may be loaded; a stop that ignores the
        # timeout altogether runs into wait(10) above.
        self.assertLess(elapsed, scaled(8), "exit long after the timeout")
        self.assertIn("shutdown_timeout reached, closing 1 connection",
                      server.stderr())
        stream.join(scaled(10))
        self.assertFalse(stream.is_alive())
        self.assertIn(stream.outcome,
                      ("eof", "ConnectionResetError", "BrokenPipeError"))
        self.assertFalse(stream.mismatch)

    def test_second_sigterm_stops_at_once(self):
        server = self.start_echod("--threads", "2",
                                  "--shutdown-timeout", "60s")
        streams = [self.streamer(server.address) for _ in range(2)]
        for s in streams:
            s.wait_echoed(2 * CHUNK)
        server.send_signal(signal.SIGTERM)
        server.wait_log("SIGTERM: shutting down, 2 connections open")
        for s in streams:  # busy, so the first SIGTERM alone would wait
            s.wait_echoed(s.echoed + 2 * CHUNK)
        self.assertTrue(server.alive())
        t1 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        rc = server.wait(30)
        elapsed = time.monotonic() - t1
        self.assertEqual(rc, 0, server.stderr())
        # At once, not at shutdown_timeout (60s), with room for a loaded
        # machine.
        self.assertLess(elapsed, 20)
        self.assertIn("SIGTERM again: stopping now", server.stderr())

    def test_sigint_then_sigterm_stops_at_once(self):
        server = self.start_echod("--shutdown-timeout", "60s")
        stream = self.streamer(server.address)
        stream.wait_echoed(2 * CHUNK)
        server.send_signal(signal.SIGINT)
        server.wait_log("SIGINT: shutting down, 1 connection open")
        stream.wait_echoed(stream.echoed + 2 * CHUNK)
        server.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(10), 0, server.stderr())
        self.assertIn("SIGTERM again: stopping now", server.stderr())


class Reload(SignalTestCase):

    def test_log_level_debug_applies_across_open_connection(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n")
        sock = self.connect(server.address)
        self.assertEchoes(sock, b"before\n")
        lines = self.reload(server, "listen = 127.0.0.1:0\n"
                                    "log_level = debug\n")
        self.assertTrue(lines[-1].rstrip().endswith(
            f"info: configuration reloaded from {self.conf}"), lines)
        self.assertEchoes(sock, b"after\n")
        server.wait_log(r"received 6 bytes from 127\.0\.0\.1:\d+")
        server.stop_cleanly(self)
        self.assertNotIn("received 7 bytes", server.stderr())

    def test_log_level_back_to_info_stops_read_lines(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n"
                                      "log_level = debug\n")
        sock = self.connect(server.address)
        self.assertEchoes(sock, b"1234567\n")
        server.wait_log("received 8 bytes")
        self.reload(server, "listen = 127.0.0.1:0\nlog_level = info\n")
        self.assertEchoes(sock, b"123\n")
        server.stop_cleanly(self)
        self.assertNotIn("received 4 bytes", server.stderr())

    def send_until_stalled(self, address, limit):
        """Sends without reading until nothing goes out for a while;
        returns the bytes the connection took (echod's queue plus the
        kernel's buffers on both ends)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        s.settimeout(scaled(10))
        s.connect(address)
        s.setblocking(False)
        block = bytes(CHUNK)
        sent, last = 0, time.monotonic()
        deadline = Deadline(60)
        with selectors.DefaultSelector() as sel:
            sel.register(s, selectors.EVENT_WRITE)
            while sent < limit and not deadline.expired():
                if sel.select(0.05):
                    try:
                        n = s.send(block)
                    except BlockingIOError:
                        n = 0
                    if n:
                        sent += n
                        last = time.monotonic()
                        continue
                if time.monotonic() - last >= scaled(0.5):
                    break
        return sent, s

    def test_max_buffer_applies_to_new_connections(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n"
                                      "max_buffer = 4k\n")
        keep = self.connect(server.address)
        small, s1 = self.send_until_stalled(server.address, 256 * MIB)
        self.reload(server, "listen = 127.0.0.1:0\nmax_buffer = 48m\n")
        large, s2 = self.send_until_stalled(server.address, 256 * MIB)
        # With 48m, echod itself queues 48 MiB more than with 4k; the
        # kernel's share is the same for both connections (a few MiB).
        self.assertGreater(large - small, 32 * MIB,
                           f"took {small} bytes at 4k, {large} at 48m")
        self.assertEchoes(keep, b"still here\n")
        s1.close()  # unread data: resets, so echod drops them at once
        s2.close()
        server.stop_cleanly(self)

    def test_idle_timeout_applies_to_open_connections(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n")
        quiet = self.connect(server.address)
        self.assertEchoes(quiet, b"then silent\n")
        busy = self.connect(server.address)
        self.reload(server, "listen = 127.0.0.1:0\nidle_timeout = 1500ms\n")
        # The silent one is closed; the one that keeps talking (every
        # 0.1s, far inside the timeout even on a loaded machine) is not.
        deadline = Deadline(4)
        while not deadline.expired():
            self.assertEchoes(busy, b"busy\n")
            time.sleep(0.1)
        self.assertClosedByServer(quiet, timeout=scaled(3))
        self.assertEchoes(busy, b"still open\n")
        self.reload(server, "listen = 127.0.0.1:0\nidle_timeout = 0\n")
        time.sleep(1)
        self.assertEchoes(busy, b"no timeout any more\n")
        server.stop_cleanly(self)

    def test_max_connections_applies_to_the_next_accept(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n"
                                      "max_connections = 10\n")
        held = [self.connect(server.address) for _ in range(3)]
        for s in held:
            self.assertEchoes(s)
        self.reload(server, "listen = 127.0.0.1:0\nmax_connections = 3\n")
        extra = self.connect(server.address)
        self.assertClosedByServer(extra)
        for s in held:
            self.assertEchoes(s, b"kept past the lower limit\n")
        self.reload(server, "listen = 127.0.0.1:0\nmax_connections = 4\n")
        self.assertEchoes(self.connect(server.address), b"room again\n")
        server.stop_cleanly(self)

    def test_max_connections_per_ip_switched_on_counts_open_ones(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n")
        held = [self.connect(server.address) for _ in range(3)]
        for s in held:
            self.assertEchoes(s)
        # The three already open count against the limit set now.
        self.reload(server, "listen = 127.0.0.1:0\n"
                            "max_connections_per_ip = 2\n")
        self.assertClosedByServer(self.connect(server.address))
        held.pop().close()
        self.assertClosedByServer(self.connect(server.address))
        for s in held:
            self.assertEchoes(s, b"kept past the per-IP limit\n")
        held.pop().close()
        # Room again once one of the two left has gone; the server may
        # take a moment to see the close.
        deadline = time.monotonic() + scaled(10)
        while True:
            s = self.connect(server.address)
            try:
                self.assertEchoes(s, b"room again\n")
                break
            except (AssertionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.stop_cleanly(self)

    def ss(self, *args):
        return echodtest.ss(*args)

    def listen_backlog(self, server):
        """The listening socket's backlog: ss -ltn's Send-Q."""
        out = self.ss("-ltn", f"( sport = :{server.port} )")
        lines = out.splitlines()
        self.assertEqual(len(lines), 1, out)
        return int(lines[0].split()[2])

    def accepted_entry(self, server, sock):
        """ss -tnoi's line for echod's end of sock."""
        peer = sock.getsockname()[1]
        out = self.ss("-tnoi", "state", "established",
                      f"( sport = :{server.port} and dport = :{peer} )")
        lines = [l for l in out.splitlines() if f":{peer}" in l]
        self.assertEqual(len(lines), 1, out)
        return lines[0]

    def test_keepalive_and_backlog_apply_on_reload(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n"
                                      "tcp_keepalive = no\nbacklog = 16\n")
        self.assertEqual(self.listen_backlog(server), 16)
        before = self.connect(server.address)
        self.assertEchoes(before)
        self.assertNotIn("keepalive", self.accepted_entry(server, before))
        self.reload(server, "listen = 127.0.0.1:0\n"
                            "tcp_keepalive = yes\nbacklog = 23\n")
        self.assertEqual(self.listen_backlog(server), 23)
        after = self.connect(server.address)
        self.assertEchoes(after)
        self.assertIn("timer:(keepalive,", self.accepted_entry(server, after))
        server.stop_cleanly(self)

    def test_listen_address_added_then_removed(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n")
        first = server.address
        sock = self.connect(first)
        self.assertEchoes(sock, b"one\n")

        lines = self.reload(server, "listen = 127.0.0.1:0\n"
                                    "listen = 127.0.0.2:0\n")
        added = self.new_listen_lines(lines)
        self.assertEqual(len(added), 1, lines)
        self.assertEqual(added[0][0], "127.0.0.2")
        second = added[0]
        self.assertEchoes(second, b"new address\n")
        self.assertEchoes(first, b"old address\n")
        self.assertEchoes(sock, b"two\n")
        other = self.connect(second)
        self.assertEchoes(other, b"on the second\n")

        lines = self.reload(server, "listen = 127.0.0.2:0\n")
        self.assertEqual(self.new_listen_lines(lines), [], lines)
        self.assertTrue(any(f"no longer listening on {first[0]}:{first[1]}"
                            in line for line in lines), lines)
        self.assertRefused(first)
        self.assertEchoes(second, b"kept\n")
        # Connections accepted on a closed listener keep echoing.
        self.assertEchoes(sock, b"three\n")
        self.assertEchoes(other, b"four\n")
        server.stop_cleanly(self)

    def test_broken_file_is_logged_and_ignored(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n"
                                      "log_level = info\n")
        sock = self.connect(server.address)
        self.assertEchoes(sock, b"before\n")
        lines = self.reload(server, "listen = 127.0.0.1:0\n"
                                    "log_level = debug\n"
                                    "threads = lots\n")
        self.assertTrue(lines[-1].rstrip().endswith(
            f"warn: reload failed, keeping the running configuration: "
            f"{self.conf}:3: 'threads' must be a whole number from 0 to "
            f"1024, not 'lots'"), lines)
        self.assertTrue(server.alive())
        self.assertEchoes(sock, b"after\n")
        self.assertEchoes(server.address, b"new connection\n")
        # Still info: the debug line of the broken file was not applied.
        # Then the fixed file applies.
        lines = self.reload(server, "listen = 127.0.0.1:0\n"
                                    "log_level = debug\n")
        self.assertIn("configuration reloaded", lines[-1])
        self.assertEchoes(sock, b"123456789\n")
        server.wait_log("received 10 bytes")
        server.stop_cleanly(self)
        self.assertNotIn("received 6 bytes", server.stderr())
        self.assertNotIn("received 15 bytes", server.stderr())

    def test_garbage_and_unknown_key_on_reload(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n")
        for text, message in (
                ("listen = 127.0.0.1:0\ngarbage\n",
                 f"{self.conf}:2: expected 'key = value', got 'garbage'"),
                ("# x\nmax_conns = 3\n",
                 f"{self.conf}:2: unknown key 'max_conns'")):
            lines = self.reload(server, text)
            self.assertTrue(lines[-1].rstrip().endswith(
                "reload failed, keeping the running configuration: "
                + message), lines)
            self.assertEchoes(server.address)
        server.stop_cleanly(self)

    def test_missing_file_on_reload_is_logged_and_ignored(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n")
        os.unlink(self.conf)
        lines = self.reload(server)
        self.assertTrue(lines[-1].rstrip().endswith(
            f"reload failed, keeping the running configuration: "
            f"{self.conf}: No such file or directory"), lines)
        self.assertEchoes(server.address)
        server.stop_cleanly(self)

    def test_busy_new_address_fails_reload_and_opens_nothing(self):
        holder, busy = echodtest.bound_port(listen=True)
        self.addCleanup(holder.close)
        server = self.start_with_conf("listen = 127.0.0.1:0\n")
        sock = self.connect(server.address)
        lines = self.reload(server, "listen = 127.0.0.1:0\n"
                                    "listen = 127.0.0.2:0\n"
                                    f"listen = 127.0.0.1:{busy}\n")
        self.assertIn("reload failed, keeping the running configuration: "
                      f"cannot listen on 127.0.0.1:{busy}: Address already "
                      "in use", lines[-1])
        # Whatever the failed reload opened was closed again.
        for address in self.new_listen_lines(lines):
            self.assertRefused(address)
        self.assertEchoes(server.address)
        self.assertEchoes(sock)
        server.stop_cleanly(self)

    def test_restart_only_key_says_restart_to_apply(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\nthreads = 2\n")
        sock = self.connect(server.address)
        self.assertEchoes(sock)
        # Counted, not assumed: sanitizers add threads of their own.
        tasks = len(os.listdir(f"/proc/{server.pid}/task"))
        lines = self.reload(server, "listen = 127.0.0.1:0\nthreads = 3\n")
        self.assertTrue(any(line.rstrip().endswith(
            "warn: reload: 'threads' changed; restart to apply")
            for line in lines), lines)
        self.assertIn("configuration reloaded", lines[-1])
        self.assertEqual(len(os.listdir(f"/proc/{server.pid}/task")), tasks)
        self.assertEchoes(sock)
        server.stop_cleanly(self)

    def test_unchanged_file_reload_changes_nothing(self):
        text = "listen = 127.0.0.1:0\nthreads = 2\n"
        server = self.start_with_conf(text)
        sock = self.connect(server.address)
        lines = self.reload(server, text)
        self.assertEqual(self.new_listen_lines(lines), [], lines)
        self.assertFalse(any("restart to apply" in line or "no longer" in line
                             for line in lines), lines)
        self.assertEchoes(server.address)
        self.assertEchoes(sock)
        server.stop_cleanly(self)

    def test_command_line_still_wins_on_reload(self):
        server = self.start_with_conf("listen = 127.0.0.1:0\n",
                                      "--log-level", "info")
        sock = self.connect(server.address)
        self.reload(server, "listen = 127.0.0.1:0\nlog_level = debug\n")
        self.assertEchoes(sock, b"12345678901\n")
        server.stop_cleanly(self)
        self.assertNotIn("received 12 bytes", server.stderr())

    def test_reload_without_config_file(self):
        server = self.start_echod()
        sock = self.connect(server.address)
        lines = self.reload(server)
        self.assertTrue(lines[-1].rstrip().endswith(
            "info: configuration reloaded"), lines)
        self.assertEchoes(sock)
        self.assertEchoes(server.address)
        server.stop_cleanly(self)

    def test_sighup_during_shutdown_is_ignored(self):
        server = self.start_echod("--shutdown-timeout", "60s")
        stream = self.streamer(server.address)
        stream.wait_echoed(2 * CHUNK)
        server.send_signal(signal.SIGTERM)
        server.wait_log("SIGTERM: shutting down")
        server.send_signal(signal.SIGHUP)
        stream.wait_echoed(stream.echoed + 2 * CHUNK)
        # No listener came back.
        self.assertRefused(server.address)
        stream.finish()
        self.assertEqual(server.wait(10), 0, server.stderr())
        self.assertNotIn("configuration reloaded", server.stderr())


class Stats(SignalTestCase):

    STATS_PREFIX = "stats: "

    def stats_lines(self, server):
        return [line.rstrip("\n") for line in server.stderr_lines()
                if self.STATS_PREFIX in line]

    def wait_stats(self, server, want):
        """Sends SIGUSR1 until the logged line ends with want (counters
        settle a moment after the client's last byte); returns the
        number of signals sent."""
        sent = 0
        last = None

        def settled():
            nonlocal sent, last
            before = len(self.stats_lines(server))
            server.send_signal(signal.SIGUSR1)
            sent += 1
            wait_for(lambda: len(self.stats_lines(server)) > before, 10,
                     "a stats line")
            last = self.stats_lines(server)[before]
            return last.endswith("info: " + want)

        try:
            wait_for(settled, 5, f"stats line {want!r}", interval=0.05)
        except AssertionError:
            self.fail(f"last stats line: {last!r}, want {want!r}")
        return sent

    def test_sigusr1_logs_exact_counters(self):
        server = self.start_echod("--threads", "2",
                                  "--max-connections", "2")
        a = self.connect(server.address)
        b = self.connect(server.address)
        self.assertEchoes(a, echodtest.every_byte_value(4)[:1000])
        self.assertEchoes(b, echodtest.random_payload(2345, 1))
        c = self.connect(server.address)  # past max_connections
        self.assertEqual(echodtest.recv_until_eof(c, 10), b"")
        signals = self.wait_stats(
            server, "stats: connections current=2 total=2 refused=1; "
                    "bytes in=3345 out=3345")
        a.close()
        b.close()
        signals += self.wait_stats(
            server, "stats: connections current=0 total=2 refused=1; "
                    "bytes in=3345 out=3345")
        d = self.connect(server.address)
        self.assertEchoes(d, b"x" * 655)
        signals += self.wait_stats(
            server, "stats: connections current=1 total=3 refused=1; "
                    "bytes in=4000 out=4000")
        server.stop_cleanly(self)
        # One line per signal, and only then.
        self.assertEqual(len(self.stats_lines(server)), signals)

    def test_sigusr1_on_a_fresh_server(self):
        server = self.start_echod()
        self.wait_stats(server, "stats: connections current=0 total=0 "
                                "refused=0; bytes in=0 out=0")
        self.assertTrue(server.alive())
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

"""Logging: one "listening on ADDR" line per listener, and with -v (or
--log-level debug) one "received N bytes from HOST:PORT" line per read,
naming the peer's real address; at the default level, no such lines.
log_connections logs one line per closed connection (client, local
address, duration, bytes each way, why it closed), as key=value in text
and as typed fields with log_format = json, where every line is one JSON
object; a reload switches either."""

import json
import os
import signal
import socket
import tempfile
import time

import echodtest
from echodtest import (EchodTestCase, Echod, SEED_MESSAGE, bound_port,
                       exchange, random_payload, recv_exactly, stats,
                       wait_for)


class Logging(EchodTestCase):

    def test_listening_line_ends_with_address(self):
        server = self.start_echod()
        lines = [l for l in server.stderr_lines() if "listening on" in l]
        self.assertEqual(len(lines), 1, server.stderr())
        self.assertRegex(lines[0],
                         rf"listening on 127\.0\.0\.1:{server.port}\n$")
        server.stop_cleanly(self)

    def assertLogsReads(self, *args):
        server = self.start_echod(*args)
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)
            port = s.getsockname()[1]
            server.wait_log(
                rf"received 19 bytes from 127\.0\.0\.1:{port}$", 10)
            # One line per read: round trips keep the reads apart.
            for msg in (b"abcde", b"0123456", b"x" * 300):
                s.sendall(msg)
                self.assertEqual(recv_exactly(s, len(msg)), msg)
                server.wait_log(rf"received {len(msg)} bytes from "
                                rf"127\.0\.0\.1:{port}$", 10)
        server.stop_cleanly(self)

    def test_verbose_logs_each_read_with_peer_address(self):
        self.assertLogsReads("-v")

    def test_long_verbose_logs_each_read(self):
        self.assertLogsReads("--verbose")

    def test_log_level_debug_logs_each_read(self):
        self.assertLogsReads("--log-level", "debug")

    def test_default_level_does_not_log_reads(self):
        server = self.start_echod()
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)
        server.stop_cleanly(self)  # all of stderr has been read now
        self.assertNotRegex(server.stderr(), r"received \d+ bytes")

    def test_log_level_info_does_not_log_reads(self):
        server = self.start_echod("--log-level", "info")
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)
        server.stop_cleanly(self)
        self.assertNotRegex(server.stderr(), r"received \d+ bytes")

    def test_nothing_on_stdout(self):
        server = self.start_echod("-v")
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, SEED_MESSAGE, 10), SEED_MESSAGE)
        server.stop_cleanly(self)
        self.assertEqual(server.stdout(), "")


class ConnectionLog(EchodTestCase):

    def closed_lines(self, server, n):
        wait_for(lambda: len([ln for ln in server.stderr_lines()
                              if "connection closed" in ln]) >= n, 10,
                 f"{n} connection lines")
        return [ln for ln in server.stderr_lines()
                if "connection closed" in ln]

    def test_off_by_default(self):
        server = self.start_echod()
        with self.connect(server.address) as s:
            exchange(s, b"x", 10, half_close=True)
        wait_for(lambda: stats(server)["current"] == 0, 10, "the close")
        self.assertNotIn("connection closed", server.stderr())
        server.stop_cleanly(self)

    def test_text_line_names_everything(self):
        server = self.start_echod("--log-connections", "yes",
                                  "--idle-timeout", "300ms")
        payload = random_payload(100000, seed=61)
        with self.connect(server.address) as s:
            port = s.getsockname()[1]
            self.assertEqual(exchange(s, payload, 30, half_close=True),
                             payload)
        quiet = self.connect(server.address)
        t0 = time.monotonic()
        quiet.sendall(b"abc")
        recv_exactly(quiet, 3)
        lines = self.closed_lines(server, 2)
        self.assertRegex(lines[0], rf"info: connection closed client="
                         rf"127\.0\.0\.1:{port} listener=127\.0\.0\.1:0 "
                         rf"local=127\.0\.0\.1:"
                         rf"{server.port} duration_s=\d+\.\d{{3}} "
                         rf"bytes_in=100000 bytes_out=100000 reason=eof$")
        self.assertRegex(lines[1], r"bytes_in=3 bytes_out=3 reason=idle$")
        waited = float(lines[1].split("duration_s=")[1].split()[0])
        self.assertGreaterEqual(waited, 0.29)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        # Open at the drain: shutdown.
        last = self.connect(server.address)
        last.sendall(b"z")
        recv_exactly(last, 1)
        server.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(), 0, server.stderr())
        self.assertRegex(self.closed_lines(server, 3)[2], r"reason=shutdown$")

    def test_bytes_out_counts_echo_that_waited_in_the_queue(self):
        """A reader that falls behind has its echo queued (conn.c's slow
        path), counted as written only as the queue drains: the close
        line and the counters say exactly what was sent back."""
        server = self.start_echod("--log-connections", "yes",
                                  "--max-buffer", "256k")
        s = echodtest.small_buffer_socket(server.address)
        self.addCleanup(s.close)
        # More than the kernel's buffers can take (tcp_rmem's maximum
        # is 32 MiB here): the sender must stall on echod.
        payload = echodtest.random_payload(64 * echodtest.MIB, seed=62)
        sent = echodtest.send_until_stalled([s], memoryview(payload),
                                            0.5)[0]
        # It stalled: echod held back with its queue full.
        self.assertLess(sent, len(payload))
        s.setblocking(True)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(echodtest.recv_until_eof(s, 30), payload[:sent])
        self.assertRegex(self.closed_lines(server, 1)[0],
                         rf"bytes_in={sent} bytes_out={sent} reason=eof$")
        self.assertEqual(stats(server)["out"], sent)
        server.stop_cleanly(self)

    def test_json_lines_all_parse_with_typed_fields(self):
        server = Echod("--log-connections", "yes", "--log-format", "json",
                       "-v")
        self.addCleanup(server.kill)
        server.start()
        with self.connect(server.address) as s:
            port = s.getsockname()[1]
            exchange(s, b'say "hi"\n\x01', 10, half_close=True)
        self.closed_lines(server, 1)
        stats(server)
        server.stop_cleanly(self)
        objs = [json.loads(ln) for ln in server.stderr_lines()]
        self.assertTrue(all({"ts", "level", "msg"} <= set(o) for o in objs))
        conn = [o for o in objs if o["msg"] == "connection closed"]
        self.assertEqual(len(conn), 1)
        c = conn[0]
        self.assertEqual(c["level"], "info")
        self.assertEqual(c["client"], f"127.0.0.1:{port}")
        self.assertEqual(c["local"], f"127.0.0.1:{server.port}")
        self.assertEqual(c["listener"], "127.0.0.1:0")
        self.assertEqual((c["bytes_in"], c["bytes_out"]), (10, 10))
        self.assertEqual(c["reason"], "eof")
        self.assertIsInstance(c["duration_s"], float)
        self.assertRegex(c["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(any(o["level"] == "debug" and
                            o["msg"].startswith("received 10 bytes")
                            for o in objs))

    def test_reload_switches_format_and_log(self):
        tmp = tempfile.TemporaryDirectory(prefix="echod-log-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "echod.conf")
        probe, port = bound_port()
        probe.close()
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{port}\n")
        server = Echod("-c", conf, listen=(), expect=1)
        self.addCleanup(server.kill)
        server.start()
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{port}\n"
                    "log_connections = yes\nlog_format = json\n")
        mark = len(server.stderr_lines())
        server.send_signal(signal.SIGHUP)
        server.wait_log(r"configuration reloaded", start=mark)
        with self.connect(server.address) as s:
            exchange(s, b"after", 10, half_close=True)
        line = self.closed_lines(server, 1)[0]
        self.assertEqual(json.loads(line)["bytes_out"], 5)
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

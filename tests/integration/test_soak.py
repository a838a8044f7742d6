"""Soak: a few hundred concurrent connections for about a minute, each
with a random payload (1 B .. 1 MiB) and a random behaviour: plain echo,
half-close (shutdown(SHUT_WR) after sending: everything back, then EOF),
reset mid-stream (SO_LINGER 0), or slow reading. Every healthy
connection's bytes are verified exactly. Afterwards echod still answers,
its connection count returns to 0 and its descriptor count to baseline,
and SIGTERM stops it with status 0.

Environment: ECHOD_SOAK_SECONDS (default 45) and ECHOD_SOAK_CONNECTIONS
(default 300, concurrent), ECHOD_SOAK_SEED (default: a fixed seed; the
seed is printed, so a failure reproduces). Under ECHOD_WRAPPER (valgrind)
the defaults drop to 10 s and 50 connections.
"""

import errno
import math
import os
import random
import selectors
import socket
import struct
import sys
import time

import echodtest
from echodtest import (MIB, WRAPPER, EchodTestCase, exchange, scaled, stats,
                       wait_for)


SECONDS = float(os.environ.get("ECHOD_SOAK_SECONDS",
                               "10" if WRAPPER else "45"))
CONNECTIONS = int(os.environ.get("ECHOD_SOAK_CONNECTIONS",
                                 "50" if WRAPPER else "300"))
SEED = int(os.environ.get("ECHOD_SOAK_SEED", "20261125"))
MAX_PAYLOAD = MIB
CHUNK = 64 * 1024
# Slow readers read at most this much per tick.
SLOW_READ = 8 * 1024
SLOW_TICK = 0.02
# A connection must make progress at least this often (scaled).
STALL_SECONDS = 30

KINDS = ("echo", "halfclose", "reset", "slow")
WEIGHTS = (45, 25, 15, 15)


class Conn:
    """One driven connection: what it sends, what it has seen."""

    def __init__(self, serial, rng, source):
        self.serial = serial
        self.kind = rng.choices(KINDS, WEIGHTS)[0]
        # Log-uniform sizes: as many tiny payloads as large ones.
        size = int(math.exp(rng.uniform(0, math.log(MAX_PAYLOAD))))
        offset = rng.randrange(0, len(source) - size + 1)
        self.want = memoryview(source)[offset:offset + size]
        self.sent = 0
        self.received = 0
        # A reset happens once this much has come back (some of it).
        self.reset_at = rng.randrange(1, size + 1) if self.kind == "reset" \
            else None
        self.next_read = 0.0
        self.shut = False
        self.sock = None
        self.events = 0  # what the selector watches for now
        self.last_progress = time.monotonic()

    def describe(self):
        return (f"connection #{self.serial} ({self.kind}, {len(self.want)} "
                f"bytes, sent {self.sent}, received {self.received})")


class Soak(EchodTestCase):

    def test_soak(self):
        sys.stderr.write(f"\n  soak: seed {SEED} (ECHOD_SOAK_SEED), "
                         f"{SECONDS:g}s, {CONNECTIONS} concurrent\n")
        rng = random.Random(SEED)
        source = random.Random(SEED + 1).randbytes(2 * MAX_PAYLOAD)
        server = self.start_echod("--threads", "2", "--max-buffer", "256k",
                                  "--max-connections",
                                  str(CONNECTIONS + 100))
        with self.connect(server.address) as s:
            self.assertEqual(exchange(s, b"warm\n", 10), b"warm\n")
        wait_for(lambda: stats(server)["current"] == 0, 10,
                 "the warm-up connection to be freed", interval=0.05)
        baseline_fds = server.open_fds()

        counts = {k: 0 for k in KINDS}
        verified_bytes = 0
        serial = 0
        live = {}
        sel = selectors.DefaultSelector()
        self.addCleanup(sel.close)
        end = time.monotonic() + SECONDS
        hard_end = time.monotonic() + SECONDS + scaled(120)

        def open_one():
            nonlocal serial
            c = Conn(serial, rng, source)
            serial += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(server.address)
            if err not in (0, errno.EINPROGRESS):
                s.close()
                self.fail(f"connect: {os.strerror(err)}")
            c.sock = s
            live[s.fileno()] = c
            watch(c, selectors.EVENT_READ | selectors.EVENT_WRITE)
            if len(c.want) == 0 and c.kind == "halfclose":
                s.shutdown(socket.SHUT_WR)
                c.shut = True

        def watch(c, ev):
            if ev == c.events:
                return
            if c.events == 0:
                sel.register(c.sock, ev, c)
            elif ev == 0:
                sel.unregister(c.sock)
            else:
                sel.modify(c.sock, ev, c)
            c.events = ev

        def finish(c, outcome):
            nonlocal verified_bytes
            watch(c, 0)
            del live[c.sock.fileno()]
            if outcome == "reset":
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
            else:
                verified_bytes += c.received
            c.sock.close()
            counts[c.kind] += 1

        def interest(c, now):
            ev = 0
            if c.sent < len(c.want):
                ev |= selectors.EVENT_WRITE
            if c.kind != "slow" or now >= c.next_read:
                ev |= selectors.EVENT_READ
            return ev

        try:
            while True:
                now = time.monotonic()
                self.assertLess(now, hard_end,
                                f"soak did not wind down: {len(live)} "
                                f"connections left")
                if now < end:
                    while len(live) < CONNECTIONS:
                        open_one()
                elif not live:
                    break
                # Slow readers get read interest back once their tick is up.
                for c in list(live.values()):
                    watch(c, interest(c, now))
                    if now - c.last_progress > scaled(STALL_SECONDS):
                        self.fail(f"no progress for {STALL_SECONDS}s: "
                                  f"{c.describe()}")
                for key, events in sel.select(SLOW_TICK):
                    c = key.data
                    if c.sock.fileno() not in live:
                        continue
                    self.step(c, events, finish, watch, interest)
        finally:
            for c in list(live.values()):
                c.sock.close()

        total = sum(counts.values())
        sys.stderr.write(f"  {total} connections: " +
                         ", ".join(f"{k} {counts[k]}" for k in KINDS) +
                         f"; {verified_bytes / MIB:.1f} MiB verified\n")
        self.assertGreater(total, CONNECTIONS)
        for k in KINDS:
            self.assertGreater(counts[k], 0, f"no {k} connection ran")

        # The aftermath: echod answers, forgets every connection, frees
        # every descriptor, and stops cleanly.
        with self.connect(server.address) as s:
            msg = echodtest.random_payload(100000, SEED + 2)
            self.assertBytesEqual(exchange(s, msg, 30), msg)
        wait_for(lambda: stats(server)["current"] == 0, 30,
                 "current connections to return to 0", interval=0.1)
        wait_for(lambda: server.open_fds() == baseline_fds, 30,
                 f"echod's fd count to return to {baseline_fds}",
                 interval=0.1)
        st = stats(server)
        self.assertEqual(st["refused"], 0, st)
        self.assertEqual(st["total"], total + 2, st)
        server.stop_cleanly(self, timeout=60)

    def step(self, c, events, finish, watch, interest):
        """One readiness event on c: send, receive, verify, finish."""
        s = c.sock
        now = time.monotonic()
        if events & selectors.EVENT_WRITE and c.sent < len(c.want):
            try:
                n = s.send(c.want[c.sent:c.sent + CHUNK])
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                self.fail(f"send: {e}: {c.describe()}")
            if n:
                c.sent += n
                c.last_progress = now
            if c.sent == len(c.want):
                if c.kind == "halfclose" and not c.shut:
                    s.shutdown(socket.SHUT_WR)
                    c.shut = True
                watch(c, c.events & ~selectors.EVENT_WRITE)
        if events & selectors.EVENT_READ:
            limit = SLOW_READ if c.kind == "slow" else CHUNK * 4
            try:
                chunk = s.recv(limit)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.fail(f"recv: {e}: {c.describe()}")
            if chunk == b"":
                if c.kind == "halfclose" and c.received == len(c.want):
                    finish(c, "done")
                    return
                self.fail(f"unexpected EOF: {c.describe()}")
            at = c.received
            if chunk != c.want[at:at + len(chunk)]:
                first = next(i for i in range(len(chunk))
                             if chunk[i] != c.want[at + i])
                self.fail(f"echo differs at offset {at + first}: "
                          f"{c.describe()}")
            c.received += len(chunk)
            c.last_progress = now
            if c.received > len(c.want):
                self.fail(f"more bytes than sent: {c.describe()}")
            if c.kind == "slow":
                c.next_read = now + SLOW_TICK
                watch(c, interest(c, now))
            if c.kind == "reset" and c.received >= c.reset_at:
                finish(c, "reset")
                return
            if c.received == len(c.want) and c.kind != "halfclose":
                finish(c, "done")


if __name__ == "__main__":
    echodtest.main()

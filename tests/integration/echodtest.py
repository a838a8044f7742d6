"""echodtest: the shared harness of echod's integration tests.

Starts the real echod on a kernel-chosen loopback port, learns the port
from its "listening on ADDR" log line, keeps draining its output so the
pipes never fill, stops it by PID and checks the exit status. Also: run
echo-client, exchange bytes over sockets with deadlines, read VmRSS.

Environment: ECHOD and ECHO_CLIENT (paths, set by ctest), ECHOD_WRAPPER
(a command line to run echod under, e.g. "valgrind --error-exitcode=99
--leak-check=full"; it must run echod in its own process, as valgrind
does, so that signals sent to the PID reach echod), ECHOD_TIMEOUT_SCALE
(multiplies every deadline; 10 by default under a wrapper, else 1).
Standard library only; no sleeps as synchronisation.
"""

import os
import re
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

WRAPPER = shlex.split(os.environ.get("ECHOD_WRAPPER", ""))
TIMEOUT_SCALE = float(os.environ.get("ECHOD_TIMEOUT_SCALE",
                                     "10" if WRAPPER else "1"))

LISTEN_RE = re.compile(r"listening on ([^\s\"]+)")
# The line SIGUSR1 makes echod log; its fields are stats()'s keys.
STATS_RE = (r"stats: connections current=(\d+) total=(\d+) refused=(\d+); "
            r"bytes in=(\d+) out=(\d+)")
SEED_MESSAGE = b"Hello from client!\n"
MIB = 1024 * 1024


def scaled(seconds):
    """A deadline in seconds, stretched for slow builds."""
    return seconds * TIMEOUT_SCALE


def _binary(var):
    path = os.environ.get(var)
    if not path:
        raise RuntimeError(f"{var} is not set: run through ctest, or set "
                           f"{var}=/path/to/binary")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{var}={path} is not an executable file")
    return path


def echod_path():
    return _binary("ECHOD")


def client_path():
    return _binary("ECHO_CLIENT")


class Deadline:
    """A point in time that a wait must not pass."""

    def __init__(self, seconds):
        self.seconds = scaled(seconds)
        self.end = time.monotonic() + self.seconds

    def remaining(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end


def wait_for(condition, timeout, what, interval=0.005):
    """Polls condition() until it returns something true; returns that.
    Fails the test with `what` if timeout seconds (scaled) pass first."""
    deadline = Deadline(timeout)
    while True:
        value = condition()
        if value:
            return value
        if deadline.expired():
            raise AssertionError(
                f"timed out after {deadline.seconds:g}s waiting for {what}")
        time.sleep(min(interval, deadline.remaining()))


def split_address(text):
    """"127.0.0.1:80" -> ("127.0.0.1", 80); "[::1]:80" -> ("::1", 80);
    "unix:/run/x.sock" -> "/run/x.sock" (a Unix socket is its path)."""
    if text.startswith("unix:"):
        return text[len("unix:"):]
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Drain(threading.Thread):
    """Reads a pipe to its end, line by line, into a list."""

    def __init__(self, pipe, lines, cond):
        super().__init__(daemon=True)
        self.pipe, self.lines, self.cond = pipe, lines, cond

    def run(self):
        for raw in iter(self.pipe.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace"))
                self.cond.notify_all()
        self.pipe.close()


class Echod:
    """One echod process. Use as a context manager or call start()/stop();
    kill() (SIGKILL) is the safety net for teardown."""

    def __init__(self, *args, listen=("127.0.0.1:0",), expect=None,
                 env=None):
        """args go after one --listen per entry of listen; start() waits
        for `expect` "listening on" lines (default: one per listen). env
        adds to (or overrides) the environment echod gets."""
        self.argv = list(WRAPPER) + [echod_path()]
        for spec in listen:
            self.argv += ["--listen", spec]
        self.argv += list(args)
        self.nlisten = len(listen) if expect is None else expect
        self.env = None if env is None else {**os.environ, **env}
        self.proc = None
        self.addresses = []
        self._stderr, self._stdout = [], []
        self._cond = threading.Condition()
        self._drains = []

    # Lifecycle.

    def spawn(self):
        """Runs self.argv with its output drained into the log."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env)
        self._drains = [_Drain(self.proc.stderr, self._stderr, self._cond),
                        _Drain(self.proc.stdout, self._stdout, self._cond)]
        for d in self._drains:
            d.start()

    def start(self, timeout=10):
        self.spawn()
        deadline = Deadline(timeout)
        with self._cond:
            while True:
                found = [m.group(1) for m in map(LISTEN_RE.search,
                                                 self._stderr) if m]
                if len(found) >= self.nlisten:
                    break
                if self.proc.poll() is not None and not self._drains[0]\
                        .is_alive():
                    raise AssertionError(
                        f"echod exited with status {self.proc.returncode} "
                        f"before listening:\n{self.stderr()}")
                if deadline.expired():
                    raise AssertionError(
                        f"echod did not log {self.nlisten} 'listening on' "
                        f"line(s) within {deadline.seconds:g}s:\n"
                        f"{self.stderr()}")
                self._cond.wait(min(0.1, deadline.remaining()))
        self.addresses = [split_address(a) for a in found]
        return self

    @property
    def pid(self):
        return self.proc.pid

    @property
    def address(self):
        """(host, port) of the first listener."""
        return self.addresses[0]

    @property
    def port(self):
        return self.addresses[0][1]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout=10):
        """Waits for exit; returns the status once all output is read."""
        try:
            rc = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"echod (pid {self.proc.pid}) still running after "
                f"{scaled(timeout):g}s:\n{self.stderr()}") from None
        for d in self._drains:
            d.join(scaled(timeout))
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig to the PID and returns the exit status."""
        self.send_signal(sig)
        return self.wait(timeout)

    def stop_cleanly(self, testcase, sig=signal.SIGTERM, timeout=10):
        rc = self.stop(sig, timeout)
        testcase.assertEqual(
            rc, 0, f"echod exited with {rc} on {signal.Signals(sig).name}:\n"
            f"{self.stderr()}")

    def kill(self):
        """Teardown: SIGKILL if still alive, then reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            sys.stderr.write(f"echod (pid {self.proc.pid}) had to be killed; "
                             f"its log:\n{self.stderr()}\n")
        for d in self._drains:
            d.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()

    # Output.

    def stderr(self):
        with self._cond:
            return "".join(self._stderr)

    def stderr_lines(self):
        with self._cond:
            return list(self._stderr)

    def stdout(self):
        with self._cond:
            return "".join(self._stdout)

    def wait_log(self, regex, timeout=10, start=0):
        """Waits until a stderr line (from index start on) matches regex;
        returns the match."""
        pattern = re.compile(regex)
        deadline = Deadline(timeout)
        with self._cond:
            while True:
                for line in self._stderr[start:]:
                    m = pattern.search(line)
                    if m:
                        return m
                if deadline.expired():
                    raise AssertionError(
                        f"no stderr line matching {regex!r} within "
                        f"{deadline.seconds:g}s:\n{''.join(self._stderr)}")
                self._cond.wait(min(0.1, deadline.remaining()))

    # Resources.

    def _status_kib(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/PID/status")

    def rss_kib(self):
        """The process' resident memory (VmRSS) in KiB."""
        return self._status_kib("VmRSS")

    def peak_rss_kib(self):
        """The most it has been resident so far (VmHWM), in KiB."""
        return self._status_kib("VmHWM")

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


class EchodTestCase(unittest.TestCase):
    """A TestCase whose servers are always killed at teardown."""

    maxDiff = 4000

    def start_echod(self, *args, listen=("127.0.0.1:0",), timeout=10,
                    env=None):
        server = Echod(*args, listen=listen, env=env)
        self.addCleanup(server.kill)
        return server.start(timeout)

    def connect(self, address, timeout=10, family=None):
        sock = connect(address, timeout, family)
        self.addCleanup(sock.close)
        return sock

    def assertBytesEqual(self, got, want, what="echoed data"):
        """Like assertEqual for large byte strings: reports the length and
        the first differing offset instead of a megabyte diff."""
        if got == want:
            return
        n = min(len(got), len(want))
        first = next((i for i in range(n) if got[i] != want[i]), n)
        self.fail(f"{what} differs: got {len(got)} bytes, want {len(want)}; "
                  f"first difference at offset {first}: "
                  f"got {got[first:first + 16]!r}, "
                  f"want {want[first:first + 16]!r}")


def run_echod(args, timeout=10):
    """Runs echod to completion (for options that make it exit)."""
    return subprocess.run(list(WRAPPER) + [echod_path()] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=scaled(timeout))


def run_client(args, timeout=60, input=None):
    """Runs echo-client to completion; text output."""
    return subprocess.run([client_path()] + [str(a) for a in args],
                          input=input, capture_output=True,
                          timeout=scaled(timeout))


def connect(address, timeout=10, family=None):
    """A connection to (host, port), or to a Unix socket's path."""
    if isinstance(address, str):
        family, target = socket.AF_UNIX, address
    else:
        host, port = target = address
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(scaled(timeout))
    try:
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


def recv_exactly(sock, n, timeout=10):
    """Reads exactly n bytes (fewer only if the peer closes first)."""
    deadline = Deadline(timeout)
    chunks, got = [], 0
    while got < n:
        sock.settimeout(max(deadline.remaining(), 0.001))
        try:
            chunk = sock.recv(min(n - got, 1 << 20))
        except socket.timeout:
            raise AssertionError(
                f"received {got} of {n} bytes within "
                f"{deadline.seconds:g}s") from None
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_until_eof(sock, timeout=10, limit=1 << 30):
    deadline = Deadline(timeout)
    chunks, got = [], 0
    while True:
        sock.settimeout(max(deadline.remaining(), 0.001))
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            raise AssertionError(
                f"no EOF within {deadline.seconds:g}s "
                f"({got} bytes read)") from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        got += len(chunk)
        if got > limit:
            raise AssertionError(f"more than {limit} bytes before EOF")


def exchange(sock, payload, timeout=60, half_close=False):
    """Sends payload while reading concurrently. Reads len(payload) bytes;
    with half_close, shuts down the write side after sending and reads on
    to EOF. Returns what was read."""
    return pump(sock, memoryview(payload), 0, timeout, half_close)


def pump(sock, view, sent=0, timeout=60, half_close=False, each=None,
         strict=False):
    """Sends view[sent:] on sock while reading the echo (one thread,
    non-blocking, so neither side's buffers can deadlock the test) until
    len(view) bytes came back or, with half_close (the write side shut
    down after the last byte), until EOF. each(sent, received) runs every
    round. EOF ends the reading; with strict, EOF or a reset before
    len(view) bytes fails the test. Returns what was read."""
    deadline = Deadline(timeout)
    sock.setblocking(False)
    want = len(view)
    received = bytearray()
    eof = False
    if sent == want and half_close:
        sock.shutdown(socket.SHUT_WR)
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ |
                     (selectors.EVENT_WRITE if sent < want else 0))
        while not eof and (len(received) < want or half_close):
            if deadline.expired():
                raise AssertionError(
                    f"timed out after {deadline.seconds:g}s: "
                    f"sent {sent} of {want}, received {len(received)}")
            if each is not None:
                each(sent, len(received))
            for _, events in sel.select(min(deadline.remaining(), 0.5)):
                if events & selectors.EVENT_WRITE and sent < want:
                    try:
                        sent += sock.send(view[sent:sent + MIB])
                    except BlockingIOError:
                        pass
                    if sent == want:
                        if half_close:
                            sock.shutdown(socket.SHUT_WR)
                        sel.modify(sock, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(MIB)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        if strict:
                            raise AssertionError(
                                f"reset after {len(received)} of {want} "
                                f"bytes") from None
                        raise
                    if not chunk:
                        if strict:
                            raise AssertionError(
                                f"EOF after {len(received)} of {want} bytes")
                        eof = True
                    received += chunk
    sock.setblocking(True)
    return bytes(received)


def small_buffer_socket(address, bufsize=64 * 1024):
    """A non-blocking connection to address whose socket buffers are only
    bufsize, so the kernel cannot soak up much on the test's behalf."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
        s.settimeout(scaled(10))
        s.connect(address)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def send_until_stalled(socks, view, stall, timeout=60, each=None):
    """Sends view on every socket of socks without reading, until none of
    them has taken a byte for stall seconds (scaled) or all of view went
    out on each. each() runs every round. Returns the bytes each sent."""
    sent = [0] * len(socks)
    last = time.monotonic()
    deadline = Deadline(timeout)
    with selectors.DefaultSelector() as sel:
        for i, s in enumerate(socks):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_WRITE, i)
        while time.monotonic() - last < scaled(stall) and sel.get_map():
            if deadline.expired():
                raise AssertionError("senders neither finished nor stalled")
            if each is not None:
                each()
            for key, _ in sel.select(0.05):
                i = key.data
                try:
                    n = key.fileobj.send(view[sent[i]:sent[i] + 65536])
                except BlockingIOError:
                    n = 0
                except ConnectionResetError:
                    raise AssertionError(f"echod reset a sender after "
                                         f"{sent[i]} bytes") from None
                if n:
                    sent[i] += n
                    last = time.monotonic()
                if sent[i] == len(view):
                    sel.unregister(key.fileobj)
    return sent


def stats(server):
    """Asks echod for its counters (SIGUSR1); returns them as a dict with
    the keys current, total, refused, in and out."""
    start = len(server.stderr_lines())
    server.send_signal(signal.SIGUSR1)
    m = server.wait_log(STATS_RE, timeout=10, start=start)
    return dict(zip(("current", "total", "refused", "in", "out"),
                    map(int, m.groups())))


ADMIN_RE = re.compile(r"admin endpoint on (\S+) \(")


def admin_address(server, timeout=10, start=0):
    """The (host, port) of echod's admin endpoint, from its log."""
    return split_address(server.wait_log(ADMIN_RE, timeout=timeout,
                                         start=start).group(1))


def http(address, path, method="GET", headers=None, timeout=10):
    """One HTTP request; returns (status, headers dict, body bytes)."""
    import http.client
    conn = http.client.HTTPConnection(address[0], address[1],
                                      timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
                       r'(,|$)')


def parse_metrics(text):
    """Parses Prometheus's text format 0.0.4 strictly: every line a HELP,
    a TYPE or a sample; each family typed once, before its samples, its
    samples together; no series twice; histogram buckets cumulative and
    ending at +Inf with _count equal to it. Returns {(name, ((label,
    value), ...)): float} with labels sorted."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    types, out, done = {}, {}, set()
    current = None
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in done, f"{name}: HELP after its samples"
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"{name}: typed twice"
            assert kind in ("counter", "gauge", "histogram", "summary",
                            "untyped"), line
            types[name] = kind
            if current is not None:
                done.add(current)
            current = name
            continue
        assert not line.startswith("#") and line, f"bad line: {line!r}"
        m = _SAMPLE_RE.match(line)
        assert m, f"bad sample line: {line!r}"
        name, labels, value = m.group(1), m.group(3), m.group(4)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and \
                    types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        assert family == current, f"{name}: not under its own TYPE line"
        pairs = []
        if labels:
            pos = 0
            while pos < len(labels):
                lm = _LABEL_RE.match(labels, pos)
                assert lm, f"bad labels in {line!r}"
                pairs.append((lm.group(1), lm.group(2)))
                pos = lm.end()
        key = (name, tuple(sorted(pairs)))
        assert key not in out, f"series twice: {line!r}"
        v = float(value)
        if types[family] == "counter":
            assert name.endswith("_total") and v >= 0, line
        out[key] = v
    for name, kind in types.items():
        if kind != "histogram":
            continue
        buckets = sorted(((float(dict(k[1])["le"]), v)
                          for k, v in out.items()
                          if k[0] == name + "_bucket"))
        assert buckets and buckets[-1][0] == float("inf"), name
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{name}: buckets not cumulative"
        assert out[(name + "_count", ())] == counts[-1], name
    return out


def scrape(address):
    """GET /metrics, checked and parsed (parse_metrics)."""
    status, headers, body = http(address, "/metrics")
    assert status == 200, (status, body)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse_metrics(body.decode())


def metric(samples, name, **labels):
    """One series' value from scrape(); KeyError if it is not there."""
    return samples[(name, tuple(sorted(labels.items())))]


def ss(*args):
    """What `ss -H ARGS` prints: sockets as the kernel reports them."""
    r = subprocess.run(["ss", "-H"] + list(args), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def cpu_seconds(pid):
    """utime + stime of a process so far, in seconds (10 ms ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def random_payload(size, seed):
    """Deterministic pseudo-random bytes (fast for tens of MiB)."""
    import random
    return random.Random(seed).randbytes(size)


def every_byte_value(repetitions):
    return bytes(range(256)) * repetitions


def ipv6_loopback_available():
    """True if a socket can be bound to [::1]."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def bound_port(family=socket.AF_INET, host="127.0.0.1", listen=False):
    """A socket bound to a kernel-chosen loopback port, kept open so no
    one else can take the port while a test uses it."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    if listen:
        s.listen(16)
    return s, s.getsockname()[1]


_ports_given = set()


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port that was free a moment ago, for a config file that
    must name it (the caller accepts the tiny race of another process
    taking it meanwhile). Never the same port twice in one test process:
    the kernel may hand a port it just gave out again once its socket is
    closed, and two listen lines on one port are a config error."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


# ctest's SKIP_RETURN_CODE for these tests (tests/CMakeLists.txt): a file
# any of whose tests skipped is reported as skipped, never as passed.
EXIT_SKIPPED = 77
# A skip for a check that means nothing under a wrapper (valgrind): the
# same test runs unwrapped in the same CI run. Any other skip in CI is a
# test that could not run there, and fails.
WRAPPER_SKIP = "meaningless under a wrapper: "


def failcall_env(test, spec):
    """The environment that makes echod's calls in spec ("NAME:N,...")
    fail as out of memory: tests/failcall/, which ctest names in
    ECHOD_TEST_FAILCALL for a test that NEEDS it."""
    shim = os.environ.get("ECHOD_TEST_FAILCALL")
    if not shim:
        test.fail("ECHOD_TEST_FAILCALL is not set: ctest sets it to the "
                  "failcall library (tests/failcall/)")
    return {"LD_PRELOAD": shim, "ECHOD_TEST_FAIL": spec}


def skip_under_wrapper(test, why):
    """Skips test if echod runs under a wrapper, saying why."""
    if WRAPPER:
        test.skipTest(WRAPPER_SKIP + why)


def main():
    """Runs the calling file's tests. Exit status: 0 if all passed, 1 if
    any failed (or, with CI=true, skipped for a reason other than a
    wrapper), EXIT_SKIPPED if any skipped."""
    prog = unittest.main(verbosity=2, exit=False)
    result = prog.result
    if not result.wasSuccessful():
        sys.exit(1)
    if not result.skipped:
        sys.exit(0)
    in_ci = os.environ.get("CI") == "true"
    for test, why in result.skipped:
        must_run = in_ci and not why.startswith(WRAPPER_SKIP)
        sys.stderr.write(f"{'FAIL, skipped in CI' if must_run else 'SKIPPED'}"
                         f": {test.id()}: {why}\n")
        if must_run:
            sys.exit(1)
    sys.exit(EXIT_SKIPPED)


def sanitizer():
    """The sanitizer echod was built with: "asan", "tsan", "msan" or
    None. A sanitizer's runtime is linked into echod and answers the
    calls it intercepts before any LD_PRELOAD library can."""
    with open(echod_path(), "rb") as f:
        image = f.read()
    for name in ("asan", "tsan", "msan"):
        if b"__%s_init" % name.encode() in image:
            return name
    return None


def plain_allocator():
    """True if echod's malloc family is libc's: not under valgrind, not
    built with a sanitizer. (LD_PRELOAD can stand in front of libc's,
    not theirs; and theirs hold freed memory and add shadow memory.)"""
    return not WRAPPER and sanitizer() is None


def rss_is_meaningful():
    """False under valgrind or a sanitizer, whose allocators hold on to
    freed memory (quarantine) and add shadow memory."""
    return plain_allocator()

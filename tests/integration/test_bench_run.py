#!/usr/bin/env python3
"""bench/run's verdicts, read back from recorded runs with --report: a
ratio to the reference is the median of the repetitions' paired ratios,
the runs it pairs are made one after the other, and --strict fails on a
missed target. No server is started: the records are made here."""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

import echodtest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
RUN = os.path.join(REPO, "bench", "run")


def load_bench_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", RUN)
    spec = importlib.util.spec_from_loader("bench_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


bench = load_bench_run()

# fff79c1's pinned pingpong1000, as recorded (msgs/s, server CPU s): echod
# and epoll tie in two repetitions, and in the third the machine sped up
# between echod's run and epoll's. Both medians (76,431 and 96,419
# msgs/s) are that third pair's, so their ratio read its 1.262x, a miss;
# the repetitions' ratios are 1.002, 0.979 and 1.262, and their median
# passes.
PP1000 = {"echod": [(101952, 4.72), (76320, 4.98), (76431, 4.98)],
          "epoll": [(102159, 4.72), (75036, 5.0), (96419, 4.98)]}


def record(group, scenario, server, rep, rate, cpu_s=5.0, rss_kib=3000):
    sc = next(s for s in bench.scenarios_for(False) if s.name == scenario)
    key = bench.UNITS[sc.mode][0]
    client = {key: rate, "server_cpu_s": cpu_s, "errors": 0}
    if sc.mode == "pingpong":
        client["messages"] = rate * sc.duration
        client["latency_us"] = {"p50": 20, "p99": 40, "p999": 60}
    elif sc.mode == "stream":
        client["bytes"] = rate * sc.duration * bench.MIB
    elif sc.mode == "connrate":
        client["connects"] = rate * sc.duration
    else:
        client.update(established=sc.connections, echoed=sc.connections)
    return {"type": "run", "group": group, "rep": rep, "scenario": scenario,
            "mode": sc.mode, "transport": sc.transport, "server": server,
            "verdict": "ok", "broken": None, "noisy": False,
            "server_peak_rss_kib": rss_kib, "server_start_rss_kib": 1000,
            "client": client}


def full_run(pp1000=PP1000, scaling_rate=None):
    """A recorded full run in which every server ties with its
    reference, but for pingpong1000's figures and, if given, the
    two-thread echod's rate in every scaling scenario."""
    scs = bench.scenarios_for(False)
    servers = ["echod", "epoll", "epoll-tls", "udp-mmsg"]
    meta = {"type": "meta", "time": "2026-11-30T00:00:00+0000",
            "git": "0" * 40, "cpus": 2, "pinned": True, "quick": False,
            "reps": 3, "servers": servers, "skipped": {},
            "scenarios": [vars(sc) for sc in scs]}
    records = []
    for rep in range(3):
        for sc in scs:
            for srv in ("echod", bench.REFERENCE[sc.transport]):
                if sc.name == "pingpong1000":
                    rate, cpu = pp1000[srv][rep]
                    records.append(record("pinned", sc.name, srv, rep, rate,
                                          cpu))
                else:
                    records.append(record("pinned", sc.name, srv, rep,
                                          10000))
        for name in bench.SCALING_SCENARIOS:
            for srv in bench.SCALING_ORDER:
                rate = 10000
                if srv == "echod-t2-reuseport" and scaling_rate:
                    rate = scaling_rate
                records.append(record("scaling", name, srv, rep, rate))
    return [meta] + records


class BenchRunReportTest(unittest.TestCase):
    def report(self, lines, *args):
        with tempfile.TemporaryDirectory(prefix="echod-bench-run-") as d:
            path = os.path.join(d, "run.jsonl")
            with open(path, "w") as f:
                f.writelines(json.dumps(x) + "\n" for x in lines)
            r = subprocess.run(
                [sys.executable, RUN, "--report", path] + list(args),
                capture_output=True, text=True,
                timeout=echodtest.scaled(60))
            written = sorted(os.listdir(d))
        return r, written

    def target(self, stdout, label):
        lines = [x for x in stdout.splitlines() if x.startswith(f"- {label}")]
        self.assertEqual(len(lines), 1, stdout)
        return lines[0]

    def test_a_ratio_is_the_median_of_the_repetitions_ratios(self):
        r, written = self.report(full_run(), "--strict")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        line = self.target(r.stdout, "CPU per message, pingpong 64 B at "
                           "1,000 connections")
        self.assertIn("1.002x (repetitions 0.979–1.262)", line)
        self.assertIn("**PASS**", line)
        self.assertEqual(written, ["run.cpu.dat", "run.jsonl", "run.md",
                                   "run.rss.dat", "run.svg"])

    def test_every_repetition_over_the_bar_is_a_miss(self):
        slow = {"echod": [(90000, 5.0)] * 3, "epoll": [(100000, 5.0)] * 3}
        r, _ = self.report(full_run(pp1000=slow), "--strict")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line = self.target(r.stdout, "CPU per message, pingpong 64 B at "
                           "1,000 connections")
        self.assertIn("1.111x", line)
        self.assertIn("**FAIL**", line)
        # Without --strict a miss is reported, not an error.
        r, _ = self.report(full_run(pp1000=slow))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_the_two_thread_targets_read_their_own_pair(self):
        r, _ = self.report(full_run(scaling_rate=9700), "--strict")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line = self.target(r.stdout, "rate, connrate, 2 threads")
        self.assertIn("0.970x", line)
        self.assertIn("**FAIL**", line)

    def test_a_file_that_is_no_record_is_refused_with_64(self):
        r, _ = self.report([{"type": "run"}])
        self.assertEqual(r.returncode, 64)
        self.assertIn("meta line", r.stderr)
        r, _ = self.report([full_run()[0], {"type": "other"}])
        self.assertEqual(r.returncode, 64)
        # A run record without its group: refused, not a traceback.
        broken = full_run()
        del broken[5]["group"]
        r, _ = self.report(broken)
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("not a bench/run record", r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        with tempfile.TemporaryDirectory(prefix="echod-bench-run-") as d:
            r = subprocess.run(
                [sys.executable, RUN, "--report", os.path.join(d, "none")],
                capture_output=True, text=True,
                timeout=echodtest.scaled(60))
        self.assertEqual(r.returncode, 64)
        self.assertIn("No such file", r.stderr)


class FormatTest(unittest.TestCase):
    def test_a_ratio_never_reads_as_the_bar_it_misses(self):
        self.assertEqual(bench.fmt_bar(0.99962, 1.0), "0.9996")
        self.assertEqual(bench.fmt_bar(1.00041, 1.0), "1.0004")
        self.assertEqual(bench.fmt_bar(1.0, 1.0), "1.000")
        self.assertEqual(bench.fmt_bar(0.97, 1.0), "0.970")
        self.assertEqual(bench.fmt_bar(1.0504, 1.05), "1.0504")


class RunOrderTest(unittest.TestCase):
    def test_the_paired_servers_run_together_and_take_turns(self):
        names = ["echod", "epoll", "libevent", "asyncio", "node"]
        seen = set()
        for rep in range(4):
            order = bench.run_order(names, ["echod", "epoll", "baseline"],
                                    rep)
            self.assertEqual(sorted(order), sorted(names))
            self.assertEqual(set(order[:2]), {"echod", "epoll"})
            seen.add(order[0])
            seen.add(tuple(order[2:]))
        # Each goes first in turn; the rest rotate.
        self.assertIn("echod", seen)
        self.assertIn("epoll", seen)
        self.assertIn(("libevent", "asyncio", "node"), seen)
        self.assertIn(("asyncio", "node", "libevent"), seen)

    def test_a_baseline_never_comes_between_the_pair(self):
        names = ["echod", "epoll", "libevent", "baseline"]
        orders = [bench.run_order(names, ["echod", "epoll", "baseline"],
                                  rep) for rep in range(4)]
        self.assertEqual(orders, [
            ["echod", "epoll", "baseline", "libevent"],
            ["epoll", "echod", "baseline", "libevent"],
            ["baseline", "echod", "epoll", "libevent"],
            ["baseline", "epoll", "echod", "libevent"]])


if __name__ == "__main__":
    echodtest.main()

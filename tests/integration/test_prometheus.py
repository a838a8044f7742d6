#!/usr/bin/env python3
"""A real Prometheus (Debian's package) scrapes echod's admin endpoint
every second: it reports the target up and the connections the test
made. Prometheus is started by the test on loopback, with its own
storage in a temporary directory, and stopped at the end."""
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request

import echodtest
from echodtest import (Echod, EchodTestCase, admin_address, bound_port,
                       exchange, scaled, wait_for)


class PrometheusTest(EchodTestCase):
    def start_prometheus(self, target):
        binary = shutil.which("prometheus")
        self.assertIsNotNone(binary,
                             "prometheus missing (build.sh installs it)")
        tmp = tempfile.TemporaryDirectory(prefix="echod-prometheus-")
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: echod\n"
                    "    static_configs:\n"
                    f"      - targets: ['{target[0]}:{target[1]}']\n")
        probe, port = bound_port()
        probe.close()
        log = open(os.path.join(tmp.name, "prometheus.log"), "w+")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [binary, f"--config.file={conf}",
             f"--storage.tsdb.path={tmp.name}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def stop():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.addCleanup(stop)
        self.prometheus_log = log
        return proc, ("127.0.0.1", port)

    def query(self, api, expr):
        """The value of an instant query with one series, or None."""
        url = (f"http://{api[0]}:{api[1]}/api/v1/query?" +
               urllib.parse.urlencode({"query": expr}))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                reply = json.load(r)
        except OSError:
            return None  # not up yet
        self.assertEqual(reply["status"], "success", reply)
        result = reply["data"]["result"]
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def test_prometheus_scrapes_echod(self):
        server = Echod("--admin-listen", "127.0.0.1:0")
        self.addCleanup(server.kill)
        server.start()
        admin = admin_address(server)
        for i in range(3):
            with self.connect(server.address) as s:
                exchange(s, b"prometheus %d\n" % i, 10, half_close=True)
        proc, api = self.start_prometheus(admin)

        def seen():
            if proc.poll() is not None:
                self.prometheus_log.seek(0)
                self.fail("prometheus exited with status "
                          f"{proc.returncode}:\n{self.prometheus_log.read()}")
            return (self.query(api, 'up{job="echod"}') == 1 and
                    self.query(api, 'echod_connections_accepted_total'
                               '{job="echod"}') == 3)
        wait_for(seen, scaled(90), "prometheus to scrape echod", interval=0.5)
        # It goes on scraping: more traffic shows up.
        with self.connect(server.address) as s:
            exchange(s, b"one more", 10, half_close=True)
        wait_for(lambda: self.query(api, 'echod_connections_accepted_total'
                                    '{job="echod"}') == 4,
                 scaled(30), "the next scrape", interval=0.5)
        self.assertGreater(
            self.query(api, 'process_resident_memory_bytes{job="echod"}'), 0)
        server.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

#!/usr/bin/env python3
"""echod behind real load balancers, Debian's packages started by the test
on loopback: HAProxy in front of two echod instances with send-proxy-v2
and the echo itself as the health check (tcp-check send/expect, whose
connections carry a PROXY v2 LOCAL header), and nginx's stream module with
proxy_protocol on (v1). echod must see the real clients (127.0.0.2 and
127.0.0.3, not the balancer): in its log, and in max_connections_per_ip,
enforced per real client. echo-client --load runs through both from
those two addresses (--source) and from 127.0.0.2-254 (connrate) without
an error. And through each, one instance upgraded in place (SIGUSR2)
under that load, the balancer told not to retry a refused connection
(HAProxy's retries 0, nginx's proxy_next_upstream off): no client error,
no HAProxy check down."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import echodtest
from echodtest import (Echod, EchodTestCase, free_port, recv_exactly,
                       recv_until_eof, run_client, scaled, wait_for)

HEALTH = b"echod health\n"


def connect_from(source, address, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(scaled(timeout))
    s.bind((source, 0))
    s.connect(address)
    return s


class Balancer:
    """A balancer process started from a config file in a temp dir."""

    def __init__(self, test, name, argv, config, port):
        self.test = test
        self.name = name
        self.port = port
        self.dir = tempfile.TemporaryDirectory(prefix=f"echod-{name}-")
        test.addCleanup(self.dir.cleanup)
        self.conf = os.path.join(self.dir.name, f"{name}.conf")
        with open(self.conf, "w") as f:
            f.write(config.replace("@DIR@", self.dir.name))
        self.log = open(os.path.join(self.dir.name, "log"), "w+")
        test.addCleanup(self.log.close)
        self.proc = subprocess.Popen(
            [a.replace("@CONF@", self.conf).replace("@DIR@", self.dir.name)
             for a in argv],
            stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT)
        test.addCleanup(self.stop)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wait_serving(self):
        """Until an echo goes through it."""
        def through():
            if self.proc.poll() is not None:
                self.test.fail(f"{self.name} exited with status "
                               f"{self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=2) as s:
                    s.sendall(b"up?")
                    return recv_exactly(s, 3, timeout=2) == b"up?"
            except OSError:
                return False
        wait_for(through, scaled(60), f"{self.name} to serve", interval=0.2)


class BalancerTestCase(EchodTestCase):
    def echods(self, n, *args):
        servers = []
        for _ in range(n):
            s = Echod("-v", "--log-connections", "yes", *args,
                      listen=("127.0.0.1:0 proxy_protocol",))
            self.addCleanup(s.kill)
            s.start()
            servers.append(s)
        return servers

    def upgrade_under_load(self, make_balancer):
        """Two echods from config files (an upgrade needs fixed ports),
        the balancer make_balancer(servers, port) starts in front, then
        echo-client connrate (500/s each) from 127.0.0.2 and .3 and
        pingpong from .4 for 4 s, the first echod upgraded (SIGUSR2) 1 s in: no client
        error, and the old process exits 0 once drained."""
        echodtest.skip_under_wrapper(self, "the wrapper is what upgrades")
        tmp = tempfile.TemporaryDirectory(prefix="echod-lb-up-")
        self.addCleanup(tmp.cleanup)
        servers = []
        for i in range(2):
            pidfile = os.path.join(tmp.name, f"echod{i}.pid")
            conf = os.path.join(tmp.name, f"echod{i}.conf")
            with open(conf, "w") as f:
                f.write(f"listen = 127.0.0.1:{free_port()} proxy_protocol\n"
                        f"pid_file = {pidfile}\nthreads = 2\n")
            s = Echod("-c", conf, listen=(), expect=1)
            s.pidfile = pidfile
            self.addCleanup(s.kill)
            self.addCleanup(self.kill_upgraded, s)
            s.start()
            servers.append(s)
        port = free_port()
        lb = make_balancer(servers, port)
        lb.wait_serving()
        # connrate paced: unpaced, its TIME_WAIT sockets would crowd
        # out the ports other tests bind meanwhile.
        specs = (("connrate", "127.0.0.2", ("--rate", "500")),
                 ("connrate", "127.0.0.3", ("--rate", "500")),
                 ("pingpong", "127.0.0.4", ()))
        runs = [subprocess.Popen(
            [echodtest.client_path(), "--load", "--mode", mode, "-c", "4",
             "-d", "4", "--warmup", "0", "--json", "--source", source,
             *rate, "127.0.0.1", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for mode, source, rate in specs]
        time.sleep(1)
        old = servers[0]
        old.send_signal(signal.SIGUSR2)
        old.wait_log(r"upgrade: the new process \(pid \d+\) is serving",
                     timeout=scaled(20))
        new_pid = read_pid(old.pidfile)
        self.assertNotEqual(new_pid, old.pid)
        for (_, _, rate), p in zip(specs, runs):
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn(b'"errors":0', out)
            r = json.loads(out)
            # The figures docs/scaling.md quotes.
            print(f"\nthrough {lb.name} across an upgrade: {r['mode']} "
                  f"-c 4 -d 4 {' '.join(rate)}: {r['connects']} connections "
                  f"({r['conns_per_s']:.0f}/s), {r['messages']} echoes "
                  f"({r['msgs_per_s']:.0f}/s), {r['errors']} errors",
                  file=sys.stderr)
        # The old one drained its pingpong connections and left.
        self.assertEqual(old.proc.wait(scaled(20)), 0)
        self.assertTrue(any(f"echod[{new_pid}] info: listening" in ln
                            for ln in old.stderr_lines()))
        lb.wait_serving()
        return lb, servers, new_pid

    def stop_upgraded(self, servers, new_pid):
        """Stops the instance not upgraded and the upgraded one's new
        process (after any check of the balancer's log: it sees them
        go)."""
        servers[1].stop_cleanly(self)
        os.kill(new_pid, signal.SIGTERM)
        wait_for(lambda: read_pid(servers[0].pidfile) is None, scaled(20),
                 "the new echod to stop")

    def kill_upgraded(self, server):
        """The process an upgrade started: by the pid in its pid file."""
        pid = read_pid(server.pidfile)
        if pid and pid != server.pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def tool(self, name):
        path = shutil.which(name)
        self.assertIsNotNone(path, f"{name} missing (build.sh installs it)")
        return path

    def real_clients(self, servers, front, per_ip):
        """From 127.0.0.2 and 127.0.0.3 through the balancer: echod names
        each, and holds each to per_ip connections of its own."""
        held = []
        for source in ("127.0.0.2", "127.0.0.3"):
            for i in range(per_ip):
                s = connect_from(source, front)
                held.append(s)
                s.sendall(b"%s %d" % (source.encode(), i))
                self.assertEqual(recv_exactly(s, len(source) + 2),
                                 b"%s %d" % (source.encode(), i))
        for source in ("127.0.0.2", "127.0.0.3"):
            wait_for(lambda: any(f"header: client {source}:" in ln
                                 for srv in servers
                                 for ln in srv.stderr_lines()),
                     10, f"echod to name {source}")
        # One more from 127.0.0.2: over its own limit, whoever else is on.
        extra = connect_from("127.0.0.2", front)
        extra.sendall(b"over")
        try:  # a balancer passes the close on as a FIN or a reset
            self.assertEqual(recv_until_eof(extra, timeout=scaled(10)), b"")
        except ConnectionResetError:
            pass
        extra.close()
        wait_for(lambda: any("max_connections_per_ip reached for "
                             "127.0.0.2:" in ln
                             for srv in servers
                             for ln in srv.stderr_lines()),
                 10, "the refusal of 127.0.0.2's extra connection")
        self.assertFalse(any("reached for 127.0.0.1:" in ln
                             for srv in servers
                             for ln in srv.stderr_lines()))
        for s in held:
            s.close()

    def load_through(self, servers, front):
        """echo-client --load from 127.0.0.2 and from 127.0.0.3 at once,
        each at its per-IP limit of 2, then connrate from 127.0.0.2-254:
        no error, and echod names them."""
        host, port = front
        runs = [subprocess.Popen(
            [echodtest.client_path(), "--load", "--mode", "pingpong", "-c",
             "2", "-d", "1", "--json", "--source", source, host, str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for source in ("127.0.0.2", "127.0.0.3")]
        for p in runs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn(b'"errors":0', out)
        # Paced, so as not to leave tens of thousands of TIME_WAIT
        # sockets in the way of other tests' ports.
        r = run_client(["--load", "--mode", "connrate", "-c", "8", "-d", "1",
                        "--rate", "1000", "--json", host, str(port)],
                       timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'"errors":0', r.stdout)
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.9"):
            self.assertTrue(any(f"received 64 bytes from {source}:" in ln
                                for s in servers for ln in s.stderr_lines()),
                            source)


def haproxy_config(port, servers, retries=3):
    backends = "\n".join(
        f"    server e{i} {s.address[0]}:{s.address[1]} send-proxy-v2 "
        f"check inter 300ms rise 1 fall 2"
        for i, s in enumerate(servers))
    hex_health = HEALTH.hex()
    return f"""global
    maxconn 2000
defaults
    mode tcp
    retries {retries}
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend echo
    bind 127.0.0.1:{port}
    default_backend echods
backend echods
    balance source
    option tcp-check
    tcp-check connect default
    tcp-check send-binary {hex_health}
    tcp-check expect binary {hex_health}
{backends}
"""


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except FileNotFoundError:
        return None


class HAProxyTest(BalancerTestCase):
    def test_upgrading_one_instance_under_load_loses_nothing(self):
        haproxy = self.tool("haproxy")
        lb, servers, new_pid = self.upgrade_under_load(
            lambda servers, port: Balancer(
                self, "haproxy", [haproxy, "-db", "-f", "@CONF@"],
                # No retry: a refused connection would reach the client.
                haproxy_config(port, servers, retries=0), port))
        # No check failed while the instance was upgraded.
        self.assertNotIn("DOWN", lb.output())
        self.stop_upgraded(servers, new_pid)

    def test_haproxy_send_proxy_v2_with_echo_health_checks(self):
        haproxy = self.tool("haproxy")
        servers = self.echods(2, "--max-connections-per-ip", "2")
        port = free_port()
        lb = Balancer(self, "haproxy", [haproxy, "-db", "-f", "@CONF@"],
                      haproxy_config(port, servers), port)
        lb.wait_serving()
        front = ("127.0.0.1", port)
        # The health checks: the echo itself, under a LOCAL header.
        for s in servers:
            s.wait_log(r"PROXY v2 header: client the connection's own",
                       timeout=scaled(20))
            s.wait_log(r"bytes_in=13 bytes_out=13 ",
                       timeout=scaled(20))
        self.real_clients(servers, front, per_ip=2)
        self.load_through(servers, front)
        self.assertNotIn("DOWN", lb.output())
        for s in servers:
            s.stop_cleanly(self)


NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"


def nginx_config(port, servers, next_upstream="on"):
    upstreams = "\n".join(f"        server {s.address[0]}:"
                          f"{s.address[1]};" for s in servers)
    return f"""load_module {NGINX_STREAM};
daemon off;
master_process off;
pid @DIR@/nginx.pid;
error_log stderr notice;
events {{ worker_connections 1024; }}
stream {{
    upstream echods {{
        hash $remote_addr;
{upstreams}
    }}
    server {{
        listen 127.0.0.1:{port};
        proxy_pass echods;
        proxy_protocol on;
        proxy_next_upstream {next_upstream};
    }}
}}
"""


class NginxTest(BalancerTestCase):
    def nginx(self):
        nginx = self.tool("nginx")
        self.assertTrue(os.path.exists(NGINX_STREAM),
                        "nginx's stream module missing (build.sh installs "
                        "libnginx-mod-stream)")
        return nginx

    def test_upgrading_one_instance_under_load_loses_nothing(self):
        nginx = self.nginx()
        _, servers, new_pid = self.upgrade_under_load(
            lambda servers, port: Balancer(
                self, "nginx",
                [nginx, "-p", "@DIR@", "-c", "@CONF@", "-e", "stderr"],
                # No next upstream: a refused connection would reach the
                # client.
                nginx_config(port, servers, next_upstream="off"), port))
        self.stop_upgraded(servers, new_pid)

    def test_nginx_stream_proxy_protocol_v1(self):
        nginx = self.nginx()
        servers = self.echods(2, "--max-connections-per-ip", "2")
        port = free_port()
        lb = Balancer(self, "nginx",
                      [nginx, "-p", "@DIR@", "-c", "@CONF@", "-e", "stderr"],
                      nginx_config(port, servers), port)
        lb.wait_serving()
        front = ("127.0.0.1", port)
        self.real_clients(servers, front, per_ip=2)
        self.assertTrue(any("PROXY v1 header: client 127.0.0.3:" in ln
                            for s in servers for ln in s.stderr_lines()))
        self.load_through(servers, front)
        for s in servers:
            s.stop_cleanly(self)


if __name__ == "__main__":
    echodtest.main()

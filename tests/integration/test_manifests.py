"""docs/kubernetes/echod.yaml against echod itself: its config passes
`echod --check-config`, and the rest agrees with that config: every
listen port is a container port, the probes use the admin port (/healthz
for readiness, a TCP check for liveness, since /healthz says 503 while
draining), the grace period covers the preStop sleep and
shutdown_timeout, the config is mounted where the arguments look, and
each Service selects the pods and targets a port they have."""

import os
import re
import subprocess
import tempfile
import unittest

import yaml

import echodtest

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "docs", "kubernetes", "echod.yaml")


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", text)
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[m.group(2)]


class Manifests(unittest.TestCase):

    def setUp(self):
        with open(MANIFEST) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        self.kinds = {}
        for d in docs:
            self.kinds.setdefault(d["kind"], []).append(d)
        self.conf = self.kinds["ConfigMap"][0]["data"]["echod.conf"]
        self.deploy = self.kinds["Deployment"][0]
        self.pod = self.deploy["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]
        self.ports = {p["name"]: p["containerPort"]
                      for p in self.container["ports"]}
        self.keys = [tuple(part.strip() for part in ln.split("=", 1))
                     for ln in self.conf.splitlines()
                     if ln.strip() and not ln.lstrip().startswith("#")]

    def key(self, name):
        return [v for k, v in self.keys if k == name]

    def test_the_config_passes_echod_check_config(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(self.conf)
            f.flush()
            r = subprocess.run([echodtest.echod_path(), "--check-config",
                                "-c", f.name], capture_output=True,
                               text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, "configuration OK"), r.stderr)

    def test_every_listen_port_is_a_container_port(self):
        listen = [int(v.split()[0].rsplit(":", 1)[1])
                  for v in self.key("listen")]
        self.assertTrue(listen)
        for port in listen:
            self.assertIn(port, self.ports.values())
        admin = int(self.key("admin_listen")[0].rsplit(":", 1)[1])
        self.assertEqual(self.ports["admin"], admin)

    def test_probes_use_the_admin_endpoint(self):
        ready = self.container["readinessProbe"]["httpGet"]
        self.assertEqual((ready["path"], ready["port"]), ("/healthz", "admin"))
        self.assertEqual(self.container["livenessProbe"]["tcpSocket"]["port"],
                         "admin")

    def test_the_grace_period_covers_the_drain(self):
        pre = self.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[0], "sleep")
        drain = seconds(self.key("shutdown_timeout")[0])
        self.assertGreater(self.pod["terminationGracePeriodSeconds"],
                           int(pre[1]) + drain)

    def test_the_config_is_where_the_arguments_look(self):
        args = self.container["args"]
        path = args[args.index("--config") + 1]
        mount = self.container["volumeMounts"][0]
        self.assertEqual(os.path.dirname(path), mount["mountPath"])
        volume = [v for v in self.pod["volumes"]
                  if v["name"] == mount["name"]][0]
        self.assertEqual(volume["configMap"]["name"],
                         self.kinds["ConfigMap"][0]["metadata"]["name"])
        self.assertIn(os.path.basename(path),
                      self.kinds["ConfigMap"][0]["data"])

    def test_services_select_the_pods_and_target_their_ports(self):
        labels = self.deploy["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(self.deploy["spec"]["selector"]["matchLabels"],
                         labels)
        self.assertEqual(len(self.kinds["Service"]), 2)
        for svc in self.kinds["Service"]:
            for k, v in svc["spec"]["selector"].items():
                self.assertEqual(labels.get(k), v)
            for p in svc["spec"]["ports"]:
                self.assertIn(p["targetPort"], self.ports)
        # The public one goes to the PROXY protocol listener.
        public = [s for s in self.kinds["Service"]
                  if s["spec"]["type"] == "LoadBalancer"][0]
        target = self.ports[public["spec"]["ports"][0]["targetPort"]]
        self.assertIn(f"*:{target} proxy_protocol", self.key("listen"))


if __name__ == "__main__":
    echodtest.main()

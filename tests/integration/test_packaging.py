#!/usr/bin/env python3
"""
test_packaging.py: what echod ships around the binary: conf/echod.conf
(every key documented at its default, and echod runs from it), the systemd
units (systemd-analyze verify is clean, security exposure at most 1.5) and
the install rules (files land where the unit expects them; a modified
echod.conf survives a reinstall).

Environment:
  ECHOD            the built echod (required)
  ECHOD_BUILD_DIR  the CMake build directory (default: two levels above
                   ECHOD, i.e. BUILD for BUILD/server/echod)
  ECHOD_UNIT_DIR   the generated echod.service and echod.socket (default:
                   $ECHOD_BUILD_DIR/systemd)
  ECHOD_CONF       the configuration file under test (default: conf/echod.conf
                   in the source tree this file is in)
  ECHOD_CMAKE      the cmake that runs 'cmake --install' (default: cmake)
  ECHOD_WRAPPER, ECHOD_TIMEOUT_SCALE  as for the other integration tests
                   (echodtest.py).
The systemd tests skip only when systemd-analyze is not installed.
"""
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest
from pathlib import Path

import echodtest
from echodtest import Echod, EchodTestCase, exchange, scaled

SOURCE_DIR = Path(__file__).resolve().parents[2]
MAX_EXPOSURE = 1.5

# Every key of echod.conf and the default it must be shown at, commented
# out; listen is the one active line. pid_file and user have no default:
# the file shows an example value, which must stay commented.
ACTIVE = {"listen": "127.0.0.1:8888"}
DEFAULTS = {
    "threads": "0",
    "max_buffer": "1m",
    "log_level": "info",
    "shutdown_timeout": "10s",
    "max_connections": "10000",
    "max_connections_per_ip": "0",
    "idle_timeout": "0",
    "tcp_keepalive": "yes",
    "backlog": "511",
    "unix_mode": "0660",
    "daemonize": "no",
    "syslog": "no",
    "tls_verify_client": "no",
    "tls_protocols": "TLSv1.2 TLSv1.3",
    "handshake_timeout": "10s",
    "proxy_protocol_timeout": "5s",
    "udp_rate_limit": "1000",
    "log_connections": "no",
    "log_format": "text",
}
EXAMPLES = {"pid_file", "user", "tls_certificate", "tls_certificate_key",
            "tls_client_certificate", "tls_ciphers", "admin_listen"}
KEYS = set(ACTIVE) | set(DEFAULTS) | EXAMPLES

LINE = re.compile(r"^(#?)([a-z_]+) = (\S+(?: \S+)*)$")


def echod_path():
    return Path(echodtest.echod_path()).resolve()


def build_dir():
    if os.environ.get("ECHOD_BUILD_DIR"):
        return Path(os.environ["ECHOD_BUILD_DIR"]).resolve()
    return echod_path().parents[1]


def unit_dir():
    if os.environ.get("ECHOD_UNIT_DIR"):
        return Path(os.environ["ECHOD_UNIT_DIR"]).resolve()
    return build_dir() / "systemd"


def restart_only_keys():
    """The keys a reload cannot change, as `echod --help` names them from
    its key table: the one source the docs are checked against."""
    out = subprocess.run([str(echod_path()), "--help"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    m = re.search(r"wait for a restart: ([a-z_, \n]+)\.", out.stdout)
    assert m, out.stdout
    return {k.strip() for k in m.group(1).split(",")}


def words(text):
    return set(re.findall(r"[a-z]+(?:_[a-z]+)*", text))


def conf_path():
    return Path(os.environ.get("ECHOD_CONF", SOURCE_DIR / "conf/echod.conf"))


def conf_entries(text):
    """(commented, key, value, lineno) for every key line; raises on any
    line that is neither blank, a comment nor 'key = value'."""
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        m = LINE.match(line)
        if m:
            entries.append((m.group(1) == "#", m.group(2), m.group(3), n))
        elif line.strip() and not line.startswith("#"):
            raise AssertionError(f"echod.conf:{n}: not 'key = value': "
                                 f"{line!r}")
    return entries


def unit_settings(text, key):
    return [line.split("=", 1)[1] for line in text.splitlines()
            if line.startswith(key + "=")]


class ConfFileTest(EchodTestCase):
    """conf/echod.conf documents every key and runs as the defaults do."""

    def setUp(self):
        self.text = conf_path().read_text()

    def test_conf_shows_every_key_once_at_its_default(self):
        entries = conf_entries(self.text)
        keys = [k for _, k, _, _ in entries]
        for key in keys:
            self.assertEqual(keys.count(key), 1, f"{key} appears twice")
        active = {k: v for c, k, v, _ in entries if not c}
        commented = {k: v for c, k, v, _ in entries if c}
        self.assertEqual(active, ACTIVE)
        self.assertEqual({k: commented.get(k) for k in DEFAULTS}, DEFAULTS)
        self.assertEqual(set(commented) - set(DEFAULTS), EXAMPLES)

    def test_conf_comments_every_key(self):
        lines = self.text.splitlines()
        for _, key, _, n in conf_entries(self.text):
            above = lines[n - 2] if n >= 2 else ""
            self.assertTrue(above.startswith("# "),
                            f"echod.conf:{n}: {key} has no comment above")

    def test_conf_header_says_which_keys_reload(self):
        """The header's lists are the key table's, exactly."""
        restart = restart_only_keys()
        self.assertTrue(restart and restart < KEYS, restart)
        header = self.text.split("\n\n", 1)[0]
        para = header.split("Reloading:", 1)[1].split("\n#\n")[0]
        applied, others = re.sub(r"\n#\s*", " ", para).split("The others", 1)
        self.assertEqual(words(applied) & KEYS, KEYS - restart)
        self.assertEqual(words(others) & KEYS, restart)

    def test_readme_says_which_keys_wait_for_a_restart(self):
        readme = (SOURCE_DIR / "README.md").read_text()
        sentence = re.search(r"SIGHUP reloads the file:(.*?)wait for a "
                             r"restart", readme, re.S)
        self.assertIsNotNone(sentence, "README lost its reload sentence")
        listed = set(re.findall(r"`([a-z_]+)`", sentence.group(1)))
        self.assertEqual(listed, restart_only_keys())

    def test_conf_keys_are_echod_options(self):
        out = subprocess.run([str(echod_path()), "--help"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        for _, key, _, _ in conf_entries(self.text):
            self.assertIn("--" + key.replace("_", "-") + " ", out.stdout)
        self.assertIn("--config ", out.stdout)

    def run_echod(self, conf_text):
        """Starts echod on conf_text (its listen moved to a port of the
        kernel's choosing), echoes a message through it, stops it with
        SIGTERM and expects a clean exit."""
        text, count = re.subn(r"(?m)^listen = 127\.0\.0\.1:8888$",
                              "listen = 127.0.0.1:0", conf_text)
        self.assertEqual(count, 1)
        with tempfile.TemporaryDirectory() as tmp:
            conf = Path(tmp) / "echod.conf"
            conf.write_text(text)
            server = Echod("--config", str(conf), listen=(), expect=1)
            self.addCleanup(server.kill)
            server.start()
            self.assertEqual(server.address[0], "127.0.0.1")
            msg = b"echod.conf as shipped\n"
            with self.connect(server.address) as sock:
                self.assertEqual(exchange(sock, msg, 10, half_close=True),
                                 msg)
            server.stop_cleanly(self)

    def test_conf_as_shipped_serves(self):
        self.run_echod(self.text)

    def test_conf_with_every_default_uncommented_serves(self):
        lines = []
        for line in self.text.splitlines():
            m = LINE.match(line)
            if m and m.group(1) and m.group(2) in DEFAULTS:
                line = line[1:]
            lines.append(line)
        self.run_echod("\n".join(lines) + "\n")


def systemd_analyze():
    return shutil.which("systemd-analyze")


@unittest.skipUnless(systemd_analyze(), "systemd-analyze is not installed")
class SystemdUnitTest(unittest.TestCase):
    """The units as generated into the build directory."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        service = (unit_dir() / "echod.service").read_text()
        # verify wants ExecStart's binary to exist: point it at the build's.
        execstart = unit_settings(service, "ExecStart")
        self.assertEqual(len(execstart), 1)
        self.installed_echod = execstart[0].split()[0]
        self.assertTrue(self.installed_echod.endswith("/sbin/echod"),
                        execstart[0])
        service = service.replace("ExecStart=" + self.installed_echod,
                                  "ExecStart=" + str(echod_path()))
        (self.tmp / "echod.service").write_text(service)
        shutil.copy(unit_dir() / "echod.socket", self.tmp)
        self.env = dict(os.environ, SYSTEMD_COLORS="0", SYSTEMD_PAGER="")

    def analyze(self, *args):
        return subprocess.run([systemd_analyze(), *args], cwd=self.tmp,
                              env=self.env, capture_output=True, text=True,
                              timeout=scaled(60))

    def test_service_runs_echod_on_the_installed_conf(self):
        service = (unit_dir() / "echod.service").read_text()
        args = unit_settings(service, "ExecStart")[0].split()
        self.assertEqual(len(args), 3, args)
        self.assertEqual(args[1], "--config")
        self.assertTrue(args[2].endswith("/echod/echod.conf"), args)
        self.assertEqual(unit_settings(service, "Type"), ["notify"])
        # Restarts keep the sockets (echod sends FDSTORE=1).
        self.assertEqual(unit_settings(service, "FileDescriptorStoreMax"),
                         ["256"])
        self.assertEqual(unit_settings(service, "ExecReload"),
                         ["/bin/kill -HUP $MAINPID"])
        self.assertNotRegex(service, r"@[A-Z_]+@")

    def test_units_verify_clean(self):
        out = self.analyze("verify", str(self.tmp / "echod.service"),
                           str(self.tmp / "echod.socket"))
        self.assertEqual((out.returncode, out.stdout, out.stderr),
                         (0, "", ""))

    def test_service_security_exposure_at_most_1_5(self):
        out = self.analyze("security", "--offline=true", "--no-pager",
                           str(self.tmp / "echod.service"))
        self.assertEqual(out.returncode, 0, out.stderr)
        m = re.search(r"Overall exposure level for echod\.service: "
                      r"(\d+\.\d+)", out.stdout)
        self.assertIsNotNone(m, out.stdout)
        exposed = "\n".join(line for line in out.stdout.splitlines()
                            if line.startswith("✗"))
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE, exposed)


def cmake_cache(build, name):
    m = re.search(rf"(?m)^{name}:[A-Z]+=(.*)$",
                  (build / "CMakeCache.txt").read_text())
    if m is None:
        raise AssertionError(f"{name} is not in {build}/CMakeCache.txt")
    return m.group(1)


def long_options(program):
    """The long options a program's --help lists."""
    out = subprocess.run([program, "--help"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"(?m)^ +(?:-\w, )?\s*(--[a-z][a-z-]*)", out.stdout))


class ManPageTest(unittest.TestCase):
    """man/: mandoc -Tlint is clean, and every option and key that the
    programs know is documented in its page, so the pages cannot drift."""

    def page(self, name):
        text = (SOURCE_DIR / "man" / name).read_text()
        return text.replace("\\-", "-")  # mdoc's "\-" is a hyphen

    def assertDocuments(self, page, opt, name):
        """page has "Fl --opt" as a whole word: --backlog is not
        documented by --backlog-size."""
        self.assertRegex(page, rf"Fl {re.escape(opt[1:])}(?![\w-])",
                         f"{opt} not in {name}")

    def test_pages_lint_clean(self):
        mandoc = shutil.which("mandoc")
        self.assertIsNotNone(mandoc, "mandoc missing (build.sh installs it)")
        pages = sorted((SOURCE_DIR / "man").glob("*.[0-9]"))
        self.assertEqual([p.name for p in pages],
                         ["echo-client.1", "echod.8", "echod.conf.5"])
        out = subprocess.run([mandoc, "-Tlint"] + [str(p) for p in pages],
                             capture_output=True, text=True, timeout=30)
        # The one message allowed: a reference to one of these pages,
        # which the machine's manual database has not indexed.
        ours = r"Xr (echod 8|echod\.conf 5|echo-client 1)( \(\d+ times\))?$"
        for line in (out.stdout + out.stderr).splitlines():
            self.assertRegex(line, r"STYLE: referenced manual not found: "
                             + ours)

    def test_echod_page_has_every_option(self):
        page = self.page("echod.8")
        options = long_options(echod_path())
        self.assertIn("--max-buffer", options)
        for opt in options:
            self.assertDocuments(page, opt, "echod.8")

    def test_conf_page_has_every_key(self):
        page = self.page("echod.conf.5")
        keys = {o[2:].replace("-", "_") for o in long_options(echod_path())}
        keys -= {"config", "check_config", "verbose", "help", "version"}
        self.assertEqual(keys, KEYS)
        for key in keys:
            self.assertIn(f".It Ic {key} ", page, f"{key} not in echod.conf.5")

    def test_client_page_has_every_option(self):
        page = self.page("echo-client.1")
        options = long_options(echodtest.client_path())
        self.assertIn("--server-pid", options)
        for opt in options:
            self.assertDocuments(page, opt, "echo-client.1")


class CompletionTest(unittest.TestCase):
    """completion/: bash offers every long option each program's --help
    lists (the programs' own tables), and the values that have a list."""

    def complete(self, script, function, words):
        """What bash's completion function offers for words (the last
        one being completed)."""
        code = (f'source "{SOURCE_DIR}/completion/{script}"; '
                f'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); {function}; '
                f'printf "%s\\n" "${{COMPREPLY[@]}}"')
        out = subprocess.run(["bash", "-c", code, "bash"] + list(words),
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return set(out.stdout.split())

    def test_echod_completes_every_option(self):
        echod = str(echod_path())
        self.assertEqual(self.complete("echod", "_echod", [echod, "--"]),
                         long_options(echod))
        self.assertEqual(self.complete("echod", "_echod",
                                       [echod, "--max-conn"]),
                         {"--max-connections", "--max-connections-per-ip"})
        self.assertEqual(self.complete("echod", "_echod",
                                       [echod, "--log-level", ""]),
                         {"error", "warn", "info", "debug"})

    def test_echo_client_completes_every_option(self):
        client = echodtest.client_path()
        self.assertEqual(self.complete("echo-client", "_echo_client",
                                       [client, "--"]),
                         long_options(client))
        self.assertEqual(self.complete("echo-client", "_echo_client",
                                       [client, "--load", "--mode", "s"]),
                         {"stream"})


class InstallTest(unittest.TestCase):
    """cmake --install into a DESTDIR."""

    def install(self, destdir):
        env = dict(os.environ, DESTDIR=str(destdir))
        cmake = os.environ.get("ECHOD_CMAKE", "cmake")
        out = subprocess.run([cmake, "--install", str(build_dir())],
                             env=env, capture_output=True, text=True,
                             timeout=scaled(120))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        return out.stdout

    def test_install_places_files_and_keeps_a_modified_conf(self):
        build = build_dir()
        prefix = cmake_cache(build, "CMAKE_INSTALL_PREFIX")
        units = Path(prefix, cmake_cache(build, "ECHOD_SYSTEMD_UNIT_DIR"))
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp)

            def staged(path):
                return dest / Path(path).relative_to("/")

            self.install(dest)
            service = staged(units / "echod.service").read_text()
            self.assertTrue(staged(units / "echod.socket").is_file())
            args = unit_settings(service, "ExecStart")[0].split()
            if cmake_cache(build, "CMAKE_INSTALL_SYSCONFDIR") == "/etc":
                # The default, whatever the prefix.
                self.assertEqual(args[2], "/etc/echod/echod.conf", service)
            binary, conf = staged(args[0]), staged(args[2])
            self.assertTrue(os.access(binary, os.X_OK), binary)
            source = Path(cmake_cache(build, "echod_SOURCE_DIR"))
            self.assertEqual(conf.read_text(),
                             (source / "conf/echod.conf").read_text())
            self.assertEqual(stat.S_IMODE(conf.stat().st_mode), 0o644)

            completions = Path(prefix, cmake_cache(
                build, "CMAKE_INSTALL_DATADIR") or "share",
                "bash-completion/completions")
            for script in ("echod", "echo-client"):
                self.assertEqual(staged(completions / script).read_text(),
                                 (source / "completion" / script)
                                 .read_text())
            man = Path(prefix, cmake_cache(build, "CMAKE_INSTALL_MANDIR")
                       or "share/man")  # GNUInstallDirs' default
            for page in ("man8/echod.8", "man5/echod.conf.5",
                         "man1/echo-client.1"):
                self.assertEqual(staged(man / page).read_text(),
                                 (source / "man" / Path(page).name)
                                 .read_text())

            edited = conf.read_text() + "log_level = debug\n"
            conf.write_text(edited)
            out = self.install(dest)
            self.assertEqual(conf.read_text(), edited)
            self.assertIn(f"Keeping existing: {conf}", out)


if __name__ == "__main__":
    echodtest.main()

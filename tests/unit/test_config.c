/*
 * test_config.c: unit tests for server/config.c: every key kind read from
 * text, the config file's syntax (comments, quotes, blanks), and every
 * error path with its exact "file:line: message".
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echod.h"
#include "unit.h"

/* Where the tests write their config files (tmpdir_create()). */
#define TMPDIR_TEMPLATE "/tmp/echod-test-config-XXXXXX"
static char tmpdir[sizeof(TMPDIR_TEMPLATE)];

/* Writes text to a fresh file and returns its path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fwrite(text, 1, strlen(text), fp);
	fclose(fp);
	return path;
}

/* Loads text as a config file; returns config_load's result. */
static int
load(struct config *cfg, const char *text, char *err, size_t errlen)
{
	const char *path = write_file("echod.conf", text);

	config_init(cfg);
	return config_load(cfg, path, err, errlen);
}

/* Asserts that text fails with exactly "<path>:msg". */
static void
load_fails(const char *text, const char *msg)
{
	struct config cfg;
	char err[512] = "", want[512];

	ck_assert_int_eq(load(&cfg, text, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s/echod.conf:%s", tmpdir, msg);
	ck_assert_str_eq(err, want);
	config_free(&cfg);
}

START_TEST(test_config_defaults)
{
	struct config cfg;
	char err[256];

	config_init(&cfg);
	ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.nlisten, 1);
	ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:8888");
	ck_assert_uint_eq(cfg.threads, 0);
	ck_assert_uint_eq(cfg.max_buffer, (uint64_t)1024 * 1024);
	ck_assert_uint_eq(cfg.max_connections, 10000);
	ck_assert_uint_eq(cfg.max_connections_per_ip, 0);
	ck_assert_uint_eq(cfg.idle_timeout_ms, 0);
	ck_assert_int_eq(cfg.tcp_keepalive, 1);
	ck_assert_uint_eq(cfg.backlog, 511);
	ck_assert_uint_eq(cfg.shutdown_timeout_ms, 10000);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
	ck_assert_ptr_null(cfg.pid_file);
	config_free(&cfg);
}
END_TEST

START_TEST(test_config_reads_every_kind)
{
	struct config cfg;
	char err[256] = "";

	ck_assert_int_eq(load(&cfg,
			      "# a comment\n"
			      "\n"
			      "  listen = 127.0.0.1:9000\n"
			      "listen=[::1]:9001   # trailing comment\n"
			      "threads = 4\n"
			      "max_buffer = 64k\n"
			      "idle_timeout = 1500ms\n"
			      "shutdown_timeout = 2m\n"
			      "tcp_keepalive = no\n"
			      "log_level = DEBUG\n"
			      "pid_file = \"/run/echod #1.pid\"\n"
			      "daemonize = yes\r\n",
			      err, sizeof(err)),
			 0);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(cfg.nlisten, 2);
	ck_assert_str_eq(cfg.listen[1].text, "[::1]:9001");
	ck_assert_uint_eq(cfg.listen[1].addr.port, 9001);
	ck_assert_uint_eq(cfg.threads, 4);
	ck_assert_uint_eq(cfg.max_buffer, 65536);
	ck_assert_uint_eq(cfg.idle_timeout_ms, 1500);
	ck_assert_uint_eq(cfg.shutdown_timeout_ms, 120000);
	ck_assert_int_eq(cfg.tcp_keepalive, 0);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
	ck_assert_str_eq(cfg.pid_file, "/run/echod #1.pid");
	ck_assert_int_eq(cfg.daemonize, 1);
	config_free(&cfg);
}
END_TEST

START_TEST(test_config_durations_take_fractions)
{
	struct config cfg;
	int seen[ECHOD_MAX_KEYS] = {0};
	char idle[] = "idle_timeout = 1.5s\n";
	char shutdown[] = "shutdown_timeout = 0.25\n";
	char bad[] = "idle_timeout = .5\n";
	char err[256] = "";

	ck_assert_uint_le(config_nkeys, ECHOD_MAX_KEYS);
	config_init(&cfg);
	ck_assert_int_eq(
		config_parse_line(&cfg, idle, 1, seen, err, sizeof(err)), 0);
	ck_assert_int_eq(
		config_parse_line(&cfg, shutdown, 2, seen, err, sizeof(err)),
		0);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(cfg.idle_timeout_ms, 1500);
	ck_assert_uint_eq(cfg.shutdown_timeout_ms, 250);
	config_free(&cfg);

	memset(seen, 0, sizeof(seen));
	config_init(&cfg);
	ck_assert_int_eq(
		config_parse_line(&cfg, bad, 1, seen, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "'idle_timeout' must be a duration from 0 to "
			      "168h (ms, s, m or h suffix), not '.5'");
	config_free(&cfg);
}
END_TEST

START_TEST(test_config_listen_unix_path)
{
	struct config cfg;
	char err[512] = "";

	ck_assert_int_eq(load(&cfg,
			      "listen = unix:/run/echod/echod.sock\n"
			      "listen = 127.0.0.1:7\n"
			      "unix_mode = 0600\n",
			      err, sizeof(err)),
			 0);
	ck_assert_int_eq(cfg.nlisten, 2);
	ck_assert_int_eq(cfg.listen[0].kind, LISTEN_UNIX);
	ck_assert_str_eq(cfg.listen[0].path, "/run/echod/echod.sock");
	ck_assert_str_eq(cfg.listen[0].text, "unix:/run/echod/echod.sock");
	ck_assert_int_eq(cfg.listen[1].kind, LISTEN_TCP);
	ck_assert_uint_eq(cfg.unix_mode, 0600);
	config_free(&cfg);
}
END_TEST

START_TEST(test_config_listen_rejects_bad_unix_paths)
{
	char line[512];

	load_fails("listen = unix:run/x\n",
		   "1: 'listen' has a bad address: 'unix:run/x': a Unix "
		   "socket needs an absolute path, unix:/PATH");
	snprintf(line, sizeof(line), "listen = unix:/%0108d\n", 0);
	load_fails(line,
		   "1: 'listen' has a bad address: 'unix:/"
		   "000000000000000000000000000000000000000000000000000000"
		   "000000000000000000000000000000000000000000000000000000"
		   "': a Unix socket's path is at most 107 bytes");
	load_fails("listen = unix:/x\nlisten = unix:/x\n",
		   "2: 'listen' lists 'unix:/x' twice");
}
END_TEST

START_TEST(test_config_listen_rejects_unknown_parameter)
{
	load_fails("listen = 127.0.0.1:7 reuseport_typo\n",
		   "1: 'listen' has an unknown parameter 'reuseport_typo'");
}
END_TEST

START_TEST(test_config_listen_takes_fault_parameters)
{
	struct config cfg;
	char err[512] = "";

	ck_assert_int_eq(load(&cfg,
			      "listen = 127.0.0.1:7  delay=100ms\trate=4k "
			      "close_after=1m chance=0.5\n"
			      "listen = 127.0.0.1:8\n"
			      "listen = 127.0.0.1:9 delay=0\n",
			      err, sizeof(err)),
			 0);
	ck_assert_int_eq(cfg.nlisten, 3);
	/* The address alone is the identity a reload matches on. */
	ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:7");
	ck_assert_int_eq(cfg.listen[0].profile.behaviour, CONN_BEHAVIOUR_FAULT);
	ck_assert_uint_eq(cfg.listen[0].profile.fault.delay_ms, 100);
	ck_assert_uint_eq(cfg.listen[0].profile.fault.chance, 500000);
	ck_assert_int_eq(cfg.listen[1].profile.behaviour, CONN_BEHAVIOUR_ECHO);
	ck_assert_int_eq(cfg.listen[2].profile.behaviour, CONN_BEHAVIOUR_ECHO);
	config_free(&cfg);
	load_fails("listen = 127.0.0.1:7\nlisten = 127.0.0.1:7 stall\n",
		   "2: 'listen' lists '127.0.0.1:7' twice");
}
END_TEST

START_TEST(test_config_listen_rejects_bad_fault_parameters)
{
	load_fails("\nlisten = *:7 stall delay=1s\n",
		   "2: 'listen' has parameters that do not fit: 'stall' "
		   "never reads, so 'delay=' has nothing to act on");
	load_fails("listen = *:7 delay=1x\n",
		   "1: 'listen' has a bad parameter 'delay=1x': '1x' is not "
		   "a duration (a number with ms, s, m or h)");
	load_fails("listen = unix:/x reset_after=1k\n",
		   "1: 'listen' has a parameter that does not fit: "
		   "'reset_after=' needs TCP: a Unix socket has no reset");
}
END_TEST

START_TEST(test_config_listen_tls)
{
	struct config cfg;
	char err[512] = "";

	ck_assert_int_eq(load(&cfg,
			      "listen = *:8443 tls\n"
			      "listen = unix:/run/x.sock tls\n"
			      "tls_verify_client = optional\n"
			      "tls_protocols = TLSv1.3\n",
			      err, sizeof(err)),
			 0);
	ck_assert_int_eq(cfg.listen[0].profile.transport, CONN_TRANSPORT_TLS);
	ck_assert_str_eq(cfg.listen[0].text, "*:8443");
	ck_assert_int_eq(cfg.listen[1].profile.transport, CONN_TRANSPORT_TLS);
	ck_assert_int_eq(cfg.tls_verify_client, TLS_VERIFY_OPTIONAL);
	ck_assert_str_eq(cfg.tls_protocols, "TLSv1.3");
	config_free(&cfg);
	load_fails("listen = *:8443 tls tls\n",
		   "1: 'listen' has a bad parameter 'tls': it is given twice");
	load_fails("listen = *:8443 tls close_after=1\n",
		   "1: 'listen' has parameters that do not fit: faults are "
		   "not available on a tls listener yet; give them a plain "
		   "one");
	load_fails("tls_verify_client = maybe\n",
		   "1: 'tls_verify_client' must be one of no|optional|yes, "
		   "not 'maybe'");
	load_fails("tls_protocols = TLSv1.2 SSLv3\n",
		   "1: 'tls_protocols' names 'SSLv3': the versions are TLSv1.2 "
		   "and TLSv1.3");
	load_fails("\ntls_certificate = cert.pem\n",
		   "2: 'tls_certificate' must be an absolute path, not "
		   "'cert.pem'");
}
END_TEST

START_TEST(test_config_listen_udp)
{
	struct config cfg;
	char err[512] = "";

	ck_assert_int_eq(load(&cfg,
			      "listen = 127.0.0.1:7\n"
			      "listen = 127.0.0.1:7  udp\n"
			      "udp_rate_limit = 0\n",
			      err, sizeof(err)),
			 0);
	ck_assert_int_eq(cfg.nlisten, 2);
	ck_assert_int_eq(cfg.listen[0].kind, LISTEN_TCP);
	ck_assert_int_eq(cfg.listen[1].kind, LISTEN_UDP);
	/* TCP and UDP on one address are two lines, not one twice. */
	ck_assert_str_eq(cfg.listen[1].text, "127.0.0.1:7 udp");
	ck_assert_uint_eq(cfg.udp_rate_limit, 0);
	config_free(&cfg);
	load_fails("listen = *:7 udp\nlisten = *:7 udp\n",
		   "2: 'listen' lists '*:7 udp' twice");
	load_fails("listen = unix:/run/x udp\n",
		   "1: 'listen' has a parameter that does not fit: 'udp' needs "
		   "an IP address, not a Unix socket");
	load_fails("listen = *:7 udp stall\n",
		   "1: 'listen' has parameters that do not fit: 'udp' echoes "
		   "datagrams, with no faults (they act on streams)");
}
END_TEST

START_TEST(test_config_listen_reuseport_and_proxy_protocol)
{
	struct config cfg;
	char err[512] = "";

	ck_assert_int_eq(load(&cfg,
			      "listen = 127.0.0.1:8 reuseport proxy_protocol\n"
			      "listen = 127.0.0.1:9 proxy_protocol\n"
			      "proxy_protocol_timeout = 250ms\n",
			      err, sizeof(err)),
			 0);
	ck_assert_int_eq(cfg.listen[0].reuseport, 1);
	ck_assert_int_eq(cfg.listen[0].profile.preamble, CONN_PREAMBLE_PROXY);
	/* Other sockets: another identity. */
	ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:8 reuseport");
	ck_assert_int_eq(cfg.listen[1].reuseport, 0);
	ck_assert_str_eq(cfg.listen[1].text, "127.0.0.1:9");
	ck_assert_uint_eq(cfg.proxy_protocol_timeout_ms, 250);
	config_free(&cfg);
	load_fails("listen = *:7 udp reuseport\n",
		   "1: 'listen' has parameters that do not fit: 'udp' has a "
		   "socket per worker already; 'reuseport' is for TCP");
	load_fails("listen = *:7 udp proxy_protocol\n",
		   "1: 'listen' has parameters that do not fit: 'udp' echoes "
		   "datagrams, with no PROXY header (it starts a stream)");
	load_fails("listen = unix:/run/x reuseport\n",
		   "1: 'listen' has parameters that do not fit: 'reuseport' is "
		   "for TCP, not a Unix socket");
}
END_TEST

START_TEST(test_config_listen_deferred)
{
	struct config cfg;
	char err[512] = "";

	ck_assert_int_eq(load(&cfg,
			      "listen = 127.0.0.1:7 deferred\n"
			      "listen = 127.0.0.1:8 reuseport deferred=30s "
			      "proxy_protocol\n"
			      "listen = 127.0.0.1:9\n",
			      err, sizeof(err)),
			 0);
	ck_assert_int_eq(cfg.listen[0].defer_s, ECHOD_DEFERRED_DEFAULT_S);
	ck_assert_int_eq(cfg.listen[1].defer_s, 30);
	ck_assert_int_eq(cfg.listen[2].defer_s, 0);
	/* A parameter of the socket, not its identity: a reload may
	 * switch it on the socket it keeps. */
	ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:7");
	ck_assert_str_eq(cfg.listen[1].text, "127.0.0.1:8 reuseport");
	config_free(&cfg);
	load_fails(
		"listen = 127.0.0.1:7 deferred=3601s\n",
		"1: 'listen' has a bad parameter 'deferred=3601s': '3601s' is "
		"out of range (1s to 1h)");
	load_fails("listen = 127.0.0.1:7 deferred=1500ms\n",
		   "1: 'listen' has a bad parameter 'deferred=1500ms': "
		   "'1500ms' is not a whole number of seconds, which is what "
		   "the kernel counts");
	load_fails("listen = 127.0.0.1:7 deferred=0\n",
		   "1: 'listen' has a bad parameter 'deferred=0': '0' is out "
		   "of range (1s to 1h)");
	load_fails("listen = 127.0.0.1:7 deferred deferred=2s\n",
		   "1: 'listen' has a bad parameter 'deferred=2s': 'deferred' "
		   "is given twice");
	load_fails("listen = *:7 udp deferred\n",
		   "1: 'listen' has parameters that do not fit: 'deferred' "
		   "waits for a TCP connection's first bytes; 'udp' has no "
		   "connections");
	load_fails("listen = unix:/run/x deferred\n",
		   "1: 'listen' has parameters that do not fit: 'deferred' is "
		   "for TCP, not a Unix socket");
}
END_TEST

START_TEST(test_config_log_connections_and_format)
{
	struct config cfg;
	char err[512] = "";

	config_init(&cfg);
	ck_assert_int_eq(cfg.log_connections, 0);
	ck_assert_int_eq(cfg.log_format, 0);
	ck_assert_int_eq(load(&cfg,
			      "log_connections = yes\nlog_format = json\n", err,
			      sizeof(err)),
			 0);
	ck_assert_int_eq(cfg.log_connections, 1);
	ck_assert_int_eq(cfg.log_format, 1);
	config_free(&cfg);
	load_fails("log_format = xml\n",
		   "1: 'log_format' must be one of text|json, not 'xml'");
}
END_TEST

START_TEST(test_config_unix_mode_is_octal)
{
	load_fails("unix_mode = 0800\n",
		   "1: 'unix_mode' must be an octal mode from 0 to 777, not "
		   "'0800'");
	load_fails("unix_mode = 1777\n",
		   "1: 'unix_mode' must be an octal mode from 0 to 777, not "
		   "'1777'");
	load_fails("unix_mode = rw\n",
		   "1: 'unix_mode' must be an octal mode from 0 to 777, not "
		   "'rw'");
}
END_TEST

START_TEST(test_config_rejects_unknown_key)
{
	load_fails("threads = 1\nmax_conns = 5\n",
		   "2: unknown key 'max_conns'");
}
END_TEST

START_TEST(test_config_suggests_near_key)
{
	load_fails("max_conection = 5\n",
		   "1: unknown key 'max_conection' (did you mean "
		   "'max_connections'?)");
}
END_TEST

START_TEST(test_config_rejects_duplicate_single_key)
{
	load_fails("threads = 1\n\nthreads = 2\n",
		   "3: 'threads' is already set on line 1");
}
END_TEST

START_TEST(test_config_rejects_out_of_range)
{
	load_fails("threads = 1025\n", "1: 'threads' must be a whole number "
				       "from 0 to 1024, not '1025'");
	load_fails("max_buffer = 1k\n", "1: 'max_buffer' must be a size from "
					"4k to 1g (k, m or g suffix), not "
					"'1k'");
	load_fails("idle_timeout = 5 s\n",
		   "1: 'idle_timeout' must be a duration from 0 to 168h (ms, "
		   "s, m or h suffix), not '5 s'");
	load_fails("max_connections = 0\n",
		   "1: 'max_connections' must be a whole number from 1 to "
		   "1000000, not '0'");
}
END_TEST

START_TEST(test_config_rejects_garbage)
{
	load_fails("threads\n", "1: expected 'key = value', got 'threads'");
	load_fails("= 4\n", "1: missing key before '='");
	load_fails("threads =\n", "1: 'threads' has no value");
	load_fails("tcp_keepalive = maybe\n",
		   "1: 'tcp_keepalive' must be yes or no, not 'maybe'");
	load_fails("log_level = loud\n", "1: 'log_level' must be error, warn, "
					 "info or debug, not 'loud'");
	load_fails("listen = 8888\n",
		   "1: 'listen' has a bad address: '8888': expected HOST:PORT, "
		   "[IPv6]:PORT or *:PORT");
	load_fails("listen = 1.2.3.4:1\nlisten = 1.2.3.4:1\n",
		   "2: 'listen' lists '1.2.3.4:1' twice");
	load_fails("user = \"\"\n", "1: 'user' must not be empty");
}
END_TEST

START_TEST(test_config_rejects_bad_quoting)
{
	load_fails("log_level = \"info\n",
		   "1: 'log_level' has no closing quote");
	load_fails("log_level = \"info\" x\n",
		   "1: 'log_level' has text after its closing quote");
}
END_TEST

START_TEST(test_config_rejects_overlong_line)
{
	char text[6000];

	memset(text, 'a', sizeof(text) - 2);
	memcpy(text, "log_level = ", 12);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	load_fails(text, "1: line longer than 4096 bytes");
}
END_TEST

START_TEST(test_config_rejects_too_many_listen_addresses)
{
	char text[8192] = "";
	size_t len = 0;
	int i;

	for (i = 0; i <= ECHOD_MAX_LISTEN; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"listen = 127.0.0.1:%d\n", 10000 + i);
	load_fails(text, "65: 'listen' has more than 64 addresses");
}
END_TEST

START_TEST(test_config_rejects_nul_byte)
{
	struct config cfg;
	char err[512], want[512], path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
	fp = fopen(path, "w");
	fwrite("threads = 4\0x\n", 1, 14, fp);
	fclose(fp);
	config_init(&cfg);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:1: line contains a NUL byte", path);
	ck_assert_str_eq(err, want);
	config_free(&cfg);
}
END_TEST

START_TEST(test_config_missing_file)
{
	struct config cfg;
	char err[512];

	config_init(&cfg);
	ck_assert_int_eq(
		config_load(&cfg, "/nonexistent/echod.conf", err, sizeof(err)),
		-1);
	ck_assert_str_eq(err,
			 "/nonexistent/echod.conf: No such file or directory");
	config_free(&cfg);
}
END_TEST

START_TEST(test_config_listen_may_repeat)
{
	struct config cfg;
	char err[256];

	ck_assert_int_eq(load(&cfg,
			      "listen = *:1\nlisten = 127.0.0.1:2\n"
			      "listen = [::]:3\n",
			      err, sizeof(err)),
			 0);
	ck_assert_int_eq(cfg.nlisten, 3);
	ck_assert_int_eq(cfg.listen[0].addr.wildcard, 1);
	ck_assert_int_eq(cfg.listen[2].addr.wildcard, 0);
	ck_assert_str_eq(cfg.listen[2].addr.host, "::");
	config_free(&cfg);
}
END_TEST

/* An unchecked fixture: check runs it in its own process before the first
 * test and after the last, so forked tests (CK_FORK=yes, the default) and
 * unforked ones see the same directory, and it is removed either way. */
static void
tmpdir_create(void)
{
	memcpy(tmpdir, TMPDIR_TEMPLATE, sizeof(tmpdir));
	ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp %s: %s",
		      TMPDIR_TEMPLATE, strerror(errno));
}

static void
tmpdir_remove(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, tmpdir_create, tmpdir_remove);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_reads_every_kind);
	tcase_add_test(tc, test_config_durations_take_fractions);
	tcase_add_test(tc, test_config_listen_unix_path);
	tcase_add_test(tc, test_config_listen_rejects_bad_unix_paths);
	tcase_add_test(tc, test_config_listen_rejects_unknown_parameter);
	tcase_add_test(tc, test_config_listen_takes_fault_parameters);
	tcase_add_test(tc, test_config_listen_tls);
	tcase_add_test(tc, test_config_listen_udp);
	tcase_add_test(tc, test_config_listen_reuseport_and_proxy_protocol);
	tcase_add_test(tc, test_config_listen_deferred);
	tcase_add_test(tc, test_config_log_connections_and_format);
	tcase_add_test(tc, test_config_listen_rejects_bad_fault_parameters);
	tcase_add_test(tc, test_config_unix_mode_is_octal);
	tcase_add_test(tc, test_config_rejects_unknown_key);
	tcase_add_test(tc, test_config_suggests_near_key);
	tcase_add_test(tc, test_config_rejects_duplicate_single_key);
	tcase_add_test(tc, test_config_rejects_out_of_range);
	tcase_add_test(tc, test_config_rejects_garbage);
	tcase_add_test(tc, test_config_rejects_bad_quoting);
	tcase_add_test(tc, test_config_rejects_overlong_line);
	tcase_add_test(tc, test_config_rejects_too_many_listen_addresses);
	tcase_add_test(tc, test_config_rejects_nul_byte);
	tcase_add_test(tc, test_config_missing_file);
	tcase_add_test(tc, test_config_listen_may_repeat);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(config_suite());
}

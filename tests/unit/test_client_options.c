/*
 * test_client_options.c: unit tests for client/options.c: defaults, each
 * option's accepted forms and limits, HOST and PORT operands, help and
 * version requests, the --load options and the combinations refused,
 * the exact one-line message for every usage error, and that a second
 * parse starts from a clean getopt state.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "unit.h"

#define MAX_ARGS 24

/* Writable copies of the arguments; o's pointers point in here. */
static char arg_store[MAX_ARGS][256];
static char err[512];

/* Parses "echo-client" followed by the NULL-terminated arguments. */
static int
parse(struct client_options *o, ...)
{
	char *argv[MAX_ARGS + 1];
	const char *a;
	va_list ap;
	int argc = 0;

	snprintf(arg_store[argc], sizeof(arg_store[argc]), "echo-client");
	argv[argc] = arg_store[argc];
	argc++;
	va_start(ap, o);
	while ((a = va_arg(ap, const char *)) != NULL) {
		ck_assert_int_lt(argc, MAX_ARGS);
		snprintf(arg_store[argc], sizeof(arg_store[argc]), "%s", a);
		argv[argc] = arg_store[argc];
		argc++;
	}
	va_end(ap);
	argv[argc] = NULL;
	strcpy(err, "(untouched)");
	return client_options_parse(argc, argv, o, err, sizeof(err));
}

/* The parse must fail with exactly msg. */
#define ck_usage_error(msg, ...)                                               \
	do {                                                                   \
		struct client_options o_;                                      \
		ck_assert_int_eq(parse(&o_, __VA_ARGS__, (char *)NULL), -1);   \
		ck_assert_str_eq(err, msg);                                    \
	} while (0)

START_TEST(test_options_defaults_mirror_the_python_seed)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, (char *)NULL), 0);
	ck_assert_int_eq(o.action, CLIENT_RUN);
	ck_assert_str_eq(o.host, "127.0.0.1");
	ck_assert_str_eq(o.port, "8888");
	ck_assert_uint_eq(o.count, 5);
	ck_assert_uint_eq(o.message_len, 19);
	ck_assert_mem_eq(o.message, "Hello from client!\n", 19);
	ck_assert_uint_eq(o.size, 0);
	ck_assert_uint_eq(o.timeout_ms, 10000);
	ck_assert_int_eq(o.quiet, 0);
	ck_assert_str_eq(err, "(untouched)");
}
END_TEST

START_TEST(test_options_host_and_port_operands)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "::1", "9000", (char *)NULL), 0);
	ck_assert_str_eq(o.host, "::1");
	ck_assert_str_eq(o.port, "9000");
	ck_assert_int_eq(parse(&o, "example.org", (char *)NULL), 0);
	ck_assert_str_eq(o.host, "example.org");
	ck_assert_str_eq(o.port, "8888");
}
END_TEST

START_TEST(test_options_port_is_normalised)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "h", "08080", (char *)NULL), 0);
	ck_assert_str_eq(o.port, "8080");
	ck_assert_int_eq(parse(&o, "h", "1", (char *)NULL), 0);
	ck_assert_str_eq(o.port, "1");
	ck_assert_int_eq(parse(&o, "h", "65535", (char *)NULL), 0);
	ck_assert_str_eq(o.port, "65535");
}
END_TEST

START_TEST(test_options_options_may_follow_operands)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "h", "-n", "2", "9000", "-q", (char *)NULL),
			 0);
	ck_assert_str_eq(o.host, "h");
	ck_assert_str_eq(o.port, "9000");
	ck_assert_uint_eq(o.count, 2);
	ck_assert_int_eq(o.quiet, 1);
}
END_TEST

START_TEST(test_options_double_dash_ends_options)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-q", "--", "-n", (char *)NULL), 0);
	ck_assert_str_eq(o.host, "-n");
	ck_assert_uint_eq(o.count, 5);
}
END_TEST

START_TEST(test_options_count_short_long_and_attached)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-n", "3", (char *)NULL), 0);
	ck_assert_uint_eq(o.count, 3);
	ck_assert_int_eq(parse(&o, "-n7", (char *)NULL), 0);
	ck_assert_uint_eq(o.count, 7);
	ck_assert_int_eq(parse(&o, "--count", "1", (char *)NULL), 0);
	ck_assert_uint_eq(o.count, 1);
	ck_assert_int_eq(parse(&o, "--count=1000000", (char *)NULL), 0);
	ck_assert_uint_eq(o.count, 1000000);
}
END_TEST

START_TEST(test_options_count_rejects_outside_1_to_1000000)
{
	ck_usage_error("option -n/--count: '0' is out of range (1 to 1000000)",
		       "-n", "0");
	ck_usage_error(
		"option -n/--count: '1000001' is out of range (1 to 1000000)",
		"--count=1000001");
	ck_usage_error("option -n/--count: 'five' is not a number", "-n",
		       "five");
	ck_usage_error("option -n/--count: '-1' is not a number", "-n", "-1");
}
END_TEST

START_TEST(test_options_message_is_sent_as_is)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-m", "hi", (char *)NULL), 0);
	ck_assert_uint_eq(o.message_len, 2);
	ck_assert_str_eq(o.message, "hi");
	ck_assert_int_eq(parse(&o, "--message=a b\n", (char *)NULL), 0);
	ck_assert_str_eq(o.message, "a b\n");
	ck_assert_uint_eq(o.message_len, 4);
}
END_TEST

START_TEST(test_options_message_rejects_empty)
{
	ck_usage_error("option -m/--message: the message is empty", "-m", "");
}
END_TEST

START_TEST(test_options_size_takes_suffixes_up_to_1g)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-s", "64m", (char *)NULL), 0);
	ck_assert_uint_eq(o.size, (uint64_t)64 * 1024 * 1024);
	ck_assert_int_eq(parse(&o, "--size=1g", (char *)NULL), 0);
	ck_assert_uint_eq(o.size, (uint64_t)1024 * 1024 * 1024);
	ck_assert_int_eq(parse(&o, "-s", "1", (char *)NULL), 0);
	ck_assert_uint_eq(o.size, 1);
	ck_assert_int_eq(parse(&o, "-s", "4K", (char *)NULL), 0);
	ck_assert_uint_eq(o.size, 4096);
}
END_TEST

START_TEST(test_options_size_rejects_zero_above_1g_and_junk)
{
	ck_usage_error("option -s/--size: '0' is out of range (1 to 1g)", "-s",
		       "0");
	ck_usage_error("option -s/--size: '1025m' is out of range (1 to 1g)",
		       "-s", "1025m");
	ck_usage_error("option -s/--size: '12q' is not a size (a number "
		       "with k, m or g)",
		       "-s", "12q");
}
END_TEST

START_TEST(test_options_timeout_takes_units)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-t", "5", (char *)NULL), 0);
	ck_assert_uint_eq(o.timeout_ms, 5000);
	ck_assert_int_eq(parse(&o, "-t", "500ms", (char *)NULL), 0);
	ck_assert_uint_eq(o.timeout_ms, 500);
	ck_assert_int_eq(parse(&o, "--timeout=2s", (char *)NULL), 0);
	ck_assert_uint_eq(o.timeout_ms, 2000);
	ck_assert_int_eq(parse(&o, "-t", "1m", (char *)NULL), 0);
	ck_assert_uint_eq(o.timeout_ms, 60000);
}
END_TEST

START_TEST(test_options_timeout_rejects_zero_and_junk)
{
	ck_usage_error("option -t/--timeout: '0' is out of range (1ms to 24h)",
		       "-t", "0");
	ck_usage_error("option -t/--timeout: '25h' is out of range (1ms to "
		       "24h)",
		       "-t", "25h");
	ck_usage_error("option -t/--timeout: '5x' is not a duration (a "
		       "number with ms, s, m or h)",
		       "-t", "5x");
}
END_TEST

START_TEST(test_options_quiet_short_and_long)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-q", (char *)NULL), 0);
	ck_assert_int_eq(o.quiet, 1);
	ck_assert_int_eq(parse(&o, "--quiet", (char *)NULL), 0);
	ck_assert_int_eq(o.quiet, 1);
}
END_TEST

START_TEST(test_options_short_options_cluster)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-qn4", (char *)NULL), 0);
	ck_assert_int_eq(o.quiet, 1);
	ck_assert_uint_eq(o.count, 4);
}
END_TEST

START_TEST(test_options_help_and_version_requests)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-h", (char *)NULL), 0);
	ck_assert_int_eq(o.action, CLIENT_HELP);
	ck_assert_int_eq(parse(&o, "--help", (char *)NULL), 0);
	ck_assert_int_eq(o.action, CLIENT_HELP);
	ck_assert_int_eq(parse(&o, "-V", (char *)NULL), 0);
	ck_assert_int_eq(o.action, CLIENT_VERSION);
	ck_assert_int_eq(parse(&o, "--version", (char *)NULL), 0);
	ck_assert_int_eq(o.action, CLIENT_VERSION);
}
END_TEST

START_TEST(test_options_help_wins_over_what_follows_it)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-n", "2", "--help", "--bogus", "a", "b",
			       "c", (char *)NULL),
			 0);
	ck_assert_int_eq(o.action, CLIENT_HELP);
}
END_TEST

START_TEST(test_options_proxy_versions_and_source)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, NULL), 0);
	ck_assert_int_eq(o.proxy, 0);
	ck_assert_int_eq(parse(&o, "--proxy", "v1", NULL), 0);
	ck_assert_int_eq(o.proxy, 1);
	ck_assert_int_eq(o.proxy_source.ss.ss_family, 0);
	ck_assert_int_eq(parse(&o, "--proxy", "v2", "--proxy-source",
			       "[2001:db8::1]:80", NULL),
			 0);
	ck_assert_int_eq(o.proxy, 2);
	ck_assert_int_eq(o.proxy_source.ss.ss_family, AF_INET6);
	ck_assert_int_eq(parse(&o, "--proxy", "2", "--proxy-source",
			       "192.0.2.1:5", "--load", NULL),
			 0);
	ck_assert_int_eq(o.proxy_source.ss.ss_family, AF_INET);
	ck_assert_int_eq(parse(&o, "--proxy", "v3", NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "expected v1 or v2"));
	ck_assert_int_eq(parse(&o, "--proxy-source", "192.0.2.1:5", NULL), -1);
	ck_assert_str_eq(err, "option --proxy-source needs --proxy");
	ck_assert_int_eq(parse(&o, "--proxy", "v1", "-u", NULL), -1);
	ck_assert_int_eq(
		parse(&o, "--proxy", "v1", "--proxy-source", "*:5", NULL), -1);
	ck_assert_int_eq(
		parse(&o, "--proxy", "v1", "--proxy-source", "192.0.2.1", NULL),
		-1);
}
END_TEST

START_TEST(test_options_source_address)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, NULL), 0);
	ck_assert_int_eq(o.source.ss.ss_family, 0);
	ck_assert_int_eq(parse(&o, "--source", "127.0.0.2", NULL), 0);
	ck_assert_int_eq(o.source.ss.ss_family, AF_INET);
	ck_assert_int_eq(parse(&o, "--source", "::1", "--load", NULL), 0);
	ck_assert_int_eq(o.source.ss.ss_family, AF_INET6);
	ck_assert_int_eq(parse(&o, "--source", "[::1]", NULL), -1);
	ck_assert_int_eq(parse(&o, "--source", "", NULL), -1);
	ck_assert_int_eq(parse(&o, "--source", "127.0.0.2", "-u", NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "not with -u/--udp"));
	ck_assert_int_eq(
		parse(&o, "--source", "127.0.0.2", "-U", "/tmp/s", NULL), -1);
}
END_TEST

START_TEST(test_options_rejects_unknown_options)
{
	ck_usage_error("unknown option '-x'", "-x");
	ck_usage_error("unknown option '-x'", "-qx");
	ck_usage_error("unknown option '-?'", "-?");
	ck_usage_error("unknown option '--bogus'", "--bogus");
	ck_usage_error("unknown option '--bogus=1'", "--bogus=1");
}
END_TEST

START_TEST(test_options_rejects_missing_values)
{
	ck_usage_error("option -n/--count needs a value", "-n");
	ck_usage_error("option -m/--message needs a value", "--message");
	ck_usage_error("option -s/--size needs a value", "-q", "-s");
	ck_usage_error("option -t/--timeout needs a value", "--timeout");
}
END_TEST

START_TEST(test_options_rejects_value_for_a_flag)
{
	ck_usage_error("option '--quiet' does not take a value", "--quiet=yes");
	ck_usage_error("option '--help' does not take a value", "--help=1");
}
END_TEST

START_TEST(test_options_rejects_bad_ports)
{
	ck_usage_error("bad port: '0' is out of range (1 to 65535)", "h", "0");
	ck_usage_error("bad port: '65536' is out of range (1 to 65535)", "h",
		       "65536");
	ck_usage_error("bad port: 'http' is not a number", "h", "http");
	ck_usage_error("bad port: '' is not a number", "h", "");
}
END_TEST

START_TEST(test_options_rejects_empty_host)
{
	ck_usage_error("empty host name", "");
}
END_TEST

START_TEST(test_options_unix_socket_path)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "-U", "/run/echod.sock", (char *)NULL), 0);
	ck_assert_str_eq(o.unix_path, "/run/echod.sock");
	ck_assert_int_eq(parse(&o, "--unix=/x", "--load", (char *)NULL), 0);
	ck_assert_str_eq(o.unix_path, "/x");
	ck_assert_int_eq(parse(&o, (char *)NULL), 0);
	ck_assert_ptr_null(o.unix_path);
}
END_TEST

START_TEST(test_options_unix_rejects_host_and_bad_paths)
{
	char long_path[200];

	ck_usage_error("unexpected argument 'h': -U names the server's "
		       "socket, not HOST or PORT",
		       "-U", "/x", "h");
	memset(long_path, 'p', 108);
	long_path[108] = '\0';
	ck_usage_error("option -U/--unix: a socket path is 1 to 107 bytes",
		       "-U", long_path);
	ck_usage_error("option -U/--unix: a socket path is 1 to 107 bytes",
		       "-U", "");
}
END_TEST

START_TEST(test_options_rejects_extra_arguments)
{
	ck_usage_error("unexpected argument 'extra'", "h", "1", "extra");
}
END_TEST

START_TEST(test_options_rejects_message_with_size)
{
	ck_usage_error("options -m/--message and -s/--size cannot be combined",
		       "-m", "x", "-s", "1k");
	ck_usage_error("options -m/--message and -s/--size cannot be combined",
		       "-s", "1k", "-m", "x");
}
END_TEST

START_TEST(test_options_second_parse_starts_clean)
{
	struct client_options o;

	ck_usage_error("unknown option '-x'", "-q", "-n", "9", "-x", "h");
	ck_assert_int_eq(parse(&o, "-n", "2", (char *)NULL), 0);
	ck_assert_uint_eq(o.count, 2);
	ck_assert_int_eq(o.quiet, 0);
	ck_assert_str_eq(o.host, "127.0.0.1");
	ck_usage_error("unknown option '-x'", "-qx");
	ck_assert_int_eq(parse(&o, "h2", (char *)NULL), 0);
	ck_assert_str_eq(o.host, "h2");
	ck_assert_int_eq(o.quiet, 0);
}
END_TEST

START_TEST(test_options_load_defaults)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, (char *)NULL), 0);
	ck_assert_int_eq(o.load, 0);
	ck_assert_int_eq(parse(&o, "--load", (char *)NULL), 0);
	ck_assert_int_eq(o.load, 1);
	ck_assert_int_eq(o.mode, CLIENT_MODE_PINGPONG);
	ck_assert_uint_eq(o.connections, 10);
	ck_assert_uint_eq(o.threads, 1);
	ck_assert_uint_eq(o.duration_ms, 10000);
	ck_assert_uint_eq(o.warmup_ms, 1000);
	ck_assert_uint_eq(o.window, (uint64_t)256 * 1024);
	ck_assert_uint_eq(o.rate, 0);
	ck_assert_uint_eq(o.size, 64); /* a load message, not the greeting */
	ck_assert_int_eq(o.json, 0);
	ck_assert_uint_eq(o.server_pid, 0);
	ck_assert_str_eq(err, "(untouched)");
}
END_TEST

/* The command line bench/run builds. */
START_TEST(test_options_load_takes_every_option)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "--load", "--mode", "stream",
			       "--connections", "16", "--duration", "5",
			       "--warmup", "1", "--size", "65536", "--threads",
			       "2", "--server-pid", "4242", "--json",
			       "127.0.0.1", "9000", (char *)NULL),
			 0);
	ck_assert_int_eq(o.mode, CLIENT_MODE_STREAM);
	ck_assert_uint_eq(o.connections, 16);
	ck_assert_uint_eq(o.duration_ms, 5000);
	ck_assert_uint_eq(o.warmup_ms, 1000);
	ck_assert_uint_eq(o.size, 65536);
	ck_assert_uint_eq(o.threads, 2);
	ck_assert_uint_eq(o.server_pid, 4242);
	ck_assert_int_eq(o.json, 1);
	ck_assert_str_eq(o.host, "127.0.0.1");
	ck_assert_str_eq(o.port, "9000");
	ck_assert_int_eq(parse(&o, "--load", "-c3", "-d", "2", "--window", "1m",
			       "--mode=stream", (char *)NULL),
			 0);
	ck_assert_uint_eq(o.connections, 3);
	ck_assert_uint_eq(o.window, (uint64_t)1024 * 1024);
	ck_assert_int_eq(parse(&o, "--load", "--rate", "5000", (char *)NULL),
			 0);
	ck_assert_uint_eq(o.rate, 5000);
}
END_TEST

START_TEST(test_options_load_modes_by_name)
{
	struct client_options o;

	ck_assert_int_eq(
		parse(&o, "--load", "--mode", "pingpong", (char *)NULL), 0);
	ck_assert_int_eq(o.mode, CLIENT_MODE_PINGPONG);
	ck_assert_int_eq(
		parse(&o, "--load", "--mode", "connrate", (char *)NULL), 0);
	ck_assert_int_eq(o.mode, CLIENT_MODE_CONNRATE);
	ck_assert_int_eq(parse(&o, "--load", "--mode", "hold", (char *)NULL),
			 0);
	ck_assert_int_eq(o.mode, CLIENT_MODE_HOLD);
	ck_assert_str_eq(client_options_mode_name(CLIENT_MODE_STREAM),
			 "stream");
	ck_assert_str_eq(client_options_mode_name(CLIENT_MODE_HOLD), "hold");
}
END_TEST

START_TEST(test_options_load_durations_take_fractions)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, "--load", "-d", "0.4", "--warmup", "0.1",
			       (char *)NULL),
			 0);
	ck_assert_uint_eq(o.duration_ms, 400);
	ck_assert_uint_eq(o.warmup_ms, 100);
	ck_assert_int_eq(parse(&o, "--load", "-d", "1.25s", "--warmup", "0",
			       (char *)NULL),
			 0);
	ck_assert_uint_eq(o.duration_ms, 1250);
	ck_assert_uint_eq(o.warmup_ms, 0);
	ck_assert_int_eq(parse(&o, "--load", "-d", "1.5m", "--warmup", "250ms",
			       "-t", "0.5", (char *)NULL),
			 0);
	ck_assert_uint_eq(o.duration_ms, 90000);
	ck_assert_uint_eq(o.warmup_ms, 250);
	ck_assert_uint_eq(o.timeout_ms, 500);
	ck_assert_int_eq(parse(&o, "--load", "-d", "0.0015", (char *)NULL), 0);
	ck_assert_uint_eq(o.duration_ms, 1); /* below 1 ms: dropped */
}
END_TEST

START_TEST(test_options_load_rejects_bad_values)
{
	ck_usage_error("option -d/--duration: '0' is out of range (1ms to "
		       "24h)",
		       "--load", "-d", "0");
	ck_usage_error("option -d/--duration: '0.0001' is out of range (1ms "
		       "to 24h)",
		       "--load", "-d", "0.0001");
	ck_usage_error("option -d/--duration: '.5' is not a duration (a "
		       "number with ms, s, m or h)",
		       "--load", "-d", ".5");
	ck_usage_error("option -d/--duration: '1.' is not a duration (a "
		       "number with ms, s, m or h)",
		       "--load", "-d", "1.");
	ck_usage_error("option --warmup: '1.5x' is not a duration (a "
		       "number with ms, s, m or h)",
		       "--load", "--warmup", "1.5x");
	ck_usage_error("option -d/--duration: '25h' is out of range (1ms to "
		       "24h)",
		       "--load", "-d", "25h");
	ck_usage_error("option -c/--connections: '0' is out of range (1 to "
		       "1000000)",
		       "--load", "-c", "0");
	ck_usage_error("option --threads: '65' is out of range (1 to 64)",
		       "--load", "--threads", "65");
	ck_usage_error("option --rate: '0' is out of range (1 to "
		       "1000000000)",
		       "--load", "--rate", "0");
	ck_usage_error("option --server-pid: 'x' is not a number", "--load",
		       "--server-pid", "x");
	ck_usage_error("option --mode: 'ping' is not a mode (pingpong, "
		       "stream, connrate or hold)",
		       "--load", "--mode", "ping");
	ck_usage_error("option --mode needs a value", "--load", "--mode");
	ck_usage_error("option -c/--connections needs a value", "--load", "-c");
	ck_usage_error("option '--json' does not take a value", "--load",
		       "--json=1");
}
END_TEST

START_TEST(test_options_load_only_options_need_load)
{
	ck_usage_error("option --mode needs --load", "--mode", "stream");
	ck_usage_error("option -c/--connections needs --load", "-c", "5");
	ck_usage_error("option -d/--duration needs --load", "-d", "1");
	ck_usage_error("option --warmup needs --load", "--warmup", "1");
	ck_usage_error("option --threads needs --load", "--threads", "2");
	ck_usage_error("option --window needs --load", "--window", "1m");
	ck_usage_error("option --rate needs --load", "--rate", "10");
	ck_usage_error("option --json needs --load", "--json");
	ck_usage_error("option --server-pid needs --load", "--server-pid", "1");
	/* The first one given is named. */
	ck_usage_error("option --threads needs --load", "--threads", "2", "-c",
		       "5");
}
END_TEST

START_TEST(test_options_load_rejects_sequential_options)
{
	ck_usage_error("options -n/--count and --load cannot be combined",
		       "--load", "-n", "3");
	ck_usage_error("options -n/--count and --load cannot be combined", "-n",
		       "3", "--load");
	ck_usage_error("options -m/--message and --load cannot be combined",
		       "--load", "-m", "hi");
}
END_TEST

START_TEST(test_options_window_and_rate_need_their_mode)
{
	struct client_options o;

	ck_usage_error("option --window needs --mode stream", "--load",
		       "--window", "1m");
	ck_usage_error("option --window needs --mode stream", "--load",
		       "--mode", "hold", "--window", "1m");
	ck_usage_error("option --rate needs --mode pingpong or connrate",
		       "--load", "--mode", "stream", "--rate", "10");
	ck_usage_error("option --rate needs --mode pingpong or connrate",
		       "--load", "--mode", "hold", "--rate", "10");
	ck_assert_int_eq(parse(&o, "--load", "--mode", "connrate", "--rate",
			       "10", (char *)NULL),
			 0);
	ck_assert_uint_eq(o.rate, 10);
	ck_usage_error("option --window: smaller than the 64k bytes of each "
		       "write (-s/--size)",
		       "--load", "--mode", "stream", "-s", "64k", "--window",
		       "32k");
	ck_assert_int_eq(parse(&o, "--load", "--mode", "stream", "-s", "64k",
			       "--window", "64k", (char *)NULL),
			 0);
	ck_usage_error("option --window: smaller than the 1m bytes of each "
		       "write (-s/--size)",
		       "--load", "--mode", "stream", "-s", "1m");
}
END_TEST

/* The --help text, captured. */
static char *
usage_text(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(fp);
	client_options_usage(fp);
	ck_assert_int_eq(fclose(fp), 0);
	return text;
}

START_TEST(test_options_usage_has_one_line_per_option)
{
	static const char *const lines[] = {
		"\n  -n, --count N         connections to open (1 to 1000000, "
		"default 5)\n",
		"\n  -m, --message TEXT    text to send, as is (default "
		"\"Hello from client!\\n\")\n",
		"\n  -s, --size BYTES      send BYTES of random data instead "
		"(k, m, g; up to 1g)\n",
		"\n  -t, --timeout TIME    deadline per connection, connect to "
		"echo (default 10s)\n",
		"\n  -q, --quiet           print nothing on success\n",
		"\n  -h, --help            print this help and exit\n",
		"\n  -V, --version         print the version and exit\n",
		"\n      --load            generate load (-s: message or write "
		"size, default 64)\n",
		"\n      --mode MODE       pingpong (default), stream, "
		"connrate "
		"or hold\n",
		"\n  -c, --connections N   connections, connrate: workers "
		"(default 10)\n",
		"\n  -d, --duration TIME   window measured, hold: time idle "
		"(default 10s)\n",
		"\n      --warmup TIME     run first, not counted; not in hold "
		"(default 1s)\n",
		"\n      --threads N       threads, each with an event loop "
		"(default 1)\n",
		"\n      --window BYTES    stream: bytes in flight per "
		"connection (default 256k)\n",
		"\n      --rate N          pingpong: messages/s, connrate: "
		"connections/s, in all\n                        (default: "
		"unpaced)\n",
		"\n      --json            print one JSON object instead of "
		"the "
		"summary\n",
		"\n      --server-pid PID  report the CPU time PID used in the "
		"window\n",
	};
	static const char usage[] =
		"Usage: echo-client [OPTIONS] [HOST [PORT]]\n";
	char *text = usage_text();
	size_t i;

	ck_assert_msg(strncmp(text, usage, strlen(usage)) == 0,
		      "usage starts with: %.60s", text);
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		ck_assert_msg(strstr(text, lines[i]) != NULL,
			      "missing help line: %s", lines[i] + 1);
	free(text);
}
END_TEST

START_TEST(test_options_usage_fits_80_columns)
{
	char *text = usage_text(), *line, *next;

	for (line = text; *line != '\0'; line = next + 1) {
		next = strchr(line, '\n');
		ck_assert_ptr_nonnull(next);
		ck_assert_msg(next - line < 80, "line too long: %.*s",
			      (int)(next - line), line);
	}
	free(text);
}
END_TEST

START_TEST(test_options_expect_close_and_reset)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, (char *)NULL), 0);
	ck_assert_int_eq(o.expect, CLIENT_EXPECT_ECHO);
	ck_assert_int_eq(parse(&o, "--expect-close", "10", (char *)NULL), 0);
	ck_assert_int_eq(o.expect, CLIENT_EXPECT_CLOSE);
	ck_assert_uint_eq(o.expect_at, 10);
	ck_assert_int_eq(
		parse(&o, "-s", "1m", "--expect-reset", "64k", (char *)NULL),
		0);
	ck_assert_int_eq(o.expect, CLIENT_EXPECT_RESET);
	ck_assert_uint_eq(o.expect_at, 65536);
	/* 0: the server ends the connection before echoing anything. */
	ck_assert_int_eq(parse(&o, "--expect-reset", "0", (char *)NULL), 0);
	ck_assert_uint_eq(o.expect_at, 0);
	ck_usage_error("option --expect-close: 20 bytes is more than the 19 "
		       "sent",
		       "--expect-close", "20");
	ck_usage_error("option --expect-reset: 2k bytes is more than the 1024 "
		       "sent",
		       "-s", "1k", "--expect-reset", "2k");
	ck_usage_error("options --expect-close and --expect-reset cannot be "
		       "combined",
		       "--expect-close", "1", "--expect-reset", "1");
	ck_usage_error("options --expect-reset and --load cannot be combined",
		       "--load", "--expect-reset", "1");
	ck_usage_error("option --expect-close: 'x' is not a number",
		       "--expect-close", "x");
}
END_TEST

START_TEST(test_options_tls)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, (char *)NULL), 0);
	ck_assert_int_eq(o.tls, 0);
	ck_assert_int_eq(parse(&o, "--tls", "--ca", "ca.pem", "--sni", "x.test",
			       "--cert", "c.pem", "--key", "k.pem",
			       (char *)NULL),
			 0);
	ck_assert_int_eq(o.tls, 1);
	ck_assert_str_eq(o.tls_ca, "ca.pem");
	ck_assert_str_eq(o.tls_sni, "x.test");
	ck_assert_str_eq(o.tls_cert, "c.pem");
	ck_assert_str_eq(o.tls_key, "k.pem");
	ck_assert_int_eq(parse(&o, "--tls", "--insecure", "-U", "/run/x.sock",
			       (char *)NULL),
			 0);
	ck_assert_int_eq(o.tls_insecure, 1);
	ck_usage_error("option --ca needs --tls", "--ca", "ca.pem");
	ck_usage_error("option --insecure needs --tls", "--insecure");
	ck_usage_error("options --ca and --insecure cannot be combined",
		       "--tls", "--insecure", "--ca", "x");
	ck_usage_error("option --key needs --cert", "--tls", "--key", "k.pem");
	ck_usage_error("option --sni: the value is empty", "--tls", "--sni",
		       "");
	ck_assert_int_eq(parse(&o, "--tls", "--insecure", "--load", "--mode",
			       "connrate", (char *)NULL),
			 0);
	ck_assert_int_eq(o.tls, 1);
	ck_assert_int_eq(o.load, 1);
}
END_TEST

START_TEST(test_options_udp)
{
	struct client_options o;

	ck_assert_int_eq(parse(&o, (char *)NULL), 0);
	ck_assert_int_eq(o.udp, 0);
	ck_assert_uint_eq(o.retries, 2);
	ck_assert_int_eq(
		parse(&o, "-u", "--retries", "0", "-s", "65507", (char *)NULL),
		0);
	ck_assert_int_eq(o.udp, 1);
	ck_assert_uint_eq(o.retries, 0);
	ck_usage_error("option -s/--size: a datagram carries at most 65507 "
		       "bytes",
		       "-u", "-s", "65508");
	ck_usage_error("option --retries needs -u/--udp", "--retries", "1");
	ck_usage_error("options -u/--udp and --tls cannot be combined", "-u",
		       "--tls");
	ck_usage_error("options -u/--udp and -U/--unix cannot be combined",
		       "-u", "-U", "/x");
	ck_assert_int_eq(parse(&o, "-u", "--load", (char *)NULL), 0);
	ck_usage_error("option -u/--udp: --load runs --mode pingpong only "
		       "(datagrams have no stream, connection or idle hold)",
		       "-u", "--load", "--mode", "stream");
	ck_usage_error("option --retries: '101' is out of range (0 to 100)",
		       "-u", "--retries", "101");
}
END_TEST

static Suite *
client_options_suite(void)
{
	Suite *s = suite_create("client_options");
	TCase *tc;

	tc = tcase_create("accepts");
	tcase_add_test(tc, test_options_defaults_mirror_the_python_seed);
	tcase_add_test(tc, test_options_host_and_port_operands);
	tcase_add_test(tc, test_options_port_is_normalised);
	tcase_add_test(tc, test_options_options_may_follow_operands);
	tcase_add_test(tc, test_options_double_dash_ends_options);
	tcase_add_test(tc, test_options_count_short_long_and_attached);
	tcase_add_test(tc, test_options_message_is_sent_as_is);
	tcase_add_test(tc, test_options_size_takes_suffixes_up_to_1g);
	tcase_add_test(tc, test_options_timeout_takes_units);
	tcase_add_test(tc, test_options_quiet_short_and_long);
	tcase_add_test(tc, test_options_short_options_cluster);
	tcase_add_test(tc, test_options_help_and_version_requests);
	tcase_add_test(tc, test_options_help_wins_over_what_follows_it);
	tcase_add_test(tc, test_options_second_parse_starts_clean);
	tcase_add_test(tc, test_options_load_defaults);
	tcase_add_test(tc, test_options_load_takes_every_option);
	tcase_add_test(tc, test_options_load_modes_by_name);
	tcase_add_test(tc, test_options_load_durations_take_fractions);
	suite_add_tcase(s, tc);

	tc = tcase_create("rejects");
	tcase_add_test(tc, test_options_count_rejects_outside_1_to_1000000);
	tcase_add_test(tc, test_options_message_rejects_empty);
	tcase_add_test(tc, test_options_size_rejects_zero_above_1g_and_junk);
	tcase_add_test(tc, test_options_timeout_rejects_zero_and_junk);
	tcase_add_test(tc, test_options_rejects_unknown_options);
	tcase_add_test(tc, test_options_proxy_versions_and_source);
	tcase_add_test(tc, test_options_source_address);
	tcase_add_test(tc, test_options_rejects_missing_values);
	tcase_add_test(tc, test_options_rejects_value_for_a_flag);
	tcase_add_test(tc, test_options_rejects_bad_ports);
	tcase_add_test(tc, test_options_rejects_empty_host);
	tcase_add_test(tc, test_options_unix_socket_path);
	tcase_add_test(tc, test_options_unix_rejects_host_and_bad_paths);
	tcase_add_test(tc, test_options_rejects_extra_arguments);
	tcase_add_test(tc, test_options_rejects_message_with_size);
	tcase_add_test(tc, test_options_load_rejects_bad_values);
	tcase_add_test(tc, test_options_load_only_options_need_load);
	tcase_add_test(tc, test_options_load_rejects_sequential_options);
	tcase_add_test(tc, test_options_window_and_rate_need_their_mode);
	tcase_add_test(tc, test_options_expect_close_and_reset);
	tcase_add_test(tc, test_options_tls);
	tcase_add_test(tc, test_options_udp);
	suite_add_tcase(s, tc);

	tc = tcase_create("usage");
	tcase_add_test(tc, test_options_usage_has_one_line_per_option);
	tcase_add_test(tc, test_options_usage_fits_80_columns);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return unit_run(client_options_suite());
}

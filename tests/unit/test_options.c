/*
 * test_options.c: unit tests for server/options.c: every config key as a
 * long option, the command-line-only options, usage errors with their
 * exact messages, and the command line overriding the config file.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echod.h"
#include "unit.h"

/* argv strings live here: overrides point into them. */
static char arg_store[2][40][128];

/* Parses the NULL-terminated argument list into o (slot picks storage,
 * so two parses can be alive at once). */
static int
parse_slot(int slot, struct options *o, char *err, size_t errlen, ...)
{
	char *argv[41];
	const char *a;
	va_list ap;
	int argc = 0;

	snprintf(arg_store[slot][argc], sizeof(arg_store[slot][argc]), "echod");
	argv[argc] = arg_store[slot][argc];
	argc++;
	va_start(ap, errlen);
	while ((a = va_arg(ap, const char *)) != NULL && argc < 40) {
		snprintf(arg_store[slot][argc], sizeof(arg_store[slot][argc]),
			 "%s", a);
		argv[argc] = arg_store[slot][argc];
		argc++;
	}
	va_end(ap);
	argv[argc] = NULL;
	return options_parse(argc, argv, o, err, errlen);
}

#define PARSE(o, err, ...) parse_slot(0, o, err, sizeof(err), __VA_ARGS__, NULL)

static void
parse_fails(const char *a, const char *b, const char *msg)
{
	struct options o;
	char err[512] = "";

	ck_assert_int_eq(parse_slot(1, &o, err, sizeof(err), a, b, NULL), -1);
	ck_assert_str_eq(err, msg);
}

START_TEST(test_options_every_key_is_a_long_option)
{
	struct options o;
	struct config cfg;
	char err[512] = "";

	ck_assert_int_eq(PARSE(&o, err, "--listen", "127.0.0.1:1", "-l",
			       "[::1]:2", "--threads", "3", "--max-buffer",
			       "2m", "--max-connections", "7",
			       "--max-connections-per-ip", "2",
			       "--idle-timeout", "3s", "--tcp-keepalive", "no",
			       "--backlog", "16", "--shutdown-timeout", "1s",
			       "--log-level", "warn", "--syslog", "-d", "-p",
			       "/tmp/x.pid", "-u", "nobody"),
			 0);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(options_load_config(&o, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.nlisten, 2);
	ck_assert_str_eq(cfg.listen[1].text, "[::1]:2");
	ck_assert_uint_eq(cfg.threads, 3);
	ck_assert_uint_eq(cfg.max_buffer, (uint64_t)2 * 1024 * 1024);
	ck_assert_uint_eq(cfg.max_connections, 7);
	ck_assert_uint_eq(cfg.max_connections_per_ip, 2);
	ck_assert_uint_eq(cfg.idle_timeout_ms, 3000);
	ck_assert_int_eq(cfg.tcp_keepalive, 0);
	ck_assert_uint_eq(cfg.backlog, 16);
	ck_assert_uint_eq(cfg.shutdown_timeout_ms, 1000);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_WARN);
	ck_assert_int_eq(cfg.syslog, 1);
	ck_assert_int_eq(cfg.daemonize, 1);
	ck_assert_str_eq(cfg.pid_file, "/tmp/x.pid");
	ck_assert_str_eq(cfg.user, "nobody");
	config_free(&cfg);
}
END_TEST

START_TEST(test_options_command_line_only)
{
	struct options o;
	char err[512] = "";

	ck_assert_int_eq(PARSE(&o, err, "-c", "/etc/echod/echod.conf",
			       "--check-config", "-v", "-h", "-V"),
			 0);
	ck_assert_str_eq(o.config_file, "/etc/echod/echod.conf");
	ck_assert_int_eq(o.check_config, 1);
	ck_assert_int_eq(o.verbose, 1);
	ck_assert_int_eq(o.help, 1);
	ck_assert_int_eq(o.version, 1);
	ck_assert_int_eq(o.noverrides, 0);
}
END_TEST

START_TEST(test_options_usage_errors_name_the_option)
{
	parse_fails("--bogus", NULL, "unknown option '--bogus'");
	parse_fails("--bogus=1", NULL, "unknown option '--bogus'");
	parse_fails("--syslog=yes", NULL, "option '--syslog' takes no value");
	parse_fails("-x", NULL, "unknown option '-x'");
	parse_fails("-t", NULL, "option '-t' needs a value");
	parse_fails("--threads", NULL, "option '--threads' needs a value");
	parse_fails("--threads", "2000",
		    "--threads must be a whole number from 0 to 1024, not "
		    "'2000'");
	parse_fails("--threads", "x",
		    "--threads must be a whole number from 0 to 1024, not "
		    "'x'");
	parse_fails("--max-buffer", "1q",
		    "--max-buffer must be a size from 4k to 1g (k, m or g "
		    "suffix), not '1q'");
	parse_fails("--listen", "nohost",
		    "--listen has a bad address: 'nohost': expected "
		    "HOST:PORT, [IPv6]:PORT or *:PORT");
	parse_fails("extra", NULL, "unexpected argument 'extra'");
}
END_TEST

START_TEST(test_options_override_config_file)
{
	char path[] = "/tmp/echod-test-options-XXXXXX";
	struct options o;
	struct config cfg;
	char err[512] = "";
	int fd = mkstemp(path);
	const char *text = "listen = 127.0.0.1:1\nlisten = 127.0.0.1:2\n"
			   "threads = 2\nmax_buffer = 8k\n";

	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	ck_assert_int_eq(PARSE(&o, err, "-c", path, "--threads", "5", "-l",
			       "127.0.0.1:3", "-v"),
			 0);
	ck_assert_int_eq(options_load_config(&o, &cfg, err, sizeof(err)), 0);
	/* The command line's --listen replaces the file's list. */
	ck_assert_int_eq(cfg.nlisten, 1);
	ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:3");
	ck_assert_uint_eq(cfg.threads, 5);
	ck_assert_uint_eq(cfg.max_buffer, 8192);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
	ck_assert_str_eq(cfg.file, path);
	config_free(&cfg);
	unlink(path);
}
END_TEST

START_TEST(test_options_can_parse_twice)
{
	struct options o;
	char err[512] = "";

	ck_assert_int_eq(PARSE(&o, err, "--threads", "1"), 0);
	ck_assert_int_eq(PARSE(&o, err, "--threads", "2", "-v"), 0);
	ck_assert_int_eq(o.noverrides, 1);
	ck_assert_str_eq(o.overrides[0].value, "2");
	ck_assert_int_eq(o.verbose, 1);
}
END_TEST

START_TEST(test_options_usage_lists_every_key)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	size_t i;

	options_usage(fp);
	fclose(fp);
	for (i = 0; i < config_nkeys; i++) {
		char name[64], *p;
		snprintf(name, sizeof(name), "--%s", config_keys[i].name);
		for (p = name; *p; p++)
			if (*p == '_')
				*p = '-';
		ck_assert_msg(strstr(buf, name) != NULL, "%s missing", name);
	}
	ck_assert_ptr_nonnull(strstr(buf, "--check-config"));
	free(buf);
}
END_TEST

START_TEST(test_options_apply_names_options_as_typed)
{
	struct options o;
	struct config cfg;
	char err[512] = "";

	memset(&o, 0, sizeof(o));
	o.overrides[0].key = config_key_find("max_connections_per_ip");
	o.overrides[0].value = "many";
	o.noverrides = 1;
	config_init(&cfg);
	ck_assert_int_eq(options_apply(&o, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--max-connections-per-ip must be a whole "
			      "number from 0 to 1000000, not 'many'");
	config_free(&cfg);
}
END_TEST

START_TEST(test_options_usage_names_the_keys_reload_cannot_change)
{
	char *buf = NULL, *list, *end;
	size_t len = 0, i;
	FILE *fp = open_memstream(&buf, &len);

	options_usage(fp);
	fclose(fp);
	list = strstr(buf, "wait for a restart: ");
	ck_assert_ptr_nonnull(list);
	end = strchr(list, '.');
	ck_assert_ptr_nonnull(end);
	*end = '\0';
	for (i = 0; i < config_nkeys; i++) {
		char word[64];
		int listed;

		snprintf(word, sizeof(word), " %s", config_keys[i].name);
		listed = strstr(list, word) != NULL;
		ck_assert_msg(listed == !(config_keys[i].flags & CONFIG_RELOAD),
			      "%s", config_keys[i].name);
	}
	ck_assert_str_eq(list, "wait for a restart: threads, syslog, "
			       "daemonize, pid_file, user");
	free(buf);
}
END_TEST

static Suite *
options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_options_every_key_is_a_long_option);
	tcase_add_test(tc, test_options_command_line_only);
	tcase_add_test(tc, test_options_usage_errors_name_the_option);
	tcase_add_test(tc, test_options_override_config_file);
	tcase_add_test(tc, test_options_can_parse_twice);
	tcase_add_test(tc, test_options_usage_lists_every_key);
	tcase_add_test(tc, test_options_apply_names_options_as_typed);
	tcase_add_test(tc,
		       test_options_usage_names_the_keys_reload_cannot_change);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(options_suite());
}

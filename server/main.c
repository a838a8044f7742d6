/*
 * main.c: echod's entry point: the command line, the order of start-up
 * (options, logging, libevent threading, listeners, workers, signals, the
 * loop) and of shutdown, and the exit statuses. Behaviour lives in the
 * modules; this file only wires them together.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "echod.h"

/* Long-only options that are not config keys. */
enum { OPT_KEY_BASE = 256 };

static _Noreturn void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static _Noreturn void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("echod: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see 'echod --help')\n", stderr);
	exit(ECHOD_EXIT_USAGE);
}

static void
usage(void)
{
	size_t i;
	char name[64];

	printf("usage: echod [OPTIONS]\n"
	       "An asynchronous TCP echo server: every byte a client sends "
	       "comes back unchanged.\n\n");
	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		char *p;

		snprintf(name, sizeof(name), "--%s %s", k->name, k->argname);
		for (p = name; *p != ' '; p++)
			if (*p == '_')
				*p = '-';
		if (k->shortopt)
			printf("  -%c, %-24s %s\n", k->shortopt, name, k->help);
		else
			printf("      %-24s %s\n", name, k->help);
	}
	printf("  -v, %-24s %s\n", "--verbose", "log at debug level");
	printf("  -h, %-24s %s\n", "--help", "show this help and exit");
	printf("  -V, %-24s %s\n", "--version", "show the version and exit");
	printf("\nExit status: 0 on a clean stop, 1 on a runtime failure, "
	       "64 on a bad command line,\n78 on a bad configuration.\n");
}

static void
parse_args(int argc, char **argv, struct config *cfg)
{
	struct option longopts[64];
	char optstring[64] = ":vhV";
	char names[64][32];
	char err[256];
	size_t i, n = 0, s = strlen(optstring);
	int ch, idx;

	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		char *p;

		snprintf(names[n], sizeof(names[n]), "%s", k->name);
		for (p = names[n]; *p; p++)
			if (*p == '_')
				*p = '-';
		longopts[n].name = names[n];
		longopts[n].has_arg = required_argument;
		longopts[n].flag = NULL;
		longopts[n].val =
			k->shortopt ? k->shortopt : OPT_KEY_BASE + (int)i;
		n++;
		if (k->shortopt) {
			optstring[s++] = (char)k->shortopt;
			optstring[s++] = ':';
		}
	}
	optstring[s] = '\0';
	longopts[n++] = (struct option){"verbose", no_argument, NULL, 'v'};
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
	longopts[n] = (struct option){NULL, 0, NULL, 0};

	opterr = 0;
	while ((ch = getopt_long(argc, argv, optstring, longopts, &idx)) !=
	       -1) {
		const struct config_key *key = NULL;

		switch (ch) {
		case 'v':
			cfg->log_level = LOG_LEVEL_DEBUG;
			continue;
		case 'h':
			usage();
			exit(ECHOD_EXIT_OK);
		case 'V':
			printf("echod %s\n", ECHOD_VERSION);
			exit(ECHOD_EXIT_OK);
		case ':':
			if (optopt >= OPT_KEY_BASE || optopt == 0)
				usage_error("option '%s' needs a value",
					    argv[optind - 1]);
			usage_error("option '-%c' needs a value", optopt);
		case '?':
			if (optopt != 0)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		default:
			break;
		}
		for (i = 0; i < config_nkeys; i++)
			if (ch == (config_keys[i].shortopt
					   ? config_keys[i].shortopt
					   : OPT_KEY_BASE + (int)i))
				key = &config_keys[i];
		if (key == NULL)
			usage_error("unknown option");
		if (config_set(cfg, key, optarg, err, sizeof(err)) == -1)
			usage_error("--%s: %s", names[key - config_keys], err);
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
}

static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	(void)what;
	log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	srv->stopping = 1;
	listener_disable_all(srv);
	event_base_loopexit(srv->base, NULL);
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct server srv;
	struct event *sigint, *sigterm;
	char err[512];

	config_init(&cfg);
	parse_args(argc, argv, &cfg);
	config_finish(&cfg);
	log_init(cfg.log_level);

	if (evthread_use_pthreads() == -1)
		fatalx(ECHOD_EXIT_FAILURE, "libevent has no pthreads support");
	signal(SIGPIPE, SIG_IGN);

	memset(&srv, 0, sizeof(srv));
	srv.cfg = &cfg;
	TAILQ_INIT(&srv.listeners);
	atomic_store(&srv.max_buffer, cfg.max_buffer);
	if ((srv.base = event_base_new()) == NULL)
		fatalx(ECHOD_EXIT_FAILURE, "cannot create the event loop");
	if (listener_open_all(&srv, err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "%s", err);
	if (worker_start_all(&srv, err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "%s", err);
	sigint = evsignal_new(srv.base, SIGINT, main_signal_cb, &srv);
	sigterm = evsignal_new(srv.base, SIGTERM, main_signal_cb, &srv);
	if (sigint == NULL || sigterm == NULL ||
	    event_add(sigint, NULL) == -1 || event_add(sigterm, NULL) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "cannot install signal handlers");

	event_base_loop(srv.base, EVLOOP_NO_EXIT_ON_EMPTY);

	event_free(sigint);
	event_free(sigterm);
	listener_close_all(&srv);
	worker_stop_all(&srv);
	event_base_free(srv.base);
	config_free(&cfg);
	libevent_global_shutdown();
	log_info("stopped");
	return ECHOD_EXIT_OK;
}

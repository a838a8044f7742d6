/*
 * main.c: echo-client's entry point: options, name resolution, the event
 * base, the run, and the exit status (0 all echoes intact, 1 a failure,
 * 64 a usage error). The work itself is in seq.c, or with --load in
 * load.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "client.h"
#include "load.h"

/* libevent's own warnings, with our name in front. */
static void
main_log_cb(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		fprintf(stderr, "%s: libevent: %s\n", CLIENT_NAME, msg);
}

/* The exit status of a run that returned rc (0 passed). */
static int
main_finish(int rc)
{
	libevent_global_shutdown();
	if (fflush(stdout) != 0) {
		perror(CLIENT_NAME ": stdout");
		return CLIENT_EXIT_FAILURE;
	}
	return rc == 0 ? CLIENT_EXIT_OK : CLIENT_EXIT_FAILURE;
}

int
main(int argc, char **argv)
{
	struct client_options o;
	struct addr addrs[CLIENT_ADDR_MAX];
	struct event_base *base;
	char err[512];
	int naddrs, rc;

	if (client_options_parse(argc, argv, &o, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\nTry '%s --help'.\n", CLIENT_NAME, err,
			CLIENT_NAME);
		return CLIENT_EXIT_USAGE;
	}
	if (o.action == CLIENT_HELP) {
		client_options_usage(stdout);
		return fflush(stdout) == 0 ? CLIENT_EXIT_OK
					   : CLIENT_EXIT_FAILURE;
	}
	if (o.action == CLIENT_VERSION) {
		printf("%s %s\n", CLIENT_NAME, ECHOD_VERSION);
		return fflush(stdout) == 0 ? CLIENT_EXIT_OK
					   : CLIENT_EXIT_FAILURE;
	}

	/* A peer that closes early must not kill us mid-write. */
	signal(SIGPIPE, SIG_IGN);
	event_set_log_callback(main_log_cb);

	if (o.unix_path != NULL)
		naddrs = addr_unix(o.unix_path, &addrs[0], err, sizeof(err));
	else
		naddrs = addr_resolve(o.host, o.port, 0, addrs, CLIENT_ADDR_MAX,
				      err, sizeof(err));
	if (naddrs == -1) {
		fprintf(stderr, "%s: %s\n", CLIENT_NAME, err);
		return CLIENT_EXIT_FAILURE;
	}
	if (o.load)
		return main_finish(load_run(&o, addrs, naddrs));
	if (o.udp)
		return main_finish(udp_run(&o, addrs, naddrs));
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "%s: cannot create an event base\n",
			CLIENT_NAME);
		return CLIENT_EXIT_FAILURE;
	}

	rc = seq_run(base, &o, addrs, naddrs);

	event_base_free(base);
	return main_finish(rc);
}

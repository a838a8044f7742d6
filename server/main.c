/*
 * main.c: echod's entry point, in the order things happen: options,
 * what was handed over, configuration, logging, detaching, the pid file,
 * libevent threading, binding, dropping privileges, workers, readiness, the
 * loop, clean-up. Behaviour lives in the modules; this file only wires them
 * together and decides the exit statuses.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "echod.h"

/* Resolves every listen address and checks the user, binding nothing. */
static int
check_config(const struct config *cfg, char *err, size_t errlen)
{
	int conflict;

	if (listener_check(cfg, &conflict, err, errlen) == -1)
		return -1;
	if (cfg->user != NULL &&
	    daemon_user_check(cfg->user, err, errlen) == -1)
		return -1;
	return tls_check(cfg, err, errlen);
}

int
main(int argc, char **argv)
{
	struct options opts;
	struct config *cfg;
	struct server srv;
	char err[1024], config_path[PATH_MAX];

	if (options_parse(argc, argv, &opts, err, sizeof(err)) == -1) {
		fprintf(stderr, "echod: %s (see 'echod --help')\n", err);
		return ECHOD_EXIT_USAGE;
	}
	if (opts.help) {
		options_usage(stdout);
		return ECHOD_EXIT_OK;
	}
	if (opts.version) {
		printf("echod %s\n", ECHOD_VERSION);
		return ECHOD_EXIT_OK;
	}
	/* Sockets from systemd or from the echod this one upgrades; then,
	 * if an upgrade started us, why we fail goes back to it. */
	if (inherit_init(err, sizeof(err)) == -1) {
		fprintf(stderr, "echod: %s\n", err);
		return ECHOD_EXIT_FAILURE;
	}
	if (upgrade_init(argv, err, sizeof(err)) == -1) {
		fprintf(stderr, "echod: %s\n", err);
		return ECHOD_EXIT_FAILURE;
	}
	if ((cfg = malloc(sizeof(*cfg))) == NULL)
		return ECHOD_EXIT_FAILURE;
	if (options_load_config(&opts, cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "echod: %s\n", err);
		upgrade_child_failed(err);
		free(cfg);
		return ECHOD_EXIT_CONFIG;
	}
	if (opts.check_config) {
		int ok = check_config(cfg, err, sizeof(err)) == 0;

		if (ok)
			printf("configuration OK\n");
		else
			fprintf(stderr, "echod: %s\n", err);
		config_free(cfg);
		free(cfg);
		return ok ? ECHOD_EXIT_OK : ECHOD_EXIT_CONFIG;
	}

	log_init(cfg->log_level);
	log_set_json(cfg->log_format == 1);
	if (cfg->syslog)
		log_to_syslog();
	/* Two lines naming one address is the file's fault, not the
	 * system's; a host that does not resolve may be DNS's, and fails
	 * when binding. */
	{
		int conflict;

		if (listener_check(cfg, &conflict, err, sizeof(err)) == -1 &&
		    conflict)
			fatalx(ECHOD_EXIT_CONFIG, "%s", err);
	}
	if (cfg->user != NULL &&
	    daemon_user_check(cfg->user, err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_CONFIG, "%s", err);
	/* Certificates and keys are read now, before privileges go. */
	if (tls_prepare(cfg, err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_CONFIG, "%s", err);
	tls_commit();
	/* Relative paths name files where echod started: a daemon moves to
	 * "/", and a reload must find the same file. */
	if (opts.config_file != NULL) {
		if (realpath(opts.config_file, config_path) == NULL)
			fatal(ECHOD_EXIT_CONFIG, "%s", opts.config_file);
		opts.config_file = config_path;
	}
	if (cfg->pid_file != NULL &&
	    daemon_pidfile_open(cfg->pid_file, inherit_pidfile_take(), err,
				sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "%s", err);
	/* Before any thread or event loop exists; the pid file's lock goes
	 * with its descriptor into the child. An upgrade's new process is
	 * detached already, if its old one was. */
	if (cfg->daemonize && !upgrade_child())
		daemon_detach();
	else if (cfg->daemonize && chdir("/") == -1)
		fatal(ECHOD_EXIT_FAILURE, "chdir /");
	if (systemd_notify_init(err, sizeof(err)) == -1)
		log_warnx("%s", err);
	mem_init(); /* before libevent allocates anything */
	if (evthread_use_pthreads() == -1)
		fatalx(ECHOD_EXIT_FAILURE, "libevent has no pthreads support");
	signal(SIGPIPE, SIG_IGN);

	if (server_init(&srv, &opts, cfg, err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "%s", err);
	if (cfg->user != NULL &&
	    daemon_drop_privileges(cfg->user, err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "%s", err);
	if (server_start(&srv, err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "%s", err);
	if (daemon_pidfile_write(err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "%s", err);
	listener_announce(&srv);
	if (cfg->daemonize) {
		log_to_syslog();
		daemon_ready();
	}
	upgrade_child_ready();
	/* Only once committed: a new process that failed leaves the old
	 * one's sockets and files alone. */
	inherit_close_rest();

	server_run(&srv);

	server_free(&srv);
	daemon_pidfile_remove();
	systemd_notify_close();
	config_free(srv.cfg);
	free(srv.cfg);
	libevent_global_shutdown();
	log_info("stopped");
	return ECHOD_EXIT_OK;
}

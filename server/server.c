/*
 * server.c: the running daemon's life cycle on the main loop: start-up of
 * listeners and workers, the signals (SIGTERM/SIGINT stop gracefully and a
 * second one at once, SIGHUP reloads, SIGUSR1 logs statistics, SIGUSR2
 * upgrades: upgrade.c), the reload itself, the hand-over that ends an
 * upgrade, and systemd's watchdog and status. Connections are
 * worker.c's and conn.c's; sockets are listener.c's; the admin endpoint
 * is admin.c's, on this loop.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "echod.h"

/* How often systemd hears STATUS= when nothing else is said. */
#define SERVER_STATUS_MS 5000

static void
server_status(struct server *srv)
{
	uint64_t n = admission_current(srv->adm);

	systemd_notify("STATUS=%llu connection%s", (unsigned long long)n,
		       n == 1 ? "" : "s");
}

/* Makes room for max_connections under the descriptor limit, or says
 * that there is none: a limit that cannot hold them would turn into
 * refused connections and accept back-offs with no word why. */
static void
server_fit_nofile(struct server *srv)
{
	uint64_t wanted = (uint64_t)srv->cfg->max_connections +
			  ECHOD_NOFILE_RESERVE +
			  (uint64_t)ECHOD_NOFILE_PER_WORKER * worker_count(srv);
	char err[256];

	if (daemon_nofile_fit(wanted, err, sizeof(err)) == -1)
		log_warnx("max_connections is %u: %s",
			  srv->cfg->max_connections, err);
}

/* Sets what the workers read, from srv->cfg. */
static void
server_publish(struct server *srv)
{
	const struct config *cfg = srv->cfg;

	log_set_level(cfg->log_level);
	log_set_json(cfg->log_format == 1);
	atomic_store(&srv->log_connections, cfg->log_connections);
	admission_configure(srv->adm, cfg);
	atomic_store(&srv->max_buffer, cfg->max_buffer);
	atomic_store(&srv->idle_timeout_ms, cfg->idle_timeout_ms);
	atomic_store(&srv->handshake_timeout_ms, cfg->handshake_timeout_ms);
	atomic_store(&srv->proxy_protocol_timeout_ms,
		     cfg->proxy_protocol_timeout_ms);
	atomic_store(&srv->udp_rate_limit, cfg->udp_rate_limit);
}

static void
server_drain_cb(void *arg)
{
	struct server *srv = arg;

	if (admission_current(srv->adm) == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	timer_add_ms(&srv->drain_timer, ECHOD_DRAIN_CHECK_MS);
}

static void
server_shutdown_timeout_cb(void *arg)
{
	struct server *srv = arg;
	uint64_t n = admission_current(srv->adm);

	log_warnx("shutdown_timeout reached, closing %llu connection%s",
		  (unsigned long long)n, n == 1 ? "" : "s");
	event_base_loopexit(srv->base, NULL);
}

/*
 * Graceful stop: stop accepting at once, let every connection finish
 * echoing and close as it goes quiet, exit when none is left or when
 * shutdown_timeout expires.
 */
static void
server_shutdown(struct server *srv, const char *why)
{
	uint64_t n = admission_current(srv->adm);

	if (srv->stopping) {
		log_warnx("%s again: stopping now", why);
		event_base_loopexit(srv->base, NULL);
		return;
	}
	srv->stopping = 1;
	log_info("%s: shutting down, %llu connection%s open", why,
		 (unsigned long long)n, n == 1 ? "" : "s");
	systemd_notify("STOPPING=1");
	upgrade_abort(srv, why);
	listener_close_all(srv);
	if (atomic_load(&srv->drain_quiet_ms) == 0)
		atomic_store(&srv->drain_quiet_ms, ECHOD_DRAIN_QUIET_MS);
	atomic_store(&srv->draining, 1);
	worker_poke_all(srv);
	timer_add_ms(&srv->shutdown_timer, srv->cfg->shutdown_timeout_ms);
	timer_fire(&srv->drain_timer);
}

/*
 * An upgrade's new process serves (upgrade.c): it has every socket, the
 * pid file and the admin endpoint; this one stops accepting, leaves
 * them as they are, and drains as on SIGTERM.
 */
void
server_hand_over(struct server *srv)
{
	if (srv->stopping)
		return; /* cannot be: a stop abandons the upgrade */
	listener_hand_over(srv);
	admin_close(srv);
	daemon_pidfile_hand_over();
	atomic_store(&srv->drain_quiet_ms, ECHOD_DRAIN_QUIET_UPGRADE_MS);
	server_shutdown(srv, "upgraded");
}

/*
 * The key table says what a reload may change: a key marked CONFIG_RELOAD
 * takes its new value; any other keeps the value the daemon runs with, and
 * a change to it is logged as waiting for a restart.
 */
static void
server_keep_restart_keys(struct config *running, struct config *ncfg)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *key = &config_keys[i];

		if ((key->flags & CONFIG_RELOAD) ||
		    config_key_equal(key, running, ncfg))
			continue;
		log_warnx("reload: '%s' changed; restart to apply", key->name);
		config_key_swap(key, running, ncfg);
	}
}

/* A bad file never takes the service down: it is logged and ignored. */
static void
server_reload(struct server *srv)
{
	struct config *ncfg;
	char err[1024];
	int conflict;

	if (srv->stopping)
		return;
	if (srv->upgrade != NULL) {
		/* The new process reads the file anyway; a reload now could
		 * close sockets it was handed. */
		log_warnx("SIGHUP: an upgrade is under way, not reloading");
		return;
	}
	systemd_notify("RELOADING=1");
	if ((ncfg = malloc(sizeof(*ncfg))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (options_load_config(srv->opts, ncfg, err, sizeof(err)) == -1) {
		free(ncfg); /* its contents were freed on failure */
		goto fail;
	}
	if ((ncfg->user != NULL &&
	     daemon_user_check(ncfg->user, err, sizeof(err)) == -1) ||
	    listener_check(ncfg, &conflict, err, sizeof(err)) == -1) {
		config_free(ncfg);
		free(ncfg);
		goto fail;
	}
	/* Certificates are read again on every reload; a bad one leaves
	 * the running one in use. */
	if (tls_prepare(ncfg, err, sizeof(err)) == -1 ||
	    admin_prepare(srv, ncfg, err, sizeof(err)) == -1 ||
	    listener_reconcile(srv, ncfg, err, sizeof(err)) == -1) {
		tls_abort();
		admin_abort(srv);
		config_free(ncfg);
		free(ncfg);
		goto fail;
	}
	tls_commit();
	admin_commit(srv);
	server_keep_restart_keys(srv->cfg, ncfg);
	config_free(srv->cfg);
	free(srv->cfg);
	srv->cfg = ncfg;
	listener_apply_options(srv);
	server_publish(srv);
	server_fit_nofile(srv);
	worker_poke_all(srv);
	log_info("configuration reloaded%s%s", ncfg->file ? " from " : "",
		 ncfg->file ? ncfg->file : "");
	metrics_reloaded(srv->metrics, 1);
	goto done;
fail:
	log_warnx("reload failed, keeping the running configuration: %s", err);
	metrics_reloaded(srv->metrics, 0);
done:
	systemd_notify("READY=1");
	server_status(srv);
}

static void
server_signal(struct server *srv, int sig)
{
	struct stats st;
	char buf[512];

	switch (sig) {
	case SIGTERM:
		server_shutdown(srv, "SIGTERM");
		break;
	case SIGINT:
		server_shutdown(srv, "SIGINT");
		break;
	case SIGHUP:
		server_reload(srv);
		break;
	case SIGUSR1:
		stats_snapshot(srv, &st);
		log_info("stats: %s", stats_format(&st, buf, sizeof(buf)));
		break;
	case SIGUSR2:
		upgrade_begin(srv);
		break;
	default:
		break;
	}
}

/* Takes every signal the signalfd holds, in the order they came. */
static void
server_signal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si;
	ssize_t n;

	(void)what;
	while ((n = read(fd, &si, sizeof(si))) == (ssize_t)sizeof(si))
		server_signal(arg, (int)si.ssi_signo);
	if (n == -1 && errno != EAGAIN && errno != EINTR)
		log_warn("signalfd");
}

static void
server_housekeeping_cb(void *arg)
{
	struct server *srv = arg;
	uint64_t n = admission_current(srv->adm);
	uint64_t peak = srv->trim.peak;

	/* Workers' own accepts (reuseport) do not note their peaks: the
	 * count is sampled here too. */
	mem_trim_note(&srv->trim, n);
	if (mem_trim_due(&srv->trim, n)) {
		log_debug("connections fell from %llu to %llu: trimming memory",
			  (unsigned long long)peak, (unsigned long long)n);
		mem_trim();
	}
}

static void
server_watchdog_cb(void *arg)
{
	struct server *srv = arg;

	if (srv->watchdog_usec > 0)
		systemd_notify("WATCHDOG=1");
	server_status(srv);
}

/*
 * Signals are ours from here on, read from a signalfd on the main loop:
 * they are blocked in this thread before any worker exists (workers
 * inherit the mask), so no handler ever runs asynchronously. One that
 * arrives before the loop runs waits in the kernel and is read then.
 * (libevent's handler-and-socketpair signals lost a SIGTERM sent right
 * after start-up about once in a few hundred runs under TSan, whose
 * runtime defers handlers.)
 */
static int
server_signals_init(struct server *srv, char *err, size_t errlen)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
	sigset_t set;
	size_t i;
	int rc;

	sigemptyset(&set);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&set, sigs[i]);
	if ((rc = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0) {
		snprintf(err, errlen, "pthread_sigmask: %s", strerror(rc));
		return -1;
	}
	srv->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (srv->signal_fd == -1) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		return -1;
	}
	srv->signal_ev = event_new(srv->base, srv->signal_fd,
				   EV_READ | EV_PERSIST, server_signal_cb, srv);
	if (srv->signal_ev == NULL || event_add(srv->signal_ev, NULL) == -1) {
		snprintf(err, errlen, "cannot watch for signals");
		return -1;
	}
	return 0;
}

int
server_init(struct server *srv, const struct options *opts, struct config *cfg,
	    char *err, size_t errlen)
{
	memset(srv, 0, sizeof(*srv));
	srv->signal_fd = -1;
	srv->opts = opts;
	srv->cfg = cfg;
	if ((srv->adm = admission_new(worker_threads(cfg))) == NULL ||
	    (srv->metrics = metrics_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((srv->base = loop_base_new()) == NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	timer_init(&srv->drain_timer, srv->base, &srv->holds, server_drain_cb,
		   srv);
	timer_init(&srv->shutdown_timer, srv->base, &srv->holds,
		   server_shutdown_timeout_cb, srv);
	if (listener_init(srv, err, errlen) == -1)
		return -1;
	server_publish(srv);
	if (server_signals_init(srv, err, errlen) == -1)
		return -1;
	if (listener_open_all(srv, err, errlen) == -1)
		return -1;
	return admin_open(srv, cfg, err, errlen);
}

int
server_start(struct server *srv, char *err, size_t errlen)
{
	uint64_t period_us;

	if (worker_start_all(srv, err, errlen) == -1 ||
	    listener_attach_workers(srv, err, errlen) == -1)
		return -1;
	server_fit_nofile(srv);
	srv->housekeeping = tick_new(srv->base, server_housekeeping_cb, srv);
	if (srv->housekeeping == NULL ||
	    tick_start(srv->housekeeping, ECHOD_HOUSEKEEPING_MS) == -1) {
		snprintf(err, errlen, "cannot start the housekeeping timer: %s",
			 strerror(errno));
		return -1;
	}
	/* Pet the watchdog at half its period; say STATUS= meanwhile. */
	srv->watchdog_usec = systemd_watchdog_usec();
	period_us = srv->watchdog_usec > 0 ? srv->watchdog_usec / 2
					   : (uint64_t)SERVER_STATUS_MS * 1000;
	if (systemd_notify_enabled()) {
		uint64_t ms = period_us / 1000 > 0 ? period_us / 1000 : 1;

		srv->watchdog_timer =
			tick_new(srv->base, server_watchdog_cb, srv);
		if (srv->watchdog_timer == NULL ||
		    tick_start(srv->watchdog_timer, ms) == -1) {
			snprintf(err, errlen,
				 "cannot start the watchdog timer: %s",
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

void
server_run(struct server *srv)
{
	systemd_notify("READY=1");
	server_status(srv);
	loop_run(worker_get(srv, 0));
}

void
server_free(struct server *srv)
{
	upgrade_free(srv);
	admin_close(srv);
	listener_free_all(srv);
	worker_stop_all(srv);
	/* The signals stay blocked: one sent now finds echod on its way
	 * out, not a default action that would kill it mid-exit. */
	if (srv->signal_ev != NULL)
		event_free(srv->signal_ev);
	if (srv->signal_fd != -1)
		close(srv->signal_fd);
	if (srv->base != NULL) {
		timer_del(&srv->drain_timer);
		timer_del(&srv->shutdown_timer);
	}
	tick_free(srv->watchdog_timer);
	tick_free(srv->housekeeping);
	if (srv->base != NULL)
		event_base_free(srv->base);
	srv->base = NULL;
	admission_free(srv->adm);
	srv->adm = NULL;
	metrics_free(srv->metrics);
	srv->metrics = NULL;
	tls_shutdown();
}

/*
 * listener.c: echod's listening sockets and accept policy: binding one
 * socket per resolved listen address (or taking systemd's), wrapping each
 * in an evconnlistener on the main loop, opening and closing them as a
 * reload changes the listen set, refusing connections past
 * max_connections or max_connections_per_ip, and backing off (not spinning)
 * when accept(2) runs out of descriptors or memory. Accepted sockets go to
 * worker.c.
 *
 * Socket options that accepted sockets inherit on Linux (TCP_NODELAY,
 * SO_KEEPALIVE and its timers) are set once on the listening socket,
 * saving every connection those system calls.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <event2/listener.h>

#include "echod.h"

/* How long accepting pauses after EMFILE/ENFILE/ENOBUFS/ENOMEM. */
#define LISTENER_BACKOFF_MS 100
#define LISTENER_MAX_PER_SPEC 16
#define LISTENER_MAX_ACTIVATED 64
/* Keepalive: first probe after 60s of silence, then every 10s, 6 tries:
 * a dead peer is gone within two minutes. */
#define LISTENER_KEEPIDLE_S 60
#define LISTENER_KEEPINTVL_S 10
#define LISTENER_KEEPCNT 6
/* A refused socket's waiting input is read and dropped, at most this
 * much, so that closing it sends a FIN rather than a reset; a peer that
 * sent more gets the reset (the main loop is not held up by it). */
#define LISTENER_REFUSE_DRAIN 4096
#define LISTENER_REFUSE_READS 16

struct listener {
	TAILQ_ENTRY(listener) entry;
	struct server *srv;
	struct evconnlistener *lev;
	char spec[ADDR_HOST_MAX + 8]; /* the config's text, "" if systemd's */
	char name[ADDR_STRLEN];	      /* the bound address */
};

/*
 * Past max_connections: close at once, so the client sees EOF rather than
 * a hang. Whatever it already sent is read and dropped first, so that
 * the close is a FIN, not a reset.
 */
static void
listener_refuse(struct server *srv, struct listener *l, int fd,
		const struct sockaddr *sa, int per_ip)
{
	char sink[LISTENER_REFUSE_DRAIN];
	time_t now;
	int i;

	atomic_fetch_add(&srv->conns_refused, 1);
	shutdown(fd, SHUT_WR);
	for (i = 0;
	     i < LISTENER_REFUSE_READS && read(fd, sink, sizeof(sink)) > 0; i++)
		;
	close(fd);
	now = time(NULL);
	if (now == srv->refuse_warned[per_ip])
		return;
	srv->refuse_warned[per_ip] = now;
	if (per_ip) {
		char name[ADDR_STRLEN];
		log_warnx("%s: max_connections_per_ip (%u) reached for %s, "
			  "refusing its connections",
			  l->name, srv->cfg->max_connections_per_ip,
			  addr_format(sa, name, sizeof(name)));
	} else {
		log_warnx("%s: max_connections (%u) reached, refusing "
			  "connections",
			  l->name, srv->cfg->max_connections);
	}
}

static void
listener_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
		   struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	unsigned per_ip = srv->cfg->max_connections_per_ip;
	uint64_t n;

	(void)lev;
	if (atomic_load(&srv->conns_current) >= srv->cfg->max_connections) {
		listener_refuse(srv, l, fd, sa, 0);
		return;
	}
	if (per_ip > 0 && iptable_acquire(sa, per_ip) == -1) {
		listener_refuse(srv, l, fd, sa, 1);
		return;
	}
	n = atomic_fetch_add(&srv->conns_current, 1) + 1;
	mem_trim_note(&srv->trim, n);
	atomic_fetch_add(&srv->conns_total, 1);
	worker_assign(srv, fd, sa, (socklen_t)salen, per_ip > 0);
}

static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct listener *l;

	(void)fd;
	(void)what;
	TAILQ_FOREACH (l, &srv->listeners, entry)
		evconnlistener_enable(l->lev);
}

static void
listener_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	struct timeval tv = {0, (suseconds_t)LISTENER_BACKOFF_MS * 1000};
	int err = errno;
	struct listener *each;
	time_t now;

	(void)lev;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_debug("accept on %s: %s", l->name, strerror(err));
		return;
	}
	/*
	 * The listening socket stays readable while connections wait, so
	 * accepting again at once would spin: pause every listener and try
	 * again shortly, when descriptors may have been freed.
	 */
	TAILQ_FOREACH (each, &srv->listeners, entry)
		evconnlistener_disable(each->lev);
	evtimer_add(srv->accept_resume, &tv);
	now = time(NULL);
	if (now != srv->accept_warned) {
		srv->accept_warned = now;
		log_warnx("accept on %s: %s; pausing accepts for %dms", l->name,
			  strerror(err), LISTENER_BACKOFF_MS);
	}
}

/* Options inherited by accepted sockets, and the backlog. */
static void
listener_set_options(int fd, const struct config *cfg, const char *name)
{
	int on = 1, ka = cfg->tcp_keepalive, idle = LISTENER_KEEPIDLE_S,
	    intvl = LISTENER_KEEPINTVL_S, cnt = LISTENER_KEEPCNT;

	/* An echo is interactive: never hold a small reply back. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, sizeof(ka)) == -1 ||
	    (ka && (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
			       sizeof(idle)) == -1 ||
		    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
			       sizeof(intvl)) == -1 ||
		    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt,
			       sizeof(cnt)) == -1)))
		log_warn("%s: socket options", name);
	/* listen(2) again on a listening socket only resizes its queue. */
	if (listen(fd, (int)cfg->backlog) == -1)
		log_warn("%s: listen", name);
}

/* Creates, binds and listens one socket; returns the fd or -1. */
static int
listener_bind(const struct addr *a, int wildcard, const struct config *cfg,
	      char *err, size_t errlen)
{
	char name[ADDR_STRLEN];
	int fd, on = 1;

	addr_format((const struct sockaddr *)&a->ss, name, sizeof(name));
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd == -1) {
		snprintf(err, errlen, "cannot listen on %s: socket: %s", name,
			 strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		goto fail;
	if (a->ss.ss_family == AF_INET6) {
		/* "*:PORT" is one dual-stack socket; "[::]:PORT" is v6 only. */
		int v6only = !wildcard;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
			       sizeof(v6only)) == -1)
			goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1)
		goto fail;
	if (listen(fd, (int)cfg->backlog) == -1)
		goto fail;
	listener_set_options(fd, cfg, name);
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", name, strerror(errno));
	close(fd);
	return -1;
}

static struct listener *
listener_add(struct server *srv, int fd, const char *spec, char *err,
	     size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct listener *l;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return NULL;
	}
	l->srv = srv;
	snprintf(l->spec, sizeof(l->spec), "%s", spec);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		addr_format((struct sockaddr *)&ss, l->name, sizeof(l->name));
	l->lev = evconnlistener_new(
		srv->base, listener_accept_cb, l,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l->lev == NULL) {
		snprintf(err, errlen, "%s: cannot create listener", l->name);
		close(fd);
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->lev, listener_error_cb);
	TAILQ_INSERT_TAIL(&srv->listeners, l, entry);
	if (srv->announced)
		log_info("listening on %s", l->name);
	return l;
}

static void
listener_free(struct server *srv, struct listener *l)
{
	TAILQ_REMOVE(&srv->listeners, l, entry);
	evconnlistener_free(l->lev);
	free(l);
}

/* Binds the wildcard: dual-stack IPv6 if the host has IPv6, else IPv4. */
static int
listener_bind_wildcard(const struct addr_spec *spec, const struct config *cfg,
		       char *err, size_t errlen)
{
	struct addr a;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
	int fd;

	memset(&a, 0, sizeof(a));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = in6addr_any;
	sin6->sin6_port = htons(spec->port);
	a.len = sizeof(*sin6);
	fd = listener_bind(&a, 1, cfg, err, errlen);
	if (fd == -1 && errno == EAFNOSUPPORT) {
		memset(&a, 0, sizeof(a));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons(spec->port);
		a.len = sizeof(*sin);
		fd = listener_bind(&a, 1, cfg, err, errlen);
	}
	return fd;
}

/* Opens every socket of one listen address, added to the server. */
static int
listener_open_spec(struct server *srv, const struct config *cfg, int i,
		   char *err, size_t errlen)
{
	const struct addr_spec *spec = &cfg->listen_spec[i];
	struct addr addrs[LISTENER_MAX_PER_SPEC];
	char port[8];
	int j, n, fd;

	if (spec->wildcard) {
		fd = listener_bind_wildcard(spec, cfg, err, errlen);
		if (fd == -1 ||
		    listener_add(srv, fd, cfg->listen[i], err, errlen) == NULL)
			return -1;
		return 0;
	}
	snprintf(port, sizeof(port), "%u", spec->port);
	n = addr_resolve(spec->host, port, 1, addrs, LISTENER_MAX_PER_SPEC, err,
			 errlen);
	if (n == -1)
		return -1;
	for (j = 0; j < n; j++) {
		fd = listener_bind(&addrs[j], 0, cfg, err, errlen);
		if (fd == -1 ||
		    listener_add(srv, fd, cfg->listen[i], err, errlen) == NULL)
			return -1;
	}
	return 0;
}

static int
listener_open_activated(struct server *srv, int *fds, int n, char *err,
			size_t errlen)
{
	int i;

	for (i = 0; i < n; i++) {
		listener_set_options(fds[i], srv->cfg, "systemd socket");
		if (listener_add(srv, fds[i], "", err, errlen) == NULL)
			return -1;
	}
	srv->activated = 1;
	log_info("serving %d socket%s from systemd; 'listen' is not used", n,
		 n == 1 ? "" : "s");
	return 0;
}

/*
 * Says "listening on ..." for each socket, once the whole server is
 * serving: tools and tests take that line to mean echod is ready.
 */
void
listener_announce(struct server *srv)
{
	struct listener *l;

	TAILQ_FOREACH (l, &srv->listeners, entry)
		log_info("listening on %s", l->name);
	srv->announced = 1;
}

void
listener_init(struct server *srv)
{
	TAILQ_INIT(&srv->listeners);
}

int
listener_open_all(struct server *srv, char *err, size_t errlen)
{
	int fds[LISTENER_MAX_ACTIVATED], n, i;

	srv->accept_resume = evtimer_new(srv->base, listener_resume_cb, srv);
	if (srv->accept_resume == NULL) {
		snprintf(err, errlen, "cannot create accept timer");
		return -1;
	}
	n = systemd_listen_fds(fds, LISTENER_MAX_ACTIVATED, err, errlen);
	if (n == -1)
		return -1;
	if (n > 0)
		return listener_open_activated(srv, fds, n, err, errlen);
	for (i = 0; i < srv->cfg->nlisten; i++)
		if (listener_open_spec(srv, srv->cfg, i, err, errlen) == -1)
			return -1;
	return 0;
}

static int
listener_in_config(const struct config *cfg, const char *spec)
{
	int i;

	for (i = 0; i < cfg->nlisten; i++)
		if (strcmp(cfg->listen[i], spec) == 0)
			return 1;
	return 0;
}

static int
listener_is_open(struct server *srv, const char *spec)
{
	struct listener *l;

	TAILQ_FOREACH (l, &srv->listeners, entry)
		if (strcmp(l->spec, spec) == 0)
			return 1;
	return 0;
}

/*
 * Makes the open listeners match ncfg's listen set: the new addresses are
 * opened first, and if one fails every one just opened is closed again
 * and nothing changes; then the addresses no longer listed are closed.
 */
int
listener_reconcile(struct server *srv, const struct config *ncfg, char *err,
		   size_t errlen)
{
	struct listener *l, *next;
	int i;

	if (srv->activated)
		return 0;
	for (i = 0; i < ncfg->nlisten; i++) {
		if (!listener_is_open(srv, ncfg->listen[i]) &&
		    listener_open_spec(srv, ncfg, i, err, errlen) == -1)
			goto undo;
	}
	for (l = TAILQ_FIRST(&srv->listeners); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		if (!listener_in_config(ncfg, l->spec)) {
			log_info("no longer listening on %s", l->name);
			listener_free(srv, l);
		}
	}
	return 0;
undo:
	/* Close what this reload opened: everything not in the old set. */
	for (l = TAILQ_FIRST(&srv->listeners); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		if (!listener_in_config(srv->cfg, l->spec))
			listener_free(srv, l);
	}
	return -1;
}

/* Re-applies inherited socket options and the backlog after a reload. */
void
listener_apply_options(struct server *srv)
{
	struct listener *l;

	TAILQ_FOREACH (l, &srv->listeners, entry)
		listener_set_options(evconnlistener_get_fd(l->lev), srv->cfg,
				     l->name);
}

void
listener_close_all(struct server *srv)
{
	struct listener *l;

	while ((l = TAILQ_FIRST(&srv->listeners)) != NULL)
		listener_free(srv, l);
	if (srv->accept_resume != NULL) {
		event_free(srv->accept_resume);
		srv->accept_resume = NULL;
	}
}

/*
 * listener.c: echod's listening sockets: creating and binding one per
 * resolved listen address, wrapping each in an evconnlistener on the main
 * thread's loop, handing accepted sockets to the workers, and backing off
 * (not spinning) when accept(2) runs out of descriptors or memory.
 * It does not own connections: worker.c and conn.c do.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/listener.h>

#include "echod.h"

/* How long accepting pauses after EMFILE/ENFILE/ENOBUFS/ENOMEM. */
#define LISTENER_BACKOFF_MS 100
#define LISTENER_LISTEN_BACKLOG 511
#define LISTENER_MAX_PER_SPEC 16

struct listener {
	TAILQ_ENTRY(listener) entry;
	struct server *srv;
	struct evconnlistener *lev;
	char name[ADDR_STRLEN];
};

static void
listener_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
		   struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;

	(void)lev;
	worker_assign(l->srv, fd, sa, (socklen_t)salen);
}

static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct listener *l;

	(void)fd;
	(void)what;
	if (srv->stopping)
		return;
	TAILQ_FOREACH (l, &srv->listeners, entry)
		evconnlistener_enable(l->lev);
}

static void
listener_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	struct timeval tv = {0, LISTENER_BACKOFF_MS * 1000};
	int err = errno;
	struct listener *each;
	time_t now;

	(void)lev;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_debug("accept on %s: %s", l->name, strerror(err));
		return;
	}
	/*
	 * The listening socket stays readable while the backlog is full, so
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

/* Creates, binds and listens one socket; returns the fd or -1. */
static int
listener_bind(const struct addr *a, int wildcard, char *err, size_t errlen)
{
	char name[ADDR_STRLEN];
	int fd, on = 1;

	addr_format((const struct sockaddr *)&a->ss, name, sizeof(name));
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd == -1) {
		snprintf(err, errlen, "%s: socket: %s", name, strerror(errno));
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
	if (listen(fd, LISTENER_LISTEN_BACKLOG) == -1)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", name, strerror(errno));
	close(fd);
	return -1;
}

static int
listener_add(struct server *srv, int fd, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct listener *l;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	l->srv = srv;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		addr_format((struct sockaddr *)&ss, l->name, sizeof(l->name));
	l->lev = evconnlistener_new(
		srv->base, listener_accept_cb, l,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l->lev == NULL) {
		snprintf(err, errlen, "%s: cannot create listener", l->name);
		close(fd);
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->lev, listener_error_cb);
	TAILQ_INSERT_TAIL(&srv->listeners, l, entry);
	log_info("listening on %s", l->name);
	return 0;
}

/* Binds the wildcard: dual-stack IPv6 if the host has IPv6, else IPv4. */
static int
listener_open_wildcard(struct server *srv, const struct addr_spec *spec,
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
	fd = listener_bind(&a, 1, err, errlen);
	if (fd == -1) {
		memset(&a, 0, sizeof(a));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons(spec->port);
		a.len = sizeof(*sin);
		fd = listener_bind(&a, 1, err, errlen);
	}
	if (fd == -1)
		return -1;
	return listener_add(srv, fd, err, errlen);
}

int
listener_open_all(struct server *srv, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;
	struct addr addrs[LISTENER_MAX_PER_SPEC];
	char port[8];
	int i, j, n, fd;

	srv->accept_resume = evtimer_new(srv->base, listener_resume_cb, srv);
	if (srv->accept_resume == NULL) {
		snprintf(err, errlen, "cannot create accept timer");
		return -1;
	}
	for (i = 0; i < cfg->nlisten; i++) {
		const struct addr_spec *spec = &cfg->listen_spec[i];

		if (spec->wildcard) {
			if (listener_open_wildcard(srv, spec, err, errlen) ==
			    -1)
				return -1;
			continue;
		}
		snprintf(port, sizeof(port), "%u", spec->port);
		n = addr_resolve(spec->host, port, 1, addrs,
				 LISTENER_MAX_PER_SPEC, err, errlen);
		if (n == -1)
			return -1;
		for (j = 0; j < n; j++) {
			fd = listener_bind(&addrs[j], 0, err, errlen);
			if (fd == -1 ||
			    listener_add(srv, fd, err, errlen) == -1)
				return -1;
		}
	}
	return 0;
}

void
listener_disable_all(struct server *srv)
{
	struct listener *l;

	TAILQ_FOREACH (l, &srv->listeners, entry)
		evconnlistener_disable(l->lev);
	if (srv->accept_resume != NULL)
		evtimer_del(srv->accept_resume);
}

void
listener_close_all(struct server *srv)
{
	struct listener *l;

	while ((l = TAILQ_FIRST(&srv->listeners)) != NULL) {
		TAILQ_REMOVE(&srv->listeners, l, entry);
		evconnlistener_free(l->lev);
		free(l);
	}
	if (srv->accept_resume != NULL) {
		event_free(srv->accept_resume);
		srv->accept_resume = NULL;
	}
}

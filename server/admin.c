/*
 * admin.c: the admin endpoint (admin_listen = HOST:PORT): libevent's
 * evhttp on the main loop, never on a worker's path. GET /metrics is
 * metrics.c's rendering; GET /healthz is 200 "ok" while serving and 503
 * "draining" once a stop has begun. Other paths get 404, other methods
 * 405. It has limits of its own: ECHOD_ADMIN_MAX_CONNECTIONS at once
 * (accepting pauses at the limit), ECHOD_ADMIN_MAX_HEADERS of request
 * head, no body, and ECHOD_ADMIN_TIMEOUT_S of silence. Every reply
 * closes its connection: while one is open, evhttp keeps timers on the
 * main loop, which also serves echo connections (worker 0), and with a
 * libevent timer pending each of its waits would arm a kernel timer; a
 * Prometheus scrape that kept its connection would do that all the time.
 * A reload that changes the address binds the new one before it lets the
 * old go.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "echod.h"

/* Every method evhttp knows: the ones not served get 405, not 501. */
#define ADMIN_METHODS                                                          \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | \
	 EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |           \
	 EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

struct admin {
	struct server *srv;
	struct evhttp *http;
	struct evconnlistener *lev; /* evhttp's, from our socket */
	struct tick *sweep;	    /* finds connections evhttp let go */
	char *where;		    /* the admin_listen value served */
	char name[ADDR_STRLEN];	    /* the bound address */
	/*
	 * The connections open now: each one's bufferevent, made by us
	 * (admin_bev_cb) and held by a reference of ours, so that its
	 * memory (and its socket) stays while we look. evhttp frees it when the
	 * connection ends, which clears its callbacks; then we let our
	 * reference go: at once for a connection that made a request (its
	 * close callback, admin_closed_cb), at the next sweep for one that
	 * never did (libevent 2.1's evhttp has no connection limit of its
	 * own, and no hook for the end of a connection before its first
	 * request).
	 */
	struct bufferevent *conn[ECHOD_ADMIN_MAX_CONNECTIONS];
	unsigned nconn;
	/*
	 * The next connection's bufferevent, made ahead: had admin_bev_cb()
	 * none to give, evhttp would make one of its own, which nothing here
	 * would count or hold the loop for. Accepting pauses while there is
	 * none (out of memory), until the sweep makes one.
	 */
	struct bufferevent *spare;
	int paused;  /* not accepting: at the limit, or no spare */
	int freeing; /* admin_free() is under way: no resuming */
};

/* How often the connections evhttp let go are looked for, while any is
 * open. */
#define ADMIN_SWEEP_MS 200

/* The endpoint a reload is bringing in, until it commits or aborts. */
static struct admin *admin_next;

int
admin_check(const char *value, char *err, size_t errlen)
{
	struct addr_spec spec;

	return addr_parse(value, &spec, err, errlen);
}

/* Makes the next connection's bufferevent, if there is none: 0, or -1
 * if out of memory. BEV_OPT_CLOSE_ON_FREE: the socket evhttp gives it
 * closes when it is finally freed, after our reference and so after its
 * events are deleted. Were evhttp to close it while our reference keeps
 * the read event registered, a connection accepted meanwhile on the same
 * descriptor (on this loop: worker 0's) would never be watched. evhttp
 * leaves the close to a bufferevent that owns it. */
static int
admin_spare(struct admin *a)
{
	if (a->spare == NULL)
		a->spare = bufferevent_socket_new(a->srv->base, -1,
						  BEV_OPT_CLOSE_ON_FREE);
	return a->spare != NULL ? 0 : -1;
}

/* Accepts while under the limit with a spare made; pauses otherwise. */
static void
admin_accepting(struct admin *a)
{
	int full = a->nconn >= ECHOD_ADMIN_MAX_CONNECTIONS;
	int can = !full && admin_spare(a) == 0;

	if (can && a->paused) {
		a->paused = 0;
		evconnlistener_enable(a->lev);
	} else if (!can && !a->paused) {
		a->paused = 1;
		evconnlistener_disable(a->lev);
		if (full)
			log_debug("admin endpoint: %d connections open, "
				  "pausing",
				  ECHOD_ADMIN_MAX_CONNECTIONS);
		else
			log_warnx("admin endpoint: out of memory, pausing");
	}
}

/* Lets go of connection i: accepting resumes if it had paused, and
 * with the last one the main loop's hold goes (evhttp's timeouts are
 * libevent timers) and the sweep stops (admin_bev_cb() starts it),
 * unless it is still to make a spare. */
static void
admin_forget(struct admin *a, unsigned i)
{
	bufferevent_decref(a->conn[i]);
	a->conn[i] = a->conn[--a->nconn];
	if (!a->freeing)
		admin_accepting(a);
	if (a->nconn > 0)
		return;
	if (!a->paused && tick_stop(a->sweep) == -1)
		log_warn("admin endpoint: cannot stop its sweep");
	loop_release(&a->srv->holds, a->srv->base);
}

/* Lets go of the connections that evhttp has freed. */
static void
admin_sweep(struct admin *a)
{
	unsigned i = 0;

	while (i < a->nconn) {
		bufferevent_data_cb rcb, wcb;
		bufferevent_event_cb ecb;
		void *arg;

		bufferevent_getcb(a->conn[i], &rcb, &wcb, &ecb, &arg);
		if (rcb != NULL || wcb != NULL || ecb != NULL) {
			i++;
			continue;
		}
		admin_forget(a, i);
	}
}

static void
admin_sweep_cb(void *arg)
{
	struct admin *a = arg;

	admin_sweep(a);
	admin_accepting(a); /* paused for want of a spare: one now? */
	if (a->nconn == 0 && !a->paused && tick_stop(a->sweep) == -1)
		log_warn("admin endpoint: cannot stop its sweep");
}

/* evhttp frees a connection that made a request (after its reply, or
 * on an error): our reference goes now, not at the next sweep, and with
 * it the connection's timers, from the main loop. */
static void
admin_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct admin *a = arg;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	unsigned i;

	for (i = 0; i < a->nconn; i++)
		if (a->conn[i] == bev) {
			admin_forget(a, i);
			break;
		}
}

/* evhttp asks for each new connection's bufferevent: here it is
 * counted, and accepting pauses at the limit. Every earlier connection
 * has its callbacks set by now, so the sweep is exact. */
static struct bufferevent *
admin_bev_cb(struct event_base *base, void *arg)
{
	struct admin *a = arg;
	struct bufferevent *bev;

	(void)base;
	admin_sweep(a);
	/* Accepting runs only with a spare made (admin_accepting()). */
	if (admin_spare(a) == -1)
		return NULL;
	bev = a->spare;
	a->spare = NULL;
	if (a->nconn < ECHOD_ADMIN_MAX_CONNECTIONS) {
		bufferevent_incref(bev);
		if (a->nconn == 0)
			loop_hold(&a->srv->holds);
		a->conn[a->nconn++] = bev;
	}
	admin_accepting(a); /* the next one's spare, or a pause */
	if (tick_start(a->sweep, ADMIN_SWEEP_MS) == -1)
		log_warn("admin endpoint: cannot schedule its sweep");
	return bev;
}

static void
admin_reply(struct evhttp_request *req, int code, const char *reason,
	    const char *type, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	/* The connection ends with the reply (see the top). An HTTP/1.0
	 * client's "keep-alive" is dropped (each one it sent), or evhttp
	 * would answer it with a "Connection: keep-alive" beside this. */
	while (evhttp_remove_header(evhttp_request_get_input_headers(req),
				    "Connection") == 0)
		;
	evhttp_add_header(h, "Connection", "close");
	evhttp_send_reply(req, code, reason, body);
}

static void
admin_text(struct evhttp_request *req, int code, const char *reason,
	   const char *text)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL) {
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	evbuffer_add_printf(body, "%s\n", text);
	admin_reply(req, code, reason, "text/plain; charset=utf-8", body);
	evbuffer_free(body);
}

static void
admin_metrics(struct admin *a, struct evhttp_request *req)
{
	struct metrics_view *v = malloc(sizeof(*v));
	struct evbuffer *body = evbuffer_new();

	if (v == NULL || body == NULL) {
		free(v);
		if (body != NULL)
			evbuffer_free(body);
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	metrics_collect(a->srv, v);
	metrics_render(v, body);
	admin_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
		    body);
	evbuffer_free(body);
	free(v);
}

static void
admin_request_cb(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	int metrics, health;

	if (path == NULL)
		path = "";
	if (evcon != NULL)
		evhttp_connection_set_closecb(evcon, admin_closed_cb, a);
	metrics = strcmp(path, "/metrics") == 0;
	health = strcmp(path, "/healthz") == 0;
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char peer[ADDR_STRLEN] = "?";
		char *host = NULL;
		ev_uint16_t port = 0;

		if (evcon != NULL) {
			evhttp_connection_get_peer(evcon, &host, &port);
			snprintf(peer, sizeof(peer), "%s:%u",
				 host != NULL ? host : "?", port);
		}
		log_debug("admin endpoint: %s %s from %s",
			  cmd == EVHTTP_REQ_GET	   ? "GET"
			  : cmd == EVHTTP_REQ_HEAD ? "HEAD"
						   : "other method",
			  path, peer);
	}
	if (!metrics && !health) {
		admin_text(req, 404, "Not Found", "not found");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Allow", "GET, HEAD");
		admin_text(req, 405, "Method Not Allowed",
			   "method not allowed");
		return;
	}
	if (metrics)
		admin_metrics(a, req);
	else if (a->srv->stopping)
		admin_text(req, 503, "Service Unavailable", "draining");
	else
		admin_text(req, 200, "OK", "ok");
}

/* Binds HOST:PORT (the wildcard: dual-stack, or IPv4 where there is no
 * IPv6). Returns the listening socket or -1 with the reason in err. */
static int
admin_bind(const char *where, char *name, size_t namelen, char *err,
	   size_t errlen)
{
	struct addr_spec spec;
	struct addr addr;
	char port[8];
	int fd, one = 1, zero = 0;

	if (addr_parse(where, &spec, err, errlen) == -1)
		return -1;
	snprintf(port, sizeof(port), "%u", spec.port);
	if (spec.wildcard) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&addr.ss;

		memset(&addr, 0, sizeof(addr));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons(spec.port);
		addr.len = sizeof(*sin6);
	} else if (addr_resolve(spec.host, port, 1, &addr, 1, err, errlen) <
		   1) {
		return -1;
	}
	/* Handed over by a restart or an upgrade. */
	fd = inherit_take(SOCK_STREAM, (struct sockaddr *)&addr.ss, addr.len,
			  spec.wildcard ? 0 : -1, 0);
	if (fd == -1 && spec.wildcard) {
		struct sockaddr_in sin = {.sin_family = AF_INET,
					  .sin_port = htons(spec.port)};
		fd = inherit_take(SOCK_STREAM, (struct sockaddr *)&sin,
				  sizeof(sin), -1, 0);
	}
	if (fd != -1)
		goto bound;
	fd = socket(addr.ss.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 && spec.wildcard && errno == EAFNOSUPPORT) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&addr.ss;

		memset(&addr, 0, sizeof(addr));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons(spec.port);
		addr.len = sizeof(*sin);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    0);
	}
	if (fd == -1) {
		snprintf(err, errlen, "admin_listen %s: socket: %s", where,
			 strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr.ss.ss_family == AF_INET6 && spec.wildcard)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (inherit_bind(fd, SOCK_STREAM, (struct sockaddr *)&addr.ss,
			 addr.len) == -1 ||
	    listen(fd, ECHOD_ADMIN_MAX_CONNECTIONS) == -1) {
		snprintf(err, errlen, "admin_listen %s: %s", where,
			 strerror(errno));
		close(fd);
		return -1;
	}
	inherit_store(fd);
bound:
	addr.len = sizeof(addr.ss);
	if (getsockname(fd, (struct sockaddr *)&addr.ss, &addr.len) == 0)
		addr_format((struct sockaddr *)&addr.ss, name, namelen);
	else
		snprintf(name, namelen, "%s", where);
	return fd;
}

static void
admin_free(struct admin *a)
{
	unsigned i;

	if (a == NULL)
		return;
	/* evhttp_free() frees its listener, then every connection it holds
	 * (admin_closed_cb() lets go of some: none may resume the listener),
	 * then the rest of our references go. */
	a->freeing = 1;
	if (a->http != NULL)
		evhttp_free(a->http);
	if (a->spare != NULL)
		bufferevent_free(a->spare);
	for (i = 0; i < a->nconn; i++)
		bufferevent_decref(a->conn[i]);
	if (a->nconn > 0)
		loop_release(&a->srv->holds, a->srv->base);
	tick_free(a->sweep);
	free(a->where);
	free(a);
}

/* The endpoint on where, bound and served. A socket it bound for a
 * reload that then fails leaves systemd's store again; at start, one
 * handed over stays there for the next start. */
static struct admin *
admin_new(struct server *srv, const char *where, int reloading, char *err,
	  size_t errlen)
{
	struct evhttp_bound_socket *bound;
	struct admin *a;
	int fd;

	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->where = strdup(where)) == NULL) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->srv = srv;
	if ((fd = admin_bind(where, a->name, sizeof(a->name), err, errlen)) ==
	    -1) {
		admin_free(a);
		return NULL;
	}
	a->http = evhttp_new(srv->base);
	a->sweep = tick_new(srv->base, admin_sweep_cb, a);
	if (a->http == NULL || a->sweep == NULL ||
	    (a->lev = evconnlistener_new(
		     srv->base, NULL, NULL,
		     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd)) ==
		    NULL) {
		snprintf(err, errlen, "admin_listen %s: cannot serve it",
			 where);
		if (reloading)
			inherit_unstore(fd);
		close(fd);
		admin_free(a);
		return NULL;
	}
	if ((bound = evhttp_bind_listener(a->http, a->lev)) == NULL) {
		if (reloading)
			inherit_unstore(fd);
		evconnlistener_free(a->lev);
		snprintf(err, errlen, "admin_listen %s: cannot serve it",
			 where);
		admin_free(a);
		return NULL;
	}
	(void)bound;
	evhttp_set_allowed_methods(a->http, ADMIN_METHODS);
	evhttp_set_max_headers_size(a->http, ECHOD_ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(a->http, 0);
	evhttp_set_timeout(a->http, ECHOD_ADMIN_TIMEOUT_S);
	evhttp_set_bevcb(a->http, admin_bev_cb, a);
	evhttp_set_gencb(a->http, admin_request_cb, a);
	if (admin_spare(a) == -1) {
		snprintf(err, errlen, "admin_listen %s: out of memory", where);
		if (reloading)
			inherit_unstore(evconnlistener_get_fd(a->lev));
		admin_free(a);
		return NULL;
	}
	return a;
}

static void
admin_announce(const struct admin *a)
{
	log_info("admin endpoint on %s (/metrics, /healthz)", a->name);
}

int
admin_open(struct server *srv, const struct config *cfg, char *err,
	   size_t errlen)
{
	if (cfg->admin_listen == NULL)
		return 0;
	if ((srv->admin = admin_new(srv, cfg->admin_listen, 0, err, errlen)) ==
	    NULL)
		return -1;
	admin_announce(srv->admin);
	return 0;
}

/* A reload: binds a changed address now, so that a busy one fails the
 * reload and leaves everything as it was. */
int
admin_prepare(struct server *srv, const struct config *ncfg, char *err,
	      size_t errlen)
{
	const char *now = srv->admin != NULL ? srv->admin->where : NULL;

	admin_next = NULL;
	if (ncfg->admin_listen == NULL || now == NULL ||
	    strcmp(now, ncfg->admin_listen) != 0) {
		if (ncfg->admin_listen != NULL &&
		    (admin_next = admin_new(srv, ncfg->admin_listen, 1, err,
					    errlen)) == NULL)
			return -1;
	} else {
		admin_next = srv->admin; /* unchanged */
	}
	return 0;
}

void
admin_commit(struct server *srv)
{
	if (admin_next == srv->admin)
		return;
	if (srv->admin != NULL) {
		log_info("admin endpoint on %s closed", srv->admin->name);
		inherit_unstore(admin_fd(srv));
	}
	admin_free(srv->admin);
	srv->admin = admin_next;
	admin_next = NULL;
	if (srv->admin != NULL)
		admin_announce(srv->admin);
}

void
admin_abort(struct server *srv)
{
	if (admin_next != srv->admin) {
		if (admin_next != NULL && admin_next->lev != NULL)
			inherit_unstore(evconnlistener_get_fd(admin_next->lev));
		admin_free(admin_next);
	}
	admin_next = NULL;
}

int
admin_fd(const struct server *srv)
{
	return srv->admin != NULL && srv->admin->lev != NULL
		       ? evconnlistener_get_fd(srv->admin->lev)
		       : -1;
}

void
admin_close(struct server *srv)
{
	admin_free(srv->admin);
	srv->admin = NULL;
}

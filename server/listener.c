/*
 * listener.c: echod's listening sockets and accept policy: binding one
 * socket per resolved listen address (or taking systemd's), watching each
 * from a worker's own loop (loop.c), opening and closing them as a
 * reload changes the listen set, refusing connections past
 * max_connections or max_connections_per_ip (admission.c counts them),
 * and backing off (not spinning) when accept(2) runs out of descriptors or
 * memory. Accepted sockets become connections (conn.c) with the
 * connection profile of the listen line they came in on.
 *
 * Whose loop. A line's socket is worker 0's, on the main thread, which
 * hands what it accepts out to the workers in turn (worker_assign()).
 * With reuseport, each worker has a socket of the line and keeps what it
 * accepts: no hand-off. Either way the accept is made from the loop's own
 * set, first in its batch (loop.c), with no libevent pass.
 *
 * Kinds. A listen line's kind decides how its sockets are opened and how
 * peers are taken: a TCP stream listener binds each resolved address. A
 * Unix stream listener differs only
 * in how it binds (a stale socket file replaced, a live one refused, the
 * file's mode and owner set) and in removing its file when it closes; its
 * connections are a TCP one's, less the TCP socket options. A datagram
 * (UDP) listener has no connections and would take its own path from
 * listener_open_conf() instead of listener_add(). Everything a listener's
 * connections get (transport, preamble, behaviour) is its conn_profile,
 * copied at accept.
 *
 * Socket options that accepted sockets inherit on Linux (TCP_NODELAY,
 * SO_KEEPALIVE and its timers) are set once on the listening socket,
 * saving every connection those system calls.
 */
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "echod.h"

/* How long accepting pauses after EMFILE/ENFILE/ENOBUFS/ENOMEM. */
#define LISTENER_BACKOFF_MS 100
/* Connections a worker takes per readiness of a listening socket. */
#define LISTENER_ACCEPTS_PER_EVENT 16
#define LISTENER_MAX_PER_SPEC 16
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
	struct udp_endpoint *udp;    /* a UDP listener's sockets, udp.c's */
	char *text;		     /* the listen line, "" if systemd's */
	char name[ADDR_STRLEN];	     /* the bound address */
	int family;		     /* of the listening socket */
	char *path;		     /* a Unix socket file we made, or NULL */
	struct conn_profile profile; /* what its connections get */
	int defer_s;   /* TCP_DEFER_ACCEPT; -1: systemd's to set */
	unsigned slot; /* its counters: metrics_slot() */
	/* A stream listener's socket, watched on a worker's loop. */
	int fd;		      /* the socket; -1 for UDP */
	int handoff;	      /* not reuseport: worker_assign() places them */
	int clone;	      /* reuseport, workers 1..: not announced */
	struct worker *w;     /* whose loop accepts; NULL until attached */
	struct timer backoff; /* ends a pause after EMFILE and the like */
	uint64_t rng;	      /* fault_roll()'s state for this socket */
	_Atomic int closing;  /* listener_free() has begun: no re-arming */
	pthread_mutex_t lock; /* guards profile against reload (workers) */
	int has_lock;
};

/* Every listener, and the accept policy's own state: main thread only. */
struct listener_set {
	TAILQ_HEAD(, listener) list;
	int activated;			 /* the sockets came from systemd */
	int handed;			 /* a new echod has them (SIGUSR2) */
	int announced;			 /* "listening on" lines were logged */
	_Atomic time_t accept_warned;	 /* last back-off warning (rate) */
	_Atomic time_t refuse_warned[2]; /* last refusal warning: total, per
					    IP; from any worker */
	uint64_t rng;			 /* fault_roll()'s state: chance= */
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
	struct listener_set *ls = srv->listen;
	char sink[LISTENER_REFUSE_DRAIN];
	unsigned total, ip;
	time_t now;
	int i;

	shutdown(fd, SHUT_WR);
	for (i = 0;
	     i < LISTENER_REFUSE_READS && read(fd, sink, sizeof(sink)) > 0; i++)
		;
	close(fd);
	now = time(NULL);
	if (atomic_exchange(&ls->refuse_warned[per_ip], now) == now)
		return;
	/* The limits as admission.c holds them: this runs on a worker,
	 * which may not be the main thread, where srv->cfg is not to be
	 * read. */
	admission_limits(srv->adm, &total, &ip);
	if (per_ip) {
		char name[ADDR_STRLEN];
		log_warnx("%s: max_connections_per_ip (%u) reached for %s, "
			  "refusing its connections",
			  l->name, ip, addr_format(sa, name, sizeof(name)));
	} else {
		log_warnx("%s: max_connections (%u) reached, refusing "
			  "connections",
			  l->name, total);
	}
}

/*
 * Does this accept(2) error mean the process or the system is out of
 * descriptors or memory? Then the listening socket stays readable while
 * connections wait, and accepting again at once would spin: accepting
 * pauses instead. Any other error concerns one connection only.
 */
int
listener_accept_error_pauses(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS ||
	       err == ENOMEM;
}

/* How long the kernel defers a TCP connection: until its first bytes,
 * or defer_s seconds (0: not at all). */
static void
listener_set_defer(int fd, int defer_s, const char *name)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s,
		       sizeof(defer_s)) == -1)
		log_warn("%s: deferred accept", name);
}

/* Options inherited by accepted sockets (TCP's), the backlog, and how
 * long the kernel defers a connection (defer_s; -1: left as it is). */
static void
listener_set_options(int fd, int family, const struct config *cfg, int defer_s,
		     const char *name)
{
	int on = 1, ka = cfg->tcp_keepalive, idle = LISTENER_KEEPIDLE_S,
	    intvl = LISTENER_KEEPINTVL_S, cnt = LISTENER_KEEPCNT;

	/* An echo is interactive: never hold a small reply back. */
	if (family == AF_UNIX)
		; /* no TCP here: only the backlog below applies */
	else if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) ==
			 -1 ||
		 setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, sizeof(ka)) ==
			 -1 ||
		 (ka && (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
				    sizeof(idle)) == -1 ||
			 setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
				    sizeof(intvl)) == -1 ||
			 setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt,
				    sizeof(cnt)) == -1)))
		log_warn("%s: socket options", name);
	/* Set either way: a socket handed over may carry another value. */
	if (family != AF_UNIX && defer_s != -1)
		listener_set_defer(fd, defer_s, name);
	/* listen(2) again on a listening socket only resizes its queue. */
	if (listen(fd, (int)cfg->backlog) == -1)
		log_warn("%s: listen", name);
}

/* Creates, binds and listens one socket; returns the fd or -1. */
static int
listener_bind(const struct addr *a, int wildcard, int reuseport, int defer_s,
	      const struct config *cfg, char *err, size_t errlen)
{
	char name[ADDR_STRLEN];
	int fd, on = 1;

	addr_format((const struct sockaddr *)&a->ss, name, sizeof(name));
	/* Handed over (a restart or an upgrade): already bound, and its
	 * queue kept every connection that came meanwhile. */
	fd = inherit_take(SOCK_STREAM, (const struct sockaddr *)&a->ss, a->len,
			  !wildcard, reuseport);
	if (fd != -1) {
		listener_set_options(fd, a->ss.ss_family, cfg, defer_s, name);
		return fd;
	}
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd == -1) {
		snprintf(err, errlen, "cannot listen on %s: socket: %s", name,
			 strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (reuseport &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1))
		goto fail;
	if (a->ss.ss_family == AF_INET6) {
		/* "*:PORT" is one dual-stack socket; "[::]:PORT" is v6 only. */
		int v6only = !wildcard;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
			       sizeof(v6only)) == -1)
			goto fail;
	}
	/* A socket handed over for this port whose settings differ from
	 * the line's (reuseport, the wildcard) holds the port: it goes. */
	if (inherit_bind(fd, SOCK_STREAM, (const struct sockaddr *)&a->ss,
			 a->len) == -1)
		goto fail;
	if (listen(fd, (int)cfg->backlog) == -1)
		goto fail;
	listener_set_options(fd, a->ss.ss_family, cfg, defer_s, name);
	inherit_store(fd);
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", name, strerror(errno));
	close(fd);
	return -1;
}

/* Logs "WHAT NAME", its deferral and the faults its connections get, if
 * any. */
static void
listener_say(const struct listener *l, const char *what)
{
	char faults[256], deferred[48] = "";

	if (l->defer_s > 0)
		snprintf(deferred, sizeof(deferred), " deferred up to %ds",
			 l->defer_s);
	if (l->udp != NULL)
		log_info("%s %s udp", what, l->name);
	else if (l->profile.transport == CONN_TRANSPORT_TLS)
		log_info("%s %s tls%s", what, l->name, deferred);
	else if (l->profile.behaviour == CONN_BEHAVIOUR_FAULT)
		log_info("%s %s%s with faults: %s", what, l->name, deferred,
			 fault_format(&l->profile.fault, faults,
				      sizeof(faults)));
	else
		log_info("%s %s%s", what, l->name, deferred);
}

static int listener_watch(struct listener *l, struct worker *w, char *err,
			  size_t errlen);
static void listener_worker_resume_cb(void *arg);

/* fault_roll()'s state for a socket: each socket of a line picks its
 * share of connections (chance=) on a sequence of its own. */
static uint64_t
listener_seed(const struct listener_set *ls, int fd)
{
	return (ls->rng ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(fd + 1))) | 1;
}

/* A stream socket of a line that is not reuseport (TCP or Unix, or
 * systemd's): worker 0 watches it once the workers run (now, on a
 * reload), handing out what it accepts. */
static struct listener *
listener_add(struct server *srv, int fd, const struct listen_conf *lc,
	     char *err, size_t errlen)
{
	struct listener_set *ls = srv->listen;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct listener *l;

	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->text = strdup(lc->text)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	l->srv = srv;
	l->fd = fd;
	l->handoff = 1;
	l->profile = lc->profile;
	l->defer_s = lc->defer_s;
	l->rng = listener_seed(ls, fd);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_format((struct sockaddr *)&ss, l->name, sizeof(l->name));
		l->family = ss.ss_family;
	}
	/* systemd's sockets have no listen line: their address names them. */
	l->slot = metrics_slot(srv->metrics,
			       lc->text[0] != '\0' ? lc->text : l->name);
	if (lc->kind == LISTEN_UNIX && (l->path = strdup(lc->path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (srv->pool != NULL &&
	    listener_watch(l, worker_get(srv, 0), err, errlen) == -1)
		goto fail;
	TAILQ_INSERT_TAIL(&ls->list, l, entry);
	if (ls->announced)
		listener_say(l, "listening on");
	return l;
fail:
	/* A reload's new socket leaves systemd's store, and its file goes,
	 * as when a reload retires a line; at start, a socket handed over
	 * stays there for the next start. */
	if (ls->announced && !ls->activated) {
		inherit_unstore(fd);
		if (lc->kind == LISTEN_UNIX && unlink(lc->path) == -1 &&
		    errno != ENOENT)
			log_warn("%s: cannot remove the socket file", lc->path);
	}
	close(fd);
	if (l != NULL) {
		if (l->has_lock)
			pthread_mutex_destroy(&l->lock);
		free(l->path);
		free(l->text);
		free(l);
	}
	return NULL;
}

/* A listener's socket (a UDP one's first), or -1. */
static int
listener_fd(const struct listener *l)
{
	int fd = -1;

	if (l->udp != NULL)
		return udp_endpoint_fds(l->udp, &fd, 1) == 1 ? fd : -1;
	return l->fd;
}

/*
 * Closes a listener. One a reload retires leaves systemd's fd store and
 * takes its socket file with it; at exit both stay if the socket lives
 * on elsewhere (in the store, or in the echod an upgrade started), so
 * that the next one finds them.
 */
static void
listener_free(struct listener_set *ls, struct listener *l, int retire)
{
	TAILQ_REMOVE(&ls->list, l, entry);
	if (retire && !l->clone)
		inherit_unstore(listener_fd(l));
	if (!retire && (ls->handed || inherit_storing())) {
		free(l->path);
		l->path = NULL;
	}
	if (l->udp != NULL) {
		udp_endpoint_close(l->udp);
	} else {
		/* The socket is in its worker's own set, served from its
		 * loop (loop.c). With closing set, an accept over
		 * once the worker has synced arms no back-off; timer_del()
		 * waits out a resume under way, which re-adds nothing after
		 * the flag; the second sync waits out a batch that still
		 * holds l. */
		atomic_store(&l->closing, 1);
		if (l->w != NULL) { /* watched */
			worker_sync(l->w);
			timer_del(&l->backoff);
			loop_remove(l->w, l->fd);
			worker_sync(l->w);
		}
		if (l->has_lock)
			pthread_mutex_destroy(&l->lock);
		if (l->fd != -1)
			close(l->fd);
	}
	if (l->path != NULL && unlink(l->path) == -1 && errno != ENOENT)
		log_warn("%s: cannot remove the socket file", l->name);
	free(l->path);
	free(l->text);
	free(l);
}

/*
 * A listening socket is readable (its worker's loop, loop.c, found it
 * so). This runs on that worker's thread, with nothing shared but atomics
 * and admission.c: counts go to the worker's counters (worker 0's are the
 * main thread's). A reuseport socket's connection is its worker's at
 * once; any other's is handed out by worker_assign(), on the main thread.
 */
void
listener_ready(struct listener *l)
{
	struct server *srv = l->srv;
	struct worker *w = l->w;
	struct sockaddr_storage ss;
	struct accepted a;
	socklen_t len;
	struct conn_profile profile;
	uint64_t n;
	int i, fd, proxy, lfd = l->fd;

	/* One snapshot of what a reload may change, for this pass. */
	pthread_mutex_lock(&l->lock);
	profile = l->profile;
	pthread_mutex_unlock(&l->lock);
	proxy = profile.preamble == CONN_PREAMBLE_PROXY;
	for (i = 0; i < LISTENER_ACCEPTS_PER_EVENT; i++) {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (listener_accept_error_pauses(errno)) {
				time_t now = time(NULL);

				if (atomic_exchange(&srv->listen->accept_warned,
						    now) != now)
					log_warn("%s: accept, pausing for %dms",
						 l->name, LISTENER_BACKOFF_MS);
				loop_remove(w, lfd);
				/* Without its timer it would never come
				 * back: watched again, it retries next
				 * pass. */
				if (!atomic_load(&l->closing) &&
				    timer_add_ms(&l->backoff,
						 LISTENER_BACKOFF_MS) == -1)
					listener_worker_resume_cb(l);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* One connection's (EPERM, EPROTO, ...). */
				log_debug("%s: accept: %s", l->name,
					  strerror(errno));
			}
			return;
		}
		switch (admission_admit(srv->adm, w->id,
					proxy ? NULL : (struct sockaddr *)&ss,
					&n)) {
		case ADMIT_OK:
			break;
		case ADMIT_FULL:
			counter_add(&w->wc[WC_REFUSED_FULL], 1);
			counter_add(&w->lc[l->slot][LC_REFUSED], 1);
			listener_refuse(srv, l, fd, (struct sockaddr *)&ss, 0);
			continue;
		case ADMIT_FULL_PER_IP:
			counter_add(&w->wc[WC_REFUSED_PER_IP], 1);
			counter_add(&w->lc[l->slot][LC_REFUSED], 1);
			listener_refuse(srv, l, fd, (struct sockaddr *)&ss, 1);
			continue;
		}
		counter_add(&w->lc[l->slot][LC_ACCEPTED], 1);
		memset(&a, 0, sizeof(a));
		a.fd = fd;
		a.slot = l->slot;
		a.peer_counted = !proxy;
		a.peer_shard = w->id;
		a.peerlen = len <= sizeof(a.peer) ? len : 0;
		memcpy(&a.peer, &ss, a.peerlen);
		a.profile = profile;
		if (a.profile.behaviour == CONN_BEHAVIOUR_FAULT &&
		    !fault_roll(&l->rng, a.profile.fault.chance))
			a.profile.behaviour = CONN_BEHAVIOUR_ECHO;
		if (!l->handoff) {
			conn_new(w, &a);
			continue;
		}
		/* The burst's peak, for mem.c's trim; workers' own
		 * accepts are sampled by the main loop's housekeeping. */
		mem_trim_note(&srv->trim, n);
		worker_assign(srv, &a);
	}
}

static void
listener_worker_resume_cb(void *arg)
{
	struct listener *l = arg;

	if (atomic_load(&l->closing) || loop_add_listener(l->w, l->fd, l) == 0)
		return;
	log_warn("%s: cannot watch the socket again, retrying in %dms", l->name,
		 LISTENER_BACKOFF_MS);
	timer_add_ms(&l->backoff, LISTENER_BACKOFF_MS);
}

/* Watches l's socket on worker w's loop; l->handoff's is worker 0's. */
static int
listener_watch(struct listener *l, struct worker *w, char *err, size_t errlen)
{
	l->w = w;
	if (!l->has_lock) {
		pthread_mutex_init(&l->lock, NULL);
		l->has_lock = 1;
	}
	timer_init(&l->backoff, w->base, w->holds, listener_worker_resume_cb,
		   l);
	if (loop_add_listener(w, l->fd, l) == -1) {
		snprintf(err, errlen, "%s: cannot watch the socket: %s",
			 l->name, strerror(errno));
		l->w = NULL;
		return -1;
	}
	return 0;
}

/* reuseport: another socket of first's line, fd, for worker w. */
static int
listener_clone(struct server *srv, struct listener *first, int fd,
	       struct worker *w, char *err, size_t errlen)
{
	struct listener_set *ls = srv->listen;
	struct listener *l = calloc(1, sizeof(*l));

	if (l == NULL || (l->text = strdup(first->text)) == NULL) {
		free(l);
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->srv = srv;
	l->fd = fd;
	l->profile = first->profile;
	l->defer_s = first->defer_s;
	l->slot = first->slot;
	l->family = first->family;
	l->clone = 1;
	l->rng = (ls->rng ^
		  (0x9E3779B97F4A7C15ULL * (w->id + 1) + (uint64_t)fd)) |
		 1;
	memcpy(l->name, first->name, sizeof(l->name));
	TAILQ_INSERT_TAIL(&ls->list, l, entry);
	return listener_watch(l, w, err, errlen);
}

/*
 * reuseport, once the workers run: worker 0 takes the socket bound at
 * start, every other worker a socket of its own on the same address
 * (the port the first got, if it asked for any). Sockets of the line
 * handed over beyond those are served too, shared out over the workers:
 * closing one would reset the connections waiting in its queue.
 */
static int
listener_attach_reuseport(struct server *srv, struct listener *first, char *err,
			  size_t errlen)
{
	struct addr a;
	unsigned i, n = worker_count(srv);
	int v6only = 1, fd;
	socklen_t optlen = sizeof(v6only);

	if (listener_watch(first, worker_get(srv, 0), err, errlen) == -1)
		return -1;
	a.len = sizeof(a.ss);
	if (getsockname(first->fd, (struct sockaddr *)&a.ss, &a.len) == -1) {
		snprintf(err, errlen, "%s: getsockname: %s", first->name,
			 strerror(errno));
		return -1;
	}
	if (a.ss.ss_family == AF_INET6)
		getsockopt(first->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
			   &optlen);
	for (i = 1; i < n; i++) {
		fd = listener_bind(&a, !v6only, 1, first->defer_s, srv->cfg,
				   err, errlen);
		if (fd == -1 ||
		    listener_clone(srv, first, fd, worker_get(srv, i), err,
				   errlen) == -1)
			return -1;
	}
	for (i = 0; (fd = inherit_take(SOCK_STREAM, (struct sockaddr *)&a.ss,
				       a.len, v6only, 1)) != -1;
	     i++)
		if (listener_clone(srv, first, fd, worker_get(srv, i % n), err,
				   errlen) == -1)
			return -1;
	return 0;
}

/* A TCP socket of a listen line: worker 0's to accept and hand out, or
 * with reuseport the first of a socket per worker. */
static int
listener_add_tcp(struct server *srv, int fd, const struct listen_conf *lc,
		 char *err, size_t errlen)
{
	struct listener_set *ls = srv->listen;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct listener *l;

	if (!lc->reuseport)
		return listener_add(srv, fd, lc, err, errlen) == NULL ? -1 : 0;
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->text = strdup(lc->text)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(l);
		close(fd);
		return -1;
	}
	l->srv = srv;
	l->fd = fd;
	l->profile = lc->profile;
	l->defer_s = lc->defer_s;
	l->rng = listener_seed(ls, fd);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_format((struct sockaddr *)&ss, l->name, sizeof(l->name));
		l->family = ss.ss_family;
	}
	l->slot = metrics_slot(srv->metrics, lc->text);
	TAILQ_INSERT_TAIL(&ls->list, l, entry);
	if (srv->pool != NULL &&
	    listener_attach_reuseport(srv, l, err, errlen) == -1)
		return -1;
	if (ls->announced)
		listener_say(l, "listening on");
	return 0;
}

/* The wildcard's address: dual-stack IPv6, or IPv4 where there is none. */
static void
listener_wildcard(const struct addr_spec *spec, int family, struct addr *a)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

	memset(a, 0, sizeof(*a));
	if (family == AF_INET6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons(spec->port);
		a->len = sizeof(*sin6);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons(spec->port);
		a->len = sizeof(*sin);
	}
}

/* Binds the wildcard: dual-stack IPv6 if the host has IPv6, else IPv4. */
static int
listener_bind_wildcard(const struct listen_conf *lc, const struct config *cfg,
		       char *err, size_t errlen)
{
	struct addr a;
	int fd;

	listener_wildcard(&lc->addr, AF_INET6, &a);
	fd = listener_bind(&a, 1, lc->reuseport, lc->defer_s, cfg, err, errlen);
	if (fd == -1 && errno == EAFNOSUPPORT) {
		listener_wildcard(&lc->addr, AF_INET, &a);
		fd = listener_bind(&a, 1, lc->reuseport, lc->defer_s, cfg, err,
				   errlen);
	}
	return fd;
}

/* The addresses a TCP listen line binds; how many, or -1. */
static int
listener_resolve(const struct addr_spec *spec, struct addr *addrs, int max,
		 char *err, size_t errlen)
{
	char port[8];

	if (spec->wildcard) {
		listener_wildcard(spec, AF_INET6, &addrs[0]);
		return 1;
	}
	snprintf(port, sizeof(port), "%u", spec->port);
	return addr_resolve(spec->host, port, 1, addrs, max, err, errlen);
}

/* Opens every socket of one TCP listen line, added to the server. */
static int
listener_open_tcp(struct server *srv, const struct config *cfg,
		  const struct listen_conf *lc, char *err, size_t errlen)
{
	struct addr addrs[LISTENER_MAX_PER_SPEC];
	int j, n, fd;

	if (lc->addr.wildcard) {
		fd = listener_bind_wildcard(lc, cfg, err, errlen);
		if (fd == -1 ||
		    listener_add_tcp(srv, fd, lc, err, errlen) == -1)
			return -1;
		return 0;
	}
	n = listener_resolve(&lc->addr, addrs, LISTENER_MAX_PER_SPEC, err,
			     errlen);
	if (n == -1)
		return -1;
	for (j = 0; j < n; j++) {
		fd = listener_bind(&addrs[j], 0, lc->reuseport, lc->defer_s,
				   cfg, err, errlen);
		if (fd == -1 ||
		    listener_add_tcp(srv, fd, lc, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* Is someone listening on the Unix socket at sun? A file nobody
 * listens on is stale, left by a process that died. */
static int
listener_unix_live(const struct sockaddr_un *sun)
{
	int fd, live;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return 1; /* cannot tell: do not remove it */
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ||
	       (errno != ECONNREFUSED && errno != ENOENT);
	close(fd);
	return live;
}

/* Binds and listens a Unix stream socket at lc->path, replacing a stale
 * socket file; returns the fd or -1. */
static int
listener_bind_unix(const struct listen_conf *lc, const struct config *cfg,
		   char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t mask;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, lc->path, strlen(lc->path));
	if ((fd = inherit_take_unix(lc->path)) != -1) {
		/* Handed over, its file in place: only the settings. */
		if (chmod(lc->path, (mode_t)cfg->unix_mode) == -1 ||
		    listen(fd, (int)cfg->backlog) == -1)
			log_warn("unix:%s", lc->path);
		return fd;
	}
	if (lstat(lc->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen,
				 "cannot listen on unix:%s: a file that is "
				 "not a socket is in the way",
				 lc->path);
			return -1;
		}
		if (listener_unix_live(&sun)) {
			snprintf(err, errlen, "cannot listen on unix:%s: %s",
				 lc->path, strerror(EADDRINUSE));
			return -1;
		}
		if (unlink(lc->path) == -1 && errno != ENOENT) {
			snprintf(err, errlen,
				 "cannot listen on unix:%s: cannot remove the "
				 "stale socket: %s",
				 lc->path, strerror(errno));
			return -1;
		}
		log_info("unix:%s: replaced a stale socket file", lc->path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "cannot listen on unix:%s: socket: %s",
			 lc->path, strerror(errno));
		return -1;
	}
	/* Created with unix_mode already, never looser for a moment. */
	mask = umask((mode_t)(~cfg->unix_mode & 0777));
	rc = bind(fd, (const struct sockaddr *)&sun, sizeof(sun));
	umask(mask);
	if (rc == -1 || chmod(lc->path, (mode_t)cfg->unix_mode) == -1 ||
	    listen(fd, (int)cfg->backlog) == -1) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", lc->path,
			 strerror(errno));
		if (rc == 0)
			unlink(lc->path);
		close(fd);
		return -1;
	}
	if (daemon_chown_to_user(lc->path, cfg->user, err, errlen) == -1) {
		unlink(lc->path);
		close(fd);
		return -1;
	}
	inherit_store(fd);
	return fd;
}

/* Adds a UDP endpoint as a listener; serving starts at once if the
 * workers run (a reload), else with listener_attach_workers(). */
static int
listener_add_udp(struct server *srv, struct udp_endpoint *e,
		 const struct listen_conf *lc, char *err, size_t errlen)
{
	struct listener_set *ls = srv->listen;
	struct listener *l;

	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->text = strdup(lc->text)) == NULL) {
		int fds[1];

		snprintf(err, errlen, "out of memory");
		free(l);
		/* Out of systemd's store on a reload (listener_add()). */
		if (ls->announced && udp_endpoint_fds(e, fds, 1) == 1)
			inherit_unstore(fds[0]);
		udp_endpoint_close(e);
		return -1;
	}
	l->srv = srv;
	l->fd = -1;
	l->udp = e;
	l->slot = metrics_slot(srv->metrics, lc->text);
	l->profile = lc->profile;
	snprintf(l->name, sizeof(l->name), "%s", udp_endpoint_name(e));
	TAILQ_INSERT_TAIL(&ls->list, l, entry);
	if (srv->pool != NULL && udp_endpoint_attach(e, err, errlen) == -1)
		return -1;
	if (ls->announced)
		listener_say(l, "listening on");
	return 0;
}

/* Opens every UDP endpoint of one listen line. */
static int
listener_open_udp(struct server *srv, const struct listen_conf *lc, char *err,
		  size_t errlen)
{
	struct addr addrs[LISTENER_MAX_PER_SPEC];
	struct udp_endpoint *e;
	int j, n;
	unsigned slot = metrics_slot(srv->metrics, lc->text);

	if (lc->addr.wildcard) {
		listener_wildcard(&lc->addr, AF_INET6, &addrs[0]);
		e = udp_endpoint_open(srv, (struct sockaddr *)&addrs[0].ss,
				      addrs[0].len, 0, slot, err, errlen);
		if (e == NULL && errno == EAFNOSUPPORT) {
			listener_wildcard(&lc->addr, AF_INET, &addrs[0]);
			e = udp_endpoint_open(
				srv, (struct sockaddr *)&addrs[0].ss,
				addrs[0].len, 0, slot, err, errlen);
		}
		return e == NULL ? -1
				 : listener_add_udp(srv, e, lc, err, errlen);
	}
	n = listener_resolve(&lc->addr, addrs, LISTENER_MAX_PER_SPEC, err,
			     errlen);
	if (n == -1)
		return -1;
	for (j = 0; j < n; j++) {
		e = udp_endpoint_open(srv, (struct sockaddr *)&addrs[j].ss,
				      addrs[j].len, 1, slot, err, errlen);
		if (e == NULL ||
		    listener_add_udp(srv, e, lc, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* Once the workers run: each UDP endpoint gets a socket per worker, each
 * stream socket its worker's loop (reuseport: a socket per worker). */
int
listener_attach_workers(struct server *srv, char *err, size_t errlen)
{
	struct listener *l;

	TAILQ_FOREACH (l, &srv->listen->list, entry) {
		if (l->udp != NULL &&
		    udp_endpoint_attach(l->udp, err, errlen) == -1)
			return -1;
		if (l->udp != NULL || l->w != NULL || l->clone)
			continue;
		if (l->handoff &&
		    listener_watch(l, worker_get(srv, 0), err, errlen) == -1)
			return -1;
		if (!l->handoff &&
		    listener_attach_reuseport(srv, l, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* Opens one listen line's sockets, the way its kind opens them. */
static int
listener_open_conf(struct server *srv, const struct config *cfg,
		   const struct listen_conf *lc, char *err, size_t errlen)
{
	int fd;

	switch (lc->kind) {
	case LISTEN_TCP:
		return listener_open_tcp(srv, cfg, lc, err, errlen);
	case LISTEN_UNIX:
		if ((fd = listener_bind_unix(lc, cfg, err, errlen)) == -1)
			return -1;
		return listener_add(srv, fd, lc, err, errlen) == NULL ? -1 : 0;
	case LISTEN_UDP:
		return listener_open_udp(srv, lc, err, errlen);
	}
	snprintf(err, errlen, "%s: unknown listener kind", lc->text);
	return -1;
}

static int
listener_open_activated(struct server *srv, int *fds, int n, char *err,
			size_t errlen)
{
	/* systemd's sockets are plain echo, TCP or Unix stream as
	 * echod.socket says; their files are systemd's to remove. */
	const struct listen_conf lc = {
		.text = (char *)(uintptr_t) "",
		.kind = LISTEN_TCP,
		.profile = {
			.transport = CONN_TRANSPORT_PLAIN,
			.preamble = CONN_PREAMBLE_NONE,
			.behaviour = CONN_BEHAVIOUR_ECHO,
		}};
	struct sockaddr_storage ss;
	struct listener *l;
	socklen_t len;
	int i;

	for (i = 0; i < n; i++) {
		len = sizeof(ss);
		if (getsockname(fds[i], (struct sockaddr *)&ss, &len) == -1)
			ss.ss_family = AF_UNSPEC;
		/* Their deferral is systemd's (DeferAcceptSec=). */
		listener_set_options(fds[i], ss.ss_family, srv->cfg, -1,
				     "systemd socket");
		if ((l = listener_add(srv, fds[i], &lc, err, errlen)) == NULL)
			return -1;
		l->defer_s = -1;
	}
	srv->listen->activated = 1;
	log_info("serving %d socket%s from systemd; 'listen' is not used", n,
		 n == 1 ? "" : "s");
	return 0;
}

/* "echod.conf:3" or "--listen", for messages about a listen line. */
static void
listener_where(const struct config *cfg, const struct listen_conf *lc,
	       char *buf, size_t len)
{
	if (lc->line > 0 && cfg->file != NULL)
		snprintf(buf, len, "%s:%d", cfg->file, lc->line);
	else
		snprintf(buf, len, "--listen");
}

/* Would binding a and b in one process clash? A wildcard address
 * clashes with every address of its port. */
static int
listener_clash(const struct addr *a, const struct addr *b)
{
	const struct sockaddr_in *a4 = (const void *)&a->ss,
				 *b4 = (const void *)&b->ss;
	const struct sockaddr_in6 *a6 = (const void *)&a->ss,
				  *b6 = (const void *)&b->ss;
	uint16_t pa =
		a->ss.ss_family == AF_INET6 ? a6->sin6_port : a4->sin_port;
	uint16_t pb =
		b->ss.ss_family == AF_INET6 ? b6->sin6_port : b4->sin_port;
	int wa, wb;

	if (pa != pb || pa == 0)
		return 0;
	wa = a->ss.ss_family == AF_INET6
		     ? IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr)
		     : a4->sin_addr.s_addr == htonl(INADDR_ANY);
	wb = b->ss.ss_family == AF_INET6
		     ? IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr)
		     : b4->sin_addr.s_addr == htonl(INADDR_ANY);
	if (wa || wb)
		return 1;
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/*
 * Checks cfg's listen lines as binding would see them: every host
 * resolves, and no two lines name one socket address in different words
 * ("127.0.0.1:8888" and "localhost:8888"). Binds nothing. Returns 0, or
 * -1 with err set and *conflict 1 if two lines clash, 0 if a host did not
 * resolve.
 */
int
listener_check(const struct config *cfg, int *conflict, char *err,
	       size_t errlen)
{
	struct addr(*addrs)[LISTENER_MAX_PER_SPEC];
	int n[ECHOD_MAX_LISTEN], i, j, x, y, rc = -1;
	char here[PATH_MAX + 16], there[PATH_MAX + 16], name[ADDR_STRLEN];

	*conflict = 0;
	if ((addrs = calloc(ECHOD_MAX_LISTEN, sizeof(*addrs))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < cfg->nlisten; i++) {
		if (cfg->listen[i].kind == LISTEN_UNIX) {
			n[i] = 0; /* one path, one line: config.c saw to it */
			continue;
		}
		n[i] = listener_resolve(&cfg->listen[i].addr, addrs[i],
					LISTENER_MAX_PER_SPEC, err, errlen);
		if (n[i] == -1)
			goto out;
		for (j = 0; j < i; j++)
			for (x = 0;
			     cfg->listen[j].kind == cfg->listen[i].kind &&
			     x < n[i];
			     x++)
				for (y = 0; y < n[j]; y++)
					if (listener_clash(&addrs[i][x],
							   &addrs[j][y]))
						goto clash;
	}
	rc = 0;
	goto out;
clash:
	listener_where(cfg, &cfg->listen[i], here, sizeof(here));
	listener_where(cfg, &cfg->listen[j], there, sizeof(there));
	addr_format((const struct sockaddr *)&addrs[i][x].ss, name,
		    sizeof(name));
	snprintf(err, errlen,
		 "%s: listen '%s' binds %s, which '%s' also binds, listed at "
		 "%s",
		 here, cfg->listen[i].text, name, cfg->listen[j].text, there);
	*conflict = 1;
out:
	free(addrs);
	return rc;
}

/*
 * Says "listening on ..." for each socket, once the whole server is
 * serving: tools and tests take that line to mean echod is ready.
 */
void
listener_announce(struct server *srv)
{
	struct listener *l;

	TAILQ_FOREACH (l, &srv->listen->list, entry)
		if (!l->clone)
			listener_say(l, "listening on");
	srv->listen->announced = 1;
}

int
listener_init(struct server *srv, char *err, size_t errlen)
{
	struct listener_set *ls;

	if ((ls = calloc(1, sizeof(*ls))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	TAILQ_INIT(&ls->list);
	srv->listen = ls;
	if (getrandom(&ls->rng, sizeof(ls->rng), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(ls->rng))
		ls->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	ls->rng |= 1; /* xorshift's state is never 0 */
	return 0;
}

int
listener_open_all(struct server *srv, char *err, size_t errlen)
{
	int fds[INHERIT_MAX], n, i;

	n = inherit_activated(fds, INHERIT_MAX);
	if (n > 0)
		return listener_open_activated(srv, fds, n, err, errlen);
	for (i = 0; i < srv->cfg->nlisten; i++)
		if (listener_open_conf(srv, srv->cfg, &srv->cfg->listen[i], err,
				       errlen) == -1)
			return -1;
	return 0;
}

static const struct listen_conf *
listener_in_config(const struct config *cfg, const char *text)
{
	int i;

	for (i = 0; i < cfg->nlisten; i++)
		if (strcmp(cfg->listen[i].text, text) == 0)
			return &cfg->listen[i];
	return NULL;
}

/* Do two profiles give connections the same? */
static int
listener_same_profile(const struct conn_profile *a,
		      const struct conn_profile *b)
{
	char fa[256], fb[256];

	return a->transport == b->transport && a->preamble == b->preamble &&
	       a->behaviour == b->behaviour &&
	       strcmp(fault_format(&a->fault, fa, sizeof(fa)),
		      fault_format(&b->fault, fb, sizeof(fb))) == 0;
}

static int
listener_is_open(const struct listener_set *ls, const char *text)
{
	const struct listener *l;

	TAILQ_FOREACH (l, &ls->list, entry)
		if (strcmp(l->text, text) == 0)
			return 1;
	return 0;
}

/*
 * Makes the open listeners match ncfg's listen set: the new lines are
 * opened first, and if one fails every one just opened is closed again
 * and nothing changes; then the lines no longer listed are closed.
 */
int
listener_reconcile(struct server *srv, const struct config *ncfg, char *err,
		   size_t errlen)
{
	struct listener_set *ls = srv->listen;
	struct listener *l, *next;
	int i;

	if (ls->activated)
		return 0;
	for (i = 0; i < ncfg->nlisten; i++) {
		if (!listener_is_open(ls, ncfg->listen[i].text) &&
		    listener_open_conf(srv, ncfg, &ncfg->listen[i], err,
				       errlen) == -1)
			goto undo;
	}
	for (l = TAILQ_FIRST(&ls->list); l != NULL; l = next) {
		const struct listen_conf *lc =
			listener_in_config(ncfg, l->text);

		next = TAILQ_NEXT(l, entry);
		if (lc != NULL && l->udp == NULL && l->defer_s != lc->defer_s) {
			/* Set now; listener_apply_options() sets it again. */
			l->defer_s = lc->defer_s;
			listener_set_defer(listener_fd(l), l->defer_s, l->name);
			if (!l->clone && lc->defer_s > 0)
				log_info("new connections on %s: deferred "
					 "up to %ds",
					 l->name, lc->defer_s);
			else if (!l->clone)
				log_info("new connections on %s: not deferred",
					 l->name);
		}
		if (lc == NULL) {
			if (!l->clone)
				log_info("no longer listening on %s", l->name);
			listener_free(ls, l, 1);
		} else if (!listener_same_profile(&l->profile, &lc->profile)) {
			/* New connections get the new parameters; open
			 * ones keep what they started with. The worker
			 * that accepts reads them under the lock. */
			if (l->has_lock)
				pthread_mutex_lock(&l->lock);
			l->profile = lc->profile;
			if (l->has_lock)
				pthread_mutex_unlock(&l->lock);
			if (l->clone)
				continue;
			if (l->profile.behaviour == CONN_BEHAVIOUR_FAULT)
				listener_say(l, "new connections on");
			else
				log_info("new connections on %s: no faults",
					 l->name);
		}
	}
	return 0;
undo:
	/* Close what this reload opened: everything not in the old set. */
	for (l = TAILQ_FIRST(&ls->list); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		if (!listener_in_config(srv->cfg, l->text))
			listener_free(ls, l, 1);
	}
	return -1;
}

/* The counter slots of the open listeners, each once, and whether each
 * is UDP; at most max. */
unsigned
listener_slots(struct server *srv, unsigned *slots, int *udp, unsigned max)
{
	const struct listener *l;
	unsigned n = 0, i;

	if (srv->listen == NULL)
		return 0;
	TAILQ_FOREACH (l, &srv->listen->list, entry) {
		for (i = 0; i < n && slots[i] != l->slot; i++)
			;
		if (i < n || n == max)
			continue;
		slots[n] = l->slot;
		udp[n++] = l->udp != NULL;
	}
	return n;
}

/* Re-applies inherited socket options and the backlog after a reload. */
void
listener_apply_options(struct server *srv)
{
	struct listener *l;

	TAILQ_FOREACH (l, &srv->listen->list, entry) {
		if (l->udp != NULL)
			continue; /* UDP: no TCP options, no queue */
		listener_set_options(l->fd, l->family, srv->cfg, l->defer_s,
				     l->name);
		if (l->path != NULL &&
		    chmod(l->path, (mode_t)srv->cfg->unix_mode) == -1)
			log_warn("%s: chmod", l->name);
	}
}

/* Every listening socket, for a new echod to take over: how many there
 * are, of which the first max are in fds. */
int
listener_fds(struct server *srv, int *fds, int max)
{
	struct listener *l;
	int n = 0, udp[INHERIT_MAX], k, i;

	TAILQ_FOREACH (l, &srv->listen->list, entry) {
		if (l->udp != NULL) {
			k = udp_endpoint_fds(l->udp, udp, INHERIT_MAX);
			for (i = 0; i < k; i++, n++)
				if (n < max)
					fds[n] = udp[i];
		} else if (listener_fd(l) != -1) {
			if (n < max)
				fds[n] = listener_fd(l);
			n++;
		}
	}
	return n;
}

/* Are the sockets socket activation's (no listen line's)? */
int
listener_activated(const struct server *srv)
{
	return srv->listen->activated;
}

/* A new echod serves our sockets now: closing them must not take their
 * files, nor their place in systemd's store. */
void
listener_hand_over(struct server *srv)
{
	srv->listen->handed = 1;
}

/* Stops accepting: every listening socket is closed. */
void
listener_close_all(struct server *srv)
{
	struct listener_set *ls = srv->listen;
	struct listener *l;

	if (ls == NULL)
		return;
	while ((l = TAILQ_FIRST(&ls->list)) != NULL)
		listener_free(ls, l, 0);
}

void
listener_free_all(struct server *srv)
{
	struct listener_set *ls = srv->listen;

	if (ls == NULL)
		return;
	listener_close_all(srv);
	free(ls);
	srv->listen = NULL;
}

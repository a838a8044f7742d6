/*
 * echod.h: the structures that echod's modules share and the prototypes
 * of every server/ modules, grouped by file. Each module's own state stays
 * private to its file; what is here is what crosses a file boundary.
 */
#ifndef ECHOD_H
#define ECHOD_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "addr.h"

/* Exit statuses (sysexits.h values where one fits). */
#define ECHOD_EXIT_OK 0
#define ECHOD_EXIT_FAILURE 1 /* runtime failure: bind, fork, resources */
#define ECHOD_EXIT_USAGE 64  /* EX_USAGE: bad command line */
#define ECHOD_EXIT_CONFIG 78 /* EX_CONFIG: bad configuration */

/* Defaults and limits, named once. */
#define ECHOD_DEFAULT_LISTEN "127.0.0.1:8888"
#define ECHOD_DEFAULT_UNIX_MODE 0660
#define ECHOD_DEFAULT_TLS_PROTOCOLS "TLSv1.2 TLSv1.3"
#define ECHOD_DEFAULT_UDP_RATE_LIMIT 1000
#define ECHOD_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define ECHOD_DEFAULT_PROXY_TIMEOUT_MS 5000
#define ECHOD_DEFAULT_MAX_BUFFER ((uint64_t)1024 * 1024)
#define ECHOD_MIN_MAX_BUFFER 4096
#define ECHOD_MAX_MAX_BUFFER ((uint64_t)1024 * 1024 * 1024)
#define ECHOD_MAX_THREADS 1024
#define ECHOD_MAX_LISTEN 64
#define ECHOD_MAX_OVERRIDES 256
#define ECHOD_MAX_KEYS 32
#define ECHOD_DEFAULT_MAX_CONNECTIONS 10000
#define ECHOD_MAX_CONNECTIONS 1000000
#define ECHOD_DEFAULT_BACKLOG 511
#define ECHOD_DEFAULT_SHUTDOWN_TIMEOUT_MS 10000
#define ECHOD_MAX_DURATION_MS ((uint64_t)7 * 24 * 3600 * 1000)
/* Bytes read from a socket per recv(2): the bare epoll echo's slice. */
#define ECHOD_READ_SLICE ((size_t)64 * 1024)
/* While stopping, a connection silent this long with nothing to echo is
 * closed: it has finished. */
#define ECHOD_DRAIN_QUIET_MS 100
/* ... after an upgrade, whose new process serves meanwhile: no hurry,
 * and a client pausing between messages keeps its connection. */
#define ECHOD_DRAIN_QUIET_UPGRADE_MS 1000
/* ... unless it has sent nothing yet: then it may have been accepted just
 * before the stop (an upgrade's hand-over, say) with its first bytes, or
 * its PROXY header, on their way. */
#define ECHOD_DRAIN_FRESH_MS 1000
#define ECHOD_DRAIN_CHECK_MS 50
/* A plain connection silent this long goes back to its worker's park
 * (park.c), giving up its own event and an empty bufferevent. */
#define ECHOD_PARK_AFTER_MS 2000
/* A new plain connection starts in the park once its worker holds more
 * than this many: each of the first gets its own event, which costs
 * memory but not the park's epoll_wait() per wake-up (measured: 3.5 us
 * per connection in connrate, where 32 at a time come and go). */
#define ECHOD_PARK_FIRST_ABOVE 256
/* After a burst of at least ECHOD_TRIM_MIN_PEAK connections falls to a
 * quarter, free heap pages go back to the system (see mem_trim_due()). */
#define ECHOD_TRIM_MIN_PEAK 1000
#define ECHOD_HOUSEKEEPING_MS 1000
/* Descriptors echod needs besides its connections' (standard streams,
 * listeners, event loops, signalfd, timerfds, pid file, log and notify
 * sockets), and per worker thread (its loop's epoll and libevent's
 * wake-up, its park and its own wake-up, the timerfds of its park check
 * and sweep). */
#define ECHOD_NOFILE_RESERVE 64
#define ECHOD_NOFILE_PER_WORKER 6
/* Listen lines that get counters of their own (metrics.c's slots): one
 * per distinct address over the process's life, the last shared by any
 * beyond. */
#define ECHOD_MAX_SLOTS 128
/* The admin endpoint's own limits (admin.c). */
#define ECHOD_ADMIN_MAX_CONNECTIONS 16
#define ECHOD_ADMIN_TIMEOUT_S 10
#define ECHOD_ADMIN_MAX_HEADERS 8192

/* A counter with one writer (its worker) and readers elsewhere: a
 * relaxed load and store, no read-modify-write on the echo path. */
static inline void
counter_add(_Atomic uint64_t *counter, uint64_t n)
{
	atomic_store_explicit(
		counter,
		atomic_load_explicit(counter, memory_order_relaxed) + n,
		memory_order_relaxed);
}

/* log.c */
enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};
extern _Atomic int log_level_current;
void log_init(int level);
void log_to_syslog(void);
void log_set_level(int level);
void log_set_json(int json);
/* Called with the reason before fatal()/fatalx() exit (upgrade.c's). */
void log_set_fatal_hook(void (*hook)(const char *reason));
/* A typed field of a structured line (the connection log). */
enum log_field_kind { LOG_FIELD_STR, LOG_FIELD_UINT, LOG_FIELD_MS_AS_S };
struct log_field {
	const char *key;
	enum log_field_kind kind;
	const char *str; /* LOG_FIELD_STR */
	uint64_t num;	 /* the others */
};
void log_fields(int level, const struct log_field *fields, size_t n,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int log_level_parse(const char *s, int *level);
const char *log_level_name(int level);
#define log_enabled(l)                                                         \
	(atomic_load_explicit(&log_level_current, memory_order_relaxed) >= (l))
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
_Noreturn void fatalx(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * What a listener gives each of its connections, chosen once per listen
 * line and copied into the connection at accept, so a reload changes it
 * for new connections only. Each layer is one choice made here and one
 * dispatch at conn_new() or at a phase boundary, never per byte; see
 * conn.c's note. Today every listener is plain TCP echo.
 */
enum conn_transport {
	CONN_TRANSPORT_PLAIN, /* recv(2)/send(2) on the socket: the fast path
			       */
	CONN_TRANSPORT_TLS    /* an OpenSSL bufferevent: tls.c */
};
enum conn_preamble {
	CONN_PREAMBLE_NONE, /* echo from the first byte */
	CONN_PREAMBLE_PROXY /* a PROXY header first: preamble.c */
};
enum conn_behaviour {
	CONN_BEHAVIOUR_ECHO, /* every byte back, unchanged, at once */
	CONN_BEHAVIOUR_FAULT /* echo with injected faults: fault.c */
};

/* The faults a listener injects (listen parameters, fault.c). */
#define FAULT_CHANCE_ALL 1000000 /* chance is in millionths */
struct fault_spec {
	uint64_t delay_ms;    /* echo each chunk this long after it came */
	uint64_t rate;	      /* bytes per second at most; 0: no limit */
	uint64_t close_after; /* if has_close: FIN after echoing this many */
	uint64_t reset_after; /* if has_reset: RST after echoing this many */
	uint32_t chance;      /* of FAULT_CHANCE_ALL connections */
	unsigned has_delay : 1, has_rate : 1, has_close : 1, has_reset : 1,
		stall : 1, has_chance : 1;
};

struct conn_profile {
	enum conn_transport transport;
	enum conn_preamble preamble;
	enum conn_behaviour behaviour;
	struct fault_spec fault; /* CONN_BEHAVIOUR_FAULT's parameters */
};

/* config.c */
/* How a listener takes its peers; each kind is opened by listener.c. */
enum listen_kind {
	LISTEN_TCP,  /* a TCP stream socket per resolved address */
	LISTEN_UNIX, /* a Unix stream socket at a path: "unix:/PATH" */
	LISTEN_UDP   /* UDP echo, "ADDRESS udp": udp.c, no connections */
};
/* Longest path a Unix socket may have (sun_path less its NUL). */
#define ECHOD_UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* The listen parameter deferred: its time when none is given, and most. */
#define ECHOD_DEFERRED_DEFAULT_S 1u
#define ECHOD_DEFERRED_MAX_S 3600u

/* One listen line: what listener.c opens, and what its connections get. */
struct listen_conf {
	char *text; /* as written: its identity across reloads */
	int line;   /* in the config file; 0: the command line */
	enum listen_kind kind;
	struct addr_spec addr;		    /* where, for TCP */
	char path[ECHOD_UNIX_PATH_MAX + 1]; /* where, for a Unix socket */
	int reuseport; /* TCP: a socket per worker (SO_REUSEPORT) */
	int defer_s;   /* TCP: TCP_DEFER_ACCEPT, seconds; 0: off */
	struct conn_profile profile; /* what its connections get */
};

struct config {
	struct listen_conf listen[ECHOD_MAX_LISTEN];
	int nlisten;
	unsigned threads; /* 0: one per online CPU */
	uint64_t max_buffer;
	unsigned max_connections;
	unsigned max_connections_per_ip; /* 0: no limit */
	uint64_t idle_timeout_ms;	 /* 0: never */
	int tcp_keepalive;
	unsigned backlog;
	unsigned unix_mode;	      /* permissions of Unix socket files */
	unsigned udp_rate_limit;      /* datagrams/s per source; 0: no limit */
	int log_connections;	      /* a line per closed connection */
	char *admin_listen;	      /* HOST:PORT of /metrics, or NULL */
	int log_format;		      /* 0: text, 1: json */
	char *tls_certificate;	      /* PEM chain for tls listeners */
	char *tls_certificate_key;    /* its private key, PEM */
	char *tls_client_certificate; /* CAs client certificates chain to */
	int tls_verify_client;	      /* enum tls_verify */
	char *tls_protocols;	      /* NULL: ECHOD_DEFAULT_TLS_PROTOCOLS */
	char *tls_ciphers;	      /* NULL: OpenSSL's default */
	uint64_t handshake_timeout_ms;
	uint64_t proxy_protocol_timeout_ms;
	uint64_t shutdown_timeout_ms;
	int log_level;
	int syslog;
	int daemonize;
	char *pid_file;
	char *user;
	char *file; /* the config file read, if any */
};

/* How a key's value is read. */
enum config_kind {
	CONFIG_LISTEN,
	CONFIG_UINT,
	CONFIG_SIZE,
	CONFIG_DURATION,
	CONFIG_BOOL,
	CONFIG_LEVEL,
	CONFIG_STRING,
	CONFIG_MODE,  /* file permissions, in octal */
	CONFIG_CHOICE /* one word of argname's "a|b|c", stored as its index */
};
/* SIGHUP applies a change to the running daemon; without it, a change
 * waits for a restart and the reload says so. */
#define CONFIG_RELOAD 0x1
/* A boolean that is a bare flag on the command line. */
#define CONFIG_FLAG 0x2

struct config_key {
	const char *name; /* file key; the long option is the same with '-' */
	int shortopt;	  /* 0 if none */
	enum config_kind kind;
	int flags;
	size_t offset; /* into struct config */
	uint64_t min, max;
	const char *argname; /* for --help; NULL for flags */
	const char *help;
	/* A CONFIG_STRING's own check of its value, or NULL. */
	int (*check)(const char *value, char *err, size_t errlen);
};

extern const struct config_key config_keys[];
extern const size_t config_nkeys;

void config_init(struct config *cfg);
void config_free(struct config *cfg);
void config_clear_listen(struct config *cfg);
const struct config_key *config_key_find(const char *name);
int config_set(struct config *cfg, const struct config_key *key,
	       const char *value, char *err, size_t errlen);
int config_parse_line(struct config *cfg, char *line, int lineno, int *seen,
		      char *err, size_t errlen);
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
int config_finish(struct config *cfg, char *err, size_t errlen);
int config_key_equal(const struct config_key *key, const struct config *a,
		     const struct config *b);
void config_key_swap(const struct config_key *key, struct config *a,
		     struct config *b);

/* options.c */
struct options_override {
	const struct config_key *key;
	const char *value; /* points into argv */
};

struct options {
	const char *config_file;
	int check_config;
	int verbose;
	int help;
	int version;
	struct options_override overrides[ECHOD_MAX_OVERRIDES];
	int noverrides;
};

int options_parse(int argc, char **argv, struct options *o, char *err,
		  size_t errlen);
void options_usage(FILE *fp);
int options_apply(const struct options *o, struct config *cfg, char *err,
		  size_t errlen);
int options_load_config(const struct options *o, struct config *cfg, char *err,
			size_t errlen);

/* admission.c */
struct admission;
enum admission_verdict { ADMIT_OK, ADMIT_FULL, ADMIT_FULL_PER_IP };
struct admission *admission_new(unsigned shards);
void admission_free(struct admission *adm);
void admission_configure(struct admission *adm, const struct config *cfg);
enum admission_verdict admission_admit(struct admission *adm, unsigned shard,
				       const struct sockaddr *peer,
				       uint64_t *current);
void admission_release(struct admission *adm, int fd,
		       const struct sockaddr *peer, unsigned shard);
int admission_count_peer(struct admission *adm, unsigned shard,
			 const struct sockaddr *peer);
unsigned admission_peer_count(struct admission *adm,
			      const struct sockaddr *peer);
void admission_limits(const struct admission *adm, unsigned *total,
		      unsigned *per_ip);
uint64_t admission_current(const struct admission *adm);
void admission_counts(const struct admission *adm, uint64_t *current,
		      uint64_t *total, uint64_t *refused);

/* An admitted socket on its way from the listener to a worker. */
struct accepted {
	int fd;
	unsigned slot;	     /* its listener's counters: metrics.c */
	int peer_counted;    /* peer holds a per-IP slot (not so before a
				PROXY header names the real client) */
	unsigned peer_shard; /* ... in this shard (admission.c's) */
	socklen_t peerlen;
	struct sockaddr_storage peer;
	struct conn_profile profile;
};

/* The address an admitted socket is counted under, for
 * admission_release(): NULL if none yet. */
static inline const struct sockaddr *
accepted_counted_peer(const struct accepted *a)
{
	return a->peer_counted ? (const struct sockaddr *)&a->peer : NULL;
}

/* listener.c */
struct server;
int listener_init(struct server *srv, char *err, size_t errlen);
int listener_open_all(struct server *srv, char *err, size_t errlen);
int listener_reconcile(struct server *srv, const struct config *ncfg, char *err,
		       size_t errlen);
void listener_apply_options(struct server *srv);
int listener_attach_workers(struct server *srv, char *err, size_t errlen);
void listener_close_all(struct server *srv);
int listener_fds(struct server *srv, int *fds, int max);
int listener_activated(const struct server *srv);
void listener_hand_over(struct server *srv);
void listener_free_all(struct server *srv);
void listener_announce(struct server *srv);
int listener_check(const struct config *cfg, int *conflict, char *err,
		   size_t errlen);
unsigned listener_slots(struct server *srv, unsigned *slots, int *udp,
			unsigned max);
/* The policies it applies, pure. */
int listener_accept_error_pauses(int err);
struct listener;
void listener_ready(struct listener *l); /* on its worker, from loop.c */

/* worker.c */
struct worker;
int worker_start_all(struct server *srv, char *err, size_t errlen);
void worker_stop_all(struct server *srv);
void worker_assign(struct server *srv, const struct accepted *a);
void worker_poke_all(struct server *srv);
unsigned worker_threads(const struct config *cfg);
unsigned worker_count(const struct server *srv);
struct worker *worker_get(struct server *srv, unsigned i);
uint64_t worker_sweep_period(uint64_t idle_ms, int draining);
void worker_woken(struct worker *w);
void worker_sync(struct worker *w);

/* tick.c: periodic work on a loop, on a timerfd (no libevent timer). */
struct tick;
struct tick *tick_new(struct event_base *base, void (*cb)(void *), void *arg);
int tick_start(struct tick *t, uint64_t period_ms);
int tick_stop(struct tick *t);
uint64_t tick_period(const struct tick *t); /* 0: stopped */
void tick_free(struct tick *t);

/* park.c: each worker's park, where quiet connections wait. */
int park_init(struct worker *w);
void park_free(struct worker *w);

/* loop.c: how a worker waits, itself or in libevent. */
struct event_base *loop_base_new(void);
int loop_init(struct worker *w);
void loop_run(struct worker *w);
void loop_wake(struct worker *w);
void loop_free(struct worker *w);
/* The worker's choice to yield its CPU before it sleeps (loop.c): */
struct loop_spin {
	unsigned score; /* yields that paid lately, less those that did not */
	unsigned waits; /* sleeps since the last yield, while score is 0 */
};
int loop_spin_wanted(struct loop_spin *s);
void loop_spin_result(struct loop_spin *s, int found);
struct listener;
int loop_add_listener(struct worker *w, int fd, struct listener *l);
void loop_remove(struct worker *w, int fd);
/* A libevent timer stays pending on the loop of holds (its base): */
void loop_hold(_Atomic unsigned *holds);
void loop_release(_Atomic unsigned *holds, struct event_base *base);

/* timer.c: one-off deadlines, each holding its loop while pending. */
struct timer {
	struct event ev;
	struct event_base *base;
	_Atomic unsigned *holds;
	void (*cb)(void *);
	void *arg;
	_Atomic int armed;
};
void timer_init(struct timer *t, struct event_base *base,
		_Atomic unsigned *holds, void (*cb)(void *), void *arg);
int timer_add(struct timer *t, const struct timeval *tv);
int timer_add_ms(struct timer *t, uint64_t ms);
void timer_fire(struct timer *t);
void timer_del(struct timer *t);
int timer_pending(struct timer *t);

/* conn.c */
struct conn;
/* Why a connection ended: the connection log's reason. */
enum conn_end {
	CONN_END_EOF,	    /* the peer closed, and all was echoed */
	CONN_END_IDLE,	    /* idle_timeout */
	CONN_END_ERROR,	    /* a reset, or an error reading or writing */
	CONN_END_SHUTDOWN,  /* the drain, or the end of shutdown_timeout */
	CONN_END_FAULT,	    /* close_after, reset_after */
	CONN_END_HANDSHAKE, /* a TLS handshake failed or timed out */
	CONN_END_PROXY,	    /* no good PROXY header, or none in time */
	CONN_END_REFUSED,   /* its real client is at max_connections_per_ip */
	CONN_NEND
};
const char *conn_end_name(enum conn_end why);
struct conn *conn_new(struct worker *w, const struct accepted *a);
void conn_drop(struct worker *w, const struct accepted *a);
void conn_free_spares(struct worker *w);
void conn_free(struct conn *c, enum conn_end why);
int conn_sweep(struct conn *c, uint64_t now_ms, uint64_t idle_ms,
	       uint64_t drain_quiet_ms);
uint64_t conn_clock_ms(void);
struct conn *conn_next(struct conn *c);
/* The policies it applies, pure. */
int conn_must_hold_back(uint64_t queued, uint64_t max_buffer);
uint64_t conn_resume_mark(uint64_t max_buffer);
size_t conn_read_budget(uint64_t queued, uint64_t max_buffer);
int conn_drain_done(uint64_t silent_ms, uint64_t quiet_ms, int queued,
		    int unread, int fresh);
int conn_drain_header_done(uint64_t silent_ms);

/* fault.c: the listen parameters, pure; the connection side is in
 * conn_int.h. */
int fault_parse_param(struct fault_spec *f, const char *word, char *err,
		      size_t errlen);
int fault_check(const struct fault_spec *f, char *err, size_t errlen);
int fault_active(const struct fault_spec *f);
char *fault_format(const struct fault_spec *f, char *buf, size_t len);
int fault_roll(uint64_t *state, uint32_t chance);
uint64_t fault_rate_burst(uint64_t rate);

/* tls_module.c: the tls_* settings, and the TLS module (tls.c). */
enum tls_verify { TLS_VERIFY_NO, TLS_VERIFY_OPTIONAL, TLS_VERIFY_YES };
/* OpenSSL's numbers for the versions tls_protocols may name. */
#define ECHOD_TLS1_2_VERSION 0x0303
#define ECHOD_TLS1_3_VERSION 0x0304
struct conn;
/* What echod-tls.so gives echod: tls.c's echod_tls_module. */
struct tls_module {
	const char *version; /* ECHOD_VERSION of the build it is of */
	size_t conn_size;    /* its sizeof(struct conn) */
	int (*check)(const struct config *cfg, char *err, size_t errlen);
	int (*prepare)(const struct config *cfg, char *err, size_t errlen);
	void (*commit)(void);
	void (*abort)(void);
	void (*shutdown)(void);
	int (*conn_start)(struct conn *c);
	void (*conn_free)(struct conn *c);
};
extern const struct tls_module echod_tls_module; /* tls.c's */
void tls_module_use(const struct tls_module *m);
int tls_protocols_parse(const char *s, int *min, int *max, char *err,
			size_t errlen);
int tls_protocols_check(const char *value, char *err, size_t errlen);
int tls_wanted(const struct config *cfg);
int tls_path_check(const char *value, char *err, size_t errlen);
int tls_check(const struct config *cfg, char *err, size_t errlen);
int tls_prepare(const struct config *cfg, char *err, size_t errlen);
void tls_commit(void);
void tls_abort(void);
void tls_shutdown(void);

/* udp.c */
struct udp_endpoint;
struct udp_rate_slot;
struct udp_endpoint *udp_endpoint_open(struct server *srv,
				       const struct sockaddr *sa,
				       socklen_t salen, int v6only,
				       unsigned slot, char *err, size_t errlen);
int udp_endpoint_attach(struct udp_endpoint *e, char *err, size_t errlen);
void udp_endpoint_close(struct udp_endpoint *e);
const char *udp_endpoint_name(const struct udp_endpoint *e);
int udp_endpoint_fds(const struct udp_endpoint *e, int *fds, int max);
void udp_worker_free(struct worker *w);
/* The policies it applies, pure. */
int udp_port_refused(uint16_t port);
int udp_rate_allow(struct udp_rate_slot *slots, size_t nslots,
		   const unsigned char key[17], uint64_t now, uint32_t limit);
size_t udp_rate_slot_size(void);

/* siphash.c */
uint64_t siphash24(const void *in, size_t len, const unsigned char key[16]);

/* iptable.c */
int iptable_key(const struct sockaddr *sa, unsigned char key[17]);
uint32_t iptable_key_hash(const unsigned char key[17]);
struct iptable;
struct iptable *iptable_new(unsigned nshards);
void iptable_free(struct iptable *t);
int iptable_acquire(struct iptable *t, unsigned shard,
		    const struct sockaddr *sa, unsigned limit);
void iptable_release(struct iptable *t, unsigned shard,
		     const struct sockaddr *sa);
unsigned iptable_count(struct iptable *t, const struct sockaddr *sa);

/* mem.c */
/* When to trim: fed the connection count, pure, unit-tested. */
struct mem_trim_policy {
	uint64_t peak; /* most connections since the last trim */
	int pending;   /* a trim left connections open: trim again */
};
void mem_init(void);
void mem_trim(void);
void mem_trim_note(struct mem_trim_policy *, uint64_t current);
int mem_trim_due(struct mem_trim_policy *, uint64_t current);

/*
 * The counters. Each worker keeps its own and is their only writer
 * (counter_add(): a relaxed load and store); metrics.c sums them when
 * asked, on the main loop. Per worker: wc[] below; per worker and
 * listener: lc[slot][] below, the slot being metrics.c's for the listen
 * line. Totals over listeners are sums of the slots, so the echo path
 * counts each byte once.
 */
#define METRICS_DURATION_BUCKETS 14 /* metrics_duration_le_ms[], +Inf */
enum worker_counter {
	WC_CLOSED,			   /* + enum conn_end: closed, by why */
	WC_PAUSES = WC_CLOSED + CONN_NEND, /* backpressure: reading paused */
	WC_PARKED,			   /* connections into the park */
	WC_UNPARKED,			   /* ... and out of it */
	WC_TLS_HANDSHAKES,		   /* done */
	WC_TLS_FAILURES,		   /* failed or timed out */
	WC_TLS_TIMEOUTS,		   /* of those, timed out */
	WC_REFUSED_PER_IP, /* at accept or after a PROXY header */
	WC_REFUSED_FULL,   /* at accept: max_connections */
	WC_DURATION_MS,	   /* closed connections' lives, summed */
	WC_DURATION,	   /* + bucket: closed, by duration */
	WC_N = WC_DURATION + METRICS_DURATION_BUCKETS
};
enum listener_counter {
	LC_BYTES_IN,
	LC_BYTES_OUT,
	LC_CLOSED,	     /* connections */
	LC_REFUSED,	     /* ... refused */
	LC_ACCEPTED,	     /* ... accepted */
	LC_DGRAMS_IN,	     /* UDP datagrams received */
	LC_DGRAMS_OUT,	     /* ... echoed */
	LC_DGRAMS_REFLECTOR, /* ... not answered: source port refused */
	LC_DGRAMS_LIMITED,   /* ... udp_rate_limit */
	LC_DGRAMS_FULL,	     /* ... no room to send */
	LC_N
};
/* Why a connection was refused at accept. */
enum refuse_reason { REFUSE_MAX_CONNECTIONS, REFUSE_MAX_PER_IP, REFUSE_N };

/* metrics.c: the counters' names and sums, Prometheus's text format. */
struct metrics;
struct evbuffer;
/* Everything one scrape reports, summed; pure input of metrics_render(). */
struct metrics_view {
	double start_time; /* Unix time echod started */
	uint64_t active;   /* connections open */
	uint64_t accepted; /* since start */
	uint64_t refused[REFUSE_N];
	uint64_t reloads[2];	 /* failed, succeeded */
	int draining;		 /* 1 once SIGTERM began the drain */
	uint64_t wc[WC_N];	 /* summed over workers */
	uint64_t lc_total[LC_N]; /* summed over workers and listeners */
	unsigned nlisteners;	 /* listeners open: the entries below */
	struct metrics_listener {
		const char *name; /* its listen line's address */
		int udp;	  /* datagrams, not connections */
		uint64_t accepted, refused, lc[LC_N];
	} listener[ECHOD_MAX_LISTEN];
	/* The process: -1 where /proc could not say. */
	double cpu_seconds, process_start_time;
	int64_t open_fds, max_fds, resident_bytes, virtual_bytes;
};
extern const uint64_t metrics_duration_le_ms[METRICS_DURATION_BUCKETS - 1];
unsigned metrics_duration_bucket(uint64_t ms);
char *metrics_escape(const char *s, char *buf, size_t len);
int metrics_render(const struct metrics_view *v, struct evbuffer *out);
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
unsigned metrics_slot(struct metrics *m, const char *name);
const char *metrics_slot_name(const struct metrics *m, unsigned slot);
void metrics_reloaded(struct metrics *m, int ok);
/* Sums every worker's counters into wc[] and lc[][] (zeroed first). */
void metrics_sum(struct server *srv, uint64_t wc[WC_N], uint64_t (*lc)[LC_N]);
void metrics_collect(struct server *srv, struct metrics_view *v);

/* admin.c: admin_listen, the HTTP endpoint of /metrics and /healthz. */
int admin_check(const char *value, char *err, size_t errlen);
int admin_open(struct server *srv, const struct config *cfg, char *err,
	       size_t errlen);
int admin_prepare(struct server *srv, const struct config *ncfg, char *err,
		  size_t errlen);
void admin_commit(struct server *srv);
void admin_abort(struct server *srv);
void admin_close(struct server *srv);
int admin_fd(const struct server *srv);

/* stats.c */
struct stats {
	uint64_t conns_current, conns_total, conns_refused;
	uint64_t bytes_in, bytes_out;
	int tls; /* a tls listener is configured: the rest means something */
	uint64_t tls_handshakes, tls_failures, tls_timeouts;
	int has_udp;	 /* a udp listener is configured */
	uint64_t udp[5]; /* in, out, refused ports, rate limited, send full */
};
void stats_snapshot(struct server *srv, struct stats *st);
char *stats_format(const struct stats *st, char *buf, size_t len);

/* daemon.c */
void daemon_detach(void);
void daemon_ready(void);
int daemon_pidfile_open(const char *path, int inherited, char *err,
			size_t errlen);
void daemon_pidfile_release(void);
void daemon_pidfile_hand_over(void);
int daemon_pidfile_fd(void);
int daemon_pidfile_restore(char *err, size_t errlen);
int daemon_pidfile_write(char *err, size_t errlen);
void daemon_pidfile_remove(void);
int daemon_user_check(const char *user, char *err, size_t errlen);
int daemon_drop_privileges(const char *user, char *err, size_t errlen);
int daemon_chown_to_user(const char *path, const char *user, char *err,
			 size_t errlen);
uint64_t daemon_nofile_target(uint64_t wanted, uint64_t soft, uint64_t hard);
int daemon_nofile_fit(uint64_t wanted, char *err, size_t errlen);

/* systemd.c */
int systemd_notify_init(char *err, size_t errlen);
int systemd_notify_enabled(void);
void systemd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void systemd_notify_close(void);
uint64_t systemd_watchdog_usec(void);
void systemd_notify_fds(const int *fds, int nfds, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* inherit.c: sockets handed over at start (systemd's, or the echod this
 * one replaces), and keeping ours in systemd's fd store. */
#define INHERIT_MAX 256
#define INHERIT_NAME_MAX 255 /* systemd's limit on a descriptor's name */
#define INHERIT_NAME_UPGRADE "echod-upgrade"
#define INHERIT_NAME_PIDFILE "echod-pidfile"
int inherit_init(char *err, size_t errlen);
int inherit_activated(int *fds, int max);
int inherit_take(int type, const struct sockaddr *sa, socklen_t len, int v6only,
		 int reuseport);
int inherit_take_unix(const char *path);
int inherit_bind(int fd, int type, const struct sockaddr *sa, socklen_t len);
int inherit_upgrade_fd(void);
int inherit_pidfile_take(void);
void inherit_close_rest(void);
int inherit_storing(void);
void inherit_store(int fd);
void inherit_unstore(int fd);
int inherit_name_fd(int fd, char *buf, size_t buflen);
int inherit_fdname(int type, const struct sockaddr *sa, socklen_t len,
		   char *buf, size_t buflen);
int inherit_same_addr(const struct sockaddr *a, socklen_t alen,
		      const struct sockaddr *b, socklen_t blen);

/* upgrade.c: SIGUSR2, the binary upgraded in place. */
int upgrade_init(char **argv, char *err, size_t errlen);
void upgrade_begin(struct server *srv);
void upgrade_free(struct server *srv);
void upgrade_abort(struct server *srv, const char *why);
int upgrade_child(void);
void upgrade_child_ready(void);
void upgrade_child_failed(const char *reason);
/* Closing a socket no forked child may share (park.c's, without its
 * EPOLL_CTL_DEL); the fork's side, public for the unit tests. */
int upgrade_close_private(int fd);
void upgrade_share_begin(void);
void upgrade_share_end(void);
void server_hand_over(struct server *srv);

/* server.c */
int server_init(struct server *srv, const struct options *opts,
		struct config *cfg, char *err, size_t errlen);
int server_start(struct server *srv, char *err, size_t errlen);
void server_run(struct server *srv);
void server_free(struct server *srv);

/* The server: what main.c wires together, owned by the main thread. */
struct server {
	const struct options *opts;
	struct config *cfg; /* main thread only; workers read the atomics */
	struct event_base *base;     /* main loop: listeners, signals, timers */
	struct listener_set *listen; /* listener.c's */
	struct worker_pool *pool;    /* worker.c's */
	struct admission *adm;	     /* admission.c's */
	struct metrics *metrics;     /* metrics.c's: slots, main counters */
	struct admin *admin;	     /* admin.c's, or NULL */
	struct upgrade *upgrade;     /* upgrade.c's: SIGUSR2 under way */
	int signal_fd;		     /* signalfd of the signals we take */
	struct event *signal_ev;
	_Atomic unsigned holds;	     /* the main loop's: see loop.c */
	struct timer drain_timer;    /* while stopping: are we done? */
	struct timer shutdown_timer; /* shutdown_timeout */
	struct tick *watchdog_timer; /* systemd WATCHDOG=1 and STATUS= */
	struct tick *housekeeping;   /* trims memory after a burst */
	struct mem_trim_policy trim; /* main loop's; fed on accept */
	uint64_t watchdog_usec;
	int stopping;

	/* Settings every worker reads; SIGHUP may change them. */
	_Atomic uint64_t max_buffer;
	_Atomic uint64_t idle_timeout_ms;
	_Atomic uint64_t handshake_timeout_ms;
	_Atomic uint64_t proxy_protocol_timeout_ms;
	_Atomic uint64_t udp_rate_limit;
	_Atomic int log_connections;
	_Atomic int draining;
	/* While draining: ECHOD_DRAIN_QUIET_MS, or ..._UPGRADE_MS. */
	_Atomic uint64_t drain_quiet_ms;
};

/* A worker: one event loop, its connections, its thread. */
/*
 * A worker, laid out by who writes what, each part on cache lines of its
 * own (the pool is an array of workers): what the worker alone touches
 * as it serves; the hand-off queue, which the main thread writes as it
 * accepts; the counters. Otherwise the main thread's every hand-off
 * would take from the worker the line that holds its read buffer and
 * connection list.
 */
#define ECHOD_CACHE_LINE 64
struct worker {
	_Alignas(ECHOD_CACHE_LINE) unsigned id;
	struct server *srv;
	struct event_base *base;
	pthread_t thread;
	int has_thread;	    /* worker 0 runs on the main thread */
	struct tick *sweep; /* idle and drain checks */
	int park_fd;	    /* park.c's epoll set: the worker waits on it */
	struct tick *park_check;
	/* loop.c's: who waits, and for what. */
	struct event *park_ev;	 /* the park in libevent's set, nested */
	int nested;		 /* libevent waits (park_ev added) */
	int lib_fd;		 /* libevent's epoll set, or -1 */
	int wake_fd;		 /* an eventfd: other threads' pokes */
	int stopping;		 /* a poke said stop */
	_Atomic unsigned *holds; /* worker 0: the server's */
	_Atomic unsigned own_holds;
	struct loop_spin spin;
	TAILQ_HEAD(, conn) conns;
	unsigned nconns;	  /* in conns */
	struct conn *spare_conns; /* freed ones kept for reuse (conn.c) */
	unsigned nspare_conns;	  /* in spare_conns */
	unsigned char *rbuf;	  /* ECHOD_READ_SLICE bytes of read space */
	struct udp_batch *udp;	  /* udp.c's buffers, made on use */
	/* The hand-off, guarded by lock. */
	_Alignas(ECHOD_CACHE_LINE) pthread_mutex_t lock;
	struct accepted *queue;
	size_t queue_len, queue_cap;
	_Atomic unsigned pokes; /* WORKER_POKE_*: what the wake-up is for */
	pthread_cond_t synced;	/* worker_sync(): sync_seen caught up */
	unsigned sync_asked, sync_seen;
	int ended; /* its thread's loop has returned */
	/* Its counters, this worker their only writer (see above). */
	_Alignas(ECHOD_CACHE_LINE) _Atomic uint64_t wc[WC_N];
	_Atomic uint64_t lc[ECHOD_MAX_SLOTS][LC_N];
};

#endif

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
#include <sys/queue.h>
#include <sys/socket.h>
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
#define ECHOD_DEFAULT_MAX_BUFFER (1024 * 1024)
#define ECHOD_MIN_MAX_BUFFER 4096
#define ECHOD_MAX_MAX_BUFFER ((uint64_t)1024 * 1024 * 1024)
#define ECHOD_MAX_THREADS 1024
#define ECHOD_MAX_LISTEN 64
/* Bytes read from a socket per read(2): the bare epoll echo's slice. */
#define ECHOD_READ_SLICE (64 * 1024)

/* log.c */
enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};
extern _Atomic int log_level_current;
void log_init(int level);
void log_set_level(int level);
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

/* config.c */
struct config {
	char *listen[ECHOD_MAX_LISTEN]; /* as written: "HOST:PORT" */
	struct addr_spec listen_spec[ECHOD_MAX_LISTEN];
	int nlisten;
	unsigned threads; /* 0: one per online CPU */
	uint64_t max_buffer;
	int log_level;
};

/* How a key may be set. */
enum config_kind { CONFIG_LISTEN, CONFIG_UINT, CONFIG_SIZE, CONFIG_LEVEL };

struct config_key {
	const char *name; /* file key; the long option is the same with '-' */
	int shortopt;	  /* 0 if none */
	enum config_kind kind;
	size_t offset; /* into struct config */
	uint64_t min, max;
	const char *argname; /* for --help */
	const char *help;
};

extern const struct config_key config_keys[];
extern const size_t config_nkeys;

void config_init(struct config *cfg);
void config_free(struct config *cfg);
const struct config_key *config_key_find(const char *name);
int config_set(struct config *cfg, const struct config_key *key,
	       const char *value, char *err, size_t errlen);
void config_finish(struct config *cfg);

/* listener.c */
struct server;
int listener_open_all(struct server *srv, char *err, size_t errlen);
void listener_close_all(struct server *srv);
void listener_disable_all(struct server *srv);

/* worker.c */
struct worker;
int worker_start_all(struct server *srv, char *err, size_t errlen);
void worker_stop_all(struct server *srv);
void worker_assign(struct server *srv, int fd, const struct sockaddr *sa,
		   socklen_t salen);

/* conn.c */
struct conn;
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *sa,
		      socklen_t salen);
void conn_free(struct conn *c);

/* The server: what main.c wires together. */
struct server {
	struct config *cfg;
	struct event_base
		*base;		/* the main thread's loop: listeners, signals */
	struct worker *workers; /* workers[0] runs on the main thread */
	unsigned nworkers;
	unsigned next_worker; /* round robin; main thread only */
	TAILQ_HEAD(, listener) listeners;
	struct event *accept_resume; /* ends an accept back-off */
	time_t accept_warned;	     /* last back-off warning, for rate limit */
	int stopping;
	_Atomic uint64_t max_buffer; /* config's, readable by every worker */
	_Atomic uint64_t conns_current;
	_Atomic uint64_t conns_total;
};

/* A worker: one event loop, its connections, its thread. */
struct worker {
	unsigned id;
	struct server *srv;
	struct event_base *base;
	pthread_t thread;
	int has_thread; /* workers[0] runs on the main thread */
	struct event *notify;
	pthread_mutex_t lock; /* guards the hand-off queue below */
	struct handoff *queue;
	size_t queue_len, queue_cap;
	TAILQ_HEAD(, conn) conns;
	unsigned char *rbuf; /* ECHOD_READ_SLICE bytes of read space */
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
};

#endif

/*
 * load_int.h: what load.c, load_thread.c, load_conn.c and load_mode.c
 * share and no other file sees: the run, thread and connection structs,
 * the clock helpers, inline for the message path, and the prototypes of
 * each file. The public side of the load mode is load.h.
 */
#ifndef CLIENT_LOAD_INT_H
#define CLIENT_LOAD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "addr.h"
#include "load.h"
#include "options.h"
#include "payload.h"

#define LOAD_BUF_SIZE ((size_t)256 * 1024) /* per thread, read and write */

#define NS_PER_MS ((uint64_t)1000000)
#define NS_PER_S ((uint64_t)1000000000)

enum load_phase {
	LOAD_CONNECTING, /* opening the connections (not connrate) */
	LOAD_WARMUP,	 /* traffic, not counted */
	LOAD_MEASURING,	 /* the window */
	LOAD_DRAINING,	 /* nothing new starts; in flight may finish */
	LOAD_HOLDING,	 /* hold: idle */
	LOAD_ECHOING,	 /* hold: one echo on every connection */
	LOAD_DONE,
};

enum load_conn_state {
	LOAD_CONN_CLOSED,
	LOAD_CONN_CONNECTING,
	LOAD_CONN_HANDSHAKE, /* --tls: connected, handshaking */
	LOAD_CONN_OPEN,
};

/* What a connection's timer is armed for. */
enum load_timer {
	LOAD_TIMER_CONNECT, /* retry a refused or failed connect */
	LOAD_TIMER_CYCLE,   /* connrate: start the next cycle */
	LOAD_TIMER_SEND,    /* pingpong --rate: the next intended send */
};

struct load;
struct load_thread;

/* A connection (connrate: a worker, one connection after another). */
struct load_conn {
	struct load_thread *t;
	uint64_t id; /* 0 .. connections-1, over all threads */
	int fd;
	SSL *ssl; /* --tls: the connection's TLS, or NULL */
	enum load_conn_state state;
	int active;	  /* still part of the run, counted in t->open */
	int settled;	  /* its connect phase is over */
	int write_on;	  /* wev is armed */
	int progressed;	  /* bytes moved since the last tick */
	unsigned stalled; /* ticks waiting without progress */
	struct event *rev, *wev, *timer;
	enum load_timer timer_for;
	struct payload out;	/* next byte to send */
	struct payload in;	/* next byte expected back */
	uint64_t goal;		/* send up to this stream position */
	uint64_t t_send;	/* ns: the message (cycle) started */
	uint64_t t_next;	/* ns: --rate's next intended send */
	uint64_t connect_start; /* ns: first attempt of this connect */
	unsigned attempts;	/* connect attempts so far */
	uint64_t cycle;		/* connrate: cycles started */
	uint64_t late_pos;	/* -u: the last datagram given up as lost */
	size_t late_len;	/* ... its size, 0 once its echo came late */
};

struct load_thread {
	struct load *l;
	unsigned id;
	pthread_t tid;
	struct event_base *base;
	struct event *tick, *phase_timer;
	struct load_conn *conns;
	size_t nconns;
	unsigned char *buf; /* LOAD_BUF_SIZE */
	enum load_phase phase;
	uint64_t phase_due; /* ns: when phase_timer is due */
	int stopped;	    /* the loop was asked to stop */

	size_t next_connect, connecting, settled; /* LOAD_CONNECTING */
	size_t connect_burst;
	size_t open;	   /* active connections */
	unsigned src_next; /* connrate: next source address */

	struct load_stats stats; /* reset when the window opens */
	uint64_t errors[LOAD_NERRORS];
	uint64_t established, echoed;
	uint64_t work; /* messages, bytes, connects or echoes, all time */

	/* Published for the main thread's progress line. */
	atomic_uint_fast64_t pub_work, pub_errors, pub_established;
};

struct load {
	const struct client_options *o;
	struct addr target;
	int spread_sources;   /* connrate to 127.x: bind 127.0.0.2-254 */
	SSL_CTX *tls;	      /* --tls: every connection's context */
	uint64_t interval_ns; /* --rate: between one connection's sends */
	struct load_thread *threads;
	unsigned nthreads;

	/* The gate the threads wait at after connecting. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int go, abort;
	uint64_t start_ns, warm_ns, end_ns; /* set before go */

	atomic_uint ready, finished;
	atomic_uint reported; /* error messages printed */
};

static inline uint64_t
load_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline struct timeval
load_tv(uint64_t ns)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ns / NS_PER_S);
	tv.tv_usec = (suseconds_t)(ns % NS_PER_S / 1000);
	return tv;
}

/* Arms ev to fire at the monotonic time at_ns (at once if past). */
static inline void
load_timer_at(struct event *ev, uint64_t at_ns)
{
	uint64_t now = load_now();
	struct timeval tv = load_tv(at_ns > now ? at_ns - now : 0);

	evtimer_add(ev, &tv);
}

/* load.c */
int load_gate_wait(struct load *l);

/* load_thread.c */
int load_thread_init(struct load *l, struct load_thread *t, unsigned id);
void load_thread_free(struct load_thread *t);
void *load_thread_main(void *arg);
void load_thread_stop(struct load_thread *t);
void load_thread_settle(struct load_thread *t, struct load_conn *c);

/* load_conn.c */
int load_conn_init(struct load_conn *c, struct load_thread *t, uint64_t id);
void load_conn_free(struct load_conn *c);
void load_conn_connect(struct load_conn *c);
void load_conn_connect_failed(struct load_conn *c, int e);
int load_conn_send(struct load_conn *c, uint64_t n);
int load_conn_flush(struct load_conn *c);
void load_conn_want_write(struct load_conn *c, int on);
int load_conn_waiting(const struct load_conn *c);
void load_conn_close(struct load_conn *c);
void load_conn_retire(struct load_conn *c);
void load_conn_after(struct load_conn *c, int failed);
void load_conn_error(struct load_conn *c, enum load_error kind, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));
void load_conn_fail(struct load_conn *c, enum load_error kind, const char *fmt,
		    ...) __attribute__((format(printf, 3, 4)));

/* load_mode.c */
void load_mode_start(struct load_conn *c, uint64_t now);
int load_mode_echoed(struct load_conn *c, size_t n);
int load_mode_pace(struct load_conn *c, uint64_t now);
void load_mode_cycle(struct load_conn *c);
void load_mode_lost(struct load_conn *c);

#endif

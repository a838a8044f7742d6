/*
 * worker.c: echod's worker threads. Each worker owns one event_base and
 * every connection on it; workers[0] runs on the main thread's loop, the
 * others on threads of their own. The main thread accepts (listener.c) and
 * hands each socket to a worker round robin: directly when the worker is
 * the main thread's own, else through a mutex-guarded queue and a poke
 * that wakes the worker's loop (loop_wake()). One acceptor keeps working
 * unchanged when listening sockets come from outside (systemd socket
 * activation), balances connections evenly (SO_REUSEPORT hashes them), and
 * with --threads 1 leaves a single thread with no hand-off at all.
 * A worker's thread is named for it: echod-worker1, echod-worker2, ...
 * The pool of workers and the round robin are this file's alone; a
 * socket that cannot be handed off is released through admission.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "echod.h"

/* The workers: main thread only, but for what each worker owns. */
struct worker_pool {
	struct worker *w; /* w[0] runs on the main thread */
	unsigned n;
	unsigned next; /* round robin */
};

#define WORKER_QUEUE_INITIAL 64
/* What a worker is woken for: bits of its pokes. */
#define WORKER_POKE_QUEUE 1u   /* sockets were queued for it */
#define WORKER_POKE_CONTROL 2u /* settings changed, or draining began */
#define WORKER_POKE_STOP 4u    /* the server stops */
#define WORKER_POKE_SYNC 8u    /* say when the batch under way is over */
/* Idle checks run a few times per idle_timeout, within these bounds. */
#define WORKER_SWEEP_MIN_MS 10
#define WORKER_SWEEP_MAX_MS 1000

/* How often the sweep must run: every ECHOD_DRAIN_CHECK_MS while
 * draining, else a few times per idle timeout; 0 if it need not run. */
uint64_t
worker_sweep_period(uint64_t idle_ms, int draining)
{
	uint64_t ms;

	if (draining)
		return ECHOD_DRAIN_CHECK_MS;
	if (idle_ms == 0)
		return 0;
	ms = idle_ms / 4;
	if (ms < WORKER_SWEEP_MIN_MS)
		ms = WORKER_SWEEP_MIN_MS;
	if (ms > WORKER_SWEEP_MAX_MS)
		ms = WORKER_SWEEP_MAX_MS;
	return ms;
}

/*
 * Closes the connections that are idle (idle_timeout) or, while
 * stopping, finished; then keeps the sweep's tick at the period it now
 * needs, or stops it. Runs from that tick, and when the main thread pokes
 * the worker because settings changed or draining began.
 */
static void
worker_sweep(void *arg)
{
	struct worker *w = arg;
	uint64_t now = conn_clock_ms();
	uint64_t idle = atomic_load(&w->srv->idle_timeout_ms);
	int draining = atomic_load(&w->srv->draining);
	uint64_t period = worker_sweep_period(idle, draining);
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = conn_next(c);
		conn_sweep(c, now, idle,
			   draining ? atomic_load(&w->srv->drain_quiet_ms) : 0);
	}
	if (tick_start(w->sweep, period) == -1)
		log_warn("worker %u: cannot schedule the idle sweep", w->id);
}

/* Any thread: wakes w for what, once for any number of pokes before
 * it looks (worker_woken() takes them all). */
static void
worker_poke(struct worker *w, unsigned what)
{
	if (atomic_fetch_or(&w->pokes, what) == 0)
		loop_wake(w);
}

/* Runs on the worker's thread: takes the queued sockets. */
static void
worker_take_queue(struct worker *w)
{
	struct accepted *q;
	size_t i, n;

	pthread_mutex_lock(&w->lock);
	q = w->queue;
	n = w->queue_len;
	w->queue = NULL;
	w->queue_len = 0;
	w->queue_cap = 0;
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < n; i++)
		conn_new(w, &q[i]);
	free(q);
}

/* On w's thread, from its loop (loop.c): it was poked. */
void
worker_woken(struct worker *w)
{
	unsigned what = atomic_exchange(&w->pokes, 0);

	if (what & WORKER_POKE_STOP) {
		w->stopping = 1;
		event_base_loopbreak(w->base);
		return;
	}
	if (what & WORKER_POKE_SYNC) {
		pthread_mutex_lock(&w->lock);
		w->sync_seen = w->sync_asked;
		pthread_cond_broadcast(&w->synced);
		pthread_mutex_unlock(&w->lock);
	}
	if (what & WORKER_POKE_QUEUE)
		worker_take_queue(w);
	if (what & WORKER_POKE_CONTROL)
		worker_sweep(w);
}

/*
 * Main thread: returns once w's thread has finished the batch of ready
 * descriptors it is in, if any (a poke is looked at after the rest of its
 * batch). What was taken out of w's set before is then in no batch.
 */
void
worker_sync(struct worker *w)
{
	unsigned want;

	if (!w->has_thread)
		return; /* worker 0: this thread */
	pthread_mutex_lock(&w->lock);
	want = ++w->sync_asked;
	pthread_mutex_unlock(&w->lock);
	worker_poke(w, WORKER_POKE_SYNC);
	pthread_mutex_lock(&w->lock);
	while (!w->ended && (int)(w->sync_seen - want) < 0)
		pthread_cond_wait(&w->synced, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	loop_run(w);
	if (!w->stopping)
		log_warnx("worker %u: its loop failed: its connections are no "
			  "longer served",
			  w->id);
	/* No batch of its is under way any more: nobody waits on it. */
	pthread_mutex_lock(&w->lock);
	w->ended = 1;
	pthread_cond_broadcast(&w->synced);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int
worker_init(struct server *srv, struct worker *w, unsigned id, char *err,
	    size_t errlen)
{
	w->id = id;
	w->srv = srv;
	TAILQ_INIT(&w->conns);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->synced, NULL);
	w->rbuf = malloc(ECHOD_READ_SLICE);
	if (id == 0) {
		w->base = srv->base;
		w->holds = &srv->holds;
	} else {
		w->base = loop_base_new();
		w->holds = &w->own_holds;
	}
	if (w->rbuf == NULL || w->base == NULL) {
		snprintf(err, errlen, "worker %u: out of memory", id);
		return -1;
	}
	if (park_init(w) == -1 || loop_init(w) == -1) {
		snprintf(err, errlen, "worker %u: cannot make its park: %s", id,
			 strerror(errno));
		return -1;
	}
	w->sweep = tick_new(w->base, worker_sweep, w);
	if (w->sweep == NULL) {
		snprintf(err, errlen, "worker %u: cannot create event", id);
		return -1;
	}
	return 0;
}

/* How many workers cfg asks for: threads, or one per CPU. */
unsigned
worker_threads(const struct config *cfg)
{
	unsigned n = cfg->threads;
	long cpus;

	if (n == 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus > 0 ? (unsigned)cpus : 1;
		if (n > ECHOD_MAX_THREADS)
			n = ECHOD_MAX_THREADS;
	}
	return n;
}

int
worker_start_all(struct server *srv, char *err, size_t errlen)
{
	struct worker_pool *pool;
	unsigned i, n = worker_threads(srv->cfg);
	sigset_t all, old;
	int rc = 0;

	/* Aligned: see struct worker. */
	if ((pool = calloc(1, sizeof(*pool))) == NULL ||
	    (pool->w = aligned_alloc(ECHOD_CACHE_LINE, n * sizeof(*pool->w))) ==
		    NULL) {
		free(pool);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memset(pool->w, 0, n * sizeof(*pool->w));
	pool->n = n;
	srv->pool = pool;
	/* park_free() and loop_free() of a worker never made find nothing
	 * to close. */
	for (i = 0; i < n; i++) {
		pool->w[i].park_fd = -1;
		pool->w[i].wake_fd = -1;
		pool->w[i].lib_fd = -1;
	}
	for (i = 0; i < n; i++)
		if (worker_init(srv, &pool->w[i], i, err, errlen) == -1)
			return -1;
	/*
	 * Worker threads start with every signal blocked: the ones echod
	 * takes are read from server.c's signalfd on the main loop, and any
	 * other goes to the main thread, so a worker idle in epoll_wait is
	 * never the one interrupted.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 1; i < n; i++) {
		struct worker *w = &pool->w[i];
		char name[16]; /* the kernel's limit, with its NUL */

		rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc != 0)
			break;
		w->has_thread = 1;
		/* "echod-worker3" in top -H and ps -L: a busy worker can be
		 * told from the main thread (worker 0, "echod") and from the
		 * others. Named here, it has its name before echod serves. */
		if (i < 1000)
			snprintf(name, sizeof(name), "echod-worker%u", i);
		else /* ECHOD_MAX_THREADS: 4 digits, 15 characters at most */
			snprintf(name, sizeof(name), "echod-w%u", i % 10000);
		(void)pthread_setname_np(w->thread, name);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "worker %u: pthread_create: %s", i,
			 strerror(rc));
		return -1;
	}
	log_debug("started %u worker%s", n, n == 1 ? "" : "s");
	worker_poke_all(srv);
	return 0;
}

/* Tells every worker to look at the settings again. */
void
worker_poke_all(struct server *srv)
{
	unsigned i;

	for (i = 0; i < srv->pool->n; i++)
		worker_poke(&srv->pool->w[i], WORKER_POKE_CONTROL);
}

unsigned
worker_count(const struct server *srv)
{
	return srv->pool != NULL ? srv->pool->n : 0;
}

struct worker *
worker_get(struct server *srv, unsigned i)
{
	return &srv->pool->w[i];
}

void
worker_assign(struct server *srv, const struct accepted *a)
{
	struct worker_pool *pool = srv->pool;
	struct worker *w = &pool->w[pool->next];

	pool->next = (pool->next + 1) % pool->n;
	if (!w->has_thread) {
		conn_new(w, a);
		return;
	}
	pthread_mutex_lock(&w->lock);
	if (w->queue_len == w->queue_cap) {
		size_t cap =
			w->queue_cap ? w->queue_cap * 2 : WORKER_QUEUE_INITIAL;
		struct accepted *q = reallocarray(w->queue, cap, sizeof(*q));
		if (q == NULL) {
			pthread_mutex_unlock(&w->lock);
			log_warnx("worker %u: out of memory, dropping a "
				  "connection",
				  w->id);
			/* Ended on worker 0's counters: it runs here, on the
			 * main thread. */
			conn_drop(&pool->w[0], a);
			return;
		}
		w->queue = q;
		w->queue_cap = cap;
	}
	w->queue[w->queue_len++] = *a;
	pthread_mutex_unlock(&w->lock);
	/* One wake-up per batch: the worker drains the whole queue. */
	worker_poke(w, WORKER_POKE_QUEUE);
}

void
worker_stop_all(struct server *srv)
{
	struct worker_pool *pool = srv->pool;
	unsigned i;
	struct conn *c;

	if (pool == NULL)
		return;
	for (i = 0; i < pool->n; i++) {
		struct worker *w = &pool->w[i];
		if (w->has_thread) {
			worker_poke(w, WORKER_POKE_STOP);
			pthread_join(w->thread, NULL);
			w->has_thread = 0;
		}
	}
	/* Every thread has ended: the main thread may touch it all now. */
	for (i = 0; i < pool->n; i++) {
		struct worker *w = &pool->w[i];
		size_t j;

		for (j = 0; j < w->queue_len; j++)
			admission_release(srv->adm, w->queue[j].fd,
					  accepted_counted_peer(&w->queue[j]),
					  w->queue[j].peer_shard);
		free(w->queue);
		while ((c = TAILQ_FIRST(&w->conns)) != NULL)
			conn_free(c, CONN_END_SHUTDOWN);
		conn_free_spares(w);
		tick_free(w->sweep);
		loop_free(w);
		park_free(w);
		if (i != 0 && w->base != NULL)
			event_base_free(w->base);
		free(w->rbuf);
		udp_worker_free(w);
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->synced);
	}
	free(pool->w);
	free(pool);
	srv->pool = NULL;
}

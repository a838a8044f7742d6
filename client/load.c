/*
 * load.c: echo-client's load mode (--load) as the main thread runs it:
 * threads set up and started, the gate opened, the window's edges fixed,
 * progress shown, the server's CPU time read, the threads' counters
 * merged. A thread is load_thread.c, a connection load_conn.c, what each
 * mode sends load_mode.c; printing is report.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "load.h"
#include "client.h"
#include "load_int.h"

#define LOAD_POLL_MS 50 /* the main thread's wake-ups */
#define LOAD_PROGRESS_MS 1000
#define LOAD_FD_SPARE 64 /* descriptors besides the connections */

/* Waits at the gate; 0 to go on, -1 if the run is called off (a thread
 * failed to start, or no connection could be made). */
int
load_gate_wait(struct load *l)
{
	int abort;

	pthread_mutex_lock(&l->lock);
	while (!l->go)
		pthread_cond_wait(&l->cond, &l->lock);
	abort = l->abort;
	pthread_mutex_unlock(&l->lock);
	return abort ? -1 : 0;
}

static void
load_gate_open(struct load *l, int abort)
{
	pthread_mutex_lock(&l->lock);
	l->go = 1;
	l->abort = abort;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* Enough descriptors for every connection, raising the soft limit. */
static int
load_raise_fd_limit(uint64_t connections)
{
	uint64_t need = connections + LOAD_FD_SPARE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		fprintf(stderr,
			"%s: %" PRIu64 " connections need %" PRIu64
			" open files; the limit is %llu (ulimit -n)\n",
			CLIENT_NAME, connections, need,
			(unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		perror(CLIENT_NAME ": setrlimit");
		return -1;
	}
	return 0;
}

/* utime + stime of pid in seconds, or -1 if unreadable. */
static double
load_proc_cpu_s(uint64_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *fp;
	size_t n;
	long tck = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* After the command's closing parenthesis: state is field 3,
	 * utime and stime are fields 14 and 15. */
	if ((p = strrchr(buf, ')')) == NULL || tck <= 0 ||
	    sscanf(p + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)tck;
}

/* The main thread's progress line (a terminal only). */
struct load_progress {
	int on;
	uint64_t next_ns, last_ns, last_work;
};

static void
load_sleep_until(uint64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / NS_PER_S);
	ts.tv_nsec = (long)(ns % NS_PER_S);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static void
load_progress_show(struct load *l, struct load_progress *p, uint64_t now,
		   uint64_t since)
{
	const struct client_options *o = l->o;
	uint64_t work = 0, errors = 0, est = 0;
	const char *phase, *unit;
	double rate, dt;
	unsigned i;

	if (!p->on || now < p->next_ns)
		return;
	for (i = 0; i < l->nthreads; i++) {
		struct load_thread *t = &l->threads[i];
		work += atomic_load_explicit(&t->pub_work,
					     memory_order_relaxed);
		errors += atomic_load_explicit(&t->pub_errors,
					       memory_order_relaxed);
		est += atomic_load_explicit(&t->pub_established,
					    memory_order_relaxed);
	}
	dt = (double)(now - p->last_ns) / (double)NS_PER_S;
	rate = dt > 0 ? (double)(work - p->last_work) / dt : 0;
	if (atomic_load(&l->ready) < l->nthreads || l->end_ns == 0)
		phase = "connecting";
	else if (now < l->warm_ns)
		phase = "warm-up";
	else if (now < l->end_ns)
		phase = o->mode == CLIENT_MODE_HOLD ? "holding" : "running";
	else
		phase = o->mode == CLIENT_MODE_HOLD ? "echoing" : "draining";
	switch (o->mode) {
	case CLIENT_MODE_STREAM:
		rate /= 1024.0 * 1024.0;
		unit = "MiB/s";
		break;
	case CLIENT_MODE_CONNRATE:
		unit = "conns/s";
		break;
	case CLIENT_MODE_HOLD:
		rate = (double)(work != 0 ? work : est);
		unit = work != 0 ? "echoed" : "established";
		break;
	default:
		unit = "msgs/s";
		break;
	}
	if (l->end_ns == 0 && o->mode != CLIENT_MODE_HOLD) {
		rate = (double)est;
		unit = "connected";
	}
	report_progress(stderr, phase, (double)(now - since) / (double)NS_PER_S,
			rate, unit, errors);
	p->last_ns = now;
	p->last_work = work;
	p->next_ns = now + LOAD_PROGRESS_MS * NS_PER_MS;
}

/* Connections made so far, as the threads published them. */
static uint64_t
load_established(struct load *l)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < l->nthreads; i++)
		n += atomic_load_explicit(&l->threads[i].pub_established,
					  memory_order_relaxed);
	return n;
}

/* Adds thread t's counters to r. */
static void
load_merge(struct load_result *r, const struct load_thread *t)
{
	int i;

	r->window.messages += t->stats.messages;
	r->window.bytes += t->stats.bytes;
	r->window.connects += t->stats.connects;
	histogram_merge(&r->window.latency, &t->stats.latency);
	for (i = 0; i < LOAD_NERRORS; i++)
		r->errors[i] += t->errors[i];
	r->established += t->established;
	r->echoed += t->echoed;
}

/* Starts the threads; waits for them to connect, through the window,
 * and to finish; fills r. -1 if the run could not start. */
static int
load_drive(struct load *l, struct load_result *r)
{
	const struct client_options *o = l->o;
	struct load_progress p;
	double cpu0 = -1, cpu1 = -1;
	uint64_t t0 = load_now(), now, next;
	int hold = o->mode == CLIENT_MODE_HOLD, read0 = 0, read1 = 0;
	unsigned i, started;

	memset(&p, 0, sizeof(p));
	p.on = !o->quiet && isatty(STDERR_FILENO);
	p.last_ns = t0;
	if (hold && o->server_pid != 0)
		cpu0 = load_proc_cpu_s(o->server_pid);
	for (started = 0; started < l->nthreads; started++) {
		if (pthread_create(&l->threads[started].tid, NULL,
				   load_thread_main,
				   &l->threads[started]) != 0) {
			fprintf(stderr, "%s: cannot start a thread\n",
				CLIENT_NAME);
			break;
		}
	}
	if (started < l->nthreads) {
		load_gate_open(l, 1);
		for (i = 0; i < started; i++)
			pthread_join(l->threads[i].tid, NULL);
		return -1;
	}
	while (atomic_load(&l->ready) < l->nthreads) {
		now = load_now();
		load_progress_show(l, &p, now, t0);
		load_sleep_until(now + LOAD_POLL_MS * NS_PER_MS);
	}
	l->start_ns = load_now();
	l->warm_ns = l->start_ns + (hold ? 0 : o->warmup_ms * NS_PER_MS);
	l->end_ns = l->warm_ns + o->duration_ms * NS_PER_MS;
	p.last_ns = l->start_ns;
	p.last_work = 0;
	/* Not one connection made: nothing to wait for. */
	load_gate_open(l, o->mode != CLIENT_MODE_CONNRATE &&
				  load_established(l) == 0);
	while (atomic_load(&l->finished) < l->nthreads) {
		now = load_now();
		if (!hold && o->server_pid != 0 && !read0 &&
		    now >= l->warm_ns) {
			cpu0 = load_proc_cpu_s(o->server_pid);
			read0 = 1;
		}
		if (!hold && o->server_pid != 0 && !read1 && now >= l->end_ns) {
			cpu1 = load_proc_cpu_s(o->server_pid);
			read1 = 1;
		}
		load_progress_show(l, &p, now, l->start_ns);
		next = now + LOAD_POLL_MS * NS_PER_MS;
		if (!read0 && l->warm_ns > now && l->warm_ns < next)
			next = l->warm_ns;
		if (!read1 && l->end_ns > now && l->end_ns < next)
			next = l->end_ns;
		load_sleep_until(next);
	}
	for (i = 0; i < l->nthreads; i++)
		pthread_join(l->threads[i].tid, NULL);
	if (o->server_pid != 0 && (hold || !read1)) /* or called off */
		cpu1 = load_proc_cpu_s(o->server_pid);
	if (p.on)
		report_progress_clear(stderr);

	memset(r, 0, sizeof(*r));
	r->o = o;
	r->threads = l->nthreads;
	r->duration_s = (double)o->duration_ms / 1000.0;
	histogram_init(&r->window.latency);
	for (i = 0; i < l->nthreads; i++)
		load_merge(r, &l->threads[i]);
	if (o->server_pid != 0 && cpu0 >= 0 && cpu1 >= 0) {
		r->have_server_cpu = 1;
		r->server_cpu_s = cpu1 - cpu0;
	} else if (o->server_pid != 0) {
		fprintf(stderr,
			"%s: cannot read the CPU time of PID %" PRIu64 "\n",
			CLIENT_NAME, o->server_pid);
	}
	return 0;
}

/* Did the run pass? */
static int
load_passed(const struct load_result *r)
{
	uint64_t n = r->o->connections;

	if (report_errors(r) != 0)
		return 0;
	if (r->o->mode == CLIENT_MODE_HOLD)
		return r->established == n && r->echoed == n;
	return 1;
}

int
load_run(const struct client_options *o, const struct addr *addrs, int naddrs)
{
	static struct load_result r; /* 15 KiB of histogram */
	const struct sockaddr_in *sin;
	struct load l;
	unsigned i, ready = 0;
	int rc = -1;

	if (naddrs < 1)
		return -1;
	memset(&l, 0, sizeof(l));
	l.o = o;
	l.target = addrs[0];
	l.nthreads = (unsigned)(o->threads < o->connections ? o->threads
							    : o->connections);
	if (o->rate != 0)
		l.interval_ns = o->connections * NS_PER_S / o->rate;
	sin = (const struct sockaddr_in *)&l.target.ss;
	l.spread_sources = o->source.ss.ss_family == 0 &&
			   o->mode == CLIENT_MODE_CONNRATE &&
			   l.target.ss.ss_family == AF_INET &&
			   (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	if (load_raise_fd_limit(o->connections) == -1)
		return -1;
	if (o->tls) {
		char err[512];

		if ((l.tls = client_tls_ctx(o, err, sizeof(err))) == NULL) {
			fprintf(stderr, "%s: %s\n", CLIENT_NAME, err);
			return -1;
		}
	}
	pthread_mutex_init(&l.lock, NULL);
	pthread_cond_init(&l.cond, NULL);
	atomic_init(&l.ready, 0);
	atomic_init(&l.finished, 0);
	atomic_init(&l.reported, 0);
	if ((l.threads = calloc(l.nthreads, sizeof(*l.threads))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", CLIENT_NAME);
		goto out;
	}
	for (ready = 0; ready < l.nthreads; ready++) {
		if (load_thread_init(&l, &l.threads[ready], ready) == -1) {
			fprintf(stderr,
				"%s: cannot set up thread %u's event loop and "
				"connections\n",
				CLIENT_NAME, ready);
			ready++;
			goto out;
		}
	}
	if (load_drive(&l, &r) == -1)
		goto out;
	if (o->json)
		report_json(stdout, &r);
	else if (!o->quiet)
		report_summary(stdout, &r);
	rc = load_passed(&r) ? 0 : 1;
out:
	for (i = 0; i < ready; i++)
		load_thread_free(&l.threads[i]);
	free(l.threads);
	SSL_CTX_free(l.tls);
	pthread_cond_destroy(&l.cond);
	pthread_mutex_destroy(&l.lock);
	return rc;
}

/*
 * metrics.c: what echod counts, for the admin endpoint's /metrics and
 * SIGUSR1's line. It owns the listener slots (a counter index per listen
 * line, stable across reloads), the one count only the main loop writes
 * (reloads), the summing of the workers' own counters
 * (echod.h: wc[] and lc[][], never locked, never a read-modify-write on
 * the echo path), the process's figures from /proc, and the rendering of
 * it all in Prometheus's text format 0.0.4, which is pure.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "echod.h"

/* The slot every listen line shares once the others are taken. */
#define METRICS_OVERFLOW_SLOT (ECHOD_MAX_SLOTS - 1)

/* Upper bounds of the duration histogram's buckets, in ms; +Inf last. */
const uint64_t metrics_duration_le_ms[METRICS_DURATION_BUCKETS - 1] = {
	1,    5,     10,    50,	    100,     500,    1000,
	5000, 10000, 60000, 300000, 1800000, 3600000};

/* A listen line's name; its counts are the workers' (lc[slot][]). */
struct metrics_slot {
	char *name; /* set once, never changed: workers read it */
};

struct metrics {
	struct metrics_slot slot[ECHOD_MAX_SLOTS];
	unsigned nslots;
	uint64_t reloads[2]; /* failed, succeeded */
	double start_time;
};

static const char *const metrics_refuse_names[REFUSE_N] = {
	[REFUSE_MAX_CONNECTIONS] = "max_connections",
	[REFUSE_MAX_PER_IP] = "max_connections_per_ip",
};

static double
metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct metrics *
metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m != NULL)
		m->start_time = metrics_now();
	return m;
}

void
metrics_free(struct metrics *m)
{
	unsigned i;

	if (m == NULL)
		return;
	for (i = 0; i < ECHOD_MAX_SLOTS; i++)
		free(m->slot[i].name);
	free(m);
}

/*
 * The slot of the listen line named name: the same one whenever that
 * line is listed, so its counters go on across reloads. Slots are never
 * given back (a connection may outlive its listener and still count);
 * past ECHOD_MAX_SLOTS - 1 lines, the rest share the last, "other".
 */
unsigned
metrics_slot(struct metrics *m, const char *name)
{
	unsigned i;

	for (i = 0; i < m->nslots; i++)
		if (strcmp(m->slot[i].name, name) == 0)
			return i;
	if (m->nslots < METRICS_OVERFLOW_SLOT &&
	    (m->slot[m->nslots].name = strdup(name)) != NULL)
		return m->nslots++;
	if (m->slot[METRICS_OVERFLOW_SLOT].name == NULL) {
		log_warnx("%s: more than %d listen addresses since start; "
			  "it and later ones are counted as \"other\"",
			  name, METRICS_OVERFLOW_SLOT);
		m->slot[METRICS_OVERFLOW_SLOT].name = strdup("other");
	}
	return METRICS_OVERFLOW_SLOT;
}

const char *
metrics_slot_name(const struct metrics *m, unsigned slot)
{
	const char *name = slot < ECHOD_MAX_SLOTS ? m->slot[slot].name : NULL;

	return name != NULL ? name : "?";
}

void
metrics_reloaded(struct metrics *m, int ok)
{
	m->reloads[ok ? 1 : 0]++;
}

/* The histogram bucket of a connection that lived ms. */
unsigned
metrics_duration_bucket(uint64_t ms)
{
	unsigned i;

	for (i = 0; i < METRICS_DURATION_BUCKETS - 1; i++)
		if (ms <= metrics_duration_le_ms[i])
			return i;
	return METRICS_DURATION_BUCKETS - 1;
}

void
metrics_sum(struct server *srv, uint64_t wc[WC_N], uint64_t (*lc)[LC_N])
{
	unsigned i, j, k, n = worker_count(srv);

	memset(wc, 0, WC_N * sizeof(wc[0]));
	memset(lc, 0, ECHOD_MAX_SLOTS * sizeof(lc[0]));
	for (i = 0; i < n; i++) {
		const struct worker *w = worker_get(srv, i);

		for (j = 0; j < WC_N; j++)
			wc[j] += atomic_load_explicit(&w->wc[j],
						      memory_order_relaxed);
		for (j = 0; j < ECHOD_MAX_SLOTS; j++)
			for (k = 0; k < LC_N; k++)
				lc[j][k] += atomic_load_explicit(
					&w->lc[j][k], memory_order_relaxed);
	}
}

/* Counts the process's open descriptors; -1 if /proc cannot. */
static int64_t
metrics_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int64_t n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* less the one opendir() holds */
}

/* The process's start from /proc/self/stat and the boot time. */
static double
metrics_process_start(void)
{
	char buf[1024], *p;
	unsigned long long ticks = 0, btime = 0;
	FILE *fp;
	size_t n;
	int i;

	if ((fp = fopen("/proc/self/stat", "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* Fields after the command's closing parenthesis; starttime is
	 * the 22nd field, the 20th after it. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	for (i = 0; i < 20 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &ticks) != 1)
		return -1;
	if ((fp = fopen("/proc/stat", "r")) == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), fp) != NULL)
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	fclose(fp);
	if (btime == 0)
		return -1;
	return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static void
metrics_process(struct metrics_view *v)
{
	struct rusage ru;
	struct rlimit rl;
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	FILE *fp;

	v->cpu_seconds = -1;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		v->cpu_seconds =
			(double)ru.ru_utime.tv_sec +
			(double)ru.ru_stime.tv_sec +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) /
				1e6;
	v->open_fds = metrics_open_fds();
	v->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
				     rl.rlim_cur != RLIM_INFINITY
			     ? (int64_t)rl.rlim_cur
			     : -1;
	v->resident_bytes = v->virtual_bytes = -1;
	if ((fp = fopen("/proc/self/statm", "r")) != NULL) {
		if (fscanf(fp, "%llu %llu", &size, &resident) == 2) {
			v->virtual_bytes = (int64_t)(size * (uint64_t)page);
			v->resident_bytes =
				(int64_t)(resident * (uint64_t)page);
		}
		fclose(fp);
	}
	v->process_start_time = metrics_process_start();
}

void
metrics_collect(struct server *srv, struct metrics_view *v)
{
	static uint64_t lc[ECHOD_MAX_SLOTS][LC_N]; /* main loop only */
	struct metrics *m = srv->metrics;
	unsigned slots[ECHOD_MAX_LISTEN];
	int udp[ECHOD_MAX_LISTEN];
	uint64_t total, refused;
	unsigned i, j;

	memset(v, 0, sizeof(*v));
	v->start_time = m->start_time;
	/* The workers' counters first: a connection is counted as
	 * accepted before it can be counted as closed. */
	metrics_sum(srv, v->wc, lc);
	admission_counts(srv->adm, &v->active, &total, &refused);
	v->reloads[0] = m->reloads[0];
	v->reloads[1] = m->reloads[1];
	v->draining = srv->stopping;
	v->refused[REFUSE_MAX_PER_IP] = v->wc[WC_REFUSED_PER_IP];
	v->refused[REFUSE_MAX_CONNECTIONS] = v->wc[WC_REFUSED_FULL];
	v->nlisteners = listener_slots(srv, slots, udp, ECHOD_MAX_LISTEN);
	for (i = 0; i < v->nlisteners; i++) {
		struct metrics_listener *l = &v->listener[i];

		l->name = metrics_slot_name(m, slots[i]);
		l->udp = udp[i];
		memcpy(l->lc, lc[slots[i]], sizeof(l->lc));
		l->refused = l->lc[LC_REFUSED];
		l->accepted = l->lc[LC_ACCEPTED];
	}
	/* Totals over every slot, open listeners or not. */
	for (i = 0; i < ECHOD_MAX_SLOTS; i++)
		for (j = 0; j < LC_N; j++)
			v->lc_total[j] += lc[i][j];
	v->accepted = v->lc_total[LC_ACCEPTED];
	metrics_process(v);
}

/* A label value with '\', '"' and newlines escaped, as the format asks. */
char *
metrics_escape(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len == 0)
		return buf;
	for (; *s != '\0' && n + 2 < len; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			buf[n++] = '\\';
			if (*s == '\n')
				buf[n++] = 'n';
			else
				buf[n++] = *s;
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
	return buf;
}

/* One metric family's HELP and TYPE lines. */
static void
metrics_family(struct evbuffer *out, const char *name, const char *type,
	       const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			    name, type);
}

static void
metrics_value(struct evbuffer *out, const char *name, uint64_t value)
{
	evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void
metrics_labelled(struct evbuffer *out, const char *name, const char *label,
		 const char *value, uint64_t n)
{
	char esc[2 * ADDR_STRLEN];

	evbuffer_add_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label,
			    metrics_escape(value, esc, sizeof(esc)), n);
}

/* A per-listener family: one sample per listener of the kind wanted. */
static void
metrics_per_listener(struct evbuffer *out, const struct metrics_view *v,
		     int udp, const char *name, const char *help,
		     const char *type, int what)
{
	unsigned i, any = 0;

	for (i = 0; i < v->nlisteners; i++)
		any |= v->listener[i].udp == udp;
	if (!any)
		return; /* a family with no sample says nothing */
	metrics_family(out, name, type, help);
	for (i = 0; i < v->nlisteners; i++) {
		const struct metrics_listener *l = &v->listener[i];
		uint64_t n;

		if (l->udp != udp)
			continue;
		if (what == -1)
			n = l->accepted;
		else if (what == -2)
			n = l->refused;
		else if (what == -3)
			/* Open ones: taken less closed, never below 0
			 * though the two are read at different times. */
			n = l->accepted > l->lc[LC_CLOSED]
				    ? l->accepted - l->lc[LC_CLOSED]
				    : 0;
		else
			n = l->lc[what];
		metrics_labelled(out, name, "listener", l->name, n);
	}
}

static void
metrics_udp_dropped(struct evbuffer *out, const struct metrics_view *v)
{
	static const struct {
		int lc;
		const char *reason;
	} why[] = {{LC_DGRAMS_REFLECTOR, "reflector_port"},
		   {LC_DGRAMS_LIMITED, "rate_limited"},
		   {LC_DGRAMS_FULL, "send_buffer_full"}};
	char esc[2 * ADDR_STRLEN];
	unsigned i, j, any = 0;

	for (i = 0; i < v->nlisteners; i++)
		any |= v->listener[i].udp;
	if (!any)
		return;
	metrics_family(out, "echod_udp_datagrams_dropped_total", "counter",
		       "UDP datagrams not echoed, by listener and reason.");
	for (i = 0; i < v->nlisteners; i++) {
		const struct metrics_listener *l = &v->listener[i];

		if (!l->udp)
			continue;
		metrics_escape(l->name, esc, sizeof(esc));
		for (j = 0; j < sizeof(why) / sizeof(why[0]); j++)
			evbuffer_add_printf(out,
					    "echod_udp_datagrams_dropped_total"
					    "{listener=\"%s\",reason=\"%s\"} "
					    "%" PRIu64 "\n",
					    esc, why[j].reason,
					    l->lc[why[j].lc]);
	}
}

static void
metrics_histogram(struct evbuffer *out, const struct metrics_view *v)
{
	const char *name = "echod_connection_duration_seconds";
	uint64_t cumulative = 0;
	unsigned i;

	metrics_family(out, name, "histogram",
		       "How long closed connections lived.");
	for (i = 0; i < METRICS_DURATION_BUCKETS; i++) {
		cumulative += v->wc[WC_DURATION + i];
		if (i < METRICS_DURATION_BUCKETS - 1)
			evbuffer_add_printf(
				out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
				(double)metrics_duration_le_ms[i] / 1000.0,
				cumulative);
		else
			evbuffer_add_printf(
				out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n",
				name, cumulative);
	}
	evbuffer_add_printf(out, "%s_sum %.3f\n", name,
			    (double)v->wc[WC_DURATION_MS] / 1000.0);
	evbuffer_add_printf(out, "%s_count %" PRIu64 "\n", name, cumulative);
}

/* A process_* figure, left out where /proc could not say. */
static void
metrics_process_gauge(struct evbuffer *out, const char *name, const char *type,
		      const char *help, double value, int decimals)
{
	if (value < 0)
		return;
	metrics_family(out, name, type, help);
	evbuffer_add_printf(out, "%s %.*f\n", name, decimals, value);
}

int
metrics_render(const struct metrics_view *v, struct evbuffer *out)
{
	unsigned i;

	metrics_family(out, "echod_build_info", "gauge",
		       "echod's version, as a label; the value is 1.");
	metrics_labelled(out, "echod_build_info", "version", ECHOD_VERSION, 1);
	metrics_family(out, "echod_start_time_seconds", "gauge",
		       "When echod started, in seconds since the epoch.");
	evbuffer_add_printf(out, "echod_start_time_seconds %.3f\n",
			    v->start_time);
	metrics_family(out, "echod_draining", "gauge",
		       "1 once a stop has begun the drain, else 0.");
	metrics_value(out, "echod_draining", (uint64_t)(v->draining != 0));

	metrics_family(out, "echod_connections_active", "gauge",
		       "Connections open now.");
	metrics_value(out, "echod_connections_active", v->active);
	/* Two workers' counters are read a moment apart: never below 0. */
	metrics_family(out, "echod_connections_parked", "gauge",
		       "Connections open now that wait in their worker's "
		       "park, with no event of their own.");
	metrics_value(out, "echod_connections_parked",
		      v->wc[WC_PARKED] > v->wc[WC_UNPARKED]
			      ? v->wc[WC_PARKED] - v->wc[WC_UNPARKED]
			      : 0);
	metrics_family(out, "echod_connections_accepted_total", "counter",
		       "Connections accepted and served.");
	metrics_value(out, "echod_connections_accepted_total", v->accepted);
	metrics_family(out, "echod_connections_refused_total", "counter",
		       "Connections closed at accept, by the limit reached.");
	for (i = 0; i < REFUSE_N; i++)
		metrics_labelled(out, "echod_connections_refused_total",
				 "reason", metrics_refuse_names[i],
				 v->refused[i]);
	metrics_family(out, "echod_connections_closed_total", "counter",
		       "Connections closed, by why.");
	for (i = 0; i < CONN_NEND; i++)
		metrics_labelled(out, "echod_connections_closed_total",
				 "reason", conn_end_name((enum conn_end)i),
				 v->wc[WC_CLOSED + i]);
	metrics_histogram(out, v);

	metrics_family(out, "echod_bytes_received_total", "counter",
		       "Bytes read from peers, every listener.");
	metrics_value(out, "echod_bytes_received_total",
		      v->lc_total[LC_BYTES_IN]);
	metrics_family(out, "echod_bytes_sent_total", "counter",
		       "Bytes echoed to peers, every listener.");
	metrics_value(out, "echod_bytes_sent_total", v->lc_total[LC_BYTES_OUT]);
	metrics_family(out, "echod_backpressure_pauses_total", "counter",
		       "Times reading paused for a peer slow to read its "
		       "echo.");
	metrics_value(out, "echod_backpressure_pauses_total", v->wc[WC_PAUSES]);

	metrics_family(out, "echod_tls_handshakes_total", "counter",
		       "TLS handshakes completed.");
	metrics_value(out, "echod_tls_handshakes_total",
		      v->wc[WC_TLS_HANDSHAKES]);
	metrics_family(out, "echod_tls_handshake_failures_total", "counter",
		       "TLS handshakes that failed, by why.");
	/* Two counters read apart: never below 0 though a timeout may be
	 * counted between the reads. */
	metrics_labelled(
		out, "echod_tls_handshake_failures_total", "reason", "error",
		v->wc[WC_TLS_FAILURES] > v->wc[WC_TLS_TIMEOUTS]
			? v->wc[WC_TLS_FAILURES] - v->wc[WC_TLS_TIMEOUTS]
			: 0);
	metrics_labelled(out, "echod_tls_handshake_failures_total", "reason",
			 "timeout", v->wc[WC_TLS_TIMEOUTS]);

	metrics_family(out, "echod_config_reloads_total", "counter",
		       "Configuration reloads (SIGHUP), by result.");
	metrics_labelled(out, "echod_config_reloads_total", "result", "success",
			 v->reloads[1]);
	metrics_labelled(out, "echod_config_reloads_total", "result", "failure",
			 v->reloads[0]);

	metrics_per_listener(
		out, v, 0, "echod_listener_connections_accepted_total",
		"Connections accepted, by listener.", "counter", -1);
	metrics_per_listener(
		out, v, 0, "echod_listener_connections_refused_total",
		"Connections refused at accept, by listener.", "counter", -2);
	metrics_per_listener(out, v, 0, "echod_listener_connections_active",
			     "Connections open now, by listener.", "gauge", -3);
	metrics_per_listener(out, v, 0, "echod_listener_bytes_received_total",
			     "Bytes read from peers, by listener.", "counter",
			     LC_BYTES_IN);
	metrics_per_listener(out, v, 0, "echod_listener_bytes_sent_total",
			     "Bytes echoed to peers, by listener.", "counter",
			     LC_BYTES_OUT);
	metrics_per_listener(out, v, 1, "echod_udp_datagrams_received_total",
			     "UDP datagrams received, by listener.", "counter",
			     LC_DGRAMS_IN);
	metrics_per_listener(out, v, 1, "echod_udp_datagrams_sent_total",
			     "UDP datagrams echoed, by listener.", "counter",
			     LC_DGRAMS_OUT);
	metrics_udp_dropped(out, v);

	metrics_process_gauge(out, "process_cpu_seconds_total", "counter",
			      "Total user and system CPU time spent in "
			      "seconds.",
			      v->cpu_seconds, 3);
	metrics_process_gauge(out, "process_open_fds", "gauge",
			      "Number of open file descriptors.",
			      (double)v->open_fds, 0);
	metrics_process_gauge(out, "process_max_fds", "gauge",
			      "Maximum number of open file descriptors.",
			      (double)v->max_fds, 0);
	metrics_process_gauge(out, "process_resident_memory_bytes", "gauge",
			      "Resident memory size in bytes.",
			      (double)v->resident_bytes, 0);
	metrics_process_gauge(out, "process_virtual_memory_bytes", "gauge",
			      "Virtual memory size in bytes.",
			      (double)v->virtual_bytes, 0);
	metrics_process_gauge(out, "process_start_time_seconds", "gauge",
			      "Start time of the process since unix epoch in "
			      "seconds.",
			      v->process_start_time, 2);
	return 0;
}

/*
 * report.c: what echo-client --load prints: the human summary of a run,
 * the one JSON object of --json (the schema bench/run reads), and the
 * progress line that overwrites itself on a terminal. Printing only; the
 * numbers come from load.c's merged struct load_result.
 */
#include <inttypes.h>
#include <stdio.h>

#include "load.h"

#define REPORT_MIB (1024.0 * 1024.0)
#define REPORT_NS_PER_US 1000.0

static const char *const report_error_names[LOAD_NERRORS] = {
	[LOAD_ERR_MISMATCH] = "mismatch", [LOAD_ERR_RESET] = "reset",
	[LOAD_ERR_EOF] = "eof",		  [LOAD_ERR_TIMEOUT] = "timeout",
	[LOAD_ERR_CONNECT] = "connect",	  [LOAD_ERR_LOST] = "lost",
};

const char *
report_error_name(enum load_error e)
{
	return (unsigned)e < LOAD_NERRORS ? report_error_names[e] : "?";
}

uint64_t
report_errors(const struct load_result *r)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < LOAD_NERRORS; i++)
		n += r->errors[i];
	return n;
}

static double
report_per_s(uint64_t n, const struct load_result *r)
{
	return r->duration_s > 0 ? (double)n / r->duration_s : 0.0;
}

/* Latency percentiles in microseconds. */
struct report_latency {
	double p50, p90, p99, p999, max, mean;
};

static void
report_latency_us(const struct histogram *h, struct report_latency *l)
{
	l->p50 = (double)histogram_percentile(h, 50) / REPORT_NS_PER_US;
	l->p90 = (double)histogram_percentile(h, 90) / REPORT_NS_PER_US;
	l->p99 = (double)histogram_percentile(h, 99) / REPORT_NS_PER_US;
	l->p999 = (double)histogram_percentile(h, 99.9) / REPORT_NS_PER_US;
	l->max = (double)histogram_max(h) / REPORT_NS_PER_US;
	l->mean = histogram_mean(h) / REPORT_NS_PER_US;
}

static int
report_has_latency(const struct load_result *r)
{
	return r->o->mode == CLIENT_MODE_PINGPONG ||
	       r->o->mode == CLIENT_MODE_CONNRATE;
}

void
report_summary(FILE *fp, const struct load_result *r)
{
	const struct client_options *o = r->o;
	const struct load_stats *w = &r->window;
	struct report_latency l;
	uint64_t errors = report_errors(r);
	int i, first = 1;

	fprintf(fp,
		"%s --load --mode %s: %" PRIu64 " %s, %u thread%s, %" PRIu64
		" B %s\n",
		CLIENT_NAME, client_options_mode_name(o->mode), o->connections,
		o->mode == CLIENT_MODE_CONNRATE ? "workers" : "connections",
		r->threads, r->threads == 1 ? "" : "s", o->size,
		o->mode == CLIENT_MODE_STREAM ? "writes" : "messages");
	if (o->mode == CLIENT_MODE_HOLD) {
		fprintf(fp,
			"  held       %.3f s idle\n"
			"  connected  %" PRIu64 " of %" PRIu64 "\n"
			"  echoed     %" PRIu64 " of %" PRIu64 "\n",
			r->duration_s, r->established, o->connections,
			r->echoed, o->connections);
	} else {
		fprintf(fp, "  window     %.3f s after %.3f s of warm-up\n",
			r->duration_s, (double)o->warmup_ms / 1000.0);
		if (o->mode == CLIENT_MODE_PINGPONG)
			fprintf(fp, "  messages   %" PRIu64 " (%.0f msgs/s)\n",
				w->messages, report_per_s(w->messages, r));
		if (o->mode == CLIENT_MODE_CONNRATE)
			fprintf(fp, "  connects   %" PRIu64 " (%.0f conns/s)\n",
				w->connects, report_per_s(w->connects, r));
		fprintf(fp, "  verified   %" PRIu64 " bytes (%.2f MiB/s)\n",
			w->bytes, report_per_s(w->bytes, r) / REPORT_MIB);
	}
	if (report_has_latency(r) && w->latency.count > 0) {
		report_latency_us(&w->latency, &l);
		fprintf(fp,
			"  latency    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f"
			"  max %.1f  mean %.1f us\n",
			l.p50, l.p90, l.p99, l.p999, l.max, l.mean);
	}
	if (r->have_server_cpu)
		fprintf(fp, "  server CPU %.2f s\n", r->server_cpu_s);
	fprintf(fp, "  errors     %" PRIu64, errors);
	for (i = 0; i < LOAD_NERRORS; i++) {
		if (r->errors[i] == 0)
			continue;
		fprintf(fp, "%s%s %" PRIu64, first ? " (" : ", ",
			report_error_names[i], r->errors[i]);
		first = 0;
	}
	fputs(first ? "\n" : ")\n", fp);
}

void
report_json(FILE *fp, const struct load_result *r)
{
	const struct client_options *o = r->o;
	const struct load_stats *w = &r->window;
	struct report_latency l;
	int i;

	fprintf(fp,
		"{\"mode\":\"%s\",\"connections\":%" PRIu64
		",\"threads\":%u,\"size\":%" PRIu64 ",\"duration_s\":%.6f,"
		"\"warmup_s\":%.3f,",
		client_options_mode_name(o->mode), o->connections, r->threads,
		o->size, r->duration_s,
		o->mode == CLIENT_MODE_HOLD ? 0.0
					    : (double)o->warmup_ms / 1000.0);
	fprintf(fp,
		"\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
		",\"connects\":%" PRIu64 ",\"established\":%" PRIu64
		",\"echoed\":%" PRIu64 ",",
		w->messages, w->bytes, w->connects, r->established, r->echoed);
	fprintf(fp,
		"\"msgs_per_s\":%.3f,\"mib_per_s\":%.3f,\"conns_per_s\":%.3f,",
		report_per_s(w->messages, r),
		report_per_s(w->bytes, r) / REPORT_MIB,
		report_per_s(w->connects, r));
	if (o->rate != 0)
		fprintf(fp, "\"rate\":%" PRIu64 ",", o->rate);
	fprintf(fp, "\"errors\":%" PRIu64 ",\"error_detail\":{",
		report_errors(r));
	for (i = 0; i < LOAD_NERRORS; i++)
		fprintf(fp, "%s\"%s\":%" PRIu64, i == 0 ? "" : ",",
			report_error_names[i], r->errors[i]);
	fputs("},\"latency_us\":", fp);
	if (report_has_latency(r) && w->latency.count > 0) {
		report_latency_us(&w->latency, &l);
		fprintf(fp,
			"{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
			"\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f,"
			"\"count\":%" PRIu64 "}",
			l.p50, l.p90, l.p99, l.p999, l.max, l.mean,
			w->latency.count);
	} else {
		fputs("null", fp);
	}
	fputs(",\"server_cpu_s\":", fp);
	if (r->have_server_cpu)
		fprintf(fp, "%.3f", r->server_cpu_s);
	else
		fputs("null", fp);
	fputs("}\n", fp);
}

void
report_progress(FILE *fp, const char *phase, double elapsed_s, double rate,
		const char *unit, uint64_t errors)
{
	/* \r back to the start, \033[K erases what a longer line left. */
	fprintf(fp, "\r%s %6.1f s  %12.0f %s  errors %" PRIu64 "\033[K", phase,
		elapsed_s, rate, unit, errors);
	fflush(fp);
}

void
report_progress_clear(FILE *fp)
{
	fputs("\r\033[K", fp);
	fflush(fp);
}

/*
 * load.h: what the load mode's files share: the error kinds every echo
 * is judged by, the counters one thread keeps and the merged result of
 * a run, which report.c prints. The engine is load.c.
 */
#ifndef CLIENT_LOAD_H
#define CLIENT_LOAD_H

#include <stdint.h>
#include <stdio.h>

#include "addr.h"
#include "histogram.h"
#include "options.h"

/* Why an echo failed; each has its own counter (and JSON key). */
enum load_error {
	LOAD_ERR_MISMATCH, /* a byte differs, or more came back than sent */
	LOAD_ERR_RESET,	   /* reset, or another error reading or writing */
	LOAD_ERR_EOF,	   /* the server closed before echoing everything */
	LOAD_ERR_TIMEOUT,  /* no progress within -t, or unanswered at end */
	LOAD_ERR_CONNECT,  /* a connection that could not be made */
	LOAD_ERR_LOST,	   /* -u: a datagram with no reply within -t */
	LOAD_NERRORS,
};

/* What the measured window saw. */
struct load_stats {
	uint64_t messages;	  /* pingpong echoes; hold: echoes */
	uint64_t bytes;		  /* echoed bytes verified */
	uint64_t connects;	  /* connrate cycles completed */
	struct histogram latency; /* ns: pingpong round trips, connrate
				     cycles */
};

/* A finished run, every thread's counters merged. */
struct load_result {
	const struct client_options *o;
	unsigned threads;  /* started: --threads, at most one per connection */
	double duration_s; /* the window (hold: the idle time) */
	struct load_stats window;
	uint64_t established; /* connected; hold: and open after idling */
	uint64_t echoed;      /* hold: connections whose echo came back */
	uint64_t errors[LOAD_NERRORS];
	int have_server_cpu;
	double server_cpu_s;
};

/* load.c: runs --load against addrs[0]; 0 if the run passed (no error,
 * and for hold every connection established and echoed), 1 if not, -1
 * if it could not run (message on stderr). */
int load_run(const struct client_options *o, const struct addr *addrs,
	     int naddrs);

/* report.c */
const char *report_error_name(enum load_error e);
uint64_t report_errors(const struct load_result *r);
void report_summary(FILE *fp, const struct load_result *r);
void report_json(FILE *fp, const struct load_result *r);
void report_progress(FILE *fp, const char *phase, double elapsed_s, double rate,
		     const char *unit, uint64_t errors);
void report_progress_clear(FILE *fp);

#endif

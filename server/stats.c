/*
 * stats.c: echod's counters as one consistent-enough snapshot: the
 * connection counts the listener and workers keep as atomics, and the
 * byte counts each worker keeps for itself, summed here. Used by SIGUSR1's
 * log line and systemd's STATUS= line.
 */
#include <inttypes.h>
#include <stdio.h>

#include "echod.h"

void
stats_snapshot(struct server *srv, struct stats *st)
{
	unsigned i;

	st->conns_current = atomic_load(&srv->conns_current);
	st->conns_total = atomic_load(&srv->conns_total);
	st->conns_refused = atomic_load(&srv->conns_refused);
	st->bytes_in = st->bytes_out = 0;
	for (i = 0; i < srv->nworkers; i++) {
		st->bytes_in += atomic_load_explicit(&srv->workers[i].bytes_in,
						     memory_order_relaxed);
		st->bytes_out += atomic_load_explicit(
			&srv->workers[i].bytes_out, memory_order_relaxed);
	}
}

char *
stats_format(const struct stats *st, char *buf, size_t len)
{
	snprintf(buf, len,
		 "connections current=%" PRIu64 " total=%" PRIu64
		 " refused=%" PRIu64 "; bytes in=%" PRIu64 " out=%" PRIu64,
		 st->conns_current, st->conns_total, st->conns_refused,
		 st->bytes_in, st->bytes_out);
	return buf;
}

/*
 * stats.c: echod's counters as SIGUSR1's log line: the connection counts
 * admission.c keeps and the workers' own counters as metrics.c sums
 * them, so the line and /metrics never disagree.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "echod.h"

void
stats_snapshot(struct server *srv, struct stats *st)
{
	static uint64_t lc[ECHOD_MAX_SLOTS][LC_N]; /* main loop only */
	uint64_t wc[WC_N], total[LC_N] = {0};
	unsigned i, j;

	metrics_sum(srv, wc, lc);
	for (i = 0; i < ECHOD_MAX_SLOTS; i++)
		for (j = 0; j < LC_N; j++)
			total[j] += lc[i][j];
	admission_counts(srv->adm, &st->conns_current, &st->conns_total,
			 &st->conns_refused);
	st->bytes_in = total[LC_BYTES_IN];
	st->bytes_out = total[LC_BYTES_OUT];
	st->tls = tls_wanted(srv->cfg);
	st->tls_handshakes = wc[WC_TLS_HANDSHAKES];
	st->tls_failures = wc[WC_TLS_FAILURES];
	st->tls_timeouts = wc[WC_TLS_TIMEOUTS];
	st->has_udp = 0;
	for (i = 0; i < (unsigned)srv->cfg->nlisten; i++)
		if (srv->cfg->listen[i].kind == LISTEN_UDP)
			st->has_udp = 1;
	st->udp[0] = total[LC_DGRAMS_IN];
	st->udp[1] = total[LC_DGRAMS_OUT];
	st->udp[2] = total[LC_DGRAMS_REFLECTOR];
	st->udp[3] = total[LC_DGRAMS_LIMITED];
	st->udp[4] = total[LC_DGRAMS_FULL];
}

char *
stats_format(const struct stats *st, char *buf, size_t len)
{
	snprintf(buf, len,
		 "connections current=%" PRIu64 " total=%" PRIu64
		 " refused=%" PRIu64 "; bytes in=%" PRIu64 " out=%" PRIu64,
		 st->conns_current, st->conns_total, st->conns_refused,
		 st->bytes_in, st->bytes_out);
	if (st->tls) {
		size_t n = strlen(buf);

		snprintf(buf + n, len - n,
			 "; tls handshakes=%" PRIu64 " failed=%" PRIu64
			 " timed_out=%" PRIu64,
			 st->tls_handshakes, st->tls_failures,
			 st->tls_timeouts);
	}
	if (st->has_udp) {
		size_t n = strlen(buf);

		snprintf(buf + n, len - n,
			 "; udp in=%" PRIu64 " out=%" PRIu64
			 " refused_port=%" PRIu64 " rate_limited=%" PRIu64
			 " send_full=%" PRIu64,
			 st->udp[0], st->udp[1], st->udp[2], st->udp[3],
			 st->udp[4]);
	}
	return buf;
}

/*
 * stats.c: echod's counters as one consistent-enough snapshot: the
 * connection counts admission.c keeps, and the byte counts each worker
 * keeps for itself, summed by worker.c. Used by SIGUSR1's
 * log line and systemd's STATUS= line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "echod.h"

void
stats_snapshot(struct server *srv, struct stats *st)
{
	admission_counts(srv->adm, &st->conns_current, &st->conns_total,
			 &st->conns_refused);
	worker_bytes(srv, &st->bytes_in, &st->bytes_out);
	st->tls = tls_wanted(srv->cfg);
	worker_tls(srv, &st->tls_handshakes, &st->tls_failures,
		   &st->tls_timeouts);
	st->has_udp = 0;
	for (int i = 0; i < srv->cfg->nlisten; i++)
		if (srv->cfg->listen[i].kind == LISTEN_UDP)
			st->has_udp = 1;
	worker_udp(srv, st->udp);
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

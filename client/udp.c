/*
 * udp.c: echo-client's UDP mode (-u), the sequential one: o->count
 * datagrams one after another, each the message (or --size payload
 * bytes) in one datagram from a socket of its own, connected to the
 * server so that an ICMP "port unreachable" is heard. Each waits -t for
 * its reply and is sent again up to --retries times; the reply must be
 * the datagram, byte for byte. A datagram with no reply after every try
 * is lost, which is not the same failure as a reply that differs, and
 * each says which it was.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "parse.h"
#include "payload.h"

static uint64_t
udp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A socket connected to addrs[*i] or a later address that does not
 * refuse at once; -1 with errno if none. */
static int
udp_connect(const struct addr *addrs, int naddrs, int *i)
{
	int fd;

	for (; *i < naddrs; (*i)++) {
		fd = socket(addrs[*i].ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC,
			    0);
		if (fd == -1)
			continue;
		if (connect(fd, (const struct sockaddr *)&addrs[*i].ss,
			    addrs[*i].len) == 0)
			return fd;
		close(fd);
	}
	return -1;
}

/* Sends out and waits for its echo, try after try. Returns 0 (echoed),
 * or -1 with the reason printed. */
static int
udp_exchange(const struct client_options *o, int fd, const char *who,
	     const unsigned char *out, size_t len, unsigned char *in)
{
	uint64_t tries = o->retries + 1, t, deadline;
	char d[32];
	ssize_t n;

	parse_format_duration(o->timeout_ms, d, sizeof(d));
	for (t = 1; t <= tries; t++) {
		if (send(fd, out, len, 0) != (ssize_t)len) {
			fprintf(stderr, "%s: %s: send failed: %s\n",
				CLIENT_NAME, who, strerror(errno));
			return -1;
		}
		deadline = udp_now_ms() + o->timeout_ms;
		for (;;) {
			struct pollfd p = {fd, POLLIN, 0};
			uint64_t now = udp_now_ms();
			int r;

			if (now >= deadline)
				break;
			r = poll(&p, 1, (int)(deadline - now));
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			n = recv(fd, in, CLIENT_MAX_DATAGRAM + 1, MSG_TRUNC);
			if (n == -1 && errno == ECONNREFUSED) {
				fprintf(stderr,
					"%s: %s: refused (ICMP port "
					"unreachable): nothing listens there\n",
					CLIENT_NAME, who);
				return -1;
			}
			if (n == -1)
				continue;
			if ((size_t)n != len || memcmp(in, out, len) != 0) {
				size_t off = 0;

				while (off < len && off < (size_t)n &&
				       in[off] == out[off])
					off++;
				fprintf(stderr,
					"%s: %s: the reply differs: %zd bytes "
					"for the %zu sent, first difference at "
					"byte offset %zu\n",
					CLIENT_NAME, who, n, len, off);
				return -1;
			}
			return 0;
		}
	}
	fprintf(stderr,
		"%s: %s: no reply within %s, %" PRIu64 " tr%s: the datagram "
		"or its echo was lost\n",
		CLIENT_NAME, who, d, tries, tries == 1 ? "y" : "ies");
	return -1;
}

int
udp_run(const struct client_options *o, const struct addr *addrs, int naddrs)
{
	size_t len = o->size != 0 ? (size_t)o->size : o->message_len;
	unsigned char *out, *in;
	char name[ADDR_STRLEN], who[ADDR_STRLEN + 64];
	struct payload p;
	uint64_t i;
	int rc = 0, a = 0, fd;

	out = malloc(len > 0 ? len : 1);
	in = malloc(CLIENT_MAX_DATAGRAM + 1);
	if (out == NULL || in == NULL) {
		fprintf(stderr, "%s: out of memory\n", CLIENT_NAME);
		free(out);
		free(in);
		return -1;
	}
	for (i = 1; i <= o->count && rc == 0; i++) {
		if (o->size != 0) {
			/* A seed per datagram: one cannot pass for another. */
			payload_init(&p, i);
			payload_fill(&p, out, len);
		} else {
			memcpy(out, o->message, len);
		}
		a = 0;
		if ((fd = udp_connect(addrs, naddrs, &a)) == -1) {
			fprintf(stderr,
				"%s: datagram %" PRIu64 ": cannot "
				"connect a UDP socket: %s\n",
				CLIENT_NAME, i, strerror(errno));
			rc = -1;
			break;
		}
		snprintf(who, sizeof(who),
			 "datagram %" PRIu64 "/%" PRIu64 " to %s", i, o->count,
			 addr_format((const struct sockaddr *)&addrs[a].ss,
				     name, sizeof(name)));
		rc = udp_exchange(o, fd, who, out, len, in);
		close(fd);
		if (rc == 0 && !o->quiet) {
			if (o->size != 0) {
				printf("Received: %zu bytes, verified\n", len);
			} else {
				size_t show = len;

				if (show > 0 && o->message[show - 1] == '\n')
					show--;
				fputs("Received: ", stdout);
				fwrite(o->message, 1, show, stdout);
				fputc('\n', stdout);
			}
		}
	}
	free(out);
	free(in);
	return rc;
}

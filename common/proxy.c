/*
 * proxy.c: the PROXY protocol (HAProxy's, versions 1 and 2), both ways:
 * proxy_parse() reads a header at the start of a connection, proxy_build()
 * writes one. Pure: no I/O, no allocation; errors are words for a log.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "proxy.h"

static const unsigned char proxy_v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static int
proxy_fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return PROXY_BAD;
}

/* A port in decimal: 0..65535, no sign, no leading zero but "0". */
static int
proxy_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t i, n = strlen(s);

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* One v1 address and port into sa: family AF_INET or AF_INET6. */
static int
proxy_v1_addr(int family, const char *addr, const char *port,
	      struct sockaddr_storage *sa)
{
	uint16_t p;

	memset(sa, 0, sizeof(*sa));
	if (proxy_port(port, &p) == -1)
		return -1;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
		return inet_pton(AF_INET, addr, &sin->sin_addr) == 1 ? 0 : -1;
	}
	{
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p);
		return inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1 ? 0
									: -1;
	}
}

/* "PROXY TCP4|TCP6|UNKNOWN ...\r\n", at most PROXY_V1_MAX bytes. */
static int
proxy_parse_v1(const unsigned char *buf, size_t len, struct proxy_header *h,
	       char *err, size_t errlen)
{
	char line[PROXY_V1_MAX + 1], *field[6], *p, *save = NULL;
	size_t n, end;
	int family, nf = 0;

	for (end = 0; end + 1 < len && end + 2 <= PROXY_V1_MAX; end++)
		if (buf[end] == '\r' && buf[end + 1] == '\n')
			break;
	if (end + 2 > PROXY_V1_MAX || end + 1 >= len || buf[end] != '\r' ||
	    buf[end + 1] != '\n') {
		if (len >= PROXY_V1_MAX)
			return proxy_fail(err, errlen,
					  "PROXY v1 header longer than 107 "
					  "bytes");
		/* A line break alone, or a NUL, ends it as badly. */
		for (n = 0; n < len; n++)
			if (buf[n] == '\n' || buf[n] == '\0')
				return proxy_fail(err, errlen,
						  "malformed PROXY v1 header");
		return PROXY_NEED_MORE;
	}
	memcpy(line, buf, end);
	line[end] = '\0';
	if (memchr(line, '\n', end) != NULL || strlen(line) != end)
		return proxy_fail(err, errlen, "malformed PROXY v1 header");
	h->version = 1;
	h->len = end + 2;
	/* Fields are separated by exactly one space (UNKNOWN's rest is not
	 * looked at). */
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 &&
	    (line[13] == '\0' || line[13] == ' ')) {
		h->local = 1;
		return PROXY_DONE;
	}
	if (strstr(line, "  ") != NULL || line[end - 1] == ' ')
		return proxy_fail(err, errlen, "malformed PROXY v1 header");
	for (p = line; nf < 6; p = NULL) {
		char *f = strtok_r(p, " ", &save);

		if (f == NULL)
			break;
		field[nf++] = f;
	}
	if (nf != 6 || strtok_r(NULL, " ", &save) != NULL)
		return proxy_fail(err, errlen, "malformed PROXY v1 header");
	if (strcmp(field[1], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(field[1], "TCP6") == 0)
		family = AF_INET6;
	else
		return proxy_fail(err, errlen,
				  "PROXY v1 header with an unknown protocol");
	if (proxy_v1_addr(family, field[2], field[4], &h->src) == -1 ||
	    proxy_v1_addr(family, field[3], field[5], &h->dst) == -1)
		return proxy_fail(err, errlen,
				  "PROXY v1 header with a bad address or port");
	h->local = 0;
	return PROXY_DONE;
}

static uint16_t
proxy_get16(const unsigned char *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static int
proxy_parse_v2(const unsigned char *buf, size_t len, struct proxy_header *h,
	       char *err, size_t errlen)
{
	const unsigned char *a = buf + 16;
	unsigned cmd, fam, proto;
	size_t body;

	if (len < 16)
		return PROXY_NEED_MORE;
	if ((buf[12] >> 4) != 2)
		return proxy_fail(err, errlen,
				  "PROXY v2 header of an unknown "
				  "version");
	cmd = buf[12] & 0x0F;
	fam = buf[13] >> 4;
	proto = buf[13] & 0x0F;
	body = proxy_get16(buf + 14);
	if (cmd > 1)
		return proxy_fail(err, errlen,
				  "PROXY v2 header with an unknown command");
	if (body > PROXY_V2_MAX_BODY)
		return proxy_fail(err, errlen,
				  "PROXY v2 header longer than the limit");
	if (len < 16 + body)
		return PROXY_NEED_MORE;
	h->version = 2;
	h->len = 16 + body;
	h->local = 1;
	if (cmd == 0)
		return PROXY_DONE; /* LOCAL: a health check; TLVs skipped */
	if (proto > 2 || fam > 3)
		return proxy_fail(err, errlen,
				  "PROXY v2 header with an "
				  "unknown family or protocol");
	if (fam == 0 || fam == 3 || proto == 0)
		return PROXY_DONE; /* UNSPEC, or Unix: the socket's own */
	if (proto != 1)
		return proxy_fail(err, errlen,
				  "PROXY v2 header for a datagram stream");
	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	if (fam == 1) {
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;

		if (body < 12)
			return proxy_fail(err, errlen,
					  "PROXY v2 header too short for its "
					  "addresses");
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;

		if (body < 36)
			return proxy_fail(err, errlen,
					  "PROXY v2 header too short for its "
					  "addresses");
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
	}
	h->local = 0;
	return PROXY_DONE;
}

int
proxy_parse(const unsigned char *buf, size_t len, struct proxy_header *h,
	    char *err, size_t errlen)
{
	static const char v1[] = "PROXY ";
	size_t n;

	memset(h, 0, sizeof(*h));
	if (len == 0)
		return PROXY_NEED_MORE;
	if (buf[0] == (unsigned char)'P') {
		n = len < sizeof(v1) - 1 ? len : sizeof(v1) - 1;
		if (memcmp(buf, v1, n) != 0)
			return proxy_fail(err, errlen,
					  "not a PROXY protocol header");
		if (len < sizeof(v1) - 1)
			return PROXY_NEED_MORE;
		return proxy_parse_v1(buf, len, h, err, errlen);
	}
	n = len < sizeof(proxy_v2_sig) ? len : sizeof(proxy_v2_sig);
	if (memcmp(buf, proxy_v2_sig, n) != 0)
		return proxy_fail(err, errlen, "not a PROXY protocol header");
	if (len < sizeof(proxy_v2_sig))
		return PROXY_NEED_MORE;
	return proxy_parse_v2(buf, len, h, err, errlen);
}

/* The address part of v1: "TCP4 1.2.3.4 5.6.7.8 1 2". */
static int
proxy_build_v1(const struct sockaddr *src, const struct sockaddr *dst,
	       unsigned char *buf, size_t len)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	int n;

	if (src == NULL || dst == NULL || src->sa_family != dst->sa_family ||
	    (src->sa_family != AF_INET && src->sa_family != AF_INET6)) {
		n = snprintf((char *)buf, len, "PROXY UNKNOWN\r\n");
	} else if (src->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)src;
		const struct sockaddr_in *b = (const struct sockaddr_in *)dst;

		inet_ntop(AF_INET, &a->sin_addr, s, sizeof(s));
		inet_ntop(AF_INET, &b->sin_addr, d, sizeof(d));
		n = snprintf((char *)buf, len, "PROXY TCP4 %s %s %u %u\r\n", s,
			     d, ntohs(a->sin_port), ntohs(b->sin_port));
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)src;
		const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)dst;

		inet_ntop(AF_INET6, &a->sin6_addr, s, sizeof(s));
		inet_ntop(AF_INET6, &b->sin6_addr, d, sizeof(d));
		n = snprintf((char *)buf, len, "PROXY TCP6 %s %s %u %u\r\n", s,
			     d, ntohs(a->sin6_port), ntohs(b->sin6_port));
	}
	return n < 0 || (size_t)n >= len ? -1 : n;
}

static int
proxy_build_v2(const struct sockaddr *src, const struct sockaddr *dst,
	       unsigned char *buf, size_t len)
{
	size_t body = 0;

	if (len < 16 + 36)
		return -1;
	memcpy(buf, proxy_v2_sig, sizeof(proxy_v2_sig));
	buf[12] = 0x21; /* version 2, PROXY */
	if (src != NULL && dst != NULL && src->sa_family == AF_INET &&
	    dst->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)src;
		const struct sockaddr_in *b = (const struct sockaddr_in *)dst;

		buf[13] = 0x11; /* INET, STREAM */
		memcpy(buf + 16, &a->sin_addr, 4);
		memcpy(buf + 20, &b->sin_addr, 4);
		memcpy(buf + 24, &a->sin_port, 2);
		memcpy(buf + 26, &b->sin_port, 2);
		body = 12;
	} else if (src != NULL && dst != NULL && src->sa_family == AF_INET6 &&
		   dst->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)src;
		const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)dst;

		buf[13] = 0x21; /* INET6, STREAM */
		memcpy(buf + 16, &a->sin6_addr, 16);
		memcpy(buf + 32, &b->sin6_addr, 16);
		memcpy(buf + 48, &a->sin6_port, 2);
		memcpy(buf + 50, &b->sin6_port, 2);
		body = 36;
	} else {
		buf[12] = 0x20; /* version 2, LOCAL */
		buf[13] = 0x00; /* UNSPEC */
	}
	buf[14] = (unsigned char)(body >> 8);
	buf[15] = (unsigned char)(body & 0xFF);
	return (int)(16 + body);
}

int
proxy_build(int version, const struct sockaddr *src, const struct sockaddr *dst,
	    unsigned char *buf, size_t len)
{
	if (version == 1)
		return proxy_build_v1(src, dst, buf, len);
	if (version == 2)
		return proxy_build_v2(src, dst, buf, len);
	return -1;
}

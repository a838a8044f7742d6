/*
 * proxy.h: the PROXY protocol, versions 1 and 2 (HAProxy's
 * proxy-protocol.txt): parsing the header a balancer puts before a
 * connection's bytes, and building one. Pure.
 */
#ifndef ECHO_PROXY_H
#define ECHO_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest v1 header, "PROXY ... \r\n" included. */
#define PROXY_V1_MAX 107
/* Longest v2 address and TLV part accepted: more is refused. */
#define PROXY_V2_MAX_BODY 2048
/* Room for any header proxy_parse() accepts. */
#define PROXY_MAX (16 + PROXY_V2_MAX_BODY)

enum proxy_result {
	PROXY_BAD = -1,	     /* not a header, or a malformed one: err says */
	PROXY_NEED_MORE = 0, /* a valid beginning: read more */
	PROXY_DONE = 1	     /* a header of h->len bytes */
};

struct proxy_header {
	int version; /* 1 or 2 */
	int local;   /* v2 LOCAL, UNSPEC or Unix, v1 UNKNOWN: no address */
	size_t len;  /* bytes the header takes */
	struct sockaddr_storage src, dst; /* AF_INET or AF_INET6 */
};

/* Reads the header at the start of buf (len bytes so far). */
int proxy_parse(const unsigned char *buf, size_t len, struct proxy_header *h,
		char *err, size_t errlen);

/* Writes a v1 or v2 header for src and dst (a LOCAL/UNKNOWN one when
 * they are NULL, or not both IPv4 or both IPv6); returns its length, or
 * -1 if it does not fit. */
int proxy_build(int version, const struct sockaddr *src,
		const struct sockaddr *dst, unsigned char *buf, size_t len);

#endif

/*
 * proxy.c: the PROXY protocol header echo-client sends with --proxy, as
 * a load balancer would: the connection's own addresses, or the client
 * --proxy-source names, written on the connected socket before anything
 * else (before a TLS handshake too). Used by seq.c and load_conn.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "client.h"
#include "proxy.h"

/* The wildcard address of family, with port: a header's destination
 * when --proxy-source is not of the connection's family. */
static void
client_proxy_any(int family, in_port_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = port;
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = port;
	}
}

static in_port_t
client_proxy_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)ss)->sin6_port;
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_port;
	return 0;
}

int
client_proxy_send(const struct client_options *o, int fd, char *err,
		  size_t errlen)
{
	struct sockaddr_storage src, dst;
	socklen_t slen = sizeof(src), dlen = sizeof(dst);
	unsigned char buf[PROXY_MAX];
	ssize_t sent;
	int n;

	if (getsockname(fd, (struct sockaddr *)&src, &slen) == -1 ||
	    getpeername(fd, (struct sockaddr *)&dst, &dlen) == -1) {
		snprintf(err, errlen, "PROXY header: %s", strerror(errno));
		return -1;
	}
	if (o->proxy_source.ss.ss_family != 0) {
		memcpy(&src, &o->proxy_source.ss, sizeof(src));
		if (dst.ss_family != src.ss_family)
			client_proxy_any(src.ss_family, client_proxy_port(&dst),
					 &dst);
	}
	n = proxy_build(o->proxy, (struct sockaddr *)&src,
			(struct sockaddr *)&dst, buf, sizeof(buf));
	if (n < 0) {
		snprintf(err, errlen, "PROXY header: cannot build it");
		return -1;
	}
	do
		sent = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
	while (sent == -1 && errno == EINTR);
	if (sent != n) {
		/* A fresh socket has room for 108 bytes: only an error. */
		snprintf(err, errlen, "PROXY header: %s",
			 sent == -1 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

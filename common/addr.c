/*
 * addr.c: listen and connect address handling shared by echod and
 * echo-client, in the spirit of redis' anet.c: small helpers that report
 * errors into the caller's buffer and never print or exit.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"
#include "parse.h"

static int
addr_parse_port(const char *s, const char *spec, uint16_t *out, char *err,
		size_t errlen)
{
	uint64_t v;
	char perr[128];

	if (*s == '\0') {
		snprintf(err, errlen, "'%s': missing port", spec);
		return -1;
	}
	if (parse_uint(s, 0, 65535, &v, perr, sizeof(perr)) == -1) {
		snprintf(err, errlen,
			 "'%s': port must be a number from 0 to 65535", spec);
		return -1;
	}
	*out = (uint16_t)v;
	return 0;
}

int
addr_parse(const char *s, struct addr_spec *out, char *err, size_t errlen)
{
	const char *colon, *host;
	size_t hostlen;

	memset(out, 0, sizeof(*out));
	if (*s == '[') {
		const char *close = strchr(s, ']');
		struct in6_addr in6;
		char buf[ADDR_HOST_MAX], *scope;

		if (close == NULL) {
			snprintf(err, errlen, "'%s': missing ']'", s);
			return -1;
		}
		if (close[1] != ':') {
			snprintf(err, errlen,
				 "'%s': expected ':PORT' after ']'", s);
			return -1;
		}
		host = s + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
		if (hostlen == 0 || hostlen >= sizeof(buf)) {
			snprintf(err, errlen, "'%s': bad IPv6 address", s);
			return -1;
		}
		memcpy(buf, host, hostlen);
		buf[hostlen] = '\0';
		/* A scope ("fe80::1%eth0") must follow an address and is
		 * looked up by the resolver. */
		scope = strchr(buf, '%');
		if (scope != NULL)
			*scope = '\0';
		if (inet_pton(AF_INET6, buf, &in6) != 1 ||
		    (scope != NULL && scope[1] == '\0')) {
			snprintf(err, errlen, "'%s': bad IPv6 address", s);
			return -1;
		}
		if (scope != NULL)
			*scope = '%';
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, errlen,
				 "'%s': expected HOST:PORT, [IPv6]:PORT or "
				 "*:PORT",
				 s);
			return -1;
		}
		host = s;
		hostlen = (size_t)(colon - s);
		if (memchr(host, ':', hostlen) != NULL) {
			snprintf(err, errlen,
				 "'%s': an IPv6 address needs brackets "
				 "([IPv6]:PORT)",
				 s);
			return -1;
		}
		if (hostlen == 0) {
			snprintf(err, errlen,
				 "'%s': missing host (use *:PORT "
				 "for every address)",
				 s);
			return -1;
		}
		if (hostlen == 1 && *host == '*') {
			out->wildcard = 1;
			hostlen = 0;
		}
	}
	if (hostlen >= sizeof(out->host)) {
		snprintf(err, errlen, "'%s': host name too long", s);
		return -1;
	}
	memcpy(out->host, host, hostlen);
	out->host[hostlen] = '\0';
	return addr_parse_port(colon + 1, s, &out->port, err, errlen);
}

int
addr_resolve(const char *host, const char *port, int passive, struct addr *out,
	     int max, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	int rc, n = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	if (host != NULL && *host == '\0')
		host = NULL;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", host ? host : "*",
			 gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL && n < max; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(out[n].ss))
			continue;
		memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
		out[n].len = ai->ai_addrlen;
		n++;
	}
	freeaddrinfo(res);
	if (n == 0) {
		snprintf(err, errlen, "%s: no usable address",
			 host ? host : "*");
		return -1;
	}
	return n;
}

int
addr_unix(const char *path, struct addr *out, char *err, size_t errlen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sun->sun_path)) {
		snprintf(err, errlen,
			 "'%s': a Unix socket's path is 1 to %zu bytes", path,
			 sizeof(sun->sun_path) - 1);
		return -1;
	}
	memset(out, 0, sizeof(*out));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	out->len = (socklen_t)sizeof(*sun);
	return 1;
}

char *
addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *sun = (const void *)sa;
		if (sun->sun_path[0] != '\0')
			snprintf(buf, len, "unix:%.*s",
				 (int)sizeof(sun->sun_path), sun->sun_path);
		else
			snprintf(buf, len, "unix socket");
		break;
	}
	default:
		snprintf(buf, len, "(family %d)", sa->sa_family);
		break;
	}
	return buf;
}

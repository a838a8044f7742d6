/*
 * addr.h: socket addresses for echod and echo-client: parsing the
 * "HOST:PORT", "[IPv6]:PORT" and "*:PORT" forms, resolving a host and port
 * into socket addresses, and formatting an address back for logs.
 * Parsing and formatting are pure; only addr_resolve() asks the resolver.
 */
#ifndef ECHO_ADDR_H
#define ECHO_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_HOST_MAX 256
/* Longest formatted address: "[" IPv6 "%" scope "]:" port, or "unix:" and
 * a socket path, with room. */
#define ADDR_STRLEN 128

struct addr_spec {
	char host[ADDR_HOST_MAX]; /* "" for the wildcard "*" */
	uint16_t port;		  /* 0 asks the kernel for a free port */
	int wildcard;		  /* "*:PORT": every address, both families */
};

/* One resolved address. */
struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Parses "HOST:PORT", "[IPv6]:PORT" or "*:PORT". Does not resolve. */
int addr_parse(const char *s, struct addr_spec *out, char *err, size_t errlen);

/*
 * Resolves host (NULL or "" for the wildcard) and port into at most max
 * addresses; passive asks for addresses to bind. Returns how many were
 * found, or -1 with the resolver's message in err.
 */
int addr_resolve(const char *host, const char *port, int passive,
		 struct addr *out, int max, char *err, size_t errlen);

/* The address of the Unix socket at path; returns 1 (one address) or -1
 * with the reason in err. */
int addr_unix(const char *path, struct addr *out, char *err, size_t errlen);

/* Formats sa as "1.2.3.4:80", "[::1]:80" or "unix:/path". Returns buf. */
char *addr_format(const struct sockaddr *sa, char *buf, size_t len);

#endif

/*
 * fuzz_addr.c: libFuzzer target for common/addr.c. The input is a listen
 * address for addr_parse(); what it accepts must be well formed, and a
 * numeric host (never a name: no DNS here) must resolve, format with
 * addr_format() and parse back to the same address and port. The input's
 * first bytes are also a raw IPv4 or IPv6 address that addr_format() must
 * write as text addr_parse() reads back, whatever the buffer's size.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

#define FUZZ_ERR_LEN 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_err(const char *err, size_t errlen)
{
	if (memchr(err, '\0', errlen) == NULL || err[0] == '\0')
		abort();
}

/* Parses text, which must succeed, and checks it names sa exactly. */
static void
fuzz_check_formatted(const char *text, const struct sockaddr *sa)
{
	struct addr_spec spec;
	char err[FUZZ_ERR_LEN];
	unsigned char bin[16];

	if (addr_parse(text, &spec, err, sizeof(err)) == -1)
		abort();
	if (spec.wildcard)
		abort();
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		if (inet_pton(AF_INET, spec.host, bin) != 1 ||
		    memcmp(bin, &sin->sin_addr, 4) != 0 ||
		    spec.port != ntohs(sin->sin_port))
			abort();
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		if (inet_pton(AF_INET6, spec.host, bin) != 1 ||
		    memcmp(bin, &sin6->sin6_addr, 16) != 0 ||
		    spec.port != ntohs(sin6->sin6_port))
			abort();
	}
}

/* The parsed host resolved without the resolver, formatted, re-parsed. */
static void
fuzz_round_trip(const struct addr_spec *spec)
{
	struct addrinfo hints, *res, *ai;
	struct addr out[8];
	char port[8], text[ADDR_STRLEN], err[FUZZ_ERR_LEN];
	int n;

	snprintf(port, sizeof(port), "%u", spec->port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(spec->wildcard ? NULL : spec->host, port, &hints,
			&res) != 0)
		return; /* a name, or a scope the resolver would look up */
	/* A numeric host: addr_resolve() cannot ask DNS either. */
	n = addr_resolve(spec->host, port, 1, out, 8, err, sizeof(err));
	if (n < 1)
		abort();
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		addr_format(ai->ai_addr, text, sizeof(text));
		fuzz_check_formatted(text, ai->ai_addr);
	}
	while (n-- > 0) {
		const struct sockaddr *sa = (const void *)&out[n].ss;

		addr_format(sa, text, sizeof(text));
		if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
			fuzz_check_formatted(text, sa);
	}
	freeaddrinfo(res);
}

/* data[0]: family and buffer size; then the address and the port. */
static void
fuzz_format_raw(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	size_t len, need;
	char *buf;

	if (size < 1 + 16 + 2)
		return;
	memset(&ss, 0, sizeof(ss));
	if (data[0] & 1) {
		struct sockaddr_in6 *sin6 = (void *)&ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, data + 1, 16);
		memcpy(&sin6->sin6_port, data + 17, 2);
	} else {
		struct sockaddr_in *sin = (void *)&ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, data + 1, 4);
		memcpy(&sin->sin_port, data + 17, 2);
	}
	/* A buffer of exactly len bytes: ASan sees any write past it. */
	len = (size_t)(data[0] >> 1) + 1;
	if ((buf = malloc(len)) == NULL)
		abort();
	if (addr_format((const void *)&ss, buf, len) != buf)
		abort();
	need = strnlen(buf, len);
	if (need == len)
		abort(); /* not NUL-terminated */
	if (len >= ADDR_STRLEN)
		fuzz_check_formatted(buf, (const void *)&ss);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr_spec spec;
	char *s, *err;
	int rc;

	fuzz_format_raw(data, size);

	/* Exact-size copies, so ASan sees any read past the end. */
	if ((s = malloc(size + 1)) == NULL ||
	    (err = malloc(FUZZ_ERR_LEN)) == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	memset(err, 0xa5, FUZZ_ERR_LEN);
	memset(&spec, 0xa5, sizeof(spec));
	rc = addr_parse(s, &spec, err, FUZZ_ERR_LEN);
	if (rc == -1) {
		fuzz_check_err(err, FUZZ_ERR_LEN);
	} else if (rc == 0) {
		if (memchr(spec.host, '\0', sizeof(spec.host)) == NULL)
			abort();
		if (spec.wildcard != (spec.host[0] == '\0'))
			abort();
		/* What it read was in the text: "PORT" ends it. */
		if (strlen(s) < 3)
			abort();
		fuzz_round_trip(&spec);
	} else {
		abort();
	}
	free(s);
	free(err);
	return 0;
}

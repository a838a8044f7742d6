/*
 * fuzz_proxy.c: libFuzzer target for the PROXY protocol parser
 * (common/proxy.c), what a proxy_protocol listener reads from any peer.
 * The input is the first bytes of a connection. Whatever it is, the
 * parser answers the same for the same bytes; a header it accepts fits
 * in the input and in its limits, names an IPv4 or IPv6 client unless it
 * is LOCAL, and every shorter prefix of it asks for more or is refused,
 * never accepted; a refusal says why. A header built from what was
 * parsed parses back to the same client.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header h, again;
	unsigned char built[PROXY_MAX];
	char err[128];
	size_t i;
	int rc, n;

	err[0] = '\0';
	rc = proxy_parse(data, size, &h, err, sizeof(err));
	if (rc == PROXY_BAD) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	if (rc == PROXY_NEED_MORE) {
		if (size >= PROXY_MAX)
			abort(); /* more than any header may take */
		return 0;
	}
	if (rc != PROXY_DONE || h.len == 0 || h.len > size ||
	    (h.version == 1 && h.len > PROXY_V1_MAX) ||
	    (h.version == 2 && h.len > PROXY_MAX) ||
	    (h.version != 1 && h.version != 2))
		abort();
	if (!h.local && h.src.ss_family != AF_INET &&
	    h.src.ss_family != AF_INET6)
		abort();
	if (proxy_parse(data, size, &again, err, sizeof(err)) != rc ||
	    again.len != h.len || again.local != h.local)
		abort();
	for (i = 0; i < h.len; i++)
		if (proxy_parse(data, i, &again, err, sizeof(err)) ==
		    PROXY_DONE)
			abort();
	if (h.local)
		return 0;
	n = proxy_build(h.version, (struct sockaddr *)&h.src,
			(struct sockaddr *)&h.dst, built, sizeof(built));
	if (n <= 0 ||
	    proxy_parse(built, (size_t)n, &again, err, sizeof(err)) !=
		    PROXY_DONE ||
	    again.local || memcmp(&again.src, &h.src, sizeof(h.src)) != 0)
		abort();
	return 0;
}

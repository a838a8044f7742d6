/*
 * client.h: what echo-client's files share beyond the options: the limit
 * on resolved addresses and the prototypes of each mode, grouped by file
 * (seq.c, tls.c, udp.c, proxy.c; the load mode's files and report.c share
 * load.h). The
 * options are in options.h.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include <event2/event.h>
#include <openssl/ssl.h>

#include "addr.h"
#include "options.h"

/* Resolved addresses tried, in order, for each connection. */
#define CLIENT_ADDR_MAX 16

/* seq.c */
int seq_run(struct event_base *base, const struct client_options *o,
	    const struct addr *addrs, int naddrs);

/* udp.c */
int udp_run(const struct client_options *o, const struct addr *addrs,
	    int naddrs);

/* tls.c */
SSL_CTX *client_tls_ctx(const struct client_options *o, char *err,
			size_t errlen);
SSL *client_tls_ssl(SSL_CTX *ctx, const struct client_options *o);
const char *client_tls_failure(SSL *ssl, unsigned long e, char *buf,
			       size_t len);

/* proxy.c */
int client_proxy_send(const struct client_options *o, int fd, char *err,
		      size_t errlen);

#endif

/*
 * tls.c: TLS for listeners with the tls parameter, built as the module
 * echod-tls.so that tls_module.c loads (echod itself links no OpenSSL):
 * the server's SSL_CTX, built from the tls_* keys (checked by
 * --check-config, rebuilt on every SIGHUP so that new handshakes get the
 * certificate on disk, while a bad new file leaves the old context
 * serving), and the TLS transport of a connection. It reaches echod's
 * functions (conn_free(), log_*(), ...) through the executable's exported
 * symbols, and echod reaches it through echod_tls_module alone.
 *
 * Design. A TLS connection is a libevent OpenSSL bufferevent that owns
 * both sides of the socket: the handshake, then reads that decrypt into
 * its input and writes that encrypt its output. Echo encrypts the
 * decrypted chains where they lie: straight from the input when nothing
 * waits before them (tls_write_now()), else moved whole to the output with
 * evbuffer_add_buffer(); no byte is copied. Backpressure is a plain
 * connection's: reading is disabled once max_buffer bytes wait in the
 * output and enabled again from the write callback at half of that (the
 * low watermark), so a slow TLS reader bounds memory exactly as a plain
 * one does. A handshake not done within handshake_timeout (the
 * bufferevent's read and write timeouts, cleared once it is done), or one
 * that fails (a plaintext client, a garbage or truncated handshake, a
 * certificate refused), closes that connection only; each is counted and
 * logged at debug with the peer and OpenSSL's reason. On EOF
 * (close_notify, or a bare FIN: a dirty shutdown is allowed) what is
 * queued is written, then close_notify is sent and the socket closed; so
 * it is when idle_timeout or a drain closes it.
 *
 * Threads: the context is swapped by the main thread and read by
 * workers at accept, under tls_lock; each SSL holds its own reference on
 * the context it came from, so an old context lives as long as the
 * connections that use it. ALPN: the client's first protocol is accepted
 * (an echo speaks them all); it and SNI stay recorded in the connection's
 * SSL and are logged at debug with the handshake.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conn_int.h"

_Static_assert(ECHOD_TLS1_2_VERSION == TLS1_2_VERSION &&
		       ECHOD_TLS1_3_VERSION == TLS1_3_VERSION,
	       "tls_protocols_parse() speaks OpenSSL's version numbers");

static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *tls_current; /* under tls_lock */

/* The read watermarks of a TLS connection (tls_read_cb()): small, what
 * an evbuffer chain of 1 KiB holds less its header; large, a slice, more
 * than a pass of the loop reads (a record or two), so that a stream never
 * stops at it: each stop and start is an epoll_ctl(2) pair. */
#define TLS_READ_SMALL ((size_t)1024 - 128)
#define TLS_READ_LARGE ECHOD_READ_SLICE

/* OpenSSL's reason for the first error queued (the cause; later ones
 * say where it surfaced), and the queue emptied. */
static const char *
tls_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();

	if (e == 0)
		snprintf(buf, len, "%s",
			 errno != 0 ? strerror(errno) : "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* ALPN: take the client's first protocol. */
static int
tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
	    const unsigned char *in, unsigned inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	if (inlen < 2 || in[0] == 0 || in[0] > inlen - 1)
		return SSL_TLSEXT_ERR_NOACK;
	*out = in + 1;
	*outlen = in[0];
	return SSL_TLSEXT_ERR_OK;
}

/* Builds a server context from cfg's tls_* keys, or says why not. */
static SSL_CTX *
tls_ctx_new(const struct config *cfg, char *err, size_t errlen)
{
	const char *protocols = cfg->tls_protocols != NULL
					? cfg->tls_protocols
					: ECHOD_DEFAULT_TLS_PROTOCOLS;
	char why[256];
	SSL_CTX *ctx;
	int min, max;

	if (cfg->tls_certificate == NULL || cfg->tls_certificate_key == NULL) {
		snprintf(err, errlen,
			 "a tls listener needs tls_certificate and "
			 "tls_certificate_key");
		return NULL;
	}
	if (cfg->tls_verify_client != TLS_VERIFY_NO &&
	    cfg->tls_client_certificate == NULL) {
		snprintf(err, errlen,
			 "tls_verify_client needs tls_client_certificate: the "
			 "CAs client certificates must chain to");
		return NULL;
	}
	if (tls_protocols_parse(protocols, &min, &max, why, sizeof(why)) ==
	    -1) {
		snprintf(err, errlen, "tls_protocols %s", why);
		return NULL;
	}
	ERR_clear_error();
	errno = 0;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "cannot create a TLS context: %s",
			 tls_reason(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, min);
	SSL_CTX_set_max_proto_version(ctx, max);
	/* Client renegotiation is a cheap way to make a server work. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* An idle connection gives its record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* A record in one read(2), not its header and its body apiece: into
	 * OpenSSL's own buffer, a record's size (a larger one made OpenSSL
	 * top it up a few bytes at a time, memmove()ing: bench/README.md). */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"echod", 5);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
	errno = 0;
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_certificate) !=
	    1) {
		snprintf(err, errlen, "tls_certificate '%s': %s",
			 cfg->tls_certificate, tls_reason(why, sizeof(why)));
		goto fail;
	}
	errno = 0;
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_certificate_key,
					SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "tls_certificate_key '%s': %s",
			 cfg->tls_certificate_key,
			 tls_reason(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen,
			 "tls_certificate_key '%s' is not the key of "
			 "tls_certificate '%s': %s",
			 cfg->tls_certificate_key, cfg->tls_certificate,
			 tls_reason(why, sizeof(why)));
		goto fail;
	}
	if (cfg->tls_ciphers != NULL &&
	    SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		snprintf(err, errlen, "tls_ciphers '%s': %s", cfg->tls_ciphers,
			 tls_reason(why, sizeof(why)));
		goto fail;
	}
	if (cfg->tls_verify_client != TLS_VERIFY_NO) {
		STACK_OF(X509_NAME) * names;

		errno = 0;
		if (SSL_CTX_load_verify_locations(
			    ctx, cfg->tls_client_certificate, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(
			     cfg->tls_client_certificate)) == NULL) {
			snprintf(err, errlen, "tls_client_certificate '%s': %s",
				 cfg->tls_client_certificate,
				 tls_reason(why, sizeof(why)));
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(
			ctx,
			SSL_VERIFY_PEER |
				(cfg->tls_verify_client == TLS_VERIFY_YES
					 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
					 : 0),
			NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* --check-config: would cfg's TLS settings load? */
static int
tls_ctx_check(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (!tls_wanted(cfg))
		return 0;
	if ((ctx = tls_ctx_new(cfg, err, errlen)) == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

static SSL_CTX *tls_pending; /* main thread: built, not yet in use */

static void tls_ctx_abort(void);

/*
 * At start and on every reload: (re)reads the certificates into a new
 * context, put in use by tls_ctx_commit() once the rest of the configuration
 * is in place too. On failure (or tls_ctx_abort()) nothing changes: the
 * context in use stays.
 */
static int
tls_ctx_prepare(const struct config *cfg, char *err, size_t errlen)
{
	tls_ctx_abort();
	if (tls_wanted(cfg) &&
	    (tls_pending = tls_ctx_new(cfg, err, errlen)) == NULL)
		return -1;
	return 0;
}

static void
tls_ctx_commit(void)
{
	SSL_CTX *old;

	pthread_mutex_lock(&tls_lock);
	old = tls_current;
	tls_current = tls_pending;
	pthread_mutex_unlock(&tls_lock);
	tls_pending = NULL;
	if (old != NULL)
		SSL_CTX_free(old); /* its connections hold their own refs */
}

static void
tls_ctx_abort(void)
{
	if (tls_pending != NULL)
		SSL_CTX_free(tls_pending);
	tls_pending = NULL;
}

static void
tls_ctx_shutdown(void)
{
	tls_ctx_abort();
	pthread_mutex_lock(&tls_lock);
	if (tls_current != NULL)
		SSL_CTX_free(tls_current);
	tls_current = NULL;
	pthread_mutex_unlock(&tls_lock);
}

/* A new server-side SSL of the current context, or NULL. */
static SSL *
tls_ssl_new(void)
{
	SSL *ssl = NULL;

	pthread_mutex_lock(&tls_lock);
	if (tls_current != NULL)
		ssl = SSL_new(tls_current);
	pthread_mutex_unlock(&tls_lock);
	return ssl;
}

static void
tls_debug(const struct conn *c, const char *what, const char *detail)
{
	char name[ADDR_STRLEN];

	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("%s: %s%s", conn_peer_name(c, name, sizeof(name)),
			  what, detail);
}

/* The handshake is over: log what it agreed, and stop its clock. */
static void
tls_handshake_done(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	/* A drain's grace for a fresh connection counts from here. */
	conn_touch(c);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	if (!c->tls_open) /* the deadline's hold on the loop (loop.c) */
		loop_release(c->w->holds, c->w->base);
	c->tls_open = 1;
	counter_add(&c->w->wc[WC_TLS_HANDSHAKES], 1);
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		const unsigned char *alpn = NULL;
		unsigned alpnlen = 0;
		const char *sni =
			SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
		char what[256];

		SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
		snprintf(what, sizeof(what), "%s %s, sni %s, alpn %.*s",
			 SSL_get_version(ssl), SSL_get_cipher_name(ssl),
			 sni != NULL ? sni : "none",
			 alpn != NULL ? (int)alpnlen : 4,
			 alpn != NULL ? (const char *)alpn : "none");
		tls_debug(c, "TLS handshake done: ", what);
	}
}

/* Says why a handshake failed, counts it and closes the connection. */
static void
tls_handshake_failed(struct conn *c, const char *why)
{
	char reason[256];
	unsigned long e;

	counter_add(&c->w->wc[WC_TLS_FAILURES], 1);
	if (why == NULL) {
		e = bufferevent_get_openssl_error(c->bev);
		if (e != 0)
			ERR_error_string_n(e, reason, sizeof(reason));
		else
			snprintf(reason, sizeof(reason), "%s",
				 EVUTIL_SOCKET_ERROR() != 0
					 ? strerror(EVUTIL_SOCKET_ERROR())
					 : "the peer closed the connection");
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		why = reason;
	}
	tls_debug(c, "TLS handshake failed: ", why);
	conn_free(c, CONN_END_HANDSHAKE);
}

/* Closes c after an error, saying why at debug: no close_notify then
 * (OpenSSL forbids it). */
static void
tls_fail(struct conn *c, const char *what, const char *reason)
{
	SSL_set_shutdown(bufferevent_openssl_get_ssl(c->bev),
			 SSL_SENT_SHUTDOWN);
	tls_debug(c, what, reason);
	conn_free(c, CONN_END_ERROR);
}

/*
 * Reads into in what OpenSSL holds, decrypted or not, record by record.
 * Returns 0 once it holds no whole record more, 1 at the peer's
 * close_notify, -1 out of memory, -2 on a TLS error (in OpenSSL's queue).
 */
static int
tls_drain(SSL *ssl, struct evbuffer *in)
{
	struct evbuffer_iovec v;
	int n;

	while (SSL_has_pending(ssl)) {
		if (evbuffer_reserve_space(in, SSL3_RT_MAX_PLAIN_LENGTH, &v,
					   1) != 1)
			return -1;
		ERR_clear_error();
		/* One vector: at least the size asked for. */
		n = SSL_read(ssl, v.iov_base, SSL3_RT_MAX_PLAIN_LENGTH);
		if (n > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(in, &v, 1);
			continue;
		}
		evbuffer_commit_space(in, &v, 0);
		switch (SSL_get_error(ssl, n)) {
		case SSL_ERROR_WANT_READ: /* the rest is at the socket */
		case SSL_ERROR_WANT_WRITE:
		case SSL_ERROR_SYSCALL:
			ERR_clear_error();
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			return 1;
		default:
			return -2;
		}
	}
	return 0;
}

/*
 * What OpenSSL holds that the bufferevent left in the SSL. OpenSSL reads
 * ahead, so it may hold the start of the next record or all of it, and the
 * bufferevent's read stops at its watermark or after a record per buffer
 * it reads into; libevent 2.1 reads again only when the socket is
 * readable, which it may never be (the peer waits for its echo). So it is
 * read here into the input, to be echoed with the rest: only what OpenSSL
 * holds, its reads meeting an empty memory BIO meanwhile, never the
 * socket (a peer that keeps the socket full would be read without end,
 * past max_buffer). A record not all there is finished by the
 * bufferevent's next read, the socket then having the rest. Returns 1 if
 * the peer's close_notify was among them (its end of the stream, which
 * the socket will not say again), -1 if c was freed, else 0.
 */
static int
tls_take_pending(struct conn *c, struct evbuffer *in)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	BIO *sock, *none;
	char reason[256];
	int r;

	if (!SSL_has_pending(ssl))
		return 0;
	sock = SSL_get_rbio(ssl);
	if ((none = BIO_new(BIO_s_mem())) == NULL) {
		conn_fail(c, "queue echo", ENOMEM);
		return -1;
	}
	BIO_set_mem_eof_return(none, -1); /* empty: "try again" */
	BIO_up_ref(sock);		  /* ours while out of the SSL */
	SSL_set0_rbio(ssl, none);
	r = tls_drain(ssl, in);
	SSL_set0_rbio(ssl, sock); /* and the SSL's again; none freed */
	if (r == -1) {
		conn_fail(c, "queue echo", ENOMEM);
		return -1;
	}
	if (r == -2) {
		tls_fail(c, "TLS: ", tls_reason(reason, sizeof(reason)));
		return -1;
	}
	return r;
}

/*
 * Writes the echo just read straight from the input with SSL_write(), one
 * call per chain as the bufferevent's own write does, while nothing is
 * queued before it. Queued, it would cost the bufferevent an epoll_ctl()
 * to arm its write event and another to disarm it once written, about a
 * sixth of the system calls of a TLS stream. Stops at the first chain
 * SSL_write() does not take: when the socket is full the record is then
 * half-sent and OpenSSL wants the same chain again, which it gets as the
 * output's first once the rest is queued behind it; the bufferevent's
 * own write meets a socket error again and reports it. A TLS error is
 * reported once only (OpenSSL's state is then an error), so it closes
 * the connection here. Returns the bytes written, or -1 if c was freed.
 */
static ev_ssize_t
tls_write_now(struct conn *c, struct bufferevent *bev, struct evbuffer *in)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	struct evbuffer_iovec v;
	ev_ssize_t done = 0;
	char reason[256];
	int r;

	while (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0 &&
	       v.iov_len <= INT_MAX) {
		ERR_clear_error();
		if ((r = SSL_write(ssl, v.iov_base, (int)v.iov_len)) > 0) {
			evbuffer_drain(in, (size_t)r);
			done += r;
			continue;
		}
		switch (SSL_get_error(ssl, r)) {
		case SSL_ERROR_WANT_WRITE:
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_SYSCALL:
		case SSL_ERROR_ZERO_RETURN:
			ERR_clear_error();
			return done;
		default:
			break;
		}
		tls_fail(c, "TLS: ", tls_reason(reason, sizeof(reason)));
		return -1;
	}
	return done;
}

static void tls_event_cb(struct bufferevent *bev, short what, void *arg);

/*
 * Echo. The OpenSSL bufferevent reads into a fresh chain as large as the
 * read watermark allows, and with deferred callbacks every connection
 * read in one pass of the loop holds its chain until the callbacks run:
 * many peers each sending a few bytes at once would hold a large chain
 * each. So a connection reads into small chains until one fills (the
 * peer streams), then into large ones, and back when reads are small
 * again.
 */
static void
tls_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	uint64_t max = conn_max_buffer(c);
	size_t n, queued = evbuffer_get_length(out);
	ev_ssize_t wrote = 0;
	int closed;

	if ((closed = tls_take_pending(c, in)) == -1)
		return;
	if ((n = evbuffer_get_length(in)) == 0) {
		if (closed && !c->eof)
			tls_event_cb(bev, BEV_EVENT_EOF | BEV_EVENT_READING, c);
		return;
	}
	if (n >= TLS_READ_SMALL && !c->tls_large) {
		c->tls_large = 1;
		bufferevent_setwatermark(bev, EV_READ, 0, TLS_READ_LARGE);
	} else if (n < TLS_READ_SMALL / 4 && c->tls_large) {
		c->tls_large = 0;
		bufferevent_setwatermark(bev, EV_READ, 0, TLS_READ_SMALL);
	}
	c->uncounted += n;
	conn_received(c, n);
	if (queued == 0 && (bufferevent_get_enabled(bev) & EV_WRITE) &&
	    (wrote = tls_write_now(c, bev, in)) == -1)
		return;
	/* What is left waits for the socket: queued, the OpenSSL bufferevent
	 * arms its write event. */
	if (evbuffer_get_length(in) > 0 && evbuffer_add_buffer(out, in) == -1) {
		conn_fail(c, "queue echo", ENOMEM);
		return;
	}
	if (wrote > 0)
		conn_count_written(c);
	if (conn_must_hold_back(evbuffer_get_length(out), max)) {
		bufferevent_setwatermark(bev, EV_WRITE,
					 (size_t)conn_resume_mark(max), 0);
		bufferevent_disable(bev, EV_READ);
	}
	/* The peer's close_notify came in with the bytes: as the bufferevent
	 * would report it. */
	if (closed && !c->eof)
		tls_event_cb(bev, BEV_EVENT_EOF | BEV_EVENT_READING, c);
}

static void
tls_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_touch(c);
	conn_count_written(c);
	if (c->eof) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c, CONN_END_EOF);
		return;
	}
	if (!(bufferevent_get_enabled(bev) & EV_READ))
		bufferevent_enable(bev, EV_READ);
}

static void
tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		tls_handshake_done(c);
		/* Read ahead with the handshake's last records, the peer's
		 * first bytes may be in the SSL already, and nothing more on
		 * the socket to say so. */
		if (SSL_has_pending(bufferevent_openssl_get_ssl(bev)))
			tls_read_cb(bev, c);
		return;
	}
	if (!c->tls_open) {
		if (what & BEV_EVENT_TIMEOUT) {
			counter_add(&c->w->wc[WC_TLS_TIMEOUTS], 1);
			counter_add(&c->w->wc[WC_TLS_FAILURES], 1);
			tls_debug(c,
				  "TLS handshake not done within "
				  "handshake_timeout",
				  "");
			conn_free(c, CONN_END_HANDSHAKE);
			return;
		}
		tls_handshake_failed(
			c, (what & BEV_EVENT_EOF)
				   ? "the peer closed the connection mid-way"
				   : NULL);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* A write failed without a TLS error (a dirty shutdown being
		 * allowed, libevent calls it an EOF): the peer reset or closed
		 * the socket, and what is queued can never be written. */
		if ((what & BEV_EVENT_WRITING) || c->eof) {
			tls_fail(c, "TLS write failed: ",
				 "the peer reset or closed the connection");
			return;
		}
		/* Half-close: echo what is queued, then close. libevent 2.1
		 * stopped writing too as it saw the EOF: what is queued is
		 * written only once writing is enabled again. */
		c->eof = 1;
		bufferevent_disable(bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c, CONN_END_EOF);
		else
			bufferevent_enable(bev, EV_WRITE);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char reason[256];

		if (e != 0) {
			ERR_error_string_n(e, reason, sizeof(reason));
			while (bufferevent_get_openssl_error(bev) != 0)
				;
			tls_fail(c, "TLS: ", reason);
			return;
		}
		/* After an error, no close_notify (OpenSSL forbids it). */
		SSL_set_shutdown(bufferevent_openssl_get_ssl(bev),
				 SSL_SENT_SHUTDOWN);
		conn_fail(c, (what & BEV_EVENT_READING) ? "read" : "write",
			  EVUTIL_SOCKET_ERROR());
		return;
	}
	conn_free(c, CONN_END_ERROR);
}

/* Starts c's TLS: its bufferevent is an OpenSSL one, accepting. Returns
 * -1 if it cannot (c is the caller's to free). */
static int
tls_bev_start(struct conn *c)
{
	uint64_t ms = atomic_load_explicit(&c->w->srv->handshake_timeout_ms,
					   memory_order_relaxed);
	struct timeval tv = {(time_t)(ms / 1000),
			     (suseconds_t)(ms % 1000 * 1000)};
	SSL *ssl;

	if ((ssl = tls_ssl_new()) == NULL) {
		log_warnx("cannot start TLS on a connection: %s",
			  "no TLS context");
		return -1;
	}
	/* No BEV_OPT_CLOSE_ON_FREE: conn_free() closes the socket and
	 * frees the SSL itself, at once. Deferred callbacks: an OpenSSL
	 * bufferevent writes as soon as the echo is queued, and a write that
	 * fails would otherwise run the event callback, which frees the
	 * connection, inside the read callback still using it. */
	c->bev = bufferevent_openssl_socket_new(c->w->base, c->fd, ssl,
						BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL) {
		SSL_free(ssl);
		log_warnx("cannot create a TLS bufferevent");
		return -1;
	}
	c->tls = 1;
	/* The handshake's deadline is libevent's (set below): its loop
	 * must let libevent wait until it is over. */
	loop_hold(c->w->holds);
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, tls_read_cb, tls_write_cb, tls_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE,
				 (size_t)conn_resume_mark(conn_max_buffer(c)),
				 0);
	/* Small reads until the peer streams: see tls_read_cb(). */
	bufferevent_setwatermark(c->bev, EV_READ, 0, TLS_READ_SMALL);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

/* conn_free()'s part: close_notify if the session is sound (after an
 * EOF, or when idle or draining), then the bufferevent and its SSL. */
static void
tls_bev_free(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	if (c->tls_open && SSL_shutdown(ssl) < 0)
		ERR_clear_error(); /* best effort: the peer may be gone */
	bufferevent_free(c->bev);
	if (!c->tls_open)
		loop_release(c->w->holds, c->w->base);
	SSL_free(ssl);
}

/* The module's one symbol, found by tls_module.c with dlsym(). */
__attribute__((visibility("default")))
const struct tls_module echod_tls_module = {
	.version = ECHOD_VERSION,
	.conn_size = sizeof(struct conn),
	.check = tls_ctx_check,
	.prepare = tls_ctx_prepare,
	.commit = tls_ctx_commit,
	.abort = tls_ctx_abort,
	.shutdown = tls_ctx_shutdown,
	.conn_start = tls_bev_start,
	.conn_free = tls_bev_free,
};

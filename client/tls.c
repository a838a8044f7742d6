/*
 * tls.c: echo-client's TLS (--tls): one client SSL_CTX built from the
 * options (the CAs to verify with, or none with --insecure; a client
 * certificate for mutual TLS), an SSL per connection that sends SNI and
 * checks the server's name or address, and the words that say why a
 * handshake failed: OpenSSL's reason, and the verification's.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "client.h"

static const char *
client_tls_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

SSL_CTX *
client_tls_ctx(const struct client_options *o, char *err, size_t errlen)
{
	char why[256];
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "cannot create a TLS context: %s",
			 client_tls_reason(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (o->tls_insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if ((o->tls_ca != NULL && SSL_CTX_load_verify_locations(
						  ctx, o->tls_ca, NULL) != 1) ||
		    (o->tls_ca == NULL &&
		     SSL_CTX_set_default_verify_paths(ctx) != 1)) {
			snprintf(err, errlen, "--ca %s: %s",
				 o->tls_ca != NULL ? o->tls_ca : "(system)",
				 client_tls_reason(why, sizeof(why)));
			goto fail;
		}
	}
	if (o->tls_cert != NULL) {
		const char *key = o->tls_key != NULL ? o->tls_key : o->tls_cert;

		if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1) {
			snprintf(err, errlen, "--cert %s: %s", o->tls_cert,
				 client_tls_reason(why, sizeof(why)));
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) !=
			    1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			snprintf(err, errlen, "--key %s: %s", key,
				 client_tls_reason(why, sizeof(why)));
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Is name an IP address literal (no SNI for those, RFC 6066)? */
static int
client_tls_is_ip(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 ||
	       inet_pton(AF_INET6, name, buf) == 1;
}

SSL *
client_tls_ssl(SSL_CTX *ctx, const struct client_options *o)
{
	const char *name = o->tls_sni != NULL	  ? o->tls_sni
			   : o->unix_path == NULL ? o->host
						  : NULL;
	SSL *ssl;

	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	if (name == NULL)
		return ssl;
	/* SSL_set_tlsext_host_name(), without its cast of const away. */
	if (!client_tls_is_ip(name))
		SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME,
			 TLSEXT_NAMETYPE_host_name, (void *)(uintptr_t)name);
	if (!o->tls_insecure) {
		X509_VERIFY_PARAM *p = SSL_get0_param(ssl);

		if (client_tls_is_ip(name))
			X509_VERIFY_PARAM_set1_ip_asc(p, name);
		else
			X509_VERIFY_PARAM_set1_host(p, name, 0);
	}
	return ssl;
}

/* Why the handshake on ssl failed, from the errors libevent kept (e,
 * the first of them, or 0). */
const char *
client_tls_failure(SSL *ssl, unsigned long e, char *buf, size_t len)
{
	/* With --insecure, verification runs but is not enforced. */
	long v = SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE
			 ? X509_V_OK
			 : SSL_get_verify_result(ssl);
	char reason[256];

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason),
			 "the server closed the "
			 "connection");
	if (v != X509_V_OK)
		snprintf(buf, len, "%s (certificate: %s)", reason,
			 X509_verify_cert_error_string(v));
	else
		snprintf(buf, len, "%s", reason);
	return buf;
}

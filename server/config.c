/*
 * config.c: echod's settings: their defaults, the one table of keys that
 * drives the command line, --help and the config file alike, reading a
 * config file ("key = value" lines, '#' comments), and setting one key
 * from its text. Pure: errors go into the caller's buffer as
 * "file:line: message"; the caller decides what is fatal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"
#include "parse.h"

/* Longest line a config file may have. */
#define CONFIG_LINE_MAX 4096
/* Longest listen value: an address and its parameters. */
#define CONFIG_LISTEN_MAX 512

#define KEY(name, shortopt, kind, flags, field, min, max, arg, help)           \
	{                                                                      \
		name, shortopt, kind, flags, offsetof(struct config, field),   \
			min, max, arg, help, NULL                              \
	}
/* A string key with a check of its own. */
#define KEY_CHECKED(name, flags, field, arg, help, check)                      \
	{                                                                      \
		name, 0, CONFIG_STRING, flags, offsetof(struct config, field), \
			0, 0, arg, help, check                                 \
	}

const struct config_key config_keys[] = {
	KEY("listen", 'l', CONFIG_LISTEN, CONFIG_RELOAD, listen, 0, 0, "ADDR",
	    "listen on HOST:PORT, [IPv6]:PORT, *:PORT or unix:/PATH "
	    "(repeatable; default " ECHOD_DEFAULT_LISTEN ")"),
	KEY("threads", 't', CONFIG_UINT, 0, threads, 0, ECHOD_MAX_THREADS, "N",
	    "worker threads, 0 for one per CPU (default 0)"),
	KEY("max_buffer", 0, CONFIG_SIZE, CONFIG_RELOAD, max_buffer,
	    ECHOD_MIN_MAX_BUFFER, ECHOD_MAX_MAX_BUFFER, "SIZE",
	    "echo pending per connection before reading pauses (default 1m)"),
	KEY("max_connections", 0, CONFIG_UINT, CONFIG_RELOAD, max_connections,
	    1, ECHOD_MAX_CONNECTIONS, "N",
	    "connections at once; past it new ones are closed (default 10000)"),
	KEY("max_connections_per_ip", 0, CONFIG_UINT, CONFIG_RELOAD,
	    max_connections_per_ip, 0, ECHOD_MAX_CONNECTIONS, "N",
	    "connections at once from one address, 0 for no limit (default 0)"),
	KEY("idle_timeout", 0, CONFIG_DURATION, CONFIG_RELOAD, idle_timeout_ms,
	    0, ECHOD_MAX_DURATION_MS, "TIME",
	    "close a connection silent this long, 0 for never (default 0)"),
	KEY("tcp_keepalive", 0, CONFIG_BOOL, CONFIG_RELOAD, tcp_keepalive, 0, 0,
	    "yes|no", "TCP keepalive probes on connections (default yes)"),
	KEY("backlog", 0, CONFIG_UINT, CONFIG_RELOAD, backlog, 1, 65535, "N",
	    "length of the listen queue (default 511)"),
	KEY("unix_mode", 0, CONFIG_MODE, CONFIG_RELOAD, unix_mode, 0, 0777,
	    "MODE", "permissions of Unix socket files, octal (default 0660)"),
	KEY_CHECKED("tls_certificate", CONFIG_RELOAD, tls_certificate, "FILE",
		    "certificate (PEM, chain first to last) for tls listeners",
		    tls_path_check),
	KEY_CHECKED("tls_certificate_key", CONFIG_RELOAD, tls_certificate_key,
		    "FILE", "private key (PEM) of tls_certificate",
		    tls_path_check),
	KEY_CHECKED(
		"tls_client_certificate", CONFIG_RELOAD, tls_client_certificate,
		"FILE",
		"CA certificates (PEM) that client certificates must chain to",
		tls_path_check),
	KEY("tls_verify_client", 0, CONFIG_CHOICE, CONFIG_RELOAD,
	    tls_verify_client, 0, 0, "no|optional|yes",
	    "ask tls clients for a certificate (default no)"),
	KEY_CHECKED(
		"tls_protocols", CONFIG_RELOAD, tls_protocols, "LIST",
		"TLS versions allowed (default \"" ECHOD_DEFAULT_TLS_PROTOCOLS
		"\")",
		tls_protocols_check),
	KEY("tls_ciphers", 0, CONFIG_STRING, CONFIG_RELOAD, tls_ciphers, 0, 0,
	    "LIST", "OpenSSL cipher list for TLSv1.2 (default OpenSSL's)"),
	KEY("handshake_timeout", 0, CONFIG_DURATION, CONFIG_RELOAD,
	    handshake_timeout_ms, 1, ECHOD_MAX_DURATION_MS, "TIME",
	    "close a tls connection not through its handshake by then "
	    "(default 10s)"),
	KEY("proxy_protocol_timeout", 0, CONFIG_DURATION, CONFIG_RELOAD,
	    proxy_protocol_timeout_ms, 1, ECHOD_MAX_DURATION_MS, "TIME",
	    "close a proxy_protocol connection with no whole PROXY header by "
	    "then (default 5s)"),
	KEY("udp_rate_limit", 0, CONFIG_UINT, CONFIG_RELOAD, udp_rate_limit, 0,
	    1000000000, "N",
	    "datagrams per second answered per source address, 0 for no "
	    "limit (default 1000)"),
	KEY("shutdown_timeout", 0, CONFIG_DURATION, CONFIG_RELOAD,
	    shutdown_timeout_ms, 0, ECHOD_MAX_DURATION_MS, "TIME",
	    "on SIGTERM, time given to connections to finish (default 10s)"),
	KEY("log_level", 0, CONFIG_LEVEL, CONFIG_RELOAD, log_level, 0, 0,
	    "LEVEL", "error, warn, info or debug (default info)"),
	KEY("log_connections", 0, CONFIG_BOOL, CONFIG_RELOAD, log_connections,
	    0, 0, "yes|no",
	    "log each closed connection: client, times, bytes, why "
	    "(default no)"),
	KEY("log_format", 0, CONFIG_CHOICE, CONFIG_RELOAD, log_format, 0, 0,
	    "text|json", "log lines as text or as JSON objects (default text)"),
	KEY_CHECKED("admin_listen", CONFIG_RELOAD, admin_listen, "HOST:PORT",
		    "serve /metrics and /healthz over HTTP there (default off)",
		    admin_check),
	KEY("syslog", 0, CONFIG_BOOL, CONFIG_FLAG, syslog, 0, 0, NULL,
	    "log to syslog instead of standard error"),
	KEY("daemonize", 'd', CONFIG_BOOL, CONFIG_FLAG, daemonize, 0, 0, NULL,
	    "detach into the background once listening"),
	KEY("pid_file", 'p', CONFIG_STRING, 0, pid_file, 0, 0, "FILE",
	    "write the process id to FILE (default none)"),
	KEY("user", 'u', CONFIG_STRING, 0, user, 0, 0, "USER",
	    "switch to USER and its groups after binding (default none)"),
};

const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

/* options.c sizes its getopt tables by ECHOD_MAX_KEYS. */
_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= ECHOD_MAX_KEYS,
	       "raise ECHOD_MAX_KEYS: options.c cannot hold every key");

void
config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->threads = 0;
	cfg->max_buffer = ECHOD_DEFAULT_MAX_BUFFER;
	cfg->max_connections = ECHOD_DEFAULT_MAX_CONNECTIONS;
	cfg->max_connections_per_ip = 0;
	cfg->idle_timeout_ms = 0;
	cfg->tcp_keepalive = 1;
	cfg->backlog = ECHOD_DEFAULT_BACKLOG;
	cfg->unix_mode = ECHOD_DEFAULT_UNIX_MODE;
	cfg->tls_verify_client = TLS_VERIFY_NO;
	cfg->udp_rate_limit = ECHOD_DEFAULT_UDP_RATE_LIMIT;
	cfg->handshake_timeout_ms = ECHOD_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	cfg->proxy_protocol_timeout_ms = ECHOD_DEFAULT_PROXY_TIMEOUT_MS;
	cfg->shutdown_timeout_ms = ECHOD_DEFAULT_SHUTDOWN_TIMEOUT_MS;
	cfg->log_level = LOG_LEVEL_INFO;
}

void
config_clear_listen(struct config *cfg)
{
	int i;

	for (i = 0; i < cfg->nlisten; i++) {
		free(cfg->listen[i].text);
		cfg->listen[i].text = NULL;
	}
	cfg->nlisten = 0;
}

void
config_free(struct config *cfg)
{
	config_clear_listen(cfg);
	free(cfg->pid_file);
	free(cfg->user);
	free(cfg->file);
	free(cfg->tls_certificate);
	free(cfg->tls_certificate_key);
	free(cfg->tls_client_certificate);
	free(cfg->tls_protocols);
	free(cfg->tls_ciphers);
	free(cfg->admin_listen);
	cfg->admin_listen = NULL;
	cfg->pid_file = cfg->user = cfg->file = NULL;
	cfg->tls_certificate = cfg->tls_certificate_key = NULL;
	cfg->tls_client_certificate = cfg->tls_protocols = NULL;
	cfg->tls_ciphers = NULL;
}

const struct config_key *
config_key_find(const char *name)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/*
 * "deferred" or "deferred=TIME": the kernel hands a connection over once
 * its first bytes (or its FIN) arrive, or once TIME (1s when not given,
 * in whole seconds) passed in silence (TCP_DEFER_ACCEPT).
 */
static int
config_parse_deferred(const char *word, struct listen_conf *lc, char *err,
		      size_t errlen)
{
	uint64_t ms = (uint64_t)ECHOD_DEFERRED_DEFAULT_S * 1000;

	if (lc->defer_s > 0) {
		snprintf(err, errlen, "'deferred' is given twice");
		return -1;
	}
	if (word[8] == '=' &&
	    parse_duration(word + 9, 1000,
			   (uint64_t)ECHOD_DEFERRED_MAX_S * 1000, &ms, err,
			   errlen) == -1)
		return -1;
	if (ms % 1000 != 0) {
		snprintf(err, errlen,
			 "'%s' is not a whole number of seconds, which is "
			 "what the kernel counts",
			 word + 9);
		return -1;
	}
	lc->defer_s = (int)(ms / 1000);
	return 0;
}

/*
 * Reads "ADDRESS [PARAMETER...]": the address (HOST:PORT, [IPv6]:PORT,
 * *:PORT or unix:/PATH) decides the kind, and parameters adjust what the
 * line's connections get (tls, and the faults of fault.c). text gets the
 * address: the line's identity across reloads.
 */
static int
config_parse_listen(const char *value, struct listen_conf *lc, char *text,
		    size_t textlen, char *err, size_t errlen)
{
	char words[CONFIG_LISTEN_MAX], *word, *rest = words, msg[256];
	const char *addr;

	if (strlen(value) >= sizeof(words)) {
		snprintf(err, errlen, "is longer than %d bytes",
			 CONFIG_LISTEN_MAX - 1);
		return -1;
	}
	snprintf(words, sizeof(words), "%s", value);
	while ((word = strsep(&rest, " \t")) != NULL && *word == '\0')
		;
	if (word == NULL) {
		snprintf(err, errlen, "has no address");
		return -1;
	}
	addr = word;
	memset(lc, 0, sizeof(*lc));
	lc->profile.transport = CONN_TRANSPORT_PLAIN;
	lc->profile.preamble = CONN_PREAMBLE_NONE;
	lc->profile.behaviour = CONN_BEHAVIOUR_ECHO;
	lc->profile.fault.chance = FAULT_CHANCE_ALL;
	while ((word = strsep(&rest, " \t")) != NULL) {
		int rc;

		if (*word == '\0')
			continue;
		if (strcmp(word, "udp") == 0) {
			if (lc->kind == LISTEN_UDP) {
				snprintf(err, errlen,
					 "has a bad parameter 'udp': it is "
					 "given twice");
				return -1;
			}
			lc->kind = LISTEN_UDP;
			continue;
		}
		if (strcmp(word, "reuseport") == 0) {
			if (lc->reuseport) {
				snprintf(err, errlen,
					 "has a bad parameter 'reuseport': it "
					 "is given twice");
				return -1;
			}
			lc->reuseport = 1;
			continue;
		}
		if (strcmp(word, "deferred") == 0 ||
		    strncmp(word, "deferred=", 9) == 0) {
			if (config_parse_deferred(word, lc, msg, sizeof(msg)) ==
			    -1) {
				snprintf(err, errlen,
					 "has a bad parameter '%s': %s", word,
					 msg);
				return -1;
			}
			continue;
		}
		if (strcmp(word, "proxy_protocol") == 0) {
			if (lc->profile.preamble == CONN_PREAMBLE_PROXY) {
				snprintf(err, errlen,
					 "has a bad parameter "
					 "'proxy_protocol': it is given twice");
				return -1;
			}
			lc->profile.preamble = CONN_PREAMBLE_PROXY;
			continue;
		}
		if (strcmp(word, "tls") == 0) {
			if (lc->profile.transport == CONN_TRANSPORT_TLS) {
				snprintf(err, errlen,
					 "has a bad parameter 'tls': it is "
					 "given twice");
				return -1;
			}
			lc->profile.transport = CONN_TRANSPORT_TLS;
			continue;
		}
		rc = fault_parse_param(&lc->profile.fault, word, msg,
				       sizeof(msg));
		if (rc == -1) {
			snprintf(err, errlen, "has a bad parameter '%s': %s",
				 word, msg);
			return -1;
		}
		if (rc == 0) {
			snprintf(err, errlen, "has an unknown parameter '%s'",
				 word);
			return -1;
		}
	}
	if (fault_check(&lc->profile.fault, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "has parameters that do not fit: %s",
			 msg);
		return -1;
	}
	if (fault_active(&lc->profile.fault))
		lc->profile.behaviour = CONN_BEHAVIOUR_FAULT;
	if (lc->kind == LISTEN_UDP &&
	    (lc->profile.transport == CONN_TRANSPORT_TLS ||
	     lc->profile.behaviour == CONN_BEHAVIOUR_FAULT ||
	     lc->profile.preamble == CONN_PREAMBLE_PROXY)) {
		snprintf(err, errlen,
			 "has parameters that do not fit: 'udp' echoes "
			 "datagrams, with no %s",
			 lc->profile.transport == CONN_TRANSPORT_TLS
				 ? "TLS (DTLS is not served)"
			 : lc->profile.preamble == CONN_PREAMBLE_PROXY
				 ? "PROXY header (it starts a stream)"
				 : "faults (they act on streams)");
		return -1;
	}
	if (lc->profile.transport == CONN_TRANSPORT_TLS &&
	    lc->profile.behaviour == CONN_BEHAVIOUR_FAULT) {
		snprintf(err, errlen,
			 "has parameters that do not fit: faults are not "
			 "available on a tls listener yet; give them a plain "
			 "one");
		return -1;
	}
	if (lc->defer_s > 0 && lc->kind == LISTEN_UDP) {
		snprintf(err, errlen,
			 "has parameters that do not fit: 'deferred' waits "
			 "for a TCP connection's first bytes; 'udp' has no "
			 "connections");
		return -1;
	}
	if (lc->reuseport && lc->kind == LISTEN_UDP) {
		snprintf(err, errlen,
			 "has parameters that do not fit: 'udp' has a socket "
			 "per worker already; 'reuseport' is for TCP");
		return -1;
	}
	/* The address alone (and that it is UDP, or reuseport: other
	 * sockets) is the line's identity: a reload that changes only
	 * parameters keeps the socket and applies them to new
	 * connections. */
	snprintf(text, textlen, "%s%s", addr,
		 lc->kind == LISTEN_UDP ? " udp"
		 : lc->reuseport	? " reuseport"
					: "");
	if (strncmp(addr, "unix:", 5) == 0) {
		const char *path = addr + 5;

		if (*path != '/') {
			snprintf(err, errlen,
				 "has a bad address: '%s': a Unix socket needs "
				 "an absolute path, unix:/PATH",
				 addr);
			return -1;
		}
		if (strlen(path) > ECHOD_UNIX_PATH_MAX) {
			snprintf(err, errlen,
				 "has a bad address: '%s': a Unix socket's "
				 "path is at most %zu bytes",
				 addr, ECHOD_UNIX_PATH_MAX);
			return -1;
		}
		if (lc->kind == LISTEN_UDP) {
			snprintf(err, errlen,
				 "has a parameter that does not fit: 'udp' "
				 "needs an IP address, not a Unix socket");
			return -1;
		}
		if (lc->profile.fault.has_reset) {
			snprintf(err, errlen,
				 "has a parameter that does not fit: "
				 "'reset_after=' needs TCP: a Unix socket "
				 "has no reset");
			return -1;
		}
		if (lc->reuseport || lc->defer_s > 0) {
			snprintf(err, errlen,
				 "has parameters that do not fit: '%s' is for "
				 "TCP, not a Unix socket",
				 lc->reuseport ? "reuseport" : "deferred");
			return -1;
		}
		lc->kind = LISTEN_UNIX;
		snprintf(lc->path, sizeof(lc->path), "%s", path);
		snprintf(text, textlen, "%s", addr);
		return 0;
	}
	if (addr_parse(addr, &lc->addr, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "has a bad address: %s", msg);
		return -1;
	}
	if (lc->kind != LISTEN_UDP)
		lc->kind = LISTEN_TCP;
	return 0;
}

/* Adds a listen line; the caller sets its line number. Two lines that
 * name one address in different words are listener_check()'s to find. */
static int
config_add_listen(struct config *cfg, const char *value, char *err,
		  size_t errlen)
{
	struct listen_conf *lc, parsed;
	char text[CONFIG_LISTEN_MAX];
	int i;

	if (config_parse_listen(value, &parsed, text, sizeof(text), err,
				errlen) == -1)
		return -1;
	/* Port 0 asks for a fresh port each time: not a duplicate. */
	for (i = 0; i < cfg->nlisten; i++) {
		if ((parsed.kind == LISTEN_UNIX || parsed.addr.port != 0) &&
		    strcmp(cfg->listen[i].text, text) == 0) {
			snprintf(err, errlen, "lists '%s' twice", text);
			return -1;
		}
	}
	if (cfg->nlisten == ECHOD_MAX_LISTEN) {
		snprintf(err, errlen, "has more than %d addresses",
			 ECHOD_MAX_LISTEN);
		return -1;
	}
	lc = &cfg->listen[cfg->nlisten];
	*lc = parsed;
	if ((lc->text = strdup(text)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cfg->nlisten++;
	return 0;
}

int
config_set(struct config *cfg, const struct config_key *key, const char *value,
	   char *err, size_t errlen)
{
	char *field = (char *)cfg + key->offset;
	char lo[32], hi[32], perr[128];
	uint64_t v;
	int b;

	switch (key->kind) {
	case CONFIG_LISTEN:
		return config_add_listen(cfg, value, err, errlen);
	case CONFIG_UINT:
		if (parse_uint(value, key->min, key->max, &v, perr,
			       sizeof(perr)) == -1) {
			snprintf(err, errlen,
				 "must be a whole number from %llu to %llu, "
				 "not '%s'",
				 (unsigned long long)key->min,
				 (unsigned long long)key->max, value);
			return -1;
		}
		*(unsigned *)(void *)field = (unsigned)v;
		return 0;
	case CONFIG_SIZE:
		if (parse_size(value, key->min, key->max, &v, perr,
			       sizeof(perr)) == -1) {
			snprintf(err, errlen,
				 "must be a size from %s to %s (k, m or g "
				 "suffix), not '%s'",
				 parse_format_size(key->min, lo, sizeof(lo)),
				 parse_format_size(key->max, hi, sizeof(hi)),
				 value);
			return -1;
		}
		*(uint64_t *)(void *)field = v;
		return 0;
	case CONFIG_DURATION:
		if (parse_duration(value, key->min, key->max, &v, perr,
				   sizeof(perr)) == -1) {
			snprintf(
				err, errlen,
				"must be a duration from %s to %s (ms, s, m "
				"or h suffix), not '%s'",
				parse_format_duration(key->min, lo, sizeof(lo)),
				parse_format_duration(key->max, hi, sizeof(hi)),
				value);
			return -1;
		}
		*(uint64_t *)(void *)field = v;
		return 0;
	case CONFIG_BOOL:
		if (parse_bool(value, &b, perr, sizeof(perr)) == -1) {
			snprintf(err, errlen, "must be yes or no, not '%s'",
				 value);
			return -1;
		}
		*(int *)(void *)field = b;
		return 0;
	case CONFIG_LEVEL:
		if (log_level_parse(value, &b) == -1) {
			snprintf(err, errlen,
				 "must be error, warn, info or debug, not '%s'",
				 value);
			return -1;
		}
		*(int *)(void *)field = b;
		return 0;
	case CONFIG_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(value, &end, 8);
		if (*value < '0' || *value > '7' || *end != '\0' ||
		    errno != 0 || m > key->max) {
			snprintf(err, errlen,
				 "must be an octal mode from 0 to %llo, "
				 "not '%s'",
				 (unsigned long long)key->max, value);
			return -1;
		}
		*(unsigned *)(void *)field = (unsigned)m;
		return 0;
	}
	case CONFIG_CHOICE: {
		const char *w = key->argname;
		size_t n = strlen(value);
		int i;

		for (i = 0; w != NULL; i++) {
			const char *bar = strchr(w, '|');
			size_t len =
				bar != NULL ? (size_t)(bar - w) : strlen(w);

			if (len == n && strncmp(w, value, n) == 0) {
				*(int *)(void *)field = i;
				return 0;
			}
			w = bar != NULL ? bar + 1 : NULL;
		}
		snprintf(err, errlen, "must be one of %s, not '%s'",
			 key->argname, value);
		return -1;
	}
	case CONFIG_STRING: {
		char **sp = (char **)(void *)field;
		char *copy;

		if (*value == '\0') {
			snprintf(err, errlen, "must not be empty");
			return -1;
		}
		if (key->check != NULL && key->check(value, err, errlen) == -1)
			return -1;
		if ((copy = strdup(value)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(*sp);
		*sp = copy;
		return 0;
	}
	}
	snprintf(err, errlen, "internal error: key kind %d", (int)key->kind);
	return -1;
}

/* Edit distance, for "did you mean" on unknown keys. */
static size_t
config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[64], prev, tmp;

	if (la >= 64 || lb >= 64)
		return 64;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t best = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

static char *
config_trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
			   end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

int
config_parse_line(struct config *cfg, char *line, int lineno, int *seen,
		  char *err, size_t errlen)
{
	const struct config_key *key;
	char *eq, *name, *value, *hash, msg[384];
	size_t i;
	int quoted = 0;

	line = config_trim(line);
	if (*line == '\0' || *line == '#')
		return 0;
	if ((eq = strchr(line, '=')) == NULL) {
		snprintf(err, errlen, "expected 'key = value', got '%.60s'",
			 line);
		return -1;
	}
	*eq = '\0';
	name = config_trim(line);
	value = config_trim(eq + 1);
	if (*value == '"') {
		/* A quoted value may hold '#'; only a comment may follow. */
		char *close = strchr(value + 1, '"');
		char *rest;

		if (close == NULL) {
			snprintf(err, errlen, "'%s' has no closing quote",
				 name);
			return -1;
		}
		*close = '\0';
		rest = config_trim(close + 1);
		if (*rest != '\0' && *rest != '#') {
			snprintf(err, errlen,
				 "'%s' has text after its closing quote", name);
			return -1;
		}
		value++;
		quoted = 1;
	} else {
		/* A comment may follow a value after a blank. */
		for (hash = value; (hash = strchr(hash, '#')) != NULL; hash++) {
			if (hash > value &&
			    (hash[-1] == ' ' || hash[-1] == '\t')) {
				*hash = '\0';
				value = config_trim(value);
				break;
			}
		}
	}
	if (*name == '\0') {
		snprintf(err, errlen, "missing key before '='");
		return -1;
	}
	if ((key = config_key_find(name)) == NULL) {
		const char *best = NULL;
		size_t d, bestd = 3;

		for (i = 0; i < config_nkeys; i++) {
			d = config_distance(name, config_keys[i].name);
			if (d < bestd) {
				bestd = d;
				best = config_keys[i].name;
			}
		}
		if (best != NULL)
			snprintf(err, errlen,
				 "unknown key '%s' (did you mean '%s'?)", name,
				 best);
		else
			snprintf(err, errlen, "unknown key '%s'", name);
		return -1;
	}
	if (*value == '\0' && !quoted) {
		snprintf(err, errlen, "'%s' has no value", name);
		return -1;
	}
	i = (size_t)(key - config_keys);
	if (key->kind != CONFIG_LISTEN && seen[i] != 0) {
		snprintf(err, errlen, "'%s' is already set on line %d", name,
			 seen[i]);
		return -1;
	}
	if (seen[i] == 0)
		seen[i] = lineno;
	if (config_set(cfg, key, value, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "'%s' %s", name, msg);
		return -1;
	}
	if (key->kind == CONFIG_LISTEN)
		cfg->listen[cfg->nlisten - 1].line = lineno;
	return 0;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	int seen[sizeof(config_keys) / sizeof(config_keys[0])] = {0};
	char msg[512], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if (len > CONFIG_LINE_MAX)
			snprintf(msg, sizeof(msg), "line longer than %d bytes",
				 CONFIG_LINE_MAX);
		else if (strlen(line) != (size_t)len)
			snprintf(msg, sizeof(msg), "line contains a NUL byte");
		else if (config_parse_line(cfg, line, lineno, seen, msg,
					   sizeof(msg)) == 0)
			continue;
		snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
		rc = -1;
		break;
	}
	if (rc == 0 && ferror(fp)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(fp);
	if (rc == 0) {
		free(cfg->file);
		if ((cfg->file = strdup(path)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return rc;
}

int
config_finish(struct config *cfg, char *err, size_t errlen)
{
	if (cfg->nlisten == 0)
		return config_add_listen(cfg, ECHOD_DEFAULT_LISTEN, err,
					 errlen);
	return 0;
}

/* The key's field in cfg. */
static void *
config_field(const struct config_key *key, const struct config *cfg)
{
	return (char *)(uintptr_t)cfg + key->offset;
}

/* Do a and b hold the same value for key? (The listen set is compared
 * by listener.c, which opens and closes what differs.) */
int
config_key_equal(const struct config_key *key, const struct config *a,
		 const struct config *b)
{
	const void *fa = config_field(key, a), *fb = config_field(key, b);
	const char *sa, *sb;
	int i;

	switch (key->kind) {
	case CONFIG_LISTEN:
		if (a->nlisten != b->nlisten)
			return 0;
		for (i = 0; i < a->nlisten; i++)
			if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
				return 0;
		return 1;
	case CONFIG_UINT:
	case CONFIG_MODE:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case CONFIG_SIZE:
	case CONFIG_DURATION:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case CONFIG_BOOL:
	case CONFIG_LEVEL:
	case CONFIG_CHOICE:
		return *(const int *)fa == *(const int *)fb;
	case CONFIG_STRING:
		sa = *(char *const *)fa;
		sb = *(char *const *)fb;
		return sa == sb ||
		       (sa != NULL && sb != NULL && !strcmp(sa, sb));
	}
	return 0;
}

/* Exchanges key's values between a and b (a reload keeps the running
 * value of a key it cannot apply). Not for the listen set. */
void
config_key_swap(const struct config_key *key, struct config *a,
		struct config *b)
{
	unsigned char tmp[sizeof(uint64_t) > sizeof(char *) ? sizeof(uint64_t)
							    : sizeof(char *)];
	size_t n;

	switch (key->kind) {
	case CONFIG_UINT:
	case CONFIG_MODE:
		n = sizeof(unsigned);
		break;
	case CONFIG_SIZE:
	case CONFIG_DURATION:
		n = sizeof(uint64_t);
		break;
	case CONFIG_BOOL:
	case CONFIG_LEVEL:
	case CONFIG_CHOICE:
		n = sizeof(int);
		break;
	case CONFIG_STRING:
		n = sizeof(char *);
		break;
	case CONFIG_LISTEN:
	default:
		return;
	}
	memcpy(tmp, config_field(key, a), n);
	memcpy(config_field(key, a), config_field(key, b), n);
	memcpy(config_field(key, b), tmp, n);
}

/*
 * options.c: echo-client's command line, parsed by a pure function that
 * never prints or exits: defaults, getopt_long, value checks through
 * common/parse.c, the combinations that make no sense (--load's options
 * without --load, -n with it, ...), and a one-line message for each
 * usage error. Also the --help text, so the options and their
 * description live in one file.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "options.h"
#include "parse.h"

#define OPTIONS_SHORT ":n:m:s:t:c:d:U:uqhV"

/* Long-only options: values past any character. */
enum {
	OPTIONS_LOAD = 256,
	OPTIONS_MODE,
	OPTIONS_WARMUP,
	OPTIONS_THREADS,
	OPTIONS_WINDOW,
	OPTIONS_RATE,
	OPTIONS_JSON,
	OPTIONS_SERVER_PID,
	OPTIONS_EXPECT_CLOSE, /* sequential mode only: not --load's */
	OPTIONS_EXPECT_RESET,
	OPTIONS_TLS, /* TLS: in the sequential mode */
	OPTIONS_CA,
	OPTIONS_INSECURE,
	OPTIONS_SNI,
	OPTIONS_CERT,
	OPTIONS_KEY,
	OPTIONS_RETRIES, /* with -u */
	OPTIONS_PROXY,
	OPTIONS_PROXY_SOURCE, /* with --proxy */
	OPTIONS_SOURCE,
};

static const struct option options_long[] = {
	{"count", required_argument, NULL, 'n'},
	{"message", required_argument, NULL, 'm'},
	{"size", required_argument, NULL, 's'},
	{"timeout", required_argument, NULL, 't'},
	{"quiet", no_argument, NULL, 'q'},
	{"unix", required_argument, NULL, 'U'},
	{"udp", no_argument, NULL, 'u'},
	{"retries", required_argument, NULL, OPTIONS_RETRIES},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"load", no_argument, NULL, OPTIONS_LOAD},
	{"mode", required_argument, NULL, OPTIONS_MODE},
	{"connections", required_argument, NULL, 'c'},
	{"duration", required_argument, NULL, 'd'},
	{"warmup", required_argument, NULL, OPTIONS_WARMUP},
	{"threads", required_argument, NULL, OPTIONS_THREADS},
	{"window", required_argument, NULL, OPTIONS_WINDOW},
	{"rate", required_argument, NULL, OPTIONS_RATE},
	{"json", no_argument, NULL, OPTIONS_JSON},
	{"server-pid", required_argument, NULL, OPTIONS_SERVER_PID},
	{"expect-close", required_argument, NULL, OPTIONS_EXPECT_CLOSE},
	{"expect-reset", required_argument, NULL, OPTIONS_EXPECT_RESET},
	{"tls", no_argument, NULL, OPTIONS_TLS},
	{"ca", required_argument, NULL, OPTIONS_CA},
	{"insecure", no_argument, NULL, OPTIONS_INSECURE},
	{"sni", required_argument, NULL, OPTIONS_SNI},
	{"cert", required_argument, NULL, OPTIONS_CERT},
	{"key", required_argument, NULL, OPTIONS_KEY},
	{"proxy", required_argument, NULL, OPTIONS_PROXY},
	{"proxy-source", required_argument, NULL, OPTIONS_PROXY_SOURCE},
	{"source", required_argument, NULL, OPTIONS_SOURCE},
	{NULL, 0, NULL, 0},
};

static const char *const options_modes[] = {
	[CLIENT_MODE_PINGPONG] = "pingpong",
	[CLIENT_MODE_STREAM] = "stream",
	[CLIENT_MODE_CONNRATE] = "connrate",
	[CLIENT_MODE_HOLD] = "hold",
};

#define OPTIONS_NMODES (sizeof(options_modes) / sizeof(options_modes[0]))

/* Long name of the option whose short form (or value) is c, or NULL. */
static const char *
options_long_name(int c)
{
	const struct option *lo;

	for (lo = options_long; lo->name != NULL; lo++)
		if (lo->val == c)
			return lo->name;
	return NULL;
}

/* The option as messages show it: "-n/--count", or "--mode" for a
 * long-only one. */
static const char *
options_name(int c, char *buf, size_t len)
{
	if (c < OPTIONS_LOAD)
		snprintf(buf, len, "-%c/--%s", c, options_long_name(c));
	else
		snprintf(buf, len, "--%s", options_long_name(c));
	return buf;
}

/* Reports a bad value: "option -n/--count: 'x' is not a number". */
static int
options_bad_value(int c, const char *why, char *err, size_t errlen)
{
	char name[64];

	snprintf(err, errlen, "option %s: %s",
		 options_name(c, name, sizeof(name)), why);
	return -1;
}

/* Reports what getopt_long() returned '?' or ':' for. */
static int
options_bad_option(int c, char **argv, char *err, size_t errlen)
{
	const char *name = options_long_name(optopt);
	char full[64];

	if (c == ':')
		snprintf(err, errlen, "option %s needs a value",
			 options_name(optopt, full, sizeof(full)));
	else if (optopt == 0)
		snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
	else if (name != NULL)
		/* A known option can only be refused for "--quiet=x". */
		snprintf(err, errlen, "option '--%s' does not take a value",
			 name);
	else
		snprintf(err, errlen, "unknown option '-%c'", optopt);
	return -1;
}

static int
options_parse_mode(const char *s, enum client_mode *mode, char *why,
		   size_t whylen)
{
	size_t i;

	for (i = 0; i < OPTIONS_NMODES; i++) {
		if (strcmp(s, options_modes[i]) == 0) {
			*mode = (enum client_mode)i;
			return 0;
		}
	}
	snprintf(why, whylen,
		 "'%s' is not a mode (pingpong, stream, connrate or hold)", s);
	return -1;
}

const char *
client_options_mode_name(enum client_mode mode)
{
	if ((size_t)mode >= OPTIONS_NMODES)
		return "?";
	return options_modes[mode];
}

static void
options_defaults(struct client_options *o)
{
	memset(o, 0, sizeof(*o));
	o->action = CLIENT_RUN;
	o->host = CLIENT_DEFAULT_HOST;
	snprintf(o->port, sizeof(o->port), "%s", CLIENT_DEFAULT_PORT);
	o->count = CLIENT_DEFAULT_COUNT;
	o->message = CLIENT_DEFAULT_MESSAGE;
	o->message_len = strlen(CLIENT_DEFAULT_MESSAGE);
	o->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
	o->mode = CLIENT_MODE_PINGPONG;
	o->connections = CLIENT_DEFAULT_CONNECTIONS;
	o->threads = CLIENT_DEFAULT_THREADS;
	o->duration_ms = CLIENT_DEFAULT_DURATION_MS;
	o->warmup_ms = CLIENT_DEFAULT_WARMUP_MS;
	o->window = CLIENT_DEFAULT_WINDOW;
	o->retries = CLIENT_DEFAULT_RETRIES;
}

static int
options_set_port(struct client_options *o, const char *s, char *err,
		 size_t errlen)
{
	uint64_t port;
	char why[128];

	if (parse_uint(s, 1, 65535, &port, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "bad port: %s", why);
		return -1;
	}
	snprintf(o->port, sizeof(o->port), "%u", (unsigned)port);
	return 0;
}

/* --proxy-source: a numeric IPv4 or [IPv6] address and a port. */
static int
options_parse_source(const char *arg, struct addr *a, char *why, size_t whylen)
{
	struct addr_spec spec;
	char port[8];

	if (addr_parse(arg, &spec, why, whylen) == -1)
		return -1;
	if (spec.wildcard) {
		snprintf(why, whylen, "'%s': a source is one address", arg);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", spec.port);
	if (addr_resolve(spec.host, port, 0, a, 1, why, whylen) < 1 ||
	    (a->ss.ss_family != AF_INET && a->ss.ss_family != AF_INET6)) {
		snprintf(why, whylen, "'%s': not an IPv4 or IPv6 address", arg);
		return -1;
	}
	return 0;
}

/* --source: a numeric IPv4 or IPv6 address, no port. */
static int
options_parse_local(const char *arg, struct addr *a, char *why, size_t whylen)
{
	if (*arg == '\0' || strchr(arg, '[') != NULL ||
	    addr_resolve(arg, "0", 0, a, 1, why, whylen) < 1 ||
	    (a->ss.ss_family != AF_INET && a->ss.ss_family != AF_INET6)) {
		snprintf(why, whylen, "'%s': not an IPv4 or IPv6 address", arg);
		return -1;
	}
	return 0;
}

/* Which options were given, for the checks of combinations. */
struct options_seen {
	int count, message, window, rate, expect, retries, proxy_source;
	int tls_only;  /* the first option that needs --tls, or 0 */
	int load_only; /* the first option that needs --load, or 0 */
};

/* Applies option c with value arg (getopt's optarg). */
static int
options_set(struct client_options *o, int c, const char *arg,
	    struct options_seen *seen, char *err, size_t errlen)
{
	char why[128];
	int rc = 0;

	switch (c) {
	case 'n':
		rc = parse_uint(arg, 1, CLIENT_MAX_COUNT, &o->count, why,
				sizeof(why));
		seen->count = 1;
		break;
	case 'm':
		if (*arg == '\0')
			return options_bad_value(c, "the message is empty", err,
						 errlen);
		o->message = arg;
		o->message_len = strlen(arg);
		seen->message = 1;
		break;
	case 's':
		rc = parse_size(arg, 1, CLIENT_MAX_SIZE, &o->size, why,
				sizeof(why));
		break;
	case 't':
		rc = parse_duration(arg, 1, CLIENT_MAX_TIMEOUT_MS,
				    &o->timeout_ms, why, sizeof(why));
		break;
	case 'q':
		o->quiet = 1;
		break;
	case 'U':
		if (*arg == '\0' || strlen(arg) > CLIENT_UNIX_PATH_MAX)
			return options_bad_value(
				c, "a socket path is 1 to 107 bytes", err,
				errlen);
		o->unix_path = arg;
		break;
	case OPTIONS_LOAD:
		o->load = 1;
		break;
	case OPTIONS_MODE:
		rc = options_parse_mode(arg, &o->mode, why, sizeof(why));
		break;
	case 'c':
		rc = parse_uint(arg, 1, CLIENT_MAX_CONNECTIONS, &o->connections,
				why, sizeof(why));
		break;
	case 'd':
		rc = parse_duration(arg, 1, CLIENT_MAX_DURATION_MS,
				    &o->duration_ms, why, sizeof(why));
		break;
	case OPTIONS_WARMUP:
		rc = parse_duration(arg, 0, CLIENT_MAX_DURATION_MS,
				    &o->warmup_ms, why, sizeof(why));
		break;
	case OPTIONS_THREADS:
		rc = parse_uint(arg, 1, CLIENT_MAX_THREADS, &o->threads, why,
				sizeof(why));
		break;
	case OPTIONS_WINDOW:
		rc = parse_size(arg, 1, CLIENT_MAX_WINDOW, &o->window, why,
				sizeof(why));
		seen->window = 1;
		break;
	case OPTIONS_RATE:
		rc = parse_uint(arg, 1, CLIENT_MAX_RATE, &o->rate, why,
				sizeof(why));
		seen->rate = 1;
		break;
	case OPTIONS_JSON:
		o->json = 1;
		break;
	case OPTIONS_SERVER_PID:
		rc = parse_uint(arg, 1, CLIENT_MAX_PID, &o->server_pid, why,
				sizeof(why));
		break;
	case OPTIONS_EXPECT_CLOSE:
	case OPTIONS_EXPECT_RESET:
		if (seen->expect != 0 && seen->expect != c) {
			snprintf(err, errlen,
				 "options --expect-close and --expect-reset "
				 "cannot be combined");
			return -1;
		}
		rc = parse_size(arg, 0, CLIENT_MAX_SIZE, &o->expect_at, why,
				sizeof(why));
		o->expect = c == OPTIONS_EXPECT_CLOSE ? CLIENT_EXPECT_CLOSE
						      : CLIENT_EXPECT_RESET;
		seen->expect = c;
		break;
	case OPTIONS_TLS:
		o->tls = 1;
		break;
	case 'u':
		o->udp = 1;
		break;
	case OPTIONS_RETRIES:
		rc = parse_uint(arg, 0, CLIENT_MAX_RETRIES, &o->retries, why,
				sizeof(why));
		seen->retries = 1;
		break;
	case OPTIONS_INSECURE:
		o->tls_insecure = 1;
		break;
	case OPTIONS_PROXY:
		if (strcmp(arg, "v1") == 0 || strcmp(arg, "1") == 0)
			o->proxy = 1;
		else if (strcmp(arg, "v2") == 0 || strcmp(arg, "2") == 0)
			o->proxy = 2;
		else
			return options_bad_value(c, "expected v1 or v2", err,
						 errlen);
		break;
	case OPTIONS_PROXY_SOURCE:
		rc = options_parse_source(arg, &o->proxy_source, why,
					  sizeof(why));
		seen->proxy_source = 1;
		break;
	case OPTIONS_SOURCE:
		rc = options_parse_local(arg, &o->source, why, sizeof(why));
		break;
	case OPTIONS_CA:
	case OPTIONS_SNI:
	case OPTIONS_CERT:
	case OPTIONS_KEY:
		if (*arg == '\0')
			return options_bad_value(c, "the value is empty", err,
						 errlen);
		if (c == OPTIONS_CA)
			o->tls_ca = arg;
		else if (c == OPTIONS_SNI)
			o->tls_sni = arg;
		else if (c == OPTIONS_CERT)
			o->tls_cert = arg;
		else
			o->tls_key = arg;
		break;
	default:
		break;
	}
	if (rc == -1)
		return options_bad_value(c, why, err, errlen);
	if (seen->tls_only == 0 && c > OPTIONS_TLS && c < OPTIONS_RETRIES)
		seen->tls_only = c;
	if (seen->load_only == 0 && c != OPTIONS_LOAD &&
	    (c == 'c' || c == 'd' ||
	     (c > OPTIONS_LOAD && c < OPTIONS_EXPECT_CLOSE)))
		seen->load_only = c;
	return 0;
}

/* Refuses options that make no sense together. */
static int
options_check(struct client_options *o, const struct options_seen *seen,
	      char *err, size_t errlen)
{
	char name[64], size[32];

	if (seen->message && o->size != 0) {
		snprintf(err, errlen,
			 "options -m/--message and -s/--size "
			 "cannot be combined");
		return -1;
	}
	if (seen->proxy_source && o->proxy == 0) {
		snprintf(err, errlen, "option --proxy-source needs --proxy");
		return -1;
	}
	if (o->source.ss.ss_family != 0 && (o->udp || o->unix_path != NULL)) {
		snprintf(err, errlen,
			 "option --source is for TCP connections: not with %s",
			 o->udp ? "-u/--udp" : "-U/--unix");
		return -1;
	}
	if (o->proxy != 0 && o->udp) {
		snprintf(err, errlen,
			 "options --proxy and -u/--udp cannot be combined");
		return -1;
	}
	if (seen->retries && !o->udp) {
		snprintf(err, errlen, "option --retries needs -u/--udp");
		return -1;
	}
	if (o->udp && (o->tls || o->unix_path != NULL || seen->expect)) {
		snprintf(err, errlen,
			 "options -u/--udp and %s cannot be "
			 "combined",
			 o->tls ? "--tls"
			 : o->unix_path != NULL
				 ? "-U/--unix"
				 : options_name(seen->expect, name,
						sizeof(name)));
		return -1;
	}
	if (o->udp && o->load && o->mode != CLIENT_MODE_PINGPONG) {
		snprintf(err, errlen,
			 "option -u/--udp: --load runs --mode pingpong only "
			 "(datagrams have no stream, connection or idle "
			 "hold)");
		return -1;
	}
	if (o->udp && o->size > CLIENT_MAX_DATAGRAM) {
		snprintf(err, errlen,
			 "option -s/--size: a datagram carries at most %d "
			 "bytes",
			 CLIENT_MAX_DATAGRAM);
		return -1;
	}
	if (o->udp && o->size == 0 && o->message_len > CLIENT_MAX_DATAGRAM) {
		snprintf(err, errlen,
			 "option -m/--message: a datagram carries at most %d "
			 "bytes",
			 CLIENT_MAX_DATAGRAM);
		return -1;
	}
	if (seen->tls_only != 0 && !o->tls) {
		snprintf(err, errlen, "option %s needs --tls",
			 options_name(seen->tls_only, name, sizeof(name)));
		return -1;
	}
	if (o->tls_insecure && o->tls_ca != NULL) {
		snprintf(err, errlen,
			 "options --ca and --insecure cannot be combined");
		return -1;
	}
	if (o->tls_key != NULL && o->tls_cert == NULL) {
		snprintf(err, errlen, "option --key needs --cert");
		return -1;
	}
	if (!o->load && seen->expect != 0 &&
	    o->expect_at > (o->size != 0 ? o->size : o->message_len)) {
		snprintf(err, errlen,
			 "option %s: %s bytes is more than the %llu sent",
			 options_name(seen->expect, name, sizeof(name)),
			 parse_format_size(o->expect_at, size, sizeof(size)),
			 (unsigned long long)(o->size != 0 ? o->size
							   : o->message_len));
		return -1;
	}
	if (!o->load) {
		if (seen->load_only == 0)
			return 0;
		snprintf(err, errlen, "option %s needs --load",
			 options_name(seen->load_only, name, sizeof(name)));
		return -1;
	}
	if (seen->count || seen->message || seen->expect) {
		snprintf(err, errlen,
			 "options %s and --load cannot be combined",
			 seen->count	 ? "-n/--count"
			 : seen->message ? "-m/--message"
					 : options_name(seen->expect, name,
							sizeof(name)));
		return -1;
	}
	if (seen->window && o->mode != CLIENT_MODE_STREAM) {
		snprintf(err, errlen, "option --window needs --mode stream");
		return -1;
	}
	if (seen->rate && o->mode != CLIENT_MODE_PINGPONG &&
	    o->mode != CLIENT_MODE_CONNRATE) {
		snprintf(err, errlen,
			 "option --rate needs --mode pingpong or connrate");
		return -1;
	}
	if (o->size == 0)
		o->size = CLIENT_DEFAULT_LOAD_SIZE;
	if (o->mode == CLIENT_MODE_STREAM && o->window < o->size) {
		snprintf(err, errlen,
			 "option --window: smaller than the %s bytes of each "
			 "write (-s/--size)",
			 parse_format_size(o->size, size, sizeof(size)));
		return -1;
	}
	return 0;
}

int
client_options_parse(int argc, char **argv, struct client_options *o, char *err,
		     size_t errlen)
{
	struct options_seen seen;
	int c;

	options_defaults(o);
	memset(&seen, 0, sizeof(seen));
	optind = 0; /* GNU: start over, as if on a fresh command line */
	opterr = 0; /* we write our own messages */
	while ((c = getopt_long(argc, argv, OPTIONS_SHORT, options_long,
				NULL)) != -1) {
		if (c == 'h') {
			o->action = CLIENT_HELP;
			return 0;
		}
		if (c == 'V') {
			o->action = CLIENT_VERSION;
			return 0;
		}
		if (c == '?' || c == ':')
			return options_bad_option(c, argv, err, errlen);
		if (options_set(o, c, optarg, &seen, err, errlen) == -1)
			return -1;
	}
	if (options_check(o, &seen, err, errlen) == -1)
		return -1;
	if (o->unix_path != NULL && optind < argc) {
		snprintf(err, errlen,
			 "unexpected argument '%s': -U names the server's "
			 "socket, not HOST or PORT",
			 argv[optind]);
		return -1;
	}
	if (optind < argc) {
		if (*argv[optind] == '\0') {
			snprintf(err, errlen, "empty host name");
			return -1;
		}
		o->host = argv[optind++];
	}
	if (optind < argc &&
	    options_set_port(o, argv[optind++], err, errlen) == -1)
		return -1;
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}

/* Prints s as a C string literal would show it. */
static void
options_print_quoted(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s != '\0'; s++) {
		if (*s == '\n')
			fputs("\\n", fp);
		else
			fputc(*s, fp);
	}
	fputc('"', fp);
}

/* The --load part of the help. */
static void
client_options_usage_load(FILE *fp)
{
	char window[32], duration[32], warmup[32];

	parse_format_size(CLIENT_DEFAULT_WINDOW, window, sizeof(window));
	parse_format_duration(CLIENT_DEFAULT_DURATION_MS, duration,
			      sizeof(duration));
	parse_format_duration(CLIENT_DEFAULT_WARMUP_MS, warmup, sizeof(warmup));
	fprintf(fp,
		"\nWith --load, a load generator: many connections at once, "
		"every byte of every\necho verified, rates and latency "
		"reported at the end.\n\n");
	fprintf(fp,
		"      --load            generate load (-s: message or "
		"write size, default %d)\n",
		CLIENT_DEFAULT_LOAD_SIZE);
	fprintf(fp, "      --mode MODE       pingpong (default), stream, "
		    "connrate or hold\n");
	fprintf(fp,
		"  -c, --connections N   connections, connrate: workers "
		"(default %d)\n",
		CLIENT_DEFAULT_CONNECTIONS);
	fprintf(fp,
		"  -d, --duration TIME   window measured, hold: time idle "
		"(default %s)\n",
		duration);
	fprintf(fp,
		"      --warmup TIME     run first, not counted; not in hold "
		"(default %s)\n",
		warmup);
	fprintf(fp,
		"      --threads N       threads, each with an event loop "
		"(default %d)\n",
		CLIENT_DEFAULT_THREADS);
	fprintf(fp,
		"      --window BYTES    stream: bytes in flight per "
		"connection (default %s)\n",
		window);
	fprintf(fp, "      --rate N          pingpong: messages/s, connrate: "
		    "connections/s, in all\n"
		    "                        (default: unpaced)\n");
	fprintf(fp, "      --json            print one JSON object instead of "
		    "the summary\n");
	fprintf(fp, "      --server-pid PID  report the CPU time PID used in "
		    "the window\n");
	fprintf(fp,
		"TIME takes a fraction: 0.5, 1.5s, 250ms. -t is the deadline "
		"of each connect and\nof each echo's progress.\n");
}

void
client_options_usage(FILE *fp)
{
	char size[32], timeout[32];

	parse_format_size(CLIENT_MAX_SIZE, size, sizeof(size));
	parse_format_duration(CLIENT_DEFAULT_TIMEOUT_MS, timeout,
			      sizeof(timeout));
	fprintf(fp,
		"Usage: %s [OPTIONS] [HOST [PORT]]\n"
		"       %s [OPTIONS] -U PATH\n",
		CLIENT_NAME, CLIENT_NAME);
	fprintf(fp,
		"Opens connections to the echo server at HOST (default %s) "
		"and PORT\n(default %s) one after another, sends a message on "
		"each and checks that\nexactly the same bytes come back.\n\n",
		CLIENT_DEFAULT_HOST, CLIENT_DEFAULT_PORT);
	fprintf(fp,
		"  -n, --count N         connections to open (1 to %d, "
		"default %d)\n",
		CLIENT_MAX_COUNT, CLIENT_DEFAULT_COUNT);
	fprintf(fp, "  -m, --message TEXT    text to send, as is (default ");
	options_print_quoted(fp, CLIENT_DEFAULT_MESSAGE);
	fprintf(fp, ")\n");
	fprintf(fp,
		"  -s, --size BYTES      send BYTES of random data instead "
		"(k, m, g; up to %s)\n",
		size);
	fprintf(fp,
		"  -t, --timeout TIME    deadline per connection, connect to "
		"echo "
		"(default %s)\n",
		timeout);
	fprintf(fp, "  -U, --unix PATH       connect to the Unix stream socket "
		    "PATH instead\n");
	fprintf(fp, "      --expect-close N  pass only if exactly N bytes "
		    "come back, then a close\n"
		    "      --expect-reset N  pass only if exactly N bytes "
		    "come back, then a reset\n");
	fprintf(fp, "  -u, --udp             send datagrams instead (UDP echo, "
		    "RFC 862)\n");
	fprintf(fp,
		"      --retries N       -u: sends again after -t without a "
		"reply (default %d)\n",
		CLIENT_DEFAULT_RETRIES);
	fprintf(fp,
		"      --tls             speak TLS, verifying the server's "
		"certificate\n"
		"      --ca FILE         CA certificates to trust "
		"(default: the system's)\n"
		"      --insecure        do not verify the server's "
		"certificate\n"
		"      --sni NAME        server name to send and verify "
		"(default: HOST)\n"
		"      --cert FILE       client certificate (PEM), for mutual "
		"TLS\n"
		"      --key FILE        its private key (default: in "
		"--cert's file)\n");
	fprintf(fp,
		"      --source ADDR     connect from this local address\n");
	fprintf(fp,
		"      --proxy v1|v2     start each connection with a PROXY "
		"protocol header\n"
		"      --proxy-source ADDR:PORT\n"
		"                        the client the header names "
		"(default: the real one)\n");
	fprintf(fp, "  -q, --quiet           print nothing on success\n"
		    "  -h, --help            print this help and exit\n"
		    "  -V, --version         print the version and exit\n");
	client_options_usage_load(fp);
	fprintf(fp,
		"\nExit status: 0 if every echo came back intact, 1 if "
		"one did not, %d for a\nusage error.\n",
		CLIENT_EXIT_USAGE);
}

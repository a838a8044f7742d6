/*
 * options.c: echo-client's command line, parsed by a pure function that
 * never prints or exits: defaults, getopt_long, value checks through
 * common/parse.c, and a one-line message for each usage error. Also the
 * --help text, so the options and their description live in one file.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "options.h"
#include "parse.h"

#define OPTIONS_SHORT ":n:m:s:t:qhV"

static const struct option options_long[] = {
	{"count", required_argument, NULL, 'n'},
	{"message", required_argument, NULL, 'm'},
	{"size", required_argument, NULL, 's'},
	{"timeout", required_argument, NULL, 't'},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* Long name of the option whose short form is c, or NULL. */
static const char *
options_long_name(int c)
{
	const struct option *lo;

	for (lo = options_long; lo->name != NULL; lo++)
		if (lo->val == c)
			return lo->name;
	return NULL;
}

/* Reports a bad value: "option -n/--count: 'x' is not a number". */
static int
options_bad_value(int c, const char *why, char *err, size_t errlen)
{
	snprintf(err, errlen, "option -%c/--%s: %s", c, options_long_name(c),
		 why);
	return -1;
}

/* Reports what getopt_long() returned '?' or ':' for. */
static int
options_bad_option(int c, char **argv, char *err, size_t errlen)
{
	const char *name = options_long_name(optopt);

	if (c == ':')
		snprintf(err, errlen, "option -%c/--%s needs a value", optopt,
			 name);
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

int
client_options_parse(int argc, char **argv, struct client_options *o, char *err,
		     size_t errlen)
{
	char why[128];
	int c, message_set = 0;

	options_defaults(o);
	optind = 0; /* GNU: start over, as if on a fresh command line */
	opterr = 0; /* we write our own messages */
	while ((c = getopt_long(argc, argv, OPTIONS_SHORT, options_long,
				NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_uint(optarg, 1, CLIENT_MAX_COUNT, &o->count,
				       why, sizeof(why)) == -1)
				return options_bad_value(c, why, err, errlen);
			break;
		case 'm':
			if (*optarg == '\0')
				return options_bad_value(
					c, "the message is empty", err, errlen);
			o->message = optarg;
			o->message_len = strlen(optarg);
			message_set = 1;
			break;
		case 's':
			if (parse_size(optarg, 1, CLIENT_MAX_SIZE, &o->size,
				       why, sizeof(why)) == -1)
				return options_bad_value(c, why, err, errlen);
			break;
		case 't':
			if (parse_duration(optarg, 1, CLIENT_MAX_TIMEOUT_MS,
					   &o->timeout_ms, why,
					   sizeof(why)) == -1)
				return options_bad_value(c, why, err, errlen);
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'h':
			o->action = CLIENT_HELP;
			return 0;
		case 'V':
			o->action = CLIENT_VERSION;
			return 0;
		default:
			return options_bad_option(c, argv, err, errlen);
		}
	}
	if (message_set && o->size != 0) {
		snprintf(err, errlen,
			 "options -m/--message and -s/--size "
			 "cannot be combined");
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

void
client_options_usage(FILE *fp)
{
	char size[32], timeout[32];

	parse_format_size(CLIENT_MAX_SIZE, size, sizeof(size));
	parse_format_duration(CLIENT_DEFAULT_TIMEOUT_MS, timeout,
			      sizeof(timeout));
	fprintf(fp, "Usage: %s [OPTIONS] [HOST [PORT]]\n", CLIENT_NAME);
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
	fprintf(fp, "  -q, --quiet           print nothing on success\n"
		    "  -h, --help            print this help and exit\n"
		    "  -V, --version         print the version and exit\n");
	fprintf(fp,
		"\nExit status: 0 if every echo came back intact, 1 if "
		"one did not, %d for a\nusage error.\n",
		CLIENT_EXIT_USAGE);
}

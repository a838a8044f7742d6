/*
 * options.c: echod's command line. Every config key is also a long option
 * (max_buffer is --max-buffer); a few options exist only here (--config,
 * --check-config, --verbose, --help, --version). Values are checked as
 * they are read, so a bad one is a usage error; they are kept as overrides
 * applied over the config file, at start and again at every reload.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"

enum {
	OPT_CHECK_CONFIG = 1000,
	OPT_KEY_BASE = 2000 /* + index into config_keys */
};

/* "max_buffer" -> "max-buffer" */
static void
options_long_name(const struct config_key *k, char *buf, size_t len)
{
	char *p;

	snprintf(buf, len, "%s", k->name);
	for (p = buf; *p != '\0'; p++)
		if (*p == '_')
			*p = '-';
}

static int
options_val(size_t i)
{
	return config_keys[i].shortopt ? config_keys[i].shortopt
				       : OPT_KEY_BASE + (int)i;
}

/* Names the keys that a reload cannot change, from the key table. */
static void
options_usage_reload(FILE *fp)
{
	const char *sep = "";
	size_t i;

	fprintf(fp, "SIGHUP rereads the configuration and applies every "
		    "setting but these, which\nwait for a restart: ");
	for (i = 0; i < config_nkeys; i++) {
		if (config_keys[i].flags & CONFIG_RELOAD)
			continue;
		fprintf(fp, "%s%s", sep, config_keys[i].name);
		sep = ", ";
	}
	fprintf(fp, ".\n");
}

void
options_usage(FILE *fp)
{
	char name[64], arg[80];
	size_t i;

	fprintf(fp, "usage: echod [OPTIONS]\n"
		    "An asynchronous TCP echo server: every byte a client "
		    "sends comes back unchanged.\n\n");
	fprintf(fp, "  -c, %-28s %s\n", "--config FILE",
		"read settings from FILE; options given here override it");
	fprintf(fp, "      %-28s %s\n", "--check-config",
		"check the configuration, print the verdict and exit");
	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];

		options_long_name(k, name, sizeof(name));
		if (k->argname != NULL)
			snprintf(arg, sizeof(arg), "--%s %s", name, k->argname);
		else
			snprintf(arg, sizeof(arg), "--%s", name);
		if (k->shortopt)
			fprintf(fp, "  -%c, %-28s %s\n", k->shortopt, arg,
				k->help);
		else
			fprintf(fp, "      %-28s %s\n", arg, k->help);
	}
	fprintf(fp, "  -v, %-28s %s\n", "--verbose", "log at debug level");
	fprintf(fp, "  -h, %-28s %s\n", "--help", "show this help and exit");
	fprintf(fp, "  -V, %-28s %s\n", "--version",
		"show the version and exit");
	fprintf(fp,
		"\nSizes take k, m or g; times take ms, s, m or h and may "
		"have a decimal\nfraction (1.5s, 0.25, 250ms). Every option "
		"is also a config file key, with\n'_' for '-': max_buffer = "
		"4m.\n");
	options_usage_reload(fp);
	fprintf(fp, "Exit status: 0 on a clean stop, 1 on a runtime failure, "
		    "64 on a bad command\nline, 78 on a bad configuration.\n");
}

/* Names the option getopt stopped at: the long name as typed, or -X. */
static void
options_bad(int argc, char **argv, int missing, char *err, size_t errlen)
{
	const char *arg = optind - 1 < argc ? argv[optind - 1] : "";
	char name[64];

	if (strncmp(arg, "--", 2) == 0)
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="),
			 arg);
	else
		snprintf(name, sizeof(name), "-%c", optopt);
	if (missing)
		snprintf(err, errlen, "option '%s' needs a value", name);
	else if (optopt != 0 && strncmp(arg, "--", 2) == 0 &&
		 strchr(arg, '=') != NULL)
		/* getopt knew the option: it refused "--syslog=yes". */
		snprintf(err, errlen, "option '%s' takes no value", name);
	else
		snprintf(err, errlen, "unknown option '%s'", name);
}

int
options_parse(int argc, char **argv, struct options *o, char *err,
	      size_t errlen)
{
	struct option longopts[ECHOD_MAX_KEYS + 8];
	char names[ECHOD_MAX_KEYS][32];
	char optstring[2 * ECHOD_MAX_KEYS + 16] = ":c:vhV";
	struct config scratch;
	char msg[256];
	size_t i, n = 0, s = strlen(optstring);
	int ch, rc = 0;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < config_nkeys && i < ECHOD_MAX_KEYS; i++) {
		const struct config_key *k = &config_keys[i];

		options_long_name(k, names[i], sizeof(names[i]));
		longopts[n++] = (struct option){names[i],
						k->flags & CONFIG_FLAG
							? no_argument
							: required_argument,
						NULL, options_val(i)};
		if (k->shortopt) {
			optstring[s++] = (char)k->shortopt;
			if (!(k->flags & CONFIG_FLAG))
				optstring[s++] = ':';
		}
	}
	optstring[s] = '\0';
	longopts[n++] = (struct option){"config", required_argument, NULL, 'c'};
	longopts[n++] = (struct option){"check-config", no_argument, NULL,
					OPT_CHECK_CONFIG};
	longopts[n++] = (struct option){"verbose", no_argument, NULL, 'v'};
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
	longopts[n] = (struct option){NULL, 0, NULL, 0};

	config_init(&scratch);
	opterr = 0;
	optind = 0; /* glibc: start over, so the parser can run again */
	while (rc == 0 && (ch = getopt_long(argc, argv, optstring, longopts,
					    NULL)) != -1) {
		const struct config_key *key = NULL;
		const char *value;

		switch (ch) {
		case 'c':
			o->config_file = optarg;
			continue;
		case OPT_CHECK_CONFIG:
			o->check_config = 1;
			continue;
		case 'v':
			o->verbose = 1;
			continue;
		case 'h':
			o->help = 1;
			continue;
		case 'V':
			o->version = 1;
			continue;
		case ':':
		case '?':
			options_bad(argc, argv, ch == ':', err, errlen);
			rc = -1;
			continue;
		default:
			break;
		}
		for (i = 0; i < config_nkeys; i++)
			if (ch == options_val(i))
				key = &config_keys[i];
		if (key == NULL) {
			snprintf(err, errlen, "unknown option");
			rc = -1;
			continue;
		}
		value = key->flags & CONFIG_FLAG ? "yes" : optarg;
		if (o->noverrides == ECHOD_MAX_OVERRIDES) {
			snprintf(err, errlen, "more than %d options",
				 ECHOD_MAX_OVERRIDES);
			rc = -1;
		} else if (config_set(&scratch, key, value, msg, sizeof(msg)) ==
			   -1) {
			snprintf(err, errlen, "--%s %s",
				 names[key - config_keys], msg);
			rc = -1;
		} else {
			o->overrides[o->noverrides].key = key;
			o->overrides[o->noverrides].value = value;
			o->noverrides++;
		}
	}
	if (rc == 0 && optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		rc = -1;
	}
	config_free(&scratch);
	return rc;
}

/* The command line wins: its first --listen replaces the file's list. */
int
options_apply(const struct options *o, struct config *cfg, char *err,
	      size_t errlen)
{
	int i, cleared = 0;
	char msg[384];

	for (i = 0; i < o->noverrides; i++) {
		const struct config_key *key = o->overrides[i].key;

		if (key->kind == CONFIG_LISTEN && !cleared) {
			config_clear_listen(cfg);
			cleared = 1;
		}
		if (config_set(cfg, key, o->overrides[i].value, msg,
			       sizeof(msg)) == -1) {
			char name[64];

			options_long_name(key, name, sizeof(name));
			snprintf(err, errlen, "--%s %s", name, msg);
			return -1;
		}
	}
	if (o->verbose)
		cfg->log_level = LOG_LEVEL_DEBUG;
	return 0;
}

/*
 * Builds the whole configuration: defaults, then the file, then the
 * command line. Used at start and by every reload.
 */
int
options_load_config(const struct options *o, struct config *cfg, char *err,
		    size_t errlen)
{
	config_init(cfg);
	if (o->config_file != NULL &&
	    config_load(cfg, o->config_file, err, errlen) == -1)
		goto fail;
	if (options_apply(o, cfg, err, errlen) == -1 ||
	    config_finish(cfg, err, errlen) == -1)
		goto fail;
	return 0;
fail:
	config_free(cfg);
	return -1;
}

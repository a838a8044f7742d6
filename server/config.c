/*
 * config.c: echod's settings: their defaults, the one table of keys that
 * drives the command line, --help and the config file alike, and setting
 * one key from its text. Pure: errors go into the caller's buffer, the
 * caller decides what is fatal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"
#include "parse.h"

#define KEY(name, shortopt, kind, field, min, max, arg, help)                  \
	{                                                                      \
		name, shortopt, kind, offsetof(struct config, field), min,     \
			max, arg, help                                         \
	}

const struct config_key config_keys[] = {
	KEY("listen", 'l', CONFIG_LISTEN, listen, 0, 0, "ADDR",
	    "listen on HOST:PORT, [IPv6]:PORT or *:PORT (repeatable; "
	    "default " ECHOD_DEFAULT_LISTEN ")"),
	KEY("threads", 't', CONFIG_UINT, threads, 0, ECHOD_MAX_THREADS, "N",
	    "worker threads, 0 for one per CPU (default 0)"),
	KEY("max_buffer", 0, CONFIG_SIZE, max_buffer, ECHOD_MIN_MAX_BUFFER,
	    ECHOD_MAX_MAX_BUFFER, "SIZE",
	    "pending echo per connection before reading pauses (default 1m)"),
	KEY("log_level", 0, CONFIG_LEVEL, log_level, 0, 0, "LEVEL",
	    "error, warn, info or debug (default info)"),
};

const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

void
config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->threads = 0;
	cfg->max_buffer = ECHOD_DEFAULT_MAX_BUFFER;
	cfg->log_level = LOG_LEVEL_INFO;
}

void
config_free(struct config *cfg)
{
	int i;

	for (i = 0; i < cfg->nlisten; i++)
		free(cfg->listen[i]);
	cfg->nlisten = 0;
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

static int
config_add_listen(struct config *cfg, const char *value, char *err,
		  size_t errlen)
{
	struct addr_spec spec;
	char *copy;
	int i;

	if (addr_parse(value, &spec, err, errlen) == -1)
		return -1;
	for (i = 0; i < cfg->nlisten; i++) {
		if (strcmp(cfg->listen[i], value) == 0) {
			snprintf(err, errlen, "'%s' is listed twice", value);
			return -1;
		}
	}
	if (cfg->nlisten == ECHOD_MAX_LISTEN) {
		snprintf(err, errlen, "more than %d listen addresses",
			 ECHOD_MAX_LISTEN);
		return -1;
	}
	if ((copy = strdup(value)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cfg->listen[cfg->nlisten] = copy;
	cfg->listen_spec[cfg->nlisten] = spec;
	cfg->nlisten++;
	return 0;
}

int
config_set(struct config *cfg, const struct config_key *key, const char *value,
	   char *err, size_t errlen)
{
	char *field = (char *)cfg + key->offset;
	uint64_t v;

	switch (key->kind) {
	case CONFIG_LISTEN:
		return config_add_listen(cfg, value, err, errlen);
	case CONFIG_UINT:
		if (parse_uint(value, key->min, key->max, &v, err, errlen) ==
		    -1)
			return -1;
		*(unsigned *)(void *)field = (unsigned)v;
		return 0;
	case CONFIG_SIZE:
		if (parse_size(value, key->min, key->max, &v, err, errlen) ==
		    -1)
			return -1;
		*(uint64_t *)(void *)field = v;
		return 0;
	case CONFIG_LEVEL:
		if (log_level_parse(value, (int *)(void *)field) == -1) {
			snprintf(err, errlen,
				 "'%s' is not a log level (error, warn, info "
				 "or debug)",
				 value);
			return -1;
		}
		return 0;
	}
	snprintf(err, errlen, "internal error: key kind %d", (int)key->kind);
	return -1;
}

/* Fills in what nothing set. */
void
config_finish(struct config *cfg)
{
	char err[128];

	if (cfg->nlisten == 0 && config_add_listen(cfg, ECHOD_DEFAULT_LISTEN,
						   err, sizeof(err)) == -1)
		fatalx(ECHOD_EXIT_FAILURE, "default listen address: %s", err);
}

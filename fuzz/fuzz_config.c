/*
 * fuzz_config.c: libFuzzer target for server/config.c. The input is a
 * config file. It is read twice, the way config_load() reads it (through
 * a memfd) and line by line through config_parse_line() the way
 * config_load() feeds it, and both readings must agree: same verdict,
 * same message, same settings. A successful reading must also hold only
 * values within each key's limits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "echod.h"

/* config.c's CONFIG_LINE_MAX: longer lines are refused before parsing. */
#define FUZZ_LINE_MAX 4096
#define FUZZ_ERR_LEN 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The error buffer must hold a NUL-terminated, non-empty message. */
static void
fuzz_check_err(const char *err, size_t errlen)
{
	if (memchr(err, '\0', errlen) == NULL || err[0] == '\0')
		abort();
}

/* Reads data as config_load() does, but line by line by hand. Returns 0
 * or -1 with "LINENO: message" in err. */
static int
fuzz_parse_lines(struct config *cfg, const uint8_t *data, size_t size,
		 char *err, size_t errlen)
{
	int *seen = calloc(config_nkeys, sizeof(*seen));
	char *msg = malloc(FUZZ_ERR_LEN);
	size_t off = 0;
	int lineno = 0, rc = 0;

	if (seen == NULL || msg == NULL)
		abort();
	while (off < size && rc == 0) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) + 1 : size - off;
		char *line;

		lineno++;
		/* Exact-size copies, so ASan sees any read past the end. */
		if ((line = malloc(len + 1)) == NULL)
			abort();
		memcpy(line, data + off, len);
		line[len] = '\0';
		off += len;
		memset(msg, 0xa5, FUZZ_ERR_LEN);
		if (len > FUZZ_LINE_MAX)
			snprintf(msg, FUZZ_ERR_LEN, "line longer than %d bytes",
				 FUZZ_LINE_MAX);
		else if (strlen(line) != len)
			snprintf(msg, FUZZ_ERR_LEN, "line contains a NUL byte");
		else if (config_parse_line(cfg, line, lineno, seen, msg,
					   FUZZ_ERR_LEN) == 0) {
			free(line);
			continue;
		}
		fuzz_check_err(msg, FUZZ_ERR_LEN);
		snprintf(err, errlen, "%d: %s", lineno, msg);
		rc = -1;
		free(line);
	}
	free(msg);
	free(seen);
	return rc;
}

static int
fuzz_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
fuzz_check_same(const struct config *a, const struct config *b)
{
	size_t k;
	int i;

	for (k = 0; k < config_nkeys; k++)
		if (!config_key_equal(&config_keys[k], a, b))
			abort();
	for (i = 0; i < a->nlisten; i++) {
		const struct addr_spec *sa = &a->listen[i].addr;
		const struct addr_spec *sb = &b->listen[i].addr;

		if (strcmp(sa->host, sb->host) != 0 || sa->port != sb->port ||
		    sa->wildcard != sb->wildcard ||
		    a->listen[i].line != b->listen[i].line)
			abort();
	}
}

/* Every setting within the limits of its key. */
static void
fuzz_check_limits(const struct config *cfg)
{
	size_t i;
	int j;

	if (cfg->nlisten < 0 || cfg->nlisten > ECHOD_MAX_LISTEN)
		abort();
	for (j = 0; j < cfg->nlisten; j++) {
		const struct addr_spec *s = &cfg->listen[j].addr;
		const char *path = cfg->listen[j].path;

		if (cfg->listen[j].kind == LISTEN_UNIX &&
		    (path[0] != '/' ||
		     memchr(path, '\0', sizeof(cfg->listen[j].path)) == NULL))
			abort();
		if (cfg->listen[j].text == NULL ||
		    memchr(s->host, '\0', sizeof(s->host)) == NULL ||
		    (s->wildcard && s->host[0] != '\0'))
			abort();
	}
	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		const char *field = (const char *)cfg + k->offset;
		uint64_t v;

		switch (k->kind) {
		case CONFIG_UINT:
		case CONFIG_MODE:
			v = *(const unsigned *)(const void *)field;
			break;
		case CONFIG_SIZE:
		case CONFIG_DURATION:
			v = *(const uint64_t *)(const void *)field;
			break;
		case CONFIG_BOOL:
			if (*(const int *)(const void *)field != 0 &&
			    *(const int *)(const void *)field != 1)
				abort();
			continue;
		case CONFIG_LEVEL:
			if (*(const int *)(const void *)field <
				    LOG_LEVEL_ERROR ||
			    *(const int *)(const void *)field > LOG_LEVEL_DEBUG)
				abort();
			continue;
		case CONFIG_STRING: {
			const char *s = *(char *const *)(const void *)field;

			if (s != NULL && s[0] == '\0')
				abort();
			continue;
		}
		default:
			continue;
		}
		/* Defaults are in range too, so this holds set or not. */
		if (v < k->min || v > k->max)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config a, b;
	char *erra = malloc(FUZZ_ERR_LEN), *errb = malloc(FUZZ_ERR_LEN);
	char path[64], prefix[80];
	int fd, rca, rcb;

	if (erra == NULL || errb == NULL)
		abort();
	if ((fd = memfd_create("fuzz.conf", 0)) == -1)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	config_init(&a);
	memset(erra, 0xa5, FUZZ_ERR_LEN);
	rca = config_load(&a, path, erra, FUZZ_ERR_LEN);
	close(fd);

	config_init(&b);
	memset(errb, 0xa5, FUZZ_ERR_LEN);
	rcb = fuzz_parse_lines(&b, data, size, errb, FUZZ_ERR_LEN);

	if (rca != rcb)
		abort();
	if (rca == -1) {
		/* "PATH:LINENO: message" against "LINENO: message"; both
		 * may be cut at the buffer's end, so compare what fits. */
		size_t n = strlen(path);

		fuzz_check_err(erra, FUZZ_ERR_LEN);
		snprintf(prefix, sizeof(prefix), "%s:", path);
		if (strncmp(erra, prefix, n + 1) != 0 ||
		    strncmp(erra + n + 1, errb, FUZZ_ERR_LEN - n - 2) != 0)
			abort();
	} else {
		if (!fuzz_streq(a.file, path))
			abort();
		fuzz_check_same(&a, &b);
		fuzz_check_limits(&a);
		if (config_finish(&a, erra, FUZZ_ERR_LEN) == 0) {
			if (a.nlisten < 1)
				abort();
			fuzz_check_limits(&a);
		}
	}
	config_free(&a);
	config_free(&b);
	free(erra);
	free(errb);
	return 0;
}

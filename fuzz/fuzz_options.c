/*
 * fuzz_options.c: libFuzzer target for server/options.c. The input is a
 * command line, its arguments separated by NUL bytes; what
 * options_parse() accepts, options_apply() must apply to a default
 * configuration without error (every value was checked as it was read),
 * and an error must be a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"

#define FUZZ_MAX_ARGS 64
#define FUZZ_ERR_LEN 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[FUZZ_MAX_ARGS + 2], *err;
	struct options *o;
	struct config cfg;
	size_t off = 0;
	int argc = 0, i;

	if ((o = malloc(sizeof(*o))) == NULL ||
	    (err = malloc(FUZZ_ERR_LEN)) == NULL)
		abort();
	argv[argc++] = strdup("echod");
	/* Exact-size copies, so ASan sees any read past an argument. */
	while (off < size && argc <= FUZZ_MAX_ARGS) {
		const uint8_t *nul = memchr(data + off, '\0', size - off);
		size_t len = nul ? (size_t)(nul - (data + off)) : size - off;

		if ((argv[argc] = malloc(len + 1)) == NULL)
			abort();
		memcpy(argv[argc], data + off, len);
		argv[argc][len] = '\0';
		argc++;
		off += len + 1;
	}
	argv[argc] = NULL;

	memset(err, 0xa5, FUZZ_ERR_LEN);
	if (options_parse(argc, argv, o, err, FUZZ_ERR_LEN) == -1) {
		if (memchr(err, '\0', FUZZ_ERR_LEN) == NULL || err[0] == '\0')
			abort();
	} else {
		/* No config file: options_load_config() would read it. */
		config_init(&cfg);
		if (options_apply(o, &cfg, err, FUZZ_ERR_LEN) == -1)
			abort();
		if (config_finish(&cfg, err, FUZZ_ERR_LEN) == -1)
			abort();
		config_free(&cfg);
	}
	for (i = 0; i < argc; i++)
		free(argv[i]);
	free(o);
	free(err);
	return 0;
}

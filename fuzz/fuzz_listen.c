/*
 * fuzz_listen.c: libFuzzer target for the listen line's parser
 * (config.c's, with fault.c's parameters). The input is one listen
 * value. Accepted, it must give one line whose identity (its text) parses
 * back to the same kind, whose parameters fit together (tls or udp with
 * no fault; udp never tls nor Unix), and whose faults, written as the log
 * writes them, parse back to the same faults. Refused, it must say why
 * and leave no line behind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"

#define FUZZ_ERR_LEN 512
#define FUZZ_MAX_INPUT 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The faults as the log writes them, parsed back word by word. */
static void
fuzz_check_faults(const struct fault_spec *f)
{
	char text[512], again[512], err[FUZZ_ERR_LEN], *w, *rest = text;
	struct fault_spec g;

	memset(&g, 0, sizeof(g));
	g.chance = FAULT_CHANCE_ALL;
	fault_format(f, text, sizeof(text));
	while ((w = strsep(&rest, " ")) != NULL)
		if (*w != '\0' &&
		    fault_parse_param(&g, w, err, sizeof(err)) != 1)
			abort();
	if (strcmp(fault_format(f, text, sizeof(text)),
		   fault_format(&g, again, sizeof(again))) != 0)
		abort();
	if (fault_check(&g, err, sizeof(err)) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct config_key *key = config_key_find("listen");
	struct config cfg, again;
	char *value, err[FUZZ_ERR_LEN];
	const struct listen_conf *lc;

	if (size > FUZZ_MAX_INPUT || memchr(data, '\0', size) != NULL)
		return 0;
	if ((value = malloc(size + 1)) == NULL)
		return 0;
	memcpy(value, data, size);
	value[size] = '\0';
	config_init(&cfg);
	err[0] = '\0';
	if (config_set(&cfg, key, value, err, sizeof(err)) == -1) {
		if (err[0] == '\0' || cfg.nlisten != 0)
			abort();
		goto out;
	}
	if (cfg.nlisten != 1)
		abort();
	lc = &cfg.listen[0];
	if (lc->text == NULL || lc->text[0] == '\0')
		abort();
	if (lc->kind == LISTEN_UDP &&
	    (lc->profile.transport != CONN_TRANSPORT_PLAIN ||
	     lc->profile.behaviour != CONN_BEHAVIOUR_ECHO))
		abort();
	if (lc->profile.transport == CONN_TRANSPORT_TLS &&
	    lc->profile.behaviour != CONN_BEHAVIOUR_ECHO)
		abort();
	if ((lc->profile.behaviour == CONN_BEHAVIOUR_FAULT) !=
	    (fault_active(&lc->profile.fault) != 0))
		abort();
	fuzz_check_faults(&lc->profile.fault);
	/* The identity is a listen value of its own, of the same kind. */
	config_init(&again);
	if (config_set(&again, key, lc->text, err, sizeof(err)) != 0 ||
	    again.listen[0].kind != lc->kind ||
	    strcmp(again.listen[0].text, lc->text) != 0)
		abort();
	config_free(&again);
out:
	config_free(&cfg);
	free(value);
	return 0;
}

/*
 * tls_module.c: what of TLS is echod's own, with no OpenSSL in it: the
 * tls_* settings' checks (config.c's), and the TLS module, echod-tls.so
 * (tls.c, with libevent's OpenSSL bufferevents and OpenSSL), loaded the
 * first time a configuration has a tls listener. OpenSSL's libraries
 * alone are 1.7 MiB resident once mapped, more than echod holding 10,000
 * idle connections; an echod with no tls listener never maps them.
 *
 * The module is looked for beside the executable first (a build tree),
 * then in ECHOD_MODULE_DIR (an install); one from another build of echod
 * is refused, since it shares struct conn. Once loaded it stays. The
 * functions below are the rest of echod's way into it: each is the
 * module's, or what echod does without TLS (nothing to check, prepare or
 * free).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conn_int.h"

#define TLS_MODULE_FILE "echod-tls.so"

/* Written by the main thread, before any tls listener opens; read by
 * workers at accept. */
static _Atomic(const struct tls_module *) tls_mod;

/* The versions tls_protocols may name, oldest first. */
static const struct {
	const char *name;
	int version;
} tls_versions[] = {
	{"TLSv1.2", ECHOD_TLS1_2_VERSION},
	{"TLSv1.3", ECHOD_TLS1_3_VERSION},
};
#define TLS_NVERSIONS (sizeof(tls_versions) / sizeof(tls_versions[0]))

/*
 * Reads "TLSv1.2 TLSv1.3" (any order, blank-separated) into the oldest
 * and newest version named. OpenSSL takes a range, so the versions named
 * must be consecutive.
 */
int
tls_protocols_parse(const char *s, int *min, int *max, char *err, size_t errlen)
{
	char words[256], *w, *rest = words;
	unsigned seen = 0, i, lo = TLS_NVERSIONS, hi = 0;

	if (strlen(s) >= sizeof(words)) {
		snprintf(err, errlen, "is too long");
		return -1;
	}
	snprintf(words, sizeof(words), "%s", s);
	while ((w = strsep(&rest, " \t,")) != NULL) {
		if (*w == '\0')
			continue;
		for (i = 0; i < TLS_NVERSIONS; i++)
			if (strcmp(w, tls_versions[i].name) == 0)
				break;
		if (i == TLS_NVERSIONS) {
			snprintf(err, errlen,
				 "names '%s': the versions are TLSv1.2 and "
				 "TLSv1.3",
				 w);
			return -1;
		}
		seen |= 1u << i;
		if (i < lo)
			lo = i;
		if (i > hi)
			hi = i;
	}
	if (seen == 0) {
		snprintf(err, errlen, "names no version");
		return -1;
	}
	for (i = lo; i <= hi; i++) {
		if (!(seen & (1u << i))) {
			snprintf(err, errlen,
				 "skips %s: the versions must be consecutive",
				 tls_versions[i].name);
			return -1;
		}
	}
	*min = tls_versions[lo].version;
	*max = tls_versions[hi].version;
	return 0;
}

/* config.c's check of the certificate and key paths: absolute, so that
 * a reload of a daemon (whose directory is /) reads the same files. */
int
tls_path_check(const char *value, char *err, size_t errlen)
{
	if (value[0] != '/') {
		snprintf(err, errlen, "must be an absolute path, not '%s'",
			 value);
		return -1;
	}
	return 0;
}

/* config.c's check of tls_protocols. */
int
tls_protocols_check(const char *value, char *err, size_t errlen)
{
	int min, max;

	return tls_protocols_parse(value, &min, &max, err, errlen);
}

/* Does cfg have a tls listener? */
int
tls_wanted(const struct config *cfg)
{
	int i;

	for (i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].profile.transport == CONN_TRANSPORT_TLS)
			return 1;
	return 0;
}

/* Uses m as the TLS module (the unit tests link tls.c in). */
void
tls_module_use(const struct tls_module *m)
{
	atomic_store_explicit(&tls_mod, m, memory_order_release);
}

static const struct tls_module *
tls_module(void)
{
	return atomic_load_explicit(&tls_mod, memory_order_acquire);
}

/* dlopen()s path and takes its module; -1 with err set if it cannot. */
static int
tls_module_open(const char *path, char *err, size_t errlen)
{
	const struct tls_module *m;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (h == NULL) {
		snprintf(err, errlen, "cannot load TLS support: %s", dlerror());
		return -1;
	}
	m = dlsym(h, "echod_tls_module");
	if (m == NULL || strcmp(m->version, ECHOD_VERSION) != 0 ||
	    m->conn_size != sizeof(struct conn)) {
		snprintf(err, errlen,
			 "cannot load TLS support: %s is not this echod's "
			 "(version %s)",
			 path, ECHOD_VERSION);
		dlclose(h);
		return -1;
	}
	tls_module_use(m);
	return 0;
}

/* Loads the module if it is not yet: beside the executable, else from
 * ECHOD_MODULE_DIR. */
static int
tls_module_load(char *err, size_t errlen)
{
	char exe[PATH_MAX], path[PATH_MAX + sizeof(TLS_MODULE_FILE)];
	ssize_t n;
	char *slash;

	if (tls_module() != NULL)
		return 0;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL) {
			slash[1] = '\0';
			snprintf(path, sizeof(path), "%s%s", exe,
				 TLS_MODULE_FILE);
			if (access(path, F_OK) == 0)
				return tls_module_open(path, err, errlen);
		}
	}
	return tls_module_open(ECHOD_MODULE_DIR "/" TLS_MODULE_FILE, err,
			       errlen);
}

/* --check-config: would cfg's TLS settings load? */
int
tls_check(const struct config *cfg, char *err, size_t errlen)
{
	if (!tls_wanted(cfg))
		return 0;
	if (tls_module_load(err, errlen) == -1)
		return -1;
	return tls_module()->check(cfg, err, errlen);
}

/*
 * At start and on every reload: (re)reads the certificates into a new
 * context, put in use by tls_commit() once the rest of the configuration
 * is in place too. On failure (or tls_abort()) nothing changes.
 */
int
tls_prepare(const struct config *cfg, char *err, size_t errlen)
{
	if (tls_module() == NULL) {
		if (!tls_wanted(cfg))
			return 0; /* nothing to prepare, nothing to load */
		if (tls_module_load(err, errlen) == -1)
			return -1;
	}
	return tls_module()->prepare(cfg, err, errlen);
}

void
tls_commit(void)
{
	if (tls_module() != NULL)
		tls_module()->commit();
}

void
tls_abort(void)
{
	if (tls_module() != NULL)
		tls_module()->abort();
}

void
tls_shutdown(void)
{
	if (tls_module() != NULL)
		tls_module()->shutdown();
}

/* Starts c's TLS; -1 if it cannot (c is the caller's to free). */
int
tls_conn_start(struct conn *c)
{
	const struct tls_module *m = tls_module();

	if (m == NULL) {
		log_warnx("cannot start TLS on a connection: %s",
			  "no TLS module");
		return -1;
	}
	return m->conn_start(c);
}

void
tls_conn_free(struct conn *c)
{
	tls_module()->conn_free(c);
}

/*
 * failcall.c: an LD_PRELOAD library for the integration tests that makes
 * a chosen call of echod's fail the way it fails when memory runs out, so
 * that the code handling it runs for real.
 *
 *   ECHOD_TEST_FAIL=NAME:N   the Nth call of NAME (counted across threads,
 *                            from 1) fails, once; the others go through
 *
 * Each failure is announced on stderr ("failcall: NAME: call N fails"),
 * so that a test can tell it happened. Interposed:
 *   evbuffer_remove_buffer   returns -1, moving nothing (as when libevent
 *                            cannot allocate a chain for a partial move)
 */
#include <dlfcn.h>
#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The N of ECHOD_TEST_FAIL if it names `name`; 0 if not. */
static unsigned long
failcall_target(const char *name)
{
	const char *spec = getenv("ECHOD_TEST_FAIL");
	size_t len = strlen(name);
	char *end;
	unsigned long n;

	if (spec == NULL || strncmp(spec, name, len) != 0 || spec[len] != ':')
		return 0;
	n = strtoul(spec + len + 1, &end, 10);
	return *end == '\0' ? n : 0;
}

/* 1 if this call of `name`, counted in *calls, is the one to fail. */
static int
failcall_now(const char *name, atomic_ulong *calls)
{
	unsigned long call = atomic_fetch_add(calls, 1) + 1;
	char line[128];
	int len;

	if (call != failcall_target(name))
		return 0;
	len = snprintf(line, sizeof(line), "failcall: %s: call %lu fails\n",
		       name, call);
	if (len > 0) {
		ssize_t wrote = write(STDERR_FILENO, line, (size_t)len);
		(void)wrote; /* a test that needs the line will miss it */
	}
	return 1;
}

int
evbuffer_remove_buffer(struct evbuffer *src, struct evbuffer *dst,
		       size_t datlen)
{
	static atomic_ulong calls;
	int (*real)(struct evbuffer *, struct evbuffer *, size_t);

	if (failcall_now("evbuffer_remove_buffer", &calls))
		return -1;
	*(void **)&real = dlsym(RTLD_NEXT, "evbuffer_remove_buffer");
	if (real == NULL)
		abort();
	return real(src, dst, datlen);
}

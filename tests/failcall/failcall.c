/*
 * failcall.c: an LD_PRELOAD library for the integration tests that makes
 * chosen calls of echod's fail the way they fail when memory runs out, so
 * that the code handling it runs for real.
 *
 *   ECHOD_TEST_FAIL=NAME:N[,NAME:N...]   the Nth call of NAME (counted
 *                            across threads, from 1) fails, once; the
 *                            others go through
 *
 * Each failure is announced on stderr ("failcall: NAME: call N fails"),
 * so that a test can tell it happened. Interposed:
 *   evbuffer_remove_buffer   returns -1, moving nothing (as when libevent
 *                            cannot allocate a chain for a partial move)
 *   evconnlistener_new       returns NULL, the socket left to the caller
 *   epoll_ctl                fails with ENOMEM; only its adds of a
 *                            listening socket count (echod's listeners,
 *                            and the admin endpoint's through libevent;
 *                            TSan's runtime answers before this one)
 *   bufferevent_socket_new   returns NULL (libevent's own calls count:
 *                            evhttp makes connections' bufferevents)
 *   reallocarray             returns NULL, ENOMEM, the block untouched
 *                            (echod's only caller: worker.c's hand-off
 *                            queue; libevent and OpenSSL call realloc)
 */
#include <dlfcn.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Does ECHOD_TEST_FAIL name call `call` of `name`? */
static int
failcall_listed(const char *name, unsigned long call)
{
	const char *spec = getenv("ECHOD_TEST_FAIL");
	size_t len = strlen(name);
	char *end;

	while (spec != NULL && *spec != '\0') {
		if (strncmp(spec, name, len) == 0 && spec[len] == ':' &&
		    strtoul(spec + len + 1, &end, 10) == call &&
		    (*end == '\0' || *end == ','))
			return 1;
		spec = strchr(spec, ',');
		if (spec != NULL)
			spec++;
	}
	return 0;
}

/* 1 if this call of `name`, counted in *calls, is the one to fail. */
static int
failcall_now(const char *name, atomic_ulong *calls)
{
	unsigned long call = atomic_fetch_add(calls, 1) + 1;
	char line[128];
	int len;

	if (!failcall_listed(name, call))
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

struct evconnlistener *
evconnlistener_new(struct event_base *base, evconnlistener_cb cb, void *ptr,
		   unsigned flags, int backlog, evutil_socket_t fd)
{
	static atomic_ulong calls;
	struct evconnlistener *(*real)(struct event_base *, evconnlistener_cb,
				       void *, unsigned, int, evutil_socket_t);

	if (failcall_now("evconnlistener_new", &calls))
		return NULL;
	*(void **)&real = dlsym(RTLD_NEXT, "evconnlistener_new");
	if (real == NULL)
		abort();
	return real(base, cb, ptr, flags, backlog, fd);
}

/* Is fd a listening socket? errno is left as it was. */
static int
failcall_listening(int fd)
{
	int listening = 0, saved = errno;
	socklen_t len = sizeof(listening);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1)
		listening = 0;
	errno = saved;
	return listening;
}

int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	static atomic_ulong calls;
	static int (*_Atomic real)(int, int, int, struct epoll_event *);
	int (*call)(int, int, int, struct epoll_event *) = atomic_load(&real);

	if (op == EPOLL_CTL_ADD && failcall_listening(fd) &&
	    failcall_now("epoll_ctl", &calls)) {
		errno = ENOMEM;
		return -1;
	}
	if (call == NULL) {
		*(void **)&call = dlsym(RTLD_NEXT, "epoll_ctl");
		if (call == NULL)
			abort();
		atomic_store(&real, call);
	}
	return call(epfd, op, fd, event);
}

struct bufferevent *
bufferevent_socket_new(struct event_base *base, evutil_socket_t fd, int options)
{
	static atomic_ulong calls;
	struct bufferevent *(*real)(struct event_base *, evutil_socket_t, int);

	if (failcall_now("bufferevent_socket_new", &calls))
		return NULL;
	*(void **)&real = dlsym(RTLD_NEXT, "bufferevent_socket_new");
	if (real == NULL)
		abort();
	return real(base, fd, options);
}

void *
reallocarray(void *p, size_t n, size_t size)
{
	static atomic_ulong calls;
	void *(*real)(void *, size_t, size_t);

	if (failcall_now("reallocarray", &calls)) {
		errno = ENOMEM;
		return NULL;
	}
	*(void **)&real = dlsym(RTLD_NEXT, "reallocarray");
	if (real == NULL)
		abort();
	return real(p, n, size);
}

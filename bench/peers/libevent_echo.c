/*
 * libevent_echo.c: the benchmark's textbook libevent echo server: one
 * event_base, an evconnlistener, a bufferevent per connection with default
 * settings, and a read callback that moves the input chain to the output with
 * evbuffer_add_buffer(). No watermarks. The one departure from the samples:
 * on EOF the connection is freed only once its output has drained, so that
 * the benchmark's verification does not fail on lost echoes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#define LIBEVENT_ECHO_BACKLOG 4096

/*
 * "host:port" or "[v6]:port" into ss. evutil_parse_sockaddr_port() rejects
 * port 0, so the port is parsed here and the host part is left to it.
 */
static int
parse_listen(const char *spec, struct sockaddr_storage *ss, int *sslen)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	char *end;
	long port;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	*sslen = (int)sizeof(*ss);
	if (evutil_parse_sockaddr_port(host, (struct sockaddr *)ss, sslen) ==
	    -1)
		return -1;
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	return 0;
}

static void
echo_read_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_add_buffer(bufferevent_get_output(bev),
			    bufferevent_get_input(bev));
}

static void
echo_drained_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_free(bev);
}

static void
echo_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if ((what & BEV_EVENT_EOF) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		/* Write back what was read before the peer's FIN, then free. */
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, NULL, echo_drained_cb, echo_event_cb,
				  NULL);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void
echo_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
	       struct sockaddr *sa, int salen, void *arg)
{
	static const int one = 1;
	struct bufferevent *bev;

	(void)sa;
	(void)salen;
	(void)arg;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd,
				     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, echo_read_cb, NULL, echo_event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
echo_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	int sslen = (int)sizeof(ss);
	socklen_t boundlen = sizeof(ss);
	struct event_base *base;
	struct evconnlistener *lev;
	struct event *term, *intr;
	char buf[128];
	const char *spec = argc == 2 ? argv[1] : NULL;

	if (argc == 3 && strcmp(argv[1], "--listen") == 0)
		spec = argv[2];
	if (spec == NULL) {
		fprintf(stderr, "usage: bench-libevent-echo [--listen] "
				"HOST:PORT\n");
		return 64;
	}
	if (parse_listen(spec, &ss, &sslen) == -1) {
		fprintf(stderr, "libevent_echo: %s: bad address\n", spec);
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);

	if ((base = event_base_new()) == NULL)
		return 1;
	lev = evconnlistener_new_bind(base, echo_accept_cb, NULL,
				      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
				      LIBEVENT_ECHO_BACKLOG,
				      (struct sockaddr *)&ss, sslen);
	if (lev == NULL) {
		perror("libevent_echo: bind");
		return 1;
	}
	term = evsignal_new(base, SIGTERM, echo_signal_cb, base);
	intr = evsignal_new(base, SIGINT, echo_signal_cb, base);
	if (term == NULL || intr == NULL || event_add(term, NULL) == -1 ||
	    event_add(intr, NULL) == -1)
		return 1;

	if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss,
			&boundlen) == -1)
		return 1;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
		fprintf(stderr, "listening on [%s]:%u\n", buf,
			ntohs(sin6->sin6_port));
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		evutil_inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		fprintf(stderr, "listening on %s:%u\n", buf,
			ntohs(sin->sin_port));
	}

	event_base_dispatch(base);

	/* Open connections are left to exit(); the benchmark only needs 0. */
	event_free(term);
	event_free(intr);
	evconnlistener_free(lev);
	event_base_free(base);
	return 0;
}

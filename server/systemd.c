/*
 * systemd.c: what echod speaks to systemd: the notify protocol (READY=1,
 * RELOADING=1, STOPPING=1, STATUS=, WATCHDOG=1, and descriptors for the
 * fd store), and the watchdog's period. The protocol is one datagram on
 * the AF_UNIX socket named by NOTIFY_SOCKET, so echod speaks it itself
 * rather than linking libsystemd: no dependency, and nothing to do when
 * the variables are unset (not under systemd). What systemd hands echod
 * at start (LISTEN_FDS) is inherit.c's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "echod.h"
#include "parse.h"

static int systemd_fd = -1;
static struct sockaddr_un systemd_addr;
static socklen_t systemd_addrlen;

int
systemd_notify_init(char *err, size_t errlen)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;

	if (path == NULL || *path == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(systemd_addr.sun_path)) {
		snprintf(err, errlen, "NOTIFY_SOCKET: unusable address '%s'",
			 path);
		return -1;
	}
	memset(&systemd_addr, 0, sizeof(systemd_addr));
	systemd_addr.sun_family = AF_UNIX;
	memcpy(systemd_addr.sun_path, path, len);
	if (path[0] == '@')
		systemd_addr.sun_path[0] = '\0'; /* abstract namespace */
	systemd_addrlen =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	systemd_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (systemd_fd == -1) {
		snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s",
			 strerror(errno));
		return -1;
	}
	unsetenv("NOTIFY_SOCKET");
	return 0;
}

int
systemd_notify_enabled(void)
{
	return systemd_fd != -1;
}

/* Sends one message, with descriptors (SCM_RIGHTS) if n > 0. */
static void
systemd_send(const char *msg, size_t len, const int *fds, int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = (void *)(uintptr_t)msg, .iov_len = len};
	struct msghdr mh;

	memset(&mh, 0, sizeof(mh));
	mh.msg_name = &systemd_addr;
	mh.msg_namelen = systemd_addrlen;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (n > 0 && n <= 4) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	}
	if (sendmsg(systemd_fd, &mh, MSG_NOSIGNAL) == -1)
		log_debug("notify: %s", strerror(errno));
}

/* Formats and sends one message (dropped if it would not fit). */
static void systemd_vsend(const int *fds, int nfds, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void
systemd_vsend(const int *fds, int nfds, const char *fmt, va_list ap)
{
	char msg[512];
	int n;

	if (systemd_fd == -1)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return;
	systemd_send(msg, (size_t)n, fds, nfds);
}

void
systemd_notify(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	systemd_vsend(NULL, 0, fmt, ap);
	va_end(ap);
}

void
systemd_notify_fds(const int *fds, int nfds, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	systemd_vsend(fds, nfds, fmt, ap);
	va_end(ap);
}

void
systemd_notify_close(void)
{
	if (systemd_fd != -1)
		close(systemd_fd);
	systemd_fd = -1;
}

uint64_t
systemd_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	uint64_t v, p;
	char err[64];

	if (usec == NULL ||
	    parse_uint(usec, 1, UINT64_MAX, &v, err, sizeof(err)) == -1)
		return 0;
	if (pid != NULL &&
	    (parse_uint(pid, 1, UINT64_MAX, &p, err, sizeof(err)) == -1 ||
	     p != (uint64_t)getpid()))
		return 0;
	return v;
}

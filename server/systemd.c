/*
 * systemd.c: what echod speaks to systemd: the notify protocol (READY=1,
 * RELOADING=1, STOPPING=1, STATUS=, WATCHDOG=1) and socket activation
 * (LISTEN_FDS/LISTEN_PID). The protocol is one datagram on the AF_UNIX
 * socket named by NOTIFY_SOCKET, so echod speaks it itself rather than
 * linking libsystemd: no dependency, and nothing to do when the
 * variables are unset (not under systemd).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "echod.h"
#include "parse.h"

/* The first descriptor systemd passes (SD_LISTEN_FDS_START). */
#define SYSTEMD_LISTEN_FDS_START 3

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

void
systemd_notify(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int n;

	if (systemd_fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return;
	if (sendto(systemd_fd, msg, (size_t)n, MSG_NOSIGNAL,
		   (struct sockaddr *)&systemd_addr, systemd_addrlen) == -1)
		log_debug("notify: %s", strerror(errno));
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

int
systemd_listen_fds(int *fds, int max, char *err, size_t errlen)
{
	const char *pid = getenv("LISTEN_PID");
	const char *nfds = getenv("LISTEN_FDS");
	uint64_t p, n;
	char msg[128];
	int i;

	if (pid == NULL || nfds == NULL)
		return 0;
	if (parse_uint(pid, 1, UINT64_MAX, &p, msg, sizeof(msg)) == -1 ||
	    p != (uint64_t)getpid())
		return 0;
	if (parse_uint(nfds, 0, (uint64_t)max, &n, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "LISTEN_FDS: %s", msg);
		return -1;
	}
	for (i = 0; i < (int)n; i++) {
		int fd = SYSTEMD_LISTEN_FDS_START + i, type = 0, listening = 0;
		socklen_t len = sizeof(type);

		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
		    type != SOCK_STREAM) {
			snprintf(err, errlen,
				 "socket activation: descriptor %d is not a "
				 "stream socket",
				 fd);
			return -1;
		}
		len = sizeof(listening);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
			       &len) == -1 ||
		    !listening) {
			snprintf(err, errlen,
				 "socket activation: descriptor %d is not "
				 "listening",
				 fd);
			return -1;
		}
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
		    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
			snprintf(err, errlen, "socket activation: fd %d: %s",
				 fd, strerror(errno));
			return -1;
		}
		fds[i] = fd;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return (int)n;
}

/*
 * inherit.c: sockets echod did not bind itself. At start it takes what
 * LISTEN_FDS/LISTEN_FDNAMES hand it: systemd's socket activation
 * (echod.socket), the sockets systemd kept in its fd store across a
 * restart, or those of the echod it replaces on SIGUSR2 (upgrade.c).
 * A descriptor named "echod-stream-..." or "echod-dgram-..." is one of
 * echod's own listening sockets: the listen line (or admin_listen) that
 * binds its address takes it instead of binding, with whatever parameters
 * that line has now, and one that no line takes is closed when start-up
 * is done. Any other name is socket activation, served as before. Two
 * more names carry an upgrade's own descriptors: the pid file (its lock
 * goes with it) and the pipe on which the new process reports.
 *
 * It also keeps echod's sockets in systemd's fd store (FDSTORE=1), so
 * that the next start after "systemctl restart" finds them: the kernel
 * queues connections on them meanwhile, and none is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "echod.h"
#include "parse.h"

/* The first descriptor LISTEN_FDS counts from (SD_LISTEN_FDS_START). */
#define INHERIT_FDS_START 3
#define INHERIT_PREFIX_STREAM "echod-stream-"
#define INHERIT_PREFIX_DGRAM "echod-dgram-"
/* How long a bind waits for systemd to close a socket it was told to
 * drop from its store: tries, and the pause between them. */
#define INHERIT_REBIND_TRIES 200
#define INHERIT_REBIND_PAUSE_MS 10

struct inherited {
	int fd;
	int type; /* SOCK_STREAM or SOCK_DGRAM */
	struct sockaddr_storage ss;
	socklen_t len;
	int v6only;
	int reuseport;
};

static struct inherited inherit_pool[INHERIT_MAX];
static int inherit_npool;
/* What was taken, by kind and address: a name systemd's store still
 * holds for a socket in use is not to be removed. */
static struct inherited inherit_taken[INHERIT_MAX];
static int inherit_ntaken;
static int inherit_activated_fds[INHERIT_MAX];
static int inherit_nactivated;
static int inherit_upgrade = -1;
static int inherit_pidfile = -1;

/* The canonical bytes of an address: what names and compares it. */
static size_t
inherit_addr_bytes(const struct sockaddr *sa, socklen_t len, unsigned char *out,
		   size_t outlen)
{
	size_t n = 0;

	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const void *)sa;

		if (len < sizeof(*sin) || outlen < 7)
			return 0;
		out[n++] = 4;
		memcpy(out + n, &sin->sin_addr, 4);
		n += 4;
		memcpy(out + n, &sin->sin_port, 2);
		return n + 2;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		if (len < sizeof(*sin6) || outlen < 23)
			return 0;
		out[n++] = 6;
		memcpy(out + n, &sin6->sin6_addr, 16);
		n += 16;
		memcpy(out + n, &sin6->sin6_port, 2);
		n += 2;
		memcpy(out + n, &sin6->sin6_scope_id, 4);
		return n + 4;
	}
	case AF_UNIX: {
		const struct sockaddr_un *sun = (const void *)sa;
		size_t off = offsetof(struct sockaddr_un, sun_path), plen;

		if (len <= off)
			return 0;
		plen = strnlen(sun->sun_path, len - off);
		if (plen == 0 || outlen < plen + 1)
			return 0; /* unnamed or abstract: not ours */
		out[n++] = 'u';
		memcpy(out + n, sun->sun_path, plen);
		return n + plen;
	}
	default:
		return 0;
	}
}

int
inherit_same_addr(const struct sockaddr *a, socklen_t alen,
		  const struct sockaddr *b, socklen_t blen)
{
	unsigned char x[sizeof(struct sockaddr_storage)],
		y[sizeof(struct sockaddr_storage)];
	size_t nx = inherit_addr_bytes(a, alen, x, sizeof(x)),
	       ny = inherit_addr_bytes(b, blen, y, sizeof(y));

	return nx > 0 && nx == ny && memcmp(x, y, nx) == 0;
}

int
inherit_fdname(int type, const struct sockaddr *sa, socklen_t len, char *buf,
	       size_t buflen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[sizeof(struct sockaddr_storage)];
	const char *prefix = type == SOCK_DGRAM ? INHERIT_PREFIX_DGRAM
						: INHERIT_PREFIX_STREAM;
	size_t n = inherit_addr_bytes(sa, len, b, sizeof(b)), i, at;

	at = strlen(prefix);
	if (n == 0 || (type != SOCK_STREAM && type != SOCK_DGRAM) ||
	    at + 2 * n + 1 > buflen || at + 2 * n > INHERIT_NAME_MAX)
		return -1;
	memcpy(buf, prefix, at);
	for (i = 0; i < n; i++) {
		buf[at++] = hex[b[i] >> 4];
		buf[at++] = hex[b[i] & 15];
	}
	buf[at] = '\0';
	return 0;
}

/* The name of a socket we hold: its type and bound address. */
int
inherit_name_fd(int fd, char *buf, size_t buflen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss), tlen;
	int type = 0;

	tlen = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	return inherit_fdname(type, (struct sockaddr *)&ss, len, buf, buflen);
}

/* Is this one of echod's own names for a socket? */
static int
inherit_is_ours(const char *name)
{
	return strncmp(name, INHERIT_PREFIX_STREAM,
		       strlen(INHERIT_PREFIX_STREAM)) == 0 ||
	       strncmp(name, INHERIT_PREFIX_DGRAM,
		       strlen(INHERIT_PREFIX_DGRAM)) == 0;
}

/* Adds a socket of ours to the pool, as it is now. */
static int
inherit_add(int fd, char *err, size_t errlen)
{
	struct inherited *in = &inherit_pool[inherit_npool];
	socklen_t len = sizeof(in->type);
	int on = 0;

	memset(in, 0, sizeof(*in));
	in->fd = fd;
	in->len = sizeof(in->ss);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &in->type, &len) == -1 ||
	    getsockname(fd, (struct sockaddr *)&in->ss, &in->len) == -1) {
		snprintf(err, errlen,
			 "inherited descriptor %d is not a socket: %s", fd,
			 strerror(errno));
		return -1;
	}
	len = sizeof(on);
	if (in->ss.ss_family == AF_INET6 &&
	    getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, &len) == 0)
		in->v6only = on != 0;
	len = sizeof(on);
	on = 0;
	if (in->ss.ss_family != AF_UNIX &&
	    getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, &len) == 0)
		in->reuseport = on != 0;
	inherit_npool++;
	return 0;
}

/* A socket of socket activation: a listening stream socket. */
static int
inherit_check_activated(int fd, char *err, size_t errlen)
{
	int type = 0, listening = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
	    type != SOCK_STREAM) {
		snprintf(err, errlen,
			 "socket activation: descriptor %d is not a stream "
			 "socket",
			 fd);
		return -1;
	}
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1 ||
	    !listening) {
		snprintf(err, errlen,
			 "socket activation: descriptor %d is not listening",
			 fd);
		return -1;
	}
	return 0;
}

int
inherit_init(char *err, size_t errlen)
{
	const char *pid = getenv("LISTEN_PID");
	const char *nfds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	char msg[128], name[INHERIT_NAME_MAX + 1];
	uint64_t p, n;
	int i, rc = -1;

	if (pid == NULL || nfds == NULL)
		return 0;
	if (parse_uint(pid, 1, UINT64_MAX, &p, msg, sizeof(msg)) == -1 ||
	    p != (uint64_t)getpid())
		return 0; /* meant for another process */
	if (parse_uint(nfds, 0, INHERIT_MAX, &n, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "LISTEN_FDS: %s", msg);
		return -1;
	}
	for (i = 0; i < (int)n; i++) {
		int fd = INHERIT_FDS_START + i;
		size_t len = 0;

		/* The i-th ':'-separated name, "" past the last. */
		name[0] = '\0';
		if (names != NULL) {
			len = strcspn(names, ":");
			if (len > INHERIT_NAME_MAX)
				len = INHERIT_NAME_MAX;
			memcpy(name, names, len);
			name[len] = '\0';
			names = names[strcspn(names, ":")] == ':'
					? names + strcspn(names, ":") + 1
					: NULL;
		}
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
			snprintf(err, errlen,
				 "inherited descriptor %d: %s (LISTEN_FDS is "
				 "%llu)",
				 fd, strerror(errno), (unsigned long long)n);
			goto out;
		}
		if (strcmp(name, INHERIT_NAME_UPGRADE) == 0) {
			inherit_upgrade = fd;
			continue;
		}
		if (strcmp(name, INHERIT_NAME_PIDFILE) == 0) {
			inherit_pidfile = fd;
			continue;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
			snprintf(err, errlen, "inherited descriptor %d: %s", fd,
				 strerror(errno));
			goto out;
		}
		if (inherit_is_ours(name)) {
			if (inherit_add(fd, err, errlen) == -1)
				goto out;
			continue;
		}
		if (inherit_check_activated(fd, err, errlen) == -1)
			goto out;
		inherit_activated_fds[inherit_nactivated++] = fd;
	}
	rc = 0;
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}

int
inherit_activated(int *fds, int max)
{
	int i;

	for (i = 0; i < inherit_nactivated && i < max; i++)
		fds[i] = inherit_activated_fds[i];
	return i;
}

int
inherit_take(int type, const struct sockaddr *sa, socklen_t len, int v6only,
	     int reuseport)
{
	int i, fd;

	for (i = 0; i < inherit_npool; i++) {
		struct inherited *in = &inherit_pool[i];

		if (in->type != type ||
		    !inherit_same_addr((struct sockaddr *)&in->ss, in->len, sa,
				       len) ||
		    (v6only != -1 && sa->sa_family == AF_INET6 &&
		     in->v6only != v6only) ||
		    (reuseport != -1 && sa->sa_family != AF_UNIX &&
		     in->reuseport != reuseport))
			continue;
		fd = in->fd;
		inherit_taken[inherit_ntaken++] = *in;
		inherit_pool[i] = inherit_pool[--inherit_npool];
		return fd;
	}
	return -1;
}

/* The port of an IP address, or -1. */
static int
inherit_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)
				     ->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)
				     ->sin6_port);
	return -1;
}

/* Was a socket of this kind and address taken? */
static int
inherit_was_taken(const struct inherited *in)
{
	int i;

	for (i = 0; i < inherit_ntaken; i++)
		if (inherit_taken[i].type == in->type &&
		    inherit_same_addr(
			    (const struct sockaddr *)&in->ss, in->len,
			    (const struct sockaddr *)&inherit_taken[i].ss,
			    inherit_taken[i].len))
			return 1;
	return 0;
}

/* Closes a socket of the pool: out of systemd's store too, unless a
 * socket of the same name is in use. */
static void
inherit_drop(struct inherited *in)
{
	if (!inherit_was_taken(in))
		inherit_unstore(in->fd);
	close(in->fd);
}

static int
inherit_release_port(int type, const struct sockaddr *sa)
{
	int i, port = inherit_port(sa), n = 0;

	if (port <= 0)
		return 0;
	for (i = 0; i < inherit_npool;) {
		struct inherited *in = &inherit_pool[i];

		if (in->type != type ||
		    inherit_port((struct sockaddr *)&in->ss) != port) {
			i++;
			continue;
		}
		inherit_drop(in);
		inherit_pool[i] = inherit_pool[--inherit_npool];
		n++;
	}
	return n;
}

/*
 * bind(2), for a socket of a listen line that took none handed over. If
 * the address is in use by a handed socket of the same port nobody took
 * (its settings differ from the line's: reuseport, the wildcard), that
 * one is closed and leaves systemd's store, and the bind is tried again
 * while systemd lets go of its copy. Only at start: the pool is empty
 * after it.
 */
int
inherit_bind(int fd, int type, const struct sockaddr *sa, socklen_t len)
{
	struct timespec pause = {0, INHERIT_REBIND_PAUSE_MS * 1000000L};
	int i;

	if (bind(fd, sa, len) == 0)
		return 0;
	if (errno != EADDRINUSE || inherit_release_port(type, sa) == 0)
		return -1;
	for (i = 0; i < INHERIT_REBIND_TRIES; i++) {
		if (bind(fd, sa, len) == 0)
			return 0;
		if (errno != EADDRINUSE)
			return -1;
		nanosleep(&pause, NULL);
	}
	return -1;
}

int
inherit_take_unix(const char *path)
{
	struct sockaddr_un sun;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	return inherit_take(SOCK_STREAM, (struct sockaddr *)&sun, sizeof(sun),
			    -1, -1);
}

int
inherit_upgrade_fd(void)
{
	return inherit_upgrade;
}

int
inherit_pidfile_take(void)
{
	int fd = inherit_pidfile;

	inherit_pidfile = -1;
	return fd;
}

/* Start-up is done: what no listen line took is closed, and leaves
 * systemd's store; a Unix socket's file goes with it. */
void
inherit_close_rest(void)
{
	char name[ADDR_STRLEN];
	int i;

	for (i = 0; i < inherit_npool; i++) {
		struct inherited *in = &inherit_pool[i];

		addr_format((struct sockaddr *)&in->ss, name, sizeof(name));
		log_info("%s%s: handed over, but no longer listed: closed",
			 name, in->type == SOCK_DGRAM ? " udp" : "");
		if (in->ss.ss_family == AF_UNIX) {
			const struct sockaddr_un *sun = (const void *)&in->ss;
			if (sun->sun_path[0] != '\0' &&
			    unlink(sun->sun_path) == -1 && errno != ENOENT)
				log_warn("%s: cannot remove the socket file",
					 name);
		}
		inherit_drop(in);
	}
	inherit_npool = 0;
	if (inherit_pidfile != -1)
		close(inherit_pidfile);
	inherit_pidfile = -1;
}

int
inherit_storing(void)
{
	return systemd_notify_enabled();
}

void
inherit_store(int fd)
{
	char name[INHERIT_NAME_MAX + 1];

	if (!inherit_storing() || inherit_name_fd(fd, name, sizeof(name)) == -1)
		return;
	systemd_notify_fds(&fd, 1, "FDSTORE=1\nFDNAME=%s", name);
}

void
inherit_unstore(int fd)
{
	char name[INHERIT_NAME_MAX + 1];

	if (!inherit_storing() || inherit_name_fd(fd, name, sizeof(name)) == -1)
		return;
	systemd_notify("FDSTOREREMOVE=1\nFDNAME=%s", name);
}

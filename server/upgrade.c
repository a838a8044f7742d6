/*
 * upgrade.c: SIGUSR2, the binary upgraded in place (nginx's way, for
 * echod run without systemd). The running echod starts its executable
 * anew, with the arguments and the directory it started with, and hands
 * it every listening socket, the pid file and a pipe (LISTEN_FDS and
 * LISTEN_FDNAMES, as systemd hands them: inherit.c takes them). The new
 * process says "ready" on the pipe once it serves, or why it could not;
 * then the old one stops accepting and drains as on SIGTERM (server.c),
 * or, if the new one failed, says why and goes on serving. Both sides of
 * the pipe are here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "echod.h"

/* How long the new process may take to say it serves. */
#define UPGRADE_TIMEOUT_MS 30000
/* After the pipe closed without "ready": how often, and how many times,
 * to look for the new process's exit status before killing it. */
#define UPGRADE_REAP_MS 20
#define UPGRADE_REAP_TRIES 100
#define UPGRADE_FDS_START 3
#define UPGRADE_ENV_PID "LISTEN_PID="

extern char **environ;

/* An upgrade under way, on the old process's main loop. */
struct upgrade {
	struct server *srv;
	pid_t pid;
	int fd;		    /* the pipe's read end */
	struct event *ev;   /* the pipe is readable */
	struct timer timer; /* the deadline, then reaping */
	int reaping;	    /* the pipe closed: waiting for the exit */
	int tries;
	char said[1024]; /* what the new process wrote */
	size_t len;
};

/*
 * Closing a socket takes it out of every epoll set only if that close
 * drops its last reference; from fork() to its execve() (or its end) the
 * upgrade's child holds a reference to each of our sockets too. The
 * workers close sockets in an epoll set of theirs that way
 * (upgrade_close_private()), so the fork first raises upgrade_sharing and
 * waits out the closes under way: each side reads the other's count after
 * writing its own (sequentially consistent), so either the close sees the
 * fork coming or the fork sees the close. Each closing thread counts on a
 * line of its own (one close per connection: a shared count would move
 * between cores with every one), and the fork reads them all.
 */
static atomic_int upgrade_sharing; /* a child may hold our sockets */

#define UPGRADE_CLOSERS (ECHOD_MAX_THREADS + 1)
static struct {
	_Alignas(ECHOD_CACHE_LINE) atomic_int n; /* closes under way */
} upgrade_closing[UPGRADE_CLOSERS];
static atomic_uint upgrade_nclosers; /* slots taken, in order */
static _Thread_local atomic_int *upgrade_my_closing;

static char *upgrade_exe;	/* our executable's path, at start */
static char *upgrade_cwd;	/* the directory we started in */
static char **upgrade_argv;	/* main()'s */
static int upgrade_report = -1; /* the new process: its pipe */

/* The new process: tells the old one why it stops (if the pipe fails,
 * the old one reports the exit status instead). */
void
upgrade_child_failed(const char *reason)
{
	size_t len = strlen(reason);

	if (upgrade_report == -1)
		return;
	if (write(upgrade_report, "error ", 6) == 6 &&
	    write(upgrade_report, reason, len) == (ssize_t)len)
		(void)!write(upgrade_report, "\n", 1);
	close(upgrade_report);
	upgrade_report = -1;
}

/*
 * Notes what SIGUSR2 will run: the path echod was started by, as given
 * (argv[0] if it names a file; a symbolic link there is followed at the
 * upgrade, so repointing it upgrades), else what /proc/self/exe names
 * now (not /proc/self/exe itself, which stays the old binary once a
 * package replaced it). Without either, SIGUSR2 says it cannot.
 */
int
upgrade_init(char **argv, char *err, size_t errlen)
{
	char path[PATH_MAX], cwd[PATH_MAX];
	ssize_t n;
	char *deleted;

	upgrade_argv = argv;
	upgrade_report = inherit_upgrade_fd();
	if (upgrade_report != -1)
		log_set_fatal_hook(upgrade_child_failed);
	if (getcwd(cwd, sizeof(cwd)) != NULL &&
	    (upgrade_cwd = strdup(cwd)) == NULL)
		goto nomem;
	if (argv[0] != NULL && strchr(argv[0], '/') != NULL) {
		if (argv[0][0] == '/' || upgrade_cwd == NULL)
			upgrade_exe = strdup(argv[0]);
		else if (asprintf(&upgrade_exe, "%s/%s", upgrade_cwd,
				  argv[0]) == -1)
			upgrade_exe = NULL;
		if (upgrade_exe == NULL)
			goto nomem;
		return 0;
	}
	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n == -1)
		return 0; /* no /proc: SIGUSR2 will say so */
	path[n] = '\0';
	if ((deleted = strstr(path, " (deleted)")) != NULL &&
	    deleted[strlen(" (deleted)")] == '\0')
		*deleted = '\0';
	if ((upgrade_exe = strdup(path)) == NULL)
		goto nomem;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

int
upgrade_child(void)
{
	return upgrade_report != -1;
}

void
upgrade_child_ready(void)
{
	if (upgrade_report == -1)
		return;
	log_set_fatal_hook(NULL);
	if (write(upgrade_report, "ready\n", 6) != 6)
		log_warn("upgrade: telling the old process");
	close(upgrade_report);
	upgrade_report = -1;
}

/*
 * Closes fd, a socket of ours, and returns 0 if no child can share it, so
 * that this close drops its last reference; returns -1 without closing it
 * while one may (an upgrade's child not yet past execve()). Any thread.
 */
int
upgrade_close_private(int fd)
{
	atomic_int *closing = upgrade_my_closing;
	int alone;

	if (closing == NULL) {
		/* The thread's first: a slot of its own, taken before it
		 * counts (the fork reads every slot taken by then). Threads
		 * past the last slot share it. */
		unsigned i = atomic_fetch_add(&upgrade_nclosers, 1);

		if (i >= UPGRADE_CLOSERS)
			i = UPGRADE_CLOSERS - 1;
		closing = upgrade_my_closing = &upgrade_closing[i].n;
	}
	atomic_fetch_add(closing, 1);
	alone = atomic_load(&upgrade_sharing) == 0;
	if (alone)
		close(fd);
	atomic_fetch_sub(closing, 1);
	return alone ? 0 : -1;
}

/* Before fork(): from here, no close relies on being the last one. */
void
upgrade_share_begin(void)
{
	unsigned i, n;

	atomic_store(&upgrade_sharing, 1);
	n = atomic_load(&upgrade_nclosers);
	if (n > UPGRADE_CLOSERS)
		n = UPGRADE_CLOSERS;
	for (i = 0; i < n; i++)
		while (atomic_load(&upgrade_closing[i].n) != 0)
			sched_yield();
}

/* The child is past execve() (our sockets are close-on-exec), or gone. */
void
upgrade_share_end(void)
{
	atomic_store(&upgrade_sharing, 0);
}

/* Decimal digits of v into buf, NUL-terminated; async-signal-safe. */
static void
upgrade_utoa(unsigned long v, char *buf)
{
	char tmp[24];
	size_t n = 0, i;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
}

/*
 * The forked child, on its way to execve(): only async-signal-safe calls
 * (the parent has threads). The descriptors go to 3, 4, ... in order:
 * lifted above that range first, so that none overwrites another.
 */
static _Noreturn void
upgrade_exec(int *fds, int n, int report, char **envp, char *pidvar)
{
	struct sigaction dfl;
	sigset_t none;
	char num[24];
	int i, e, base = UPGRADE_FDS_START + n;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if ((report = fcntl(report, F_DUPFD_CLOEXEC, base)) == -1)
		_exit(ECHOD_EXIT_FAILURE);
	for (i = 0; i < n; i++)
		if ((fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, base)) == -1)
			goto fail;
	for (i = 0; i < n; i++)
		if (dup2(fds[i], UPGRADE_FDS_START + i) == -1)
			goto fail;
	upgrade_utoa((unsigned long)getpid(), pidvar + strlen(UPGRADE_ENV_PID));
	/* If it is gone, relative paths in the arguments fail, and the
	 * new process says so. */
	if (upgrade_cwd != NULL)
		(void)!chdir(upgrade_cwd);
	execve(upgrade_exe, upgrade_argv, envp);
fail:
	e = errno;
	upgrade_utoa((unsigned long)e, num);
	if (write(report, "exec ", 5) == 5 &&
	    write(report, num, strlen(num)) == (ssize_t)strlen(num))
		(void)!write(report, "\n", 1);
	_exit(ECHOD_EXIT_FAILURE);
}

static void
upgrade_end(struct server *srv)
{
	struct upgrade *u = srv->upgrade;

	if (u == NULL)
		return;
	if (u->ev != NULL)
		event_free(u->ev);
	if (u->timer.base != NULL) /* made */
		timer_del(&u->timer);
	if (u->fd != -1)
		close(u->fd);
	free(u);
	srv->upgrade = NULL;
}

/* The new process failed: say why, and go on as before. */
static void
upgrade_failed(struct upgrade *u, const char *why)
{
	struct server *srv = u->srv;
	char err[256];

	upgrade_share_end(); /* it is gone */
	log_warnx("upgrade failed, still serving: %s", why);
	/* If it wrote its pid before it failed, the file is ours again. */
	if (daemon_pidfile_restore(err, sizeof(err)) == -1)
		log_warnx("%s", err);
	upgrade_end(srv);
}

/* What the new process said, or its exit status, as a reason. */
static void
upgrade_reason(struct upgrade *u, int status, char *buf, size_t len)
{
	char *nl;

	u->said[u->len] = '\0';
	if ((nl = strchr(u->said, '\n')) != NULL)
		*nl = '\0';
	if (strncmp(u->said, "error ", 6) == 0)
		snprintf(buf, len, "%s", u->said + 6);
	else if (strncmp(u->said, "exec ", 5) == 0)
		snprintf(buf, len, "cannot execute %s: %s", upgrade_exe,
			 strerror(atoi(u->said + 5)));
	else if (WIFEXITED(status))
		snprintf(buf, len,
			 "the new process (pid %ld) exited with status %d "
			 "before it was serving",
			 (long)u->pid, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len,
			 "the new process (pid %ld) was killed by signal %d "
			 "before it was serving",
			 (long)u->pid, WTERMSIG(status));
	else
		snprintf(buf, len, "the new process (pid %ld) stopped",
			 (long)u->pid);
}

/* The pipe closed without "ready": the new process is on its way out;
 * its exit status is looked for without holding up the loop. */
static void
upgrade_reap(struct upgrade *u)
{
	char why[1200];
	int status = 0;
	pid_t r;

	r = waitpid(u->pid, &status, WNOHANG);
	if (r == 0 && ++u->tries < UPGRADE_REAP_TRIES) {
		timer_add_ms(&u->timer, UPGRADE_REAP_MS);
		return;
	}
	if (r == 0) {
		kill(u->pid, SIGKILL);
		while (waitpid(u->pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	upgrade_reason(u, r == -1 ? 0 : status, why, sizeof(why));
	upgrade_failed(u, why);
}

/* A stop while an upgrade is under way: the new process goes, and this
 * one stops as if there had been none. */
void
upgrade_abort(struct server *srv, const char *why)
{
	struct upgrade *u = srv->upgrade;
	char err[256];
	int status;

	if (u == NULL)
		return;
	kill(u->pid, SIGKILL);
	while (waitpid(u->pid, &status, 0) == -1 && errno == EINTR)
		;
	upgrade_share_end();
	log_warnx("%s: upgrade abandoned: stopped the new process (pid %ld)",
		  why, (long)u->pid);
	if (daemon_pidfile_restore(err, sizeof(err)) == -1)
		log_warnx("%s", err);
	upgrade_end(srv);
}

static void
upgrade_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upgrade *u = arg;
	struct server *srv = u->srv;
	ssize_t n;

	(void)what;
	for (;;) {
		n = read(fd, u->said + u->len, sizeof(u->said) - 1 - u->len);
		if (n > 0) {
			u->len += (size_t)n;
			if (u->len == sizeof(u->said) - 1)
				break; /* enough to tell */
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		break; /* EOF, or an error: the pipe is done */
	}
	if (u->len >= 6 && memcmp(u->said, "ready\n", 6) == 0) {
		long pid = (long)u->pid;

		upgrade_share_end(); /* it runs the new binary */
		upgrade_end(srv);
		log_info("upgrade: the new process (pid %ld) is serving", pid);
		server_hand_over(srv);
		return;
	}
	event_del(u->ev);
	timer_del(&u->timer);
	u->reaping = 1;
	upgrade_reap(u);
}

static void
upgrade_timer_cb(void *arg)
{
	struct upgrade *u = arg;
	char why[128];
	int status;

	if (u->reaping) {
		upgrade_reap(u);
		return;
	}
	kill(u->pid, SIGKILL);
	while (waitpid(u->pid, &status, 0) == -1 && errno == EINTR)
		;
	snprintf(why, sizeof(why),
		 "the new process (pid %ld) did not say it was serving "
		 "within %ds; killed it",
		 (long)u->pid, UPGRADE_TIMEOUT_MS / 1000);
	upgrade_failed(u, why);
}

/* Appends "NAME" (with a ':' before all but the first) to buf at *at. */
static int
upgrade_name(char *buf, size_t len, size_t *at, const char *name)
{
	int n = snprintf(buf + *at, len - *at, "%s%s",
			 buf[*at - 1] == '=' ? "" : ":", name);

	if (n < 0 || (size_t)n >= len - *at)
		return -1;
	*at += (size_t)n;
	return 0;
}

/* The new process's environment: ours, with LISTEN_* set for it. */
static char **
upgrade_env(int n, char *names, char *pidvar, char *count)
{
	size_t i, k = 0, total = 0;
	char **env;

	while (environ[total] != NULL)
		total++;
	if ((env = calloc(total + 4, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; i < total; i++)
		if (strncmp(environ[i], "LISTEN_", 7) != 0)
			env[k++] = environ[i];
	snprintf(count, 32, "LISTEN_FDS=%d", n);
	env[k++] = count;
	env[k++] = names;
	env[k++] = pidvar;
	env[k] = NULL;
	return env;
}

void
upgrade_begin(struct server *srv)
{
	struct timeval tv = {UPGRADE_TIMEOUT_MS / 1000,
			     (suseconds_t)(UPGRADE_TIMEOUT_MS % 1000) * 1000};
	int fds[INHERIT_MAX], pipefd[2] = {-1, -1}, n, i, nsock;
	/* "LISTEN_FDNAMES=" and a name and a ':' per descriptor. */
	size_t nameslen = 32 + (size_t)INHERIT_MAX * (INHERIT_NAME_MAX + 1);
	char *names = NULL, count[32],
	     pidvar[sizeof(UPGRADE_ENV_PID) + 24] = UPGRADE_ENV_PID;
	char name[INHERIT_NAME_MAX + 1];
	size_t at;
	char **env = NULL;
	struct upgrade *u = NULL;
	pid_t pid;

	if (srv->stopping) {
		log_warnx("SIGUSR2: shutting down, not upgrading");
		return;
	}
	if (srv->upgrade != NULL) {
		log_warnx("SIGUSR2: an upgrade is under way already (pid %ld)",
			  (long)srv->upgrade->pid);
		return;
	}
	if (systemd_notify_enabled()) {
		log_warnx("SIGUSR2: under systemd, upgrade with 'systemctl "
			  "restart echod': the sockets wait in its fd store "
			  "meanwhile");
		return;
	}
	if (upgrade_exe == NULL) {
		log_warnx("SIGUSR2: cannot upgrade: the path of echod's own "
			  "executable is unknown (no /proc, and started "
			  "through PATH)");
		return;
	}
	if (listener_activated(srv)) {
		log_warnx("SIGUSR2: the sockets came from socket activation: "
			  "restart through what passed them instead");
		return;
	}
	/* The sockets, named by their addresses, then the pid file and
	 * the pipe; every one, or no upgrade: a socket left behind would
	 * take its queue with it. */
	nsock = listener_fds(srv, fds, INHERIT_MAX - 3);
	if (nsock > INHERIT_MAX - 3 - (admin_fd(srv) != -1)) {
		log_warnx("SIGUSR2: cannot upgrade: %d listening sockets, more "
			  "than the %d that can be handed over",
			  nsock + (admin_fd(srv) != -1), INHERIT_MAX - 3);
		return;
	}
	if (admin_fd(srv) != -1)
		fds[nsock++] = admin_fd(srv);
	if ((names = malloc(nameslen)) == NULL) {
		log_warnx("SIGUSR2: cannot upgrade: out of memory");
		return;
	}
	at = (size_t)snprintf(names, nameslen, "LISTEN_FDNAMES=");
	for (i = n = 0; i < nsock; i++, n++) {
		if (inherit_name_fd(fds[i], name, sizeof(name)) == -1 ||
		    upgrade_name(names, nameslen, &at, name) == -1) {
			log_warn("SIGUSR2: cannot upgrade: descriptor %d",
				 fds[i]);
			goto fail;
		}
	}
	if (daemon_pidfile_fd() != -1 &&
	    upgrade_name(names, nameslen, &at, INHERIT_NAME_PIDFILE) == 0)
		fds[n++] = daemon_pidfile_fd();
	if (pipe2(pipefd, O_CLOEXEC) == -1 ||
	    upgrade_name(names, nameslen, &at, INHERIT_NAME_UPGRADE) == -1 ||
	    (u = calloc(1, sizeof(*u))) == NULL ||
	    (env = upgrade_env(n + 1, names, pidvar, count)) == NULL) {
		log_warn("SIGUSR2: cannot upgrade");
		goto fail;
	}
	fds[n++] = pipefd[1];
	u->srv = srv;
	u->fd = pipefd[0];
	u->ev = event_new(srv->base, u->fd, EV_READ | EV_PERSIST,
			  upgrade_read_cb, u);
	timer_init(&u->timer, srv->base, &srv->holds, upgrade_timer_cb, u);
	if (u->ev == NULL || evutil_make_socket_nonblocking(u->fd) == -1) {
		log_warnx("SIGUSR2: cannot upgrade: out of memory");
		goto fail;
	}
	upgrade_share_begin();
	if ((pid = fork()) == -1) {
		upgrade_share_end();
		log_warn("SIGUSR2: cannot upgrade: fork");
		goto fail;
	}
	if (pid == 0)
		upgrade_exec(fds, n, pipefd[1], env, pidvar);
	close(pipefd[1]);
	free(env);
	free(names);
	u->pid = pid;
	srv->upgrade = u;
	event_add(u->ev, NULL);
	timer_add(&u->timer, &tv);
	log_info("SIGUSR2: upgrading: started %s (pid %ld) with %d socket%s",
		 upgrade_exe, (long)pid, n - 1 - (daemon_pidfile_fd() != -1),
		 n - 1 - (daemon_pidfile_fd() != -1) == 1 ? "" : "s");
	return;
fail:
	free(env);
	free(names);
	if (pipefd[1] != -1)
		close(pipefd[1]);
	if (u != NULL) {
		srv->upgrade = u;
		u->fd = pipefd[0];
		upgrade_end(srv);
	} else if (pipefd[0] != -1) {
		close(pipefd[0]);
	}
}

void
upgrade_free(struct server *srv)
{
	/* An upgrade under way at exit: the new process goes on, and
	 * serves the sockets it was handed. */
	upgrade_end(srv);
}

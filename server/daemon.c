/*
 * daemon.c: becoming a classic daemon: detaching (fork, new session,
 * standard streams to /dev/null) with the parent waiting until the child
 * is serving, the pid file (locked, so a live echod's file is refused and a
 * stale one is taken over), dropping root for an unprivileged user, and
 * fitting the descriptor limit to max_connections (the soft limit is
 * raised towards the hard one, as memcached and nginx do).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "echod.h"

static int daemon_ready_fd = -1;
static int daemon_pid_fd = -1;
static char *daemon_pid_path;
/* Taken over from the echod this one upgrades: not ours to remove until
 * we have written our pid in it. */
static int daemon_pid_adopted;

/*
 * Forks; the parent waits for the child's word that it is serving and
 * exits 0, or exits with the child's status if the child dies first. The
 * child goes on in a new session, standard error still open so that a
 * start-up error reaches the terminal.
 */
void
daemon_detach(void)
{
	int fds[2], status;
	pid_t pid;
	char c;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) == -1)
		fatal(ECHOD_EXIT_FAILURE, "daemonize: pipe");
	if ((pid = fork()) == -1)
		fatal(ECHOD_EXIT_FAILURE, "daemonize: fork");
	if (pid > 0) {
		close(fds[1]);
		do
			n = read(fds[0], &c, 1);
		while (n == -1 && errno == EINTR);
		if (n == 1)
			_exit(ECHOD_EXIT_OK);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			_exit(WEXITSTATUS(status));
		_exit(ECHOD_EXIT_FAILURE);
	}
	close(fds[0]);
	daemon_ready_fd = fds[1];
	if (setsid() == -1)
		fatal(ECHOD_EXIT_FAILURE, "daemonize: setsid");
	if (chdir("/") == -1)
		fatal(ECHOD_EXIT_FAILURE, "daemonize: chdir /");
}

/* The child is serving: release the parent and let go of the terminal. */
void
daemon_ready(void)
{
	int fd;

	if (daemon_ready_fd == -1)
		return;
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (write(daemon_ready_fd, "", 1) != 1)
		log_warn("daemonize: telling the parent");
	close(daemon_ready_fd);
	daemon_ready_fd = -1;
}

/* Is fd the file at path? */
static int
daemon_same_file(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/*
 * Opens and locks the pid file. inherited is the one an upgrade handed
 * over (or -1): the same file is taken over with its lock, since the old
 * echod holds the lock until it exits; another one is closed.
 */
int
daemon_pidfile_open(const char *path, int inherited, char *err, size_t errlen)
{
	static int registered;
	char buf[32], cwd[PATH_MAX];
	ssize_t n;
	int fd;

	if (inherited != -1 && daemon_same_file(inherited, path)) {
		fd = inherited;
		daemon_pid_adopted = 1;
		goto locked;
	}
	if (inherited != -1)
		close(inherited);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1) {
		snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int saved = errno;

		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		if (saved == EWOULDBLOCK)
			snprintf(err, errlen,
				 "pid file %s is held by a running echod (pid "
				 "%s)",
				 path, buf[0] ? buf : "unknown");
		else
			snprintf(err, errlen, "pid file %s: lock: %s", path,
				 strerror(saved));
		close(fd);
		return -1;
	}
locked:
	/* Kept absolute: a daemon removes it from "/" at exit. */
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) {
		if (asprintf(&daemon_pid_path, "%s/%s", cwd, path) == -1)
			daemon_pid_path = NULL;
	} else {
		daemon_pid_path = strdup(path);
	}
	if (daemon_pid_path == NULL) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	daemon_pid_fd = fd;
	/* A start that fails after this (fatal() exits) leaves no file. */
	if (!registered) {
		atexit(daemon_pidfile_remove);
		registered = 1;
	}
	return 0;
}

/* Writes our pid; the lock taken at open is held until exit. */
int
daemon_pidfile_write(char *err, size_t errlen)
{
	char buf[32];
	int n;

	if (daemon_pid_fd == -1)
		return 0;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(daemon_pid_fd, 0) == -1 ||
	    pwrite(daemon_pid_fd, buf, (size_t)n, 0) != n) {
		snprintf(err, errlen, "pid file %s: %s", daemon_pid_path,
			 strerror(errno));
		return -1;
	}
	daemon_pid_adopted = 0;
	return 0;
}

/* Does the open pid file hold our pid, and only that? */
static int
daemon_pidfile_is_ours(void)
{
	char want[32], have[32];
	ssize_t n;
	int len;

	len = snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	n = pread(daemon_pid_fd, have, sizeof(have), 0);
	return n == len && memcmp(have, want, (size_t)len) == 0;
}

/* Writes our pid again unless the file holds it (an upgrade failed:
 * the new process may have written its own), never leaving it empty
 * for a reader when it need not. */
int
daemon_pidfile_restore(char *err, size_t errlen)
{
	if (daemon_pid_fd == -1 || daemon_pidfile_is_ours())
		return 0;
	return daemon_pidfile_write(err, errlen);
}

int
daemon_pidfile_fd(void)
{
	return daemon_pid_fd;
}

/* An upgrade is done: the pid file is let go as it is if the new echod
 * wrote its pid there, and removed as at exit if it did not (its
 * config names another file, or none). */
void
daemon_pidfile_hand_over(void)
{
	if (daemon_pid_fd == -1)
		return;
	if (daemon_pidfile_is_ours())
		daemon_pidfile_remove();
	else
		daemon_pidfile_release();
}

/* A new echod has the pid file now (SIGUSR2): let it go as it is. */
void
daemon_pidfile_release(void)
{
	if (daemon_pid_fd == -1)
		return;
	close(daemon_pid_fd);
	daemon_pid_fd = -1;
	free(daemon_pid_path);
	daemon_pid_path = NULL;
}

void
daemon_pidfile_remove(void)
{
	if (daemon_pid_fd == -1)
		return;
	if (daemon_pid_adopted) {
		/* An upgrade that failed: the old echod's file, as it was. */
		daemon_pidfile_release();
		return;
	}
	/* After dropping root its directory may not let us (said at start):
	 * then no stale pid is left in it, and the released lock marks it
	 * stale for the next echod. Removed or emptied before the lock goes,
	 * so never a file that a new echod has taken over. */
	if (unlink(daemon_pid_path) == -1 && errno != ENOENT) {
		int saved = errno;

		if (ftruncate(daemon_pid_fd, 0) == -1)
			log_warn("pid file %s: cannot remove (%s) nor empty it",
				 daemon_pid_path, strerror(saved));
		else
			log_info("pid file %s: cannot remove it (%s); emptied "
				 "it",
				 daemon_pid_path, strerror(saved));
	}
	close(daemon_pid_fd);
	daemon_pid_fd = -1;
	free(daemon_pid_path);
	daemon_pid_path = NULL;
}

/* Once we are the unprivileged user: warns, at start rather than at exit,
 * when the pid file's directory will not let us remove the file. */
static void
daemon_pidfile_check_removable(const char *user)
{
	char dir[PATH_MAX];
	char *slash;

	if (daemon_pid_path == NULL ||
	    snprintf(dir, sizeof(dir), "%s", daemon_pid_path) >=
		    (int)sizeof(dir))
		return;
	slash = strrchr(dir, '/'); /* the path is absolute */
	if (slash == NULL)
		return;
	slash[slash == dir ? 1 : 0] = '\0';
	if (access(dir, W_OK | X_OK) == -1)
		log_warnx("pid file %s: user %s cannot remove it from %s, so "
			  "at exit it will be emptied instead",
			  daemon_pid_path, user, dir);
}

/* Checks that the user exists, for --check-config and before binding. */
int
daemon_user_check(const char *user, char *err, size_t errlen)
{
	errno = 0;
	if (getpwnam(user) == NULL) {
		if (errno != 0)
			snprintf(err, errlen, "user '%s': %s", user,
				 strerror(errno));
		else
			snprintf(err, errlen, "user '%s' does not exist", user);
		return -1;
	}
	return 0;
}

/* Gives path to user (and its group), as root before dropping to it;
 * a no-op for a process that is not root, whose files are its own. */
int
daemon_chown_to_user(const char *path, const char *user, char *err,
		     size_t errlen)
{
	struct passwd *pw;

	if (user == NULL || geteuid() != 0)
		return 0;
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "user '%s' does not exist", user);
		return -1;
	}
	if (chown(path, pw->pw_uid, pw->pw_gid) == -1) {
		snprintf(err, errlen, "cannot give %s to user '%s': %s", path,
			 user, strerror(errno));
		return -1;
	}
	return 0;
}

int
daemon_drop_privileges(const char *user, char *err, size_t errlen)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "user '%s' does not exist", user);
		return -1;
	}
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid &&
	    getgid() == pw->pw_gid)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1) {
		snprintf(err, errlen, "cannot switch to user '%s': %s", user,
			 strerror(errno));
		return -1;
	}
	/* Never go on as root by mistake. */
	if (pw->pw_uid != 0 && (setuid(0) != -1 || geteuid() == 0)) {
		snprintf(err, errlen,
			 "switched to user '%s' but could regain root", user);
		return -1;
	}
	log_info("running as user %s (uid %ld)", pw->pw_name, (long)pw->pw_uid);
	daemon_pidfile_check_removable(pw->pw_name);
	return 0;
}

/* The soft descriptor limit that holds wanted descriptors, as far as the
 * hard limit allows; never lower than the soft limit already is. */
uint64_t
daemon_nofile_target(uint64_t wanted, uint64_t soft, uint64_t hard)
{
	if (wanted <= soft)
		return soft;
	return wanted < hard ? wanted : hard;
}

/*
 * Raises the soft RLIMIT_NOFILE to hold wanted descriptors. Returns 0 if
 * it does; -1 with the reason in err if the limit cannot hold them (the
 * caller warns: echod still runs, and refuses what it cannot accept).
 */
int
daemon_nofile_fit(uint64_t wanted, char *err, size_t errlen)
{
	struct rlimit rl;
	uint64_t soft, hard, target;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		snprintf(err, errlen, "getrlimit: %s", strerror(errno));
		return -1;
	}
	soft = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
	hard = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max;
	target = daemon_nofile_target(wanted, soft, hard);
	if (target != soft) {
		rl.rlim_cur = (rlim_t)target;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			snprintf(err, errlen,
				 "cannot raise the descriptor limit from %llu "
				 "to %llu: %s",
				 (unsigned long long)soft,
				 (unsigned long long)target, strerror(errno));
			return -1;
		}
		log_debug("descriptor limit raised from %llu to %llu",
			  (unsigned long long)soft, (unsigned long long)target);
	}
	if (target < wanted) {
		snprintf(err, errlen,
			 "the descriptor limit is %llu (hard limit %llu), "
			 "below the %llu that max_connections needs",
			 (unsigned long long)target, (unsigned long long)hard,
			 (unsigned long long)wanted);
		return -1;
	}
	return 0;
}

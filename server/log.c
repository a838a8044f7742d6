/*
 * log.c: echod's log API in the OpenBSD shape (log_warn appends strerror,
 * log_warnx does not, fatal/fatalx log and exit), the level filter, where
 * lines go (standard error with a timestamp; under systemd, standard error
 * with "<N>" priority prefixes that journald reads; or syslog), and
 * libevent's own messages routed in. A line on standard error is one
 * write(2), so lines from different threads never interleave.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "echod.h"

#define LOG_LINE_MAX 1024

_Atomic int log_level_current = LOG_LEVEL_INFO;

static const char *const log_names[] = {"error", "warn", "info", "debug"};
static const int log_priorities[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

enum log_target { LOG_TO_STDERR, LOG_TO_JOURNAL, LOG_TO_SYSLOG };
/* -d switches to syslog once the daemon serves, while workers may log:
 * every thread reads the target through this atomic. */
static _Atomic int log_target = LOG_TO_STDERR;
/*
 * Set by fatal()/fatalx(): the reason echod exits goes to stderr as well
 * as to syslog. A start that fails (a busy address, say) must tell whoever
 * started it, even where syslog is not listening. (A daemon's stderr is
 * /dev/null once it is serving.)
 */
static _Atomic int log_exiting;

/* Is standard error the journal's stream (JOURNAL_STREAM is "dev:ino")? */
static int
log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

static void log_vwrite(int level, const char *fmt, va_list ap,
		       const char *suffix)
	__attribute__((format(printf, 2, 0)));

static void
log_vwrite(int level, const char *fmt, va_list ap, const char *suffix)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	int target = atomic_load(&log_target);
	int n, m;

	if (target == LOG_TO_JOURNAL) {
		/* journald stamps the time and the pid itself. */
		n = snprintf(line, sizeof(line),
			     "<%d>%s: ", log_priorities[level],
			     log_names[level]);
	} else if (target == LOG_TO_SYSLOG) {
		n = 0;
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ echod[%ld] "
			     "%s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000L, (long)getpid(),
			     log_names[level]);
	}
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	if (suffix != NULL) {
		m = snprintf(line + n, sizeof(line) - (size_t)n - 1, ": %s",
			     suffix);
		if (m > 0)
			n += m;
		if ((size_t)n >= sizeof(line) - 1)
			n = (int)sizeof(line) - 2;
	}
	if (target == LOG_TO_SYSLOG) {
		line[n] = '\0';
		syslog(log_priorities[level], "%s", line);
		if (log_exiting)
			dprintf(STDERR_FILENO, "echod: %s\n", line);
		return;
	}
	line[n++] = '\n';
	/* Nothing sensible is left to do if stderr is gone. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

static void
log_libevent_cb(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_DEBUG:
		log_debug("libevent: %s", msg);
		break;
	case EVENT_LOG_MSG:
		log_info("libevent: %s", msg);
		break;
	case EVENT_LOG_WARN:
		log_warnx("libevent: %s", msg);
		break;
	default:
		log_error("libevent: %s", msg);
		break;
	}
}

static void
log_libevent_fatal_cb(int err)
{
	fatalx(ECHOD_EXIT_FAILURE, "libevent: fatal error %d", err);
}

void
log_init(int level)
{
	log_set_level(level);
	if (log_stderr_is_journal())
		log_target = LOG_TO_JOURNAL;
	event_set_log_callback(log_libevent_cb);
	event_set_fatal_callback(log_libevent_fatal_cb);
}

void
log_to_syslog(void)
{
	if (log_target == LOG_TO_SYSLOG)
		return;
	openlog("echod", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_target = LOG_TO_SYSLOG;
}

void
log_set_level(int level)
{
	atomic_store(&log_level_current, level);
}

int
log_level_parse(const char *s, int *level)
{
	int i;

	for (i = LOG_LEVEL_ERROR; i <= LOG_LEVEL_DEBUG; i++) {
		if (strcasecmp(s, log_names[i]) == 0) {
			*level = i;
			return 0;
		}
	}
	return -1;
}

const char *
log_level_name(int level)
{
	return log_names[level];
}

#define LOG_DEFINE(name, level, suffix_expr)                                   \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		va_list ap;                                                    \
		int saved = errno;                                             \
		if (!log_enabled(level))                                       \
			return;                                                \
		va_start(ap, fmt);                                             \
		log_vwrite(level, fmt, ap, suffix_expr);                       \
		va_end(ap);                                                    \
		errno = saved;                                                 \
	}

LOG_DEFINE(log_error, LOG_LEVEL_ERROR, NULL)
LOG_DEFINE(log_warn, LOG_LEVEL_WARN, strerror(saved))
LOG_DEFINE(log_warnx, LOG_LEVEL_WARN, NULL)
LOG_DEFINE(log_info, LOG_LEVEL_INFO, NULL)
LOG_DEFINE(log_debug, LOG_LEVEL_DEBUG, NULL)

void
fatal(int status, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_exiting = 1;
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, strerror(saved));
	va_end(ap);
	exit(status);
}

void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_exiting = 1;
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(status);
}

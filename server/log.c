/*
 * log.c: echod's log API in the OpenBSD shape (log_warn appends strerror,
 * log_warnx does not, fatal/fatalx log and exit), the level filter, where
 * lines go (standard error with a timestamp; under systemd, standard error
 * with "<N>" priority prefixes that journald reads; or syslog), and
 * libevent's own messages routed in. A line on standard error is one
 * write(2), so lines from different threads never interleave.
 *
 * log_format = json writes each line as one JSON object: ts, level, msg,
 * and for log_fields() lines (the connection log) their fields, typed;
 * under systemd the object follows the "<N>" prefix, so the journal keeps
 * its priority. In text, those fields follow the message as key=value.
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
#define LOG_MSG_MAX 768

_Atomic int log_level_current = LOG_LEVEL_INFO;
static _Atomic int log_json; /* log_format = json */

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

/* Appends s to buf as the inside of a JSON string; returns the new
 * length (buf is cut short, never overrun). */
static size_t
log_json_escape(char *buf, size_t len, size_t at, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s != '\0' && at + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			buf[at++] = '\\';
			buf[at++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			/* Control bytes, and any byte not ASCII: a name or a
			 * path need not be UTF-8, and JSON must be. */
			memcpy(buf + at, "\\u00", 4);
			buf[at + 4] = hex[ch >> 4];
			buf[at + 5] = hex[ch & 15];
			at += 6;
		} else {
			buf[at++] = (char)ch;
		}
	}
	buf[at] = '\0';
	return at;
}

/* Appends a field: ,"key":value (JSON) or " key=value" (text). */
static size_t
log_put_field(char *buf, size_t len, size_t at, int json,
	      const struct log_field *f)
{
	char num[32];
	const char *v = num;
	int n;

	switch (f->kind) {
	case LOG_FIELD_STR:
		v = f->str;
		break;
	case LOG_FIELD_UINT:
		snprintf(num, sizeof(num), "%llu", (unsigned long long)f->num);
		break;
	case LOG_FIELD_MS_AS_S:
		snprintf(num, sizeof(num), "%llu.%03llu",
			 (unsigned long long)(f->num / 1000),
			 (unsigned long long)(f->num % 1000));
		break;
	}
	if (at + 4 >= len)
		return at;
	if (!json) {
		n = snprintf(buf + at, len - at, " %s=%s", f->key, v);
		return n > 0 && (size_t)n < len - at ? at + (size_t)n : at;
	}
	n = snprintf(buf + at, len - at, ",\"%s\":", f->key);
	if (n <= 0 || (size_t)n >= len - at)
		return at;
	at += (size_t)n;
	if (f->kind != LOG_FIELD_STR) {
		n = snprintf(buf + at, len - at, "%s", v);
		return n > 0 && (size_t)n < len - at ? at + (size_t)n : at;
	}
	if (at + 2 >= len)
		return at;
	buf[at++] = '"';
	at = log_json_escape(buf, len - 1, at, v);
	buf[at++] = '"';
	buf[at] = '\0';
	return at;
}

static void log_vwrite(int level, const char *fmt, va_list ap,
		       const char *suffix, const struct log_field *fields,
		       size_t nfields) __attribute__((format(printf, 2, 0)));

static void
log_vwrite(int level, const char *fmt, va_list ap, const char *suffix,
	   const struct log_field *fields, size_t nfields)
{
	char line[LOG_LINE_MAX], msg[LOG_MSG_MAX];
	struct timespec ts;
	struct tm tm;
	int target = atomic_load(&log_target);
	int json = atomic_load(&log_json);
	int n, m;
	size_t i;

	if (json) {
		size_t at;

		vsnprintf(msg, sizeof(msg), fmt, ap);
		if (suffix != NULL) {
			size_t k = strlen(msg);
			snprintf(msg + k, sizeof(msg) - k, ": %s", suffix);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = 0;
		if (target == LOG_TO_JOURNAL)
			n = snprintf(line, sizeof(line), "<%d>",
				     log_priorities[level]);
		m = snprintf(line + n, sizeof(line) - (size_t)n,
			     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
			     "\"level\":\"%s\",\"msg\":\"",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000L, log_names[level]);
		at = (size_t)n + (size_t)(m > 0 ? m : 0);
		/* Room is kept for the closing '"}' and the newline. */
		at = log_json_escape(line, sizeof(line) - 4, at, msg);
		line[at++] = '"';
		line[at] = '\0';
		for (i = 0; i < nfields; i++)
			at = log_put_field(line, sizeof(line) - 3, at, 1,
					   &fields[i]);
		line[at++] = '}';
		if (target == LOG_TO_SYSLOG) {
			line[at] = '\0';
			syslog(log_priorities[level], "%s", line);
			if (log_exiting)
				dprintf(STDERR_FILENO, "%s\n", line);
			return;
		}
		line[at++] = '\n';
		if (write(STDERR_FILENO, line, at) < 0)
			return;
		return;
	}

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
	for (i = 0; i < nfields; i++)
		n = (int)log_put_field(line, sizeof(line) - 1, (size_t)n, 0,
				       &fields[i]);
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

void
log_set_json(int json)
{
	atomic_store(&log_json, json);
}

/* A line with typed fields after its message: the connection log. */
void
log_fields(int level, const struct log_field *fields, size_t n, const char *fmt,
	   ...)
{
	va_list ap;
	int saved = errno;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap, NULL, fields, n);
	va_end(ap);
	errno = saved;
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
		log_vwrite(level, fmt, ap, suffix_expr, NULL, 0);              \
		va_end(ap);                                                    \
		errno = saved;                                                 \
	}

LOG_DEFINE(log_error, LOG_LEVEL_ERROR, NULL)
LOG_DEFINE(log_warn, LOG_LEVEL_WARN, strerror(saved))
LOG_DEFINE(log_warnx, LOG_LEVEL_WARN, NULL)
LOG_DEFINE(log_info, LOG_LEVEL_INFO, NULL)
LOG_DEFINE(log_debug, LOG_LEVEL_DEBUG, NULL)

static void (*log_fatal_hook)(const char *reason);

void
log_set_fatal_hook(void (*hook)(const char *reason))
{
	log_fatal_hook = hook;
}

/* Hands the reason echod exits to the hook, if one is set. */
static void log_fatal_tell(const char *fmt, va_list ap, const char *suffix)
	__attribute__((format(printf, 1, 0)));

static void
log_fatal_tell(const char *fmt, va_list ap, const char *suffix)
{
	char reason[1024];
	int n;

	if (log_fatal_hook == NULL)
		return;
	n = vsnprintf(reason, sizeof(reason), fmt, ap);
	if (n >= 0 && suffix != NULL && (size_t)n < sizeof(reason))
		snprintf(reason + n, sizeof(reason) - (size_t)n, ": %s",
			 suffix);
	log_fatal_hook(reason);
}

void
fatal(int status, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_exiting = 1;
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, strerror(saved), NULL, 0);
	va_end(ap);
	va_start(ap, fmt);
	log_fatal_tell(fmt, ap, strerror(saved));
	va_end(ap);
	exit(status);
}

void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_exiting = 1;
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, NULL, NULL, 0);
	va_end(ap);
	va_start(ap, fmt);
	log_fatal_tell(fmt, ap, NULL);
	va_end(ap);
	exit(status);
}

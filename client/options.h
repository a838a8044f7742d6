/*
 * options.h: echo-client's command line: the options it understands,
 * their defaults and limits, and the pure parser that turns argv into a
 * struct client_options. Running the client is elsewhere (main.c, seq.c).
 */
#ifndef CLIENT_OPTIONS_H
#define CLIENT_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "addr.h"

#define CLIENT_NAME "echo-client"

/* Exit statuses (sysexits.h's EX_USAGE for a bad command line). */
#define CLIENT_EXIT_OK 0
#define CLIENT_EXIT_FAILURE 1 /* an echo did not come back intact */
#define CLIENT_EXIT_USAGE 64

/* Defaults and limits, named once. */
#define CLIENT_DEFAULT_HOST "127.0.0.1"
#define CLIENT_DEFAULT_PORT "8888"
#define CLIENT_DEFAULT_COUNT 5
#define CLIENT_MAX_COUNT 1000000
#define CLIENT_DEFAULT_MESSAGE "Hello from client!\n"
#define CLIENT_MAX_SIZE ((uint64_t)1 << 30)		   /* 1g */
#define CLIENT_DEFAULT_TIMEOUT_MS ((uint64_t)10 * 1000)	   /* 10s */
#define CLIENT_MAX_TIMEOUT_MS ((uint64_t)24 * 3600 * 1000) /* 24h */
#define CLIENT_PORT_LEN 6	  /* "65535" and its NUL */
#define CLIENT_UNIX_PATH_MAX 107  /* sun_path less its NUL */
#define CLIENT_MAX_DATAGRAM 65507 /* a UDP datagram's payload, at most */
#define CLIENT_DEFAULT_RETRIES 2  /* -u: sends after the first */
#define CLIENT_MAX_RETRIES 100

/* --load's defaults and limits. */
#define CLIENT_DEFAULT_CONNECTIONS 10
#define CLIENT_MAX_CONNECTIONS 1000000
#define CLIENT_DEFAULT_THREADS 1
#define CLIENT_MAX_THREADS 64
#define CLIENT_DEFAULT_DURATION_MS ((uint64_t)10 * 1000) /* 10s */
#define CLIENT_DEFAULT_WARMUP_MS ((uint64_t)1000)	 /* 1s */
#define CLIENT_MAX_DURATION_MS CLIENT_MAX_TIMEOUT_MS	 /* 24h */
#define CLIENT_DEFAULT_LOAD_SIZE 64
#define CLIENT_DEFAULT_WINDOW ((uint64_t)256 * 1024) /* 256k */
#define CLIENT_MAX_WINDOW CLIENT_MAX_SIZE
#define CLIENT_MAX_RATE 1000000000 /* messages per second */
#define CLIENT_MAX_PID 4194304	   /* Linux's PID_MAX_LIMIT */

/* What the command line asks for. */
enum client_action {
	CLIENT_RUN,	/* connect and echo */
	CLIENT_HELP,	/* -h: print the help, exit 0 */
	CLIENT_VERSION, /* -V: print the version, exit 0 */
};

/* How the sequential mode expects each echo to end (--expect-*). */
enum client_expect {
	CLIENT_EXPECT_ECHO,  /* every byte back, then the client closes */
	CLIENT_EXPECT_CLOSE, /* expect_at bytes back, then the server's FIN */
	CLIENT_EXPECT_RESET, /* expect_at bytes back, then a reset */
};

/* What --load does (--mode). */
enum client_mode {
	CLIENT_MODE_PINGPONG, /* one message in flight per connection */
	CLIENT_MODE_STREAM,   /* a window of bytes in flight */
	CLIENT_MODE_CONNRATE, /* connect, echo, close, in a loop */
	CLIENT_MODE_HOLD,     /* idle connections, then one echo each */
};

struct client_options {
	enum client_action action;
	const char *host;	    /* points into argv or a literal */
	char port[CLIENT_PORT_LEN]; /* validated, 1 to 65535, no zeros */
	const char *unix_path;	    /* -U: a Unix socket instead, or NULL */
	uint64_t count;		    /* connections, one after another */
	const char *message;	    /* sent when size is 0 */
	size_t message_len;
	uint64_t size; /* >0: send this many payload bytes instead */
	uint64_t timeout_ms;
	int quiet;
	enum client_expect expect; /* --expect-close, --expect-reset */
	uint64_t expect_at;	   /* bytes echoed before that end */

	/* -u: datagrams instead of connections. */
	int udp;
	uint64_t retries; /* sends after the first, per datagram */

	/* --tls: the connections speak TLS. */
	int tls;
	const char *tls_ca;   /* --ca: CAs to verify with; NULL: system's */
	int tls_insecure;     /* --insecure: no verification at all */
	const char *tls_sni;  /* --sni: server name; NULL: the host's */
	const char *tls_cert; /* --cert: client certificate (PEM) */
	const char *tls_key;  /* --key: its key; NULL: in --cert's file */

	/* --source: the local address connections are made from; family
	 * 0: the system's choice. */
	struct addr source;

	/* --proxy: a PROXY protocol header (1 or 2) first; 0: none. */
	int proxy;
	struct addr proxy_source; /* --proxy-source; family 0: the real */

	/* --load: a verifying load generator instead of -n connections.
	 * Its size is o->size, CLIENT_DEFAULT_LOAD_SIZE if not given. */
	int load;
	enum client_mode mode;
	uint64_t connections; /* -c: connections (connrate: workers) */
	uint64_t threads;     /* each with its own event loop */
	uint64_t duration_ms; /* -d: the measured window (hold: idle time) */
	uint64_t warmup_ms;   /* before it, not counted; hold has none */
	uint64_t window;      /* stream: bytes in flight per connection */
	uint64_t rate;	      /* pingpong: messages/s in all, 0 unpaced */
	int json;	      /* one JSON object instead of the summary */
	uint64_t server_pid;  /* 0, or whose CPU time to report */
};

/*
 * Parses argv into *o, starting from the defaults. Returns 0 (o->action
 * says whether to run or to print help or version) or -1 for a usage
 * error, described in err in one line without the program name. May
 * reorder argv (GNU getopt); resets getopt's state, so it can be called
 * again.
 */
int client_options_parse(int argc, char **argv, struct client_options *o,
			 char *err, size_t errlen);

/* Prints the --help text: usage, then one line per option. */
void client_options_usage(FILE *fp);

/* "pingpong", "stream", "connrate" or "hold". */
const char *client_options_mode_name(enum client_mode mode);

#endif

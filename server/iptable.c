/*
 * iptable.c: how many connections each client address has open, for
 * max_connections_per_ip. Every connection is counted, limit or none, so
 * that the limit may be switched on at any time. IPv4-mapped IPv6
 * addresses count as their IPv4 host; other families are not counted.
 *
 * The counts are sharded: one table per worker, and a connection counts
 * in the shard of the thread that admitted it (its worker with
 * reuseport; the main thread's, 0, when the main loop accepts), given
 * back there when it closes. A worker that accepts and closes its own
 * connections so takes only a lock no other thread wants, on lines no
 * other core writes, and allocates nothing for a new address while the
 * shard keeps spare entries (bench/README.md, b9b3199). It stays a
 * mutex, not a spin lock: without reuseport every worker gives back into
 * the main thread's shard, and an entry may be allocated or freed under
 * it. A per-IP limit
 * must see every shard: while one is on, each admission sums the
 * address's counts over all shards, serialised by one lock so that two
 * threads cannot both take the last slot.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "echod.h"

#define IPTABLE_BUCKETS 4096 /* per shard */
#define IPTABLE_SPARE 64     /* entries a shard keeps for new addresses */

struct iptable_entry {
	struct iptable_entry *next;
	unsigned char key[17]; /* family byte, then the address */
	unsigned count;
};

struct iptable_shard {
	_Alignas(ECHOD_CACHE_LINE) pthread_mutex_t lock;
	struct iptable_entry **buckets; /* made on first use */
	struct iptable_entry *spare;	/* unused entries, a list */
	unsigned nspare;
};

struct iptable {
	pthread_mutex_t limit_lock; /* admissions while a limit is on */
	unsigned nshards;
	struct iptable_shard *shard;
};

struct iptable *
iptable_new(unsigned nshards)
{
	struct iptable *t = calloc(1, sizeof(*t));
	unsigned i;

	if (nshards == 0)
		nshards = 1;
	if (t == NULL ||
	    (t->shard = aligned_alloc(ECHOD_CACHE_LINE,
				      nshards * sizeof(*t->shard))) == NULL) {
		free(t);
		return NULL;
	}
	memset(t->shard, 0, nshards * sizeof(*t->shard));
	t->nshards = nshards;
	pthread_mutex_init(&t->limit_lock, NULL);
	for (i = 0; i < nshards; i++)
		pthread_mutex_init(&t->shard[i].lock, NULL);
	return t;
}

static void
iptable_free_list(struct iptable_entry *e)
{
	struct iptable_entry *next;

	for (; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
}

void
iptable_free(struct iptable *t)
{
	unsigned i, b;

	if (t == NULL)
		return;
	for (i = 0; i < t->nshards; i++) {
		struct iptable_shard *s = &t->shard[i];

		for (b = 0; s->buckets != NULL && b < IPTABLE_BUCKETS; b++)
			iptable_free_list(s->buckets[b]);
		free(s->buckets);
		iptable_free_list(s->spare);
		pthread_mutex_destroy(&s->lock);
	}
	pthread_mutex_destroy(&t->limit_lock);
	free(t->shard);
	free(t);
}

/* The address as a key; -1 if it is not an IP address. */
int
iptable_key(const struct sockaddr *sa, unsigned char key[17])
{
	memset(key, 0, 17);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		key[0] = 4;
		memcpy(key + 1, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, &sin6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

/*
 * The key of iptable_key_hash(): a secret, drawn once per process. An
 * unkeyed hash let a client that picks its addresses (any host of an IPv6
 * /64) crowd one bucket and make each admission walk a chain as long as
 * its connections; with SipHash and a secret it cannot aim.
 */
static unsigned char iptable_secret[16];
static pthread_once_t iptable_secret_once = PTHREAD_ONCE_INIT;

static void
iptable_secret_draw(void)
{
	size_t got = 0;
	ssize_t n;

	/* Blocks only before the kernel's pool is first ready (early
	 * boot, a second at most on Linux 5.4 and later). */
	while (got < sizeof(iptable_secret)) {
		n = getrandom(iptable_secret + got,
			      sizeof(iptable_secret) - got, 0);
		if (n > 0)
			got += (size_t)n;
		else if (n == -1 && errno != EINTR)
			break;
	}
	if (got < sizeof(iptable_secret)) {
		/* No getrandom(): not secret, but this process' own. */
		struct timespec ts;
		uint64_t mix[2];

		clock_gettime(CLOCK_REALTIME, &ts);
		mix[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
		mix[1] = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts;
		memcpy(iptable_secret, mix, sizeof(iptable_secret));
	}
}

/*
 * A hash of an iptable_key() (udp.c's rate table hashes with it too):
 * SipHash-2-4 of its 17 bytes under the process' secret. The two hashes
 * of a connection (admission, release) cost about 400 instructions, some
 * 0.1 us, more than the unkeyed multiply-and-fold they replaced
 * (bench/README.md).
 */
uint32_t
iptable_key_hash(const unsigned char key[17])
{
	(void)pthread_once(&iptable_secret_once, iptable_secret_draw);
	return (uint32_t)siphash24(key, 17, iptable_secret);
}

static unsigned
iptable_hash(const unsigned char key[17])
{
	return iptable_key_hash(key) % IPTABLE_BUCKETS;
}

static struct iptable_shard *
iptable_shard(struct iptable *t, unsigned shard)
{
	return &t->shard[shard % t->nshards];
}

/* Under s->lock: key's entry in bucket h, or NULL. */
static struct iptable_entry *
iptable_find(const struct iptable_shard *s, const unsigned char key[17],
	     unsigned h)
{
	struct iptable_entry *e;

	if (s->buckets == NULL)
		return NULL;
	for (e = s->buckets[h]; e != NULL; e = e->next)
		if (memcmp(e->key, key, sizeof(e->key)) == 0)
			return e;
	return NULL;
}

/* The address's count over every shard. */
static unsigned
iptable_sum(struct iptable *t, const unsigned char key[17], unsigned h)
{
	const struct iptable_entry *e;
	unsigned i, n = 0;

	for (i = 0; i < t->nshards; i++) {
		struct iptable_shard *s = &t->shard[i];

		pthread_mutex_lock(&s->lock);
		if ((e = iptable_find(s, key, h)) != NULL)
			n += e->count;
		pthread_mutex_unlock(&s->lock);
	}
	return n;
}

/* Under s->lock: counts one more for key, in a new entry if need be;
 * -1 if out of memory. */
static int
iptable_add(struct iptable_shard *s, const unsigned char key[17], unsigned h)
{
	struct iptable_entry *e = iptable_find(s, key, h);

	if (e == NULL) {
		if (s->buckets == NULL &&
		    (s->buckets = calloc(IPTABLE_BUCKETS,
					 sizeof(struct iptable_entry *))) ==
			    NULL)
			return -1;
		if (s->spare != NULL) {
			e = s->spare;
			s->spare = e->next;
			s->nspare--;
		} else if ((e = malloc(sizeof(*e))) == NULL)
			return -1;
		memcpy(e->key, key, sizeof(e->key));
		e->count = 0;
		e->next = s->buckets[h];
		s->buckets[h] = e;
	}
	e->count++;
	return 0;
}

/*
 * Counts a connection from sa in shard (its admitting thread's), unless
 * limit (non-zero) connections from there are open already: 0, or -1 if
 * that (or memory) refuses it. Addresses of other families always pass.
 */
int
iptable_acquire(struct iptable *t, unsigned shard, const struct sockaddr *sa,
		unsigned limit)
{
	struct iptable_shard *s = iptable_shard(t, shard);
	unsigned char key[17];
	unsigned h;
	int rc;

	if (iptable_key(sa, key) == -1)
		return 0;
	h = iptable_hash(key);
	if (limit > 0) {
		pthread_mutex_lock(&t->limit_lock);
		if (iptable_sum(t, key, h) >= limit) {
			pthread_mutex_unlock(&t->limit_lock);
			return -1;
		}
	}
	pthread_mutex_lock(&s->lock);
	rc = iptable_add(s, key, h);
	pthread_mutex_unlock(&s->lock);
	if (limit > 0)
		pthread_mutex_unlock(&t->limit_lock);
	return rc;
}

/* Gives back a connection counted in shard; one never counted there is
 * ignored. */
void
iptable_release(struct iptable *t, unsigned shard, const struct sockaddr *sa)
{
	struct iptable_shard *s = iptable_shard(t, shard);
	unsigned char key[17];
	struct iptable_entry *e, **pp;

	if (iptable_key(sa, key) == -1)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->buckets != NULL) {
		for (pp = &s->buckets[iptable_hash(key)]; (e = *pp) != NULL;
		     pp = &e->next)
			if (memcmp(e->key, key, sizeof(e->key)) == 0)
				break;
		if (e != NULL && --e->count == 0) {
			*pp = e->next;
			if (s->nspare < IPTABLE_SPARE) {
				e->next = s->spare;
				s->spare = e;
				s->nspare++;
			} else
				free(e);
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/* Connections open from sa's address, over every shard. */
unsigned
iptable_count(struct iptable *t, const struct sockaddr *sa)
{
	unsigned char key[17];

	if (iptable_key(sa, key) == -1)
		return 0;
	return iptable_sum(t, key, iptable_hash(key));
}

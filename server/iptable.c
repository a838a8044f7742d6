/*
 * iptable.c: how many connections each client address has open, for
 * max_connections_per_ip. admission.c takes a slot on accept (main
 * thread) and gives it back when the socket closes (its worker's thread),
 * so the table is guarded by a mutex. Every connection is counted, limit
 * or none, so that the limit may be switched on at any time. IPv4-mapped
 * IPv6 addresses count as their IPv4 host; other families are not
 * counted.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"

#define IPTABLE_BUCKETS 4096

struct iptable_entry {
	struct iptable_entry *next;
	unsigned char key[17]; /* family byte, then the address */
	unsigned count;
};

static struct iptable_entry *iptable_buckets[IPTABLE_BUCKETS];
static pthread_mutex_t iptable_lock = PTHREAD_MUTEX_INITIALIZER;

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

/* FNV-1a of an iptable_key(): udp.c's rate table hashes with it too. */
uint32_t
iptable_key_hash(const unsigned char key[17])
{
	uint32_t h = 2166136261u;
	int i;

	for (i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

static unsigned
iptable_hash(const unsigned char key[17])
{
	return iptable_key_hash(key) % IPTABLE_BUCKETS;
}

int
iptable_acquire(const struct sockaddr *sa, unsigned limit)
{
	unsigned char key[17];
	struct iptable_entry *e, **head;
	int rc = 0;

	if (iptable_key(sa, key) == -1)
		return 0;
	head = &iptable_buckets[iptable_hash(key)];
	pthread_mutex_lock(&iptable_lock);
	for (e = *head; e != NULL; e = e->next)
		if (memcmp(e->key, key, sizeof(e->key)) == 0)
			break;
	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL) {
			rc = -1;
			goto out;
		}
		memcpy(e->key, key, sizeof(e->key));
		e->next = *head;
		*head = e;
	}
	if (limit > 0 && e->count >= limit)
		rc = -1;
	else
		e->count++;
out:
	pthread_mutex_unlock(&iptable_lock);
	return rc;
}

void
iptable_release(const struct sockaddr *sa)
{
	unsigned char key[17];
	struct iptable_entry *e, **pp;

	if (iptable_key(sa, key) == -1)
		return;
	pthread_mutex_lock(&iptable_lock);
	for (pp = &iptable_buckets[iptable_hash(key)]; (e = *pp) != NULL;
	     pp = &e->next) {
		if (memcmp(e->key, key, sizeof(e->key)) != 0)
			continue;
		if (--e->count == 0) {
			*pp = e->next;
			free(e);
		}
		break;
	}
	pthread_mutex_unlock(&iptable_lock);
}

unsigned
iptable_count(const struct sockaddr *sa)
{
	unsigned char key[17];
	struct iptable_entry *e;
	unsigned n = 0;

	if (iptable_key(sa, key) == -1)
		return 0;
	pthread_mutex_lock(&iptable_lock);
	for (e = iptable_buckets[iptable_hash(key)]; e != NULL; e = e->next)
		if (memcmp(e->key, key, sizeof(e->key)) == 0)
			n = e->count;
	pthread_mutex_unlock(&iptable_lock);
	return n;
}

/*
 * admission.c: who may connect, and the counts that decide it. Every
 * accepted socket is admitted here or refused (max_connections,
 * max_connections_per_ip), and every admitted one is released here once,
 * by admission_release(), which closes its socket and gives back its
 * slots, whoever holds it at the time: the hand-off queue, a connection,
 * or a worker that could not make one. Each connection is counted per
 * client address from accept, whether or not a per-IP limit is on, so a
 * reload may switch the limit on at any time and find the counts right.
 * What a refused socket is told, and the warnings, are listener.c's.
 * On a proxy_protocol listener the client is known only once its PROXY
 * header is read: the socket is admitted with no address, and counted
 * under the real one then (admission_count_peer(), from preamble.c).
 * The per-IP counts are iptable.c's, sharded by the admitting thread:
 * callers say which shard (their worker's id, 0 on the main thread), and
 * give a connection back to the shard it was counted in.
 */
#include <stdlib.h>
#include <unistd.h>

#include "echod.h"

struct admission {
	/* The limits in force; SIGHUP may change them (0: no per-IP one). */
	_Atomic unsigned max_total;
	_Atomic unsigned max_per_ip;
	_Atomic uint64_t current; /* admitted and not yet released */
	_Atomic uint64_t total;	  /* ever admitted */
	_Atomic uint64_t refused;
	struct iptable *ips;
};

/* For shards threads (the workers) admitting at once. */
struct admission *
admission_new(unsigned shards)
{
	struct admission *adm = calloc(1, sizeof(struct admission));

	if (adm != NULL && (adm->ips = iptable_new(shards)) == NULL) {
		free(adm);
		return NULL;
	}
	return adm;
}

void
admission_free(struct admission *adm)
{
	if (adm == NULL)
		return;
	iptable_free(adm->ips);
	free(adm);
}

void
admission_configure(struct admission *adm, const struct config *cfg)
{
	atomic_store(&adm->max_total, cfg->max_connections);
	atomic_store(&adm->max_per_ip, cfg->max_connections_per_ip);
}

/*
 * Admits a socket from peer, counted in shard, or says why not. On
 * ADMIT_OK the socket is counted until admission_release(); *current is
 * the count with it.
 */
enum admission_verdict
admission_admit(struct admission *adm, unsigned shard,
		const struct sockaddr *peer, uint64_t *current)
{
	uint64_t cur = atomic_load(&adm->current);

	/* Workers admit too (reuseport): the slot is taken with the check,
	 * never one past max_connections. */
	do {
		if (cur >= atomic_load(&adm->max_total)) {
			atomic_fetch_add(&adm->refused, 1);
			return ADMIT_FULL;
		}
	} while (!atomic_compare_exchange_weak(&adm->current, &cur, cur + 1));
	if (peer != NULL &&
	    iptable_acquire(adm->ips, shard, peer,
			    atomic_load(&adm->max_per_ip)) == -1) {
		atomic_fetch_sub(&adm->current, 1);
		atomic_fetch_add(&adm->refused, 1);
		return ADMIT_FULL_PER_IP;
	}
	*current = cur + 1;
	atomic_fetch_add(&adm->total, 1);
	return ADMIT_OK;
}

/*
 * Closes an admitted socket (unless fd is -1: closed already) and gives
 * back its slots, peer's in the shard it was counted in. The socket is
 * closed first, so the counts never promise descriptors still held.
 */
void
admission_release(struct admission *adm, int fd, const struct sockaddr *peer,
		  unsigned shard)
{
	if (fd != -1)
		close(fd);
	if (peer != NULL)
		iptable_release(adm->ips, shard, peer);
	atomic_fetch_sub(&adm->current, 1);
}

/*
 * Counts an admitted socket under its real client, once a PROXY header
 * has named it (it was admitted with peer NULL): 0, or -1 if that client
 * is at max_connections_per_ip, a refusal, and the socket is the caller's
 * to release with peer NULL.
 */
int
admission_count_peer(struct admission *adm, unsigned shard,
		     const struct sockaddr *peer)
{
	if (iptable_acquire(adm->ips, shard, peer,
			    atomic_load(&adm->max_per_ip)) == -1) {
		atomic_fetch_add(&adm->refused, 1);
		return -1;
	}
	return 0;
}

/* The limits in force, for messages on any thread. */
void
admission_limits(const struct admission *adm, unsigned *total, unsigned *per_ip)
{
	*total = atomic_load(&adm->max_total);
	*per_ip = atomic_load(&adm->max_per_ip);
}

/* Connections open from peer's address. */
unsigned
admission_peer_count(struct admission *adm, const struct sockaddr *peer)
{
	return iptable_count(adm->ips, peer);
}

uint64_t
admission_current(const struct admission *adm)
{
	return atomic_load(&adm->current);
}

void
admission_counts(const struct admission *adm, uint64_t *current,
		 uint64_t *total, uint64_t *refused)
{
	*current = atomic_load(&adm->current);
	*total = atomic_load(&adm->total);
	*refused = atomic_load(&adm->refused);
}

/*
 * mem.c: where libevent's memory comes from, so that echod's heap shrinks
 * back after a burst of connections. libevent keeps a small record per
 * descriptor number for the life of the event loop; made one by one
 * during a burst, those records land between the connections' memory and
 * pin almost every page of it after the connections are gone. Small
 * blocks therefore come from a slab of their own, apart from glibc's heap,
 * and the heap is trimmed once the number of connections has fallen well
 * below its last peak.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <event2/event.h>

#include "echod.h"

/* LeakSanitizer scans the heap, not this slab: blocks referenced only
 * from it would look leaked at an early exit. Tell it to scan the slab. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MEM_LSAN 1
#endif
#ifdef MEM_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* free() leaves this much at the heap's top (see mem_init()). */
#define MEM_TRIM_THRESHOLD (1024 * 1024)
#define MEM_MMAP_THRESHOLD (512 * 1024)
/* Blocks up to this size come from the slab. */
#define MEM_SMALL 64
/* Address space reserved for the slab; pages are used only when touched
 * (64 bytes per descriptor: room for far more than any fd limit). */
#define MEM_SLAB_BYTES ((size_t)256 * 1024 * 1024)

struct mem_free {
	struct mem_free *next;
};

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *mem_slab;	      /* the reserved range */
static size_t mem_slab_used;	      /* bytes handed out at least once */
static struct mem_free *mem_freelist; /* blocks given back */

static int
mem_in_slab(const void *p)
{
	return mem_slab != NULL && (const unsigned char *)p >= mem_slab &&
	       (const unsigned char *)p < mem_slab + MEM_SLAB_BYTES;
}

static void *
mem_small_alloc(void)
{
	void *p = NULL;

	pthread_mutex_lock(&mem_lock);
	if (mem_freelist != NULL) {
		p = mem_freelist;
		mem_freelist = mem_freelist->next;
	} else if (mem_slab_used + MEM_SMALL <= MEM_SLAB_BYTES) {
		p = mem_slab + mem_slab_used;
		mem_slab_used += MEM_SMALL;
	}
	pthread_mutex_unlock(&mem_lock);
	return p;
}

static void
mem_small_free(void *p)
{
	struct mem_free *f = p;

	pthread_mutex_lock(&mem_lock);
	f->next = mem_freelist;
	mem_freelist = f;
	pthread_mutex_unlock(&mem_lock);
}

static void *
mem_malloc_fn(size_t n)
{
	void *p;

	if (n <= MEM_SMALL && (p = mem_small_alloc()) != NULL)
		return p;
	return malloc(n);
}

static void
mem_free_fn(void *p)
{
	if (mem_in_slab(p))
		mem_small_free(p);
	else
		free(p);
}

static void *
mem_realloc_fn(void *p, size_t n)
{
	void *q;

	if (p == NULL)
		return mem_malloc_fn(n);
	if (!mem_in_slab(p))
		return realloc(p, n);
	if (n <= MEM_SMALL)
		return p;
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, MEM_SMALL);
	mem_small_free(p);
	return q;
}

/* Before any libevent object exists. */
void
mem_init(void)
{
	void *p;

	/*
	 * glibc gives the top of the heap back once 128 KiB of it is free,
	 * and an echo's chains (64 KiB each) come and go faster than that:
	 * a TLS stream freed and grew it again 17 times per MiB (brk, then
	 * page faults). echod trims its heap itself once a burst is over
	 * (mem_trim()), so free() need not.
	 */
	mallopt(M_TRIM_THRESHOLD, MEM_TRIM_THRESHOLD);
	/* Setting one fixes the other too, which glibc would otherwise
	 * raise past an echo's 64 KiB chain (128 KiB allocated) after the
	 * first: keep such chains on the heap, not mmap()ed each time. */
	mallopt(M_MMAP_THRESHOLD, MEM_MMAP_THRESHOLD);
	p = mmap(NULL, MEM_SLAB_BYTES, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		log_debug("mem: no slab (%s); using malloc alone",
			  strerror(errno));
		return;
	}
	mem_slab = p;
#ifdef MEM_LSAN
	__lsan_register_root_region(p, MEM_SLAB_BYTES);
#endif
	event_set_mem_functions(mem_malloc_fn, mem_realloc_fn, mem_free_fn);
}

/* Counts a new connection: the burst's peak. */
void
mem_trim_note(struct mem_trim_policy *p, uint64_t current)
{
	if (current > p->peak)
		p->peak = current;
}

/*
 * Says whether to trim now, given the connections open. A burst of at
 * least ECHOD_TRIM_MIN_PEAK that has fallen to a quarter of its peak is
 * trimmed; the connections still open then free their memory later, so
 * the trim stays pending and repeats each time the count falls to a
 * quarter again, however small, until one is done with none open.
 * (Trimming only once left a slow burst's last ~700 connections'
 * pages pinned.) Steady traffic below the minimum never trims.
 */
int
mem_trim_due(struct mem_trim_policy *p, uint64_t current)
{
	if (p->peak < ECHOD_TRIM_MIN_PEAK && !p->pending)
		return 0;
	if (current > p->peak / 4)
		return 0;
	p->peak = current;
	p->pending = current > 0;
	return 1;
}

/* Gives the heap's free pages back to the system. */
void
mem_trim(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/*
 * test_iptable.c: unit tests for server/iptable.c: per-address counts up
 * to a limit, slots given back, IPv4-mapped IPv6 counted as IPv4, entries
 * dropped when their count reaches zero (and reused), a limit that
 * counts every shard, also while threads admit at once, and the hash:
 * spread, and keyed with a secret of each process' own.
 */
#include <arpa/inet.h>
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echod.h"
#include "unit.h"

static struct sockaddr_storage
v4(const char *ip, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage
v6(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

#define SA(ss) ((struct sockaddr *)&(ss))

START_TEST(test_iptable_limits_each_address)
{
	struct iptable *t = iptable_new(1);
	struct sockaddr_storage a = v4("127.0.0.2", 1000);
	struct sockaddr_storage a2 = v4("127.0.0.2", 2000);
	struct sockaddr_storage b = v4("127.0.0.3", 1000);

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(a), 2), 0);
	/* The port is ignored. */
	ck_assert_int_eq(iptable_acquire(t, 0, SA(a2), 2), 0);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(a), 2), -1);
	ck_assert_uint_eq(iptable_count(t, SA(a)), 2);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(b), 2), 0);
	iptable_release(t, 0, SA(a));
	ck_assert_uint_eq(iptable_count(t, SA(a)), 1);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(a), 2), 0);
	iptable_release(t, 0, SA(a));
	iptable_release(t, 0, SA(a));
	iptable_release(t, 0, SA(b));
	ck_assert_uint_eq(iptable_count(t, SA(a)), 0);
	ck_assert_uint_eq(iptable_count(t, SA(b)), 0);
	iptable_free(t);
}
END_TEST

START_TEST(test_iptable_v4_mapped_counts_as_v4)
{
	struct iptable *t = iptable_new(1);
	struct sockaddr_storage a = v4("10.1.2.3", 1);
	struct sockaddr_storage m = v6("::ffff:10.1.2.3");
	struct sockaddr_storage other = v6("::1");

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(a), 1), 0);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(m), 1), -1);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(other), 1), 0);
	iptable_release(t, 0, SA(m));
	ck_assert_uint_eq(iptable_count(t, SA(a)), 0);
	iptable_release(t, 0, SA(other));
	iptable_free(t);
}
END_TEST

START_TEST(test_iptable_release_unknown_is_harmless)
{
	struct iptable *t = iptable_new(1);
	struct sockaddr_storage a = v4("192.0.2.1", 1);

	ck_assert_ptr_nonnull(t);
	iptable_release(t, 0, SA(a));
	ck_assert_uint_eq(iptable_count(t, SA(a)), 0);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(a), 1), 0);
	ck_assert_uint_eq(iptable_count(t, SA(a)), 1);
	iptable_release(t, 0, SA(a));
	iptable_free(t);
}
END_TEST

START_TEST(test_iptable_limit_counts_every_shard)
{
	struct iptable *t = iptable_new(3);
	struct sockaddr_storage a = v4("198.51.100.7", 1);

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(a), 2), 0);
	ck_assert_int_eq(iptable_acquire(t, 2, SA(a), 2), 0);
	ck_assert_int_eq(iptable_acquire(t, 1, SA(a), 2), -1);
	ck_assert_uint_eq(iptable_count(t, SA(a)), 2);
	/* Given back elsewhere than counted: not counted there, ignored. */
	iptable_release(t, 1, SA(a));
	ck_assert_uint_eq(iptable_count(t, SA(a)), 2);
	iptable_release(t, 2, SA(a));
	ck_assert_int_eq(iptable_acquire(t, 1, SA(a), 2), 0);
	ck_assert_int_eq(iptable_acquire(t, 0, SA(a), 0), 0); /* no limit */
	ck_assert_uint_eq(iptable_count(t, SA(a)), 3);
	iptable_release(t, 0, SA(a));
	iptable_release(t, 0, SA(a));
	iptable_release(t, 1, SA(a));
	ck_assert_uint_eq(iptable_count(t, SA(a)), 0);
	/* A shard past the last wraps around, as the same shard. */
	ck_assert_int_eq(iptable_acquire(t, 4, SA(a), 0), 0);
	ck_assert_uint_eq(iptable_count(t, SA(a)), 1);
	iptable_release(t, 1, SA(a));
	ck_assert_uint_eq(iptable_count(t, SA(a)), 0);
	iptable_free(t);
}
END_TEST

/* Many addresses come and go: emptied entries are kept for reuse, up to
 * a bound, and freed past it; every count stays exact. */
START_TEST(test_iptable_many_addresses_come_and_go)
{
	struct iptable *t = iptable_new(1);
	struct sockaddr_storage ss[300];
	char ip[32];
	int i, round;

	ck_assert_ptr_nonnull(t);
	for (i = 0; i < 300; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 200, i % 200 + 1);
		ss[i] = v4(ip, 1);
	}
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 300; i++)
			ck_assert_int_eq(iptable_acquire(t, 0, SA(ss[i]), 1),
					 0);
		for (i = 0; i < 300; i++) {
			ck_assert_int_eq(iptable_acquire(t, 0, SA(ss[i]), 1),
					 -1);
			ck_assert_uint_eq(iptable_count(t, SA(ss[i])), 1);
		}
		for (i = 0; i < 300; i++)
			iptable_release(t, 0, SA(ss[i]));
		for (i = 0; i < 300; i++)
			ck_assert_uint_eq(iptable_count(t, SA(ss[i])), 0);
	}
	iptable_free(t); /* valgrind and ASan: nothing leaks */
}
END_TEST

/* Threads in shards of their own race for an address's last slots: no
 * more are taken than the limit, however they interleave. */
#define RACE_THREADS 4
#define RACE_TRIES 2000
#define RACE_LIMIT 50

struct race {
	struct iptable *t;
	unsigned shard;
	int won;
};

/* Slots held over all threads at once (each counted after its acquire,
 * uncounted before its release: never more than the table holds), and
 * the most seen. */
static atomic_int race_held, race_peak;

static void *
race_run(void *arg)
{
	struct race *r = arg;
	struct sockaddr_storage a = v4("203.0.113.9", 1);
	int i;

	for (i = 0; i < RACE_TRIES; i++) {
		if (iptable_acquire(r->t, r->shard, SA(a), RACE_LIMIT) == 0) {
			int held = atomic_fetch_add(&race_held, 1) + 1;
			int peak = atomic_load(&race_peak);

			while (held > peak && !atomic_compare_exchange_weak(
						      &race_peak, &peak, held))
				;
			r->won++;
		}
		/* Some give back, so slots keep coming free. */
		if (r->won > 0 && i % 3 == 0) {
			atomic_fetch_sub(&race_held, 1);
			iptable_release(r->t, r->shard, SA(a));
			r->won--;
		}
	}
	return NULL;
}

START_TEST(test_iptable_threads_never_pass_the_limit)
{
	struct iptable *t = iptable_new(RACE_THREADS);
	struct sockaddr_storage a = v4("203.0.113.9", 1);
	struct race r[RACE_THREADS];
	pthread_t th[RACE_THREADS];
	int i, won = 0, peak, held;

	ck_assert_ptr_nonnull(t);
	for (i = 0; i < RACE_THREADS; i++) {
		r[i] = (struct race){t, (unsigned)i, 0};
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_run, &r[i]),
				 0);
	}
	for (i = 0; i < RACE_THREADS; i++) {
		pthread_join(th[i], NULL);
		won += r[i].won;
	}
	ck_assert_int_le(won, RACE_LIMIT);
	peak = atomic_load(&race_peak);
	held = atomic_load(&race_held);
	ck_assert_int_le(peak, RACE_LIMIT);
	ck_assert_int_eq(held, won);
	ck_assert_uint_eq(iptable_count(t, SA(a)), (unsigned)won);
	iptable_free(t);
}
END_TEST

/* Distinct buckets (of 4096, iptable.c's) the keys of sa[0..n) fall in. */
static unsigned
buckets_used(const struct sockaddr_storage *sa, unsigned n)
{
	static unsigned char seen[4096];
	unsigned char key[17];
	unsigned i, used = 0;

	memset(seen, 0, sizeof(seen));
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(
			iptable_key((const struct sockaddr *)&sa[i], key), 0);
		used += !seen[iptable_key_hash(key) % 4096]++;
	}
	return used;
}

/* The bench client's 127.0.0.2-254, 1,024 hosts of one IPv6 /64 (the last
 * 16 bits) and 1,024 of 10/8, spread as random keys would: about 245, 906
 * and 906 buckets. A hash blind to some address bits fills far fewer. */
START_TEST(test_iptable_hash_spreads_addresses)
{
	static struct sockaddr_storage sa[1024];
	char ip[64];
	unsigned i;

	for (i = 0; i < 253; i++) {
		snprintf(ip, sizeof(ip), "127.0.0.%u", i + 2);
		sa[i] = v4(ip, 1);
	}
	ck_assert_uint_ge(buckets_used(sa, 253), 230);
	for (i = 0; i < 1024; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:1:2::%x", i * 61 + 7);
		sa[i] = v6(ip);
	}
	ck_assert_uint_ge(buckets_used(sa, 1024), 850);
	for (i = 0; i < 1024; i++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.1", i / 256, i % 256);
		sa[i] = v4(ip, 1);
	}
	ck_assert_uint_ge(buckets_used(sa, 1024), 850);
}
END_TEST

/* The hash of ::1 (a %08x line) in a new process of this program. */
static unsigned long
hash_in_new_process(void)
{
	char exe[512], cmd[600], line[32] = "";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	FILE *p;

	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	snprintf(cmd, sizeof(cmd), "IPTABLE_PRINT_HASH=1 '%s'", exe);
	ck_assert_ptr_nonnull(p = popen(cmd, "r"));
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), p));
	ck_assert_int_eq(pclose(p), 0);
	return strtoul(line, NULL, 16);
}

/* Each process hashes with a secret of its own, so that a client cannot
 * know which addresses share a bucket: two runs place ::1 apart (they
 * would agree once in 2^32). */
START_TEST(test_iptable_hash_is_keyed_per_process)
{
	ck_assert_uint_ne(hash_in_new_process(), hash_in_new_process());
}
END_TEST

static Suite *
iptable_suite(void)
{
	Suite *s = suite_create("iptable");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_iptable_limits_each_address);
	tcase_add_test(tc, test_iptable_v4_mapped_counts_as_v4);
	tcase_add_test(tc, test_iptable_release_unknown_is_harmless);
	tcase_add_test(tc, test_iptable_limit_counts_every_shard);
	tcase_add_test(tc, test_iptable_many_addresses_come_and_go);
	tcase_add_test(tc, test_iptable_threads_never_pass_the_limit);
	tcase_add_test(tc, test_iptable_hash_spreads_addresses);
	tcase_add_test(tc, test_iptable_hash_is_keyed_per_process);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	if (getenv("IPTABLE_PRINT_HASH") != NULL) {
		struct sockaddr_storage one = v6("::1");
		unsigned char key[17];

		if (iptable_key((struct sockaddr *)&one, key) == -1)
			return EXIT_FAILURE;
		printf("%08x\n", (unsigned)iptable_key_hash(key));
		return EXIT_SUCCESS;
	}
	return unit_run(iptable_suite());
}

/*
 * test_metrics.c: unit tests for server/metrics.c's pure parts: the
 * duration buckets, label escaping, listener slots (stable per name, the
 * overflow shared), and the Prometheus text rendering of a view: every
 * family typed once, a cumulative histogram, per-listener samples only
 * for the kind they describe, process figures left out when unknown.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "echod.h"
#include "unit.h"

START_TEST(test_metrics_duration_buckets)
{
	ck_assert_uint_eq(metrics_duration_bucket(0), 0);
	ck_assert_uint_eq(metrics_duration_bucket(1), 0);
	ck_assert_uint_eq(metrics_duration_bucket(2), 1);
	ck_assert_uint_eq(metrics_duration_bucket(1000), 6);
	ck_assert_uint_eq(metrics_duration_bucket(1001), 7);
	ck_assert_uint_eq(metrics_duration_bucket(3600000),
			  METRICS_DURATION_BUCKETS - 2);
	ck_assert_uint_eq(metrics_duration_bucket(3600001),
			  METRICS_DURATION_BUCKETS - 1);
	ck_assert_uint_eq(metrics_duration_bucket(UINT64_MAX),
			  METRICS_DURATION_BUCKETS - 1);
}
END_TEST

START_TEST(test_metrics_escape)
{
	char buf[64];

	ck_assert_str_eq(metrics_escape("[::1]:80", buf, sizeof(buf)),
			 "[::1]:80");
	ck_assert_str_eq(metrics_escape("unix:/a\"b\\c\nd", buf, sizeof(buf)),
			 "unix:/a\\\"b\\\\c\\nd");
	/* Truncated, never an escape cut in half. */
	ck_assert_str_eq(metrics_escape("ab\"", buf, 4), "ab");
	ck_assert_str_eq(metrics_escape("abc", buf, 1), "");
}
END_TEST

START_TEST(test_metrics_slots_stable_and_bounded)
{
	struct metrics *m = metrics_new();
	char name[32];
	unsigned a, b, i, last = 0;

	ck_assert_ptr_nonnull(m);
	a = metrics_slot(m, "127.0.0.1:8888");
	b = metrics_slot(m, "unix:/run/echod.sock");
	ck_assert_uint_ne(a, b);
	ck_assert_uint_eq(metrics_slot(m, "127.0.0.1:8888"), a);
	ck_assert_str_eq(metrics_slot_name(m, b), "unix:/run/echod.sock");
	for (i = 0; i < 2 * ECHOD_MAX_SLOTS; i++) {
		snprintf(name, sizeof(name), "10.0.0.1:%u", i);
		last = metrics_slot(m, name);
		ck_assert_uint_lt(last, ECHOD_MAX_SLOTS);
	}
	ck_assert_uint_eq(last, ECHOD_MAX_SLOTS - 1);
	ck_assert_str_eq(metrics_slot_name(m, last), "other");
	/* The first ones keep theirs. */
	ck_assert_uint_eq(metrics_slot(m, "127.0.0.1:8888"), a);
	ck_assert_str_eq(metrics_slot_name(m, ECHOD_MAX_SLOTS), "?");
	metrics_free(m);
}
END_TEST

static char *
render(const struct metrics_view *v)
{
	struct evbuffer *out = evbuffer_new();
	size_t n;
	char *text;

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(metrics_render(v, out), 0);
	n = evbuffer_get_length(out);
	text = malloc(n + 1);
	ck_assert_ptr_nonnull(text);
	evbuffer_remove(out, text, n);
	text[n] = '\0';
	evbuffer_free(out);
	return text;
}

/* Lines of text that start with prefix. */
static int
count_lines(const char *text, const char *prefix)
{
	const char *p = text;
	int n = 0;

	while (*p != '\0') {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return n;
}

static void
view_init(struct metrics_view *v)
{
	memset(v, 0, sizeof(*v));
	v->start_time = 1700000000.25;
	v->active = 2;
	v->accepted = 7;
	v->refused[REFUSE_MAX_PER_IP] = 3;
	v->reloads[1] = 4;
	v->wc[WC_CLOSED + CONN_END_EOF] = 4;
	v->wc[WC_CLOSED + CONN_END_IDLE] = 1;
	v->wc[WC_DURATION + metrics_duration_bucket(0)] = 2;
	v->wc[WC_DURATION + metrics_duration_bucket(2000)] = 3;
	v->wc[WC_DURATION_MS] = 6500;
	v->wc[WC_TLS_FAILURES] = 5;
	v->wc[WC_TLS_TIMEOUTS] = 2;
	v->lc_total[LC_BYTES_IN] = 100;
	v->lc_total[LC_BYTES_OUT] = 90;
	v->nlisteners = 1;
	v->listener[0].name = "[::1]:8888";
	v->listener[0].accepted = 7;
	v->listener[0].lc[LC_CLOSED] = 5;
	v->listener[0].lc[LC_BYTES_IN] = 100;
	v->cpu_seconds = 1.5;
	v->open_fds = 9;
	v->max_fds = v->resident_bytes = v->virtual_bytes = -1;
	v->process_start_time = -1;
}

START_TEST(test_metrics_render_values)
{
	struct metrics_view v;
	char *t;

	view_init(&v);
	t = render(&v);
	ck_assert_ptr_nonnull(strstr(t, "echod_connections_active 2\n"));
	ck_assert_ptr_nonnull(
		strstr(t, "echod_connections_accepted_total 7\n"));
	ck_assert_ptr_nonnull(strstr(
		t, "echod_connections_refused_total{reason=\"max_connections_"
		   "per_ip\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(
		t, "echod_connections_closed_total{reason=\"idle\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(
		t, "echod_config_reloads_total{result=\"success\"} 4\n"));
	ck_assert_ptr_nonnull(strstr(t, "echod_bytes_received_total 100\n"));
	ck_assert_ptr_nonnull(strstr(t, "echod_bytes_sent_total 90\n"));
	ck_assert_ptr_nonnull(strstr(
		t, "echod_tls_handshake_failures_total{reason=\"error\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(t, "echod_start_time_seconds "
					"1700000000.250\n"));
	/* Cumulative buckets, the sum in seconds, the count. */
	ck_assert_ptr_nonnull(strstr(
		t,
		"echod_connection_duration_seconds_bucket{le=\"0.001\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(
		t, "echod_connection_duration_seconds_bucket{le=\"1\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(
		t, "echod_connection_duration_seconds_bucket{le=\"5\"} 5\n"));
	ck_assert_ptr_nonnull(strstr(
		t,
		"echod_connection_duration_seconds_bucket{le=\"+Inf\"} 5\n"));
	ck_assert_ptr_nonnull(
		strstr(t, "echod_connection_duration_seconds_sum 6.500\n"));
	ck_assert_ptr_nonnull(
		strstr(t, "echod_connection_duration_seconds_count 5\n"));
	/* Per listener: its label, active as taken less closed. */
	ck_assert_ptr_nonnull(
		strstr(t, "echod_listener_connections_active{listener="
			  "\"[::1]:8888\"} 2\n"));
	ck_assert_ptr_nonnull(
		strstr(t, "echod_listener_bytes_received_total{listener="
			  "\"[::1]:8888\"} 100\n"));
	free(t);
}
END_TEST

START_TEST(test_metrics_render_shape)
{
	struct metrics_view v;
	char *t;

	view_init(&v);
	t = render(&v);
	/* No UDP listener: no UDP family; unknown process figures left
	 * out, known ones there. */
	ck_assert_int_eq(count_lines(t, "# TYPE echod_udp_"), 0);
	ck_assert_int_eq(count_lines(t, "process_max_fds"), 0);
	ck_assert_int_eq(count_lines(t, "process_resident_memory_bytes"), 0);
	ck_assert_int_eq(count_lines(t, "process_open_fds 9"), 1);
	ck_assert_int_eq(count_lines(t, "process_cpu_seconds_total 1.500"), 1);
	/* Every family has one HELP and one TYPE line. */
	ck_assert_int_eq(count_lines(t, "# HELP "), count_lines(t, "# TYPE "));
	ck_assert_int_eq(count_lines(t, "# TYPE echod_connections_closed"), 1);
	ck_assert_int_eq(count_lines(t, "echod_connections_closed_total{"),
			 CONN_NEND);
	free(t);

	/* A UDP listener: its three families, none of the TCP ones. */
	v.listener[0].name = "127.0.0.1:7 udp";
	v.listener[0].udp = 1;
	v.listener[0].lc[LC_DGRAMS_LIMITED] = 6;
	t = render(&v);
	ck_assert_int_eq(count_lines(t, "# TYPE echod_udp_"), 3);
	ck_assert_int_eq(count_lines(t, "# TYPE echod_listener_"), 0);
	ck_assert_ptr_nonnull(
		strstr(t, "echod_udp_datagrams_dropped_total{listener=\"127.0."
			  "0.1:7 udp\",reason=\"rate_limited\"} 6\n"));
	free(t);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("pure");

	tcase_add_test(tc, test_metrics_duration_buckets);
	tcase_add_test(tc, test_metrics_escape);
	tcase_add_test(tc, test_metrics_slots_stable_and_bounded);
	tcase_add_test(tc, test_metrics_render_values);
	tcase_add_test(tc, test_metrics_render_shape);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(metrics_suite());
}

/* Tests for sf_metrics: series by label values, histogram buckets, the text format, the series limit. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "sf/metrics.h"

static const double BUCKETS[] = {0.1, 1, 10};
static const sf_metric_def DEFS[] = {
    {"req_seconds", SF_METRIC_HISTOGRAM, "Request time.", {"route", "code", NULL, NULL}, BUCKETS, 3},
    {"jobs_total", SF_METRIC_COUNTER, "Jobs.", {"status", NULL, NULL, NULL}, NULL, 0},
    {"depth", SF_METRIC_GAUGE, "Queue depth.", {NULL, NULL, NULL, NULL}, NULL, 0},
};

static char *render(sf_metrics *m)
{
    static char text[8192]; /* test-only */
    sf_buf b;
    sf_buf_init(&b, sizeof text - 1);
    cr_assert_eq(sf_metrics_render(m, &b, NULL), SF_OK);
    snprintf(text, sizeof text, "%s", sf_buf_str(&b));
    sf_buf_destroy(&b);
    return text;
}

Test(metrics, histogram_counts_each_observation_in_every_bucket_at_or_above_it)
{
    sf_metrics *m = NULL;
    cr_assert_eq(sf_metrics_new(DEFS, 3, 10, &m, NULL), SF_OK);
    const char *a[] = {"/x", "200"};
    cr_assert_eq(sf_metrics_observe(m, 0, a, 0.05, NULL), SF_OK);
    cr_assert_eq(sf_metrics_observe(m, 0, a, 1.0, NULL), SF_OK);
    cr_assert_eq(sf_metrics_observe(m, 0, a, 50, NULL), SF_OK);
    char *t = render(m);
    cr_assert(strstr(t, "# TYPE req_seconds histogram\n") != NULL, "%s", t);
    cr_assert(strstr(t, "req_seconds_bucket{route=\"/x\",code=\"200\",le=\"0.1\"} 1\n") != NULL, "%s", t);
    cr_assert(strstr(t, "req_seconds_bucket{route=\"/x\",code=\"200\",le=\"1\"} 2\n") != NULL, "%s", t);
    cr_assert(strstr(t, "req_seconds_bucket{route=\"/x\",code=\"200\",le=\"10\"} 2\n") != NULL, "%s", t);
    cr_assert(strstr(t, "req_seconds_bucket{route=\"/x\",code=\"200\",le=\"+Inf\"} 3\n") != NULL, "%s", t);
    cr_assert(strstr(t, "req_seconds_sum{route=\"/x\",code=\"200\"} 51.049999999999997\n") != NULL, "%s", t);
    cr_assert(strstr(t, "req_seconds_count{route=\"/x\",code=\"200\"} 3\n") != NULL, "%s", t);
    sf_metrics_free(m);
}

Test(metrics, label_values_make_separate_series_and_are_escaped)
{
    sf_metrics *m = NULL;
    cr_assert_eq(sf_metrics_new(DEFS, 3, 10, &m, NULL), SF_OK);
    const char *ok[] = {"ok"}, *bad[] = {"say \"hi\"\\"};
    sf_metrics_add(m, 1, ok, 2, NULL);
    sf_metrics_add(m, 1, ok, 3, NULL);
    sf_metrics_add(m, 1, bad, 1, NULL);
    sf_metrics_set(m, 2, NULL, 7, NULL);
    sf_metrics_set(m, 2, NULL, 4, NULL);
    char *t = render(m);
    cr_assert(strstr(t, "jobs_total{status=\"ok\"} 5\n") != NULL, "%s", t);
    cr_assert(strstr(t, "jobs_total{status=\"say \\\"hi\\\"\\\\\"} 1\n") != NULL, "%s", t);
    cr_assert(strstr(t, "depth 4\n") != NULL, "%s", t);
    cr_assert_eq(sf_metrics_add(m, 1, ok, -1, NULL), SF_ERR_INVALID, "a counter went down");
    cr_assert_eq(sf_metrics_set(m, 1, ok, 1, NULL), SF_ERR_INVALID, "wrong type accepted");
    sf_metrics_free(m);
}

Test(metrics, series_past_the_limit_are_refused)
{
    sf_metrics *m = NULL;
    cr_assert_eq(sf_metrics_new(DEFS, 3, 2, &m, NULL), SF_OK);
    const char *a[] = {"a"}, *b[] = {"b"}, *c[] = {"c"};
    cr_assert_eq(sf_metrics_add(m, 1, a, 1, NULL), SF_OK);
    cr_assert_eq(sf_metrics_add(m, 1, b, 1, NULL), SF_OK);
    cr_assert_eq(sf_metrics_add(m, 1, c, 1, NULL), SF_ERR_LIMIT);
    cr_assert_eq(sf_metrics_add(m, 1, a, 1, NULL), SF_OK, "an existing series still counts");
    cr_assert(strstr(render(m), "jobs_total{status=\"a\"} 2\n") != NULL);
    sf_metrics_free(m);
}

Test(metrics, process_metrics_are_rendered)
{
    sf_buf b;
    sf_buf_init(&b, 4096);
    cr_assert_eq(sf_metrics_render_process(1700000000.5, &b, NULL), SF_OK);
    const char *t = sf_buf_str(&b);
    cr_assert(strstr(t, "process_start_time_seconds 1700000000.500\n") != NULL, "%s", t);
    cr_assert(strstr(t, "process_resident_memory_bytes ") != NULL);
    cr_assert(strstr(t, "# TYPE process_cpu_seconds_total counter\n") != NULL);
    sf_buf_destroy(&b);
}

Test(metrics, touched_series_render_zero_and_keep_their_values)
{
    sf_metrics *m = NULL;
    cr_assert_eq(sf_metrics_new(DEFS, 3, 10, &m, NULL), SF_OK);
    const char *a[] = {"/x", "200"}, *ok[] = {"ok"};
    cr_assert_eq(sf_metrics_touch(m, 0, a, NULL), SF_OK);
    cr_assert_eq(sf_metrics_touch(m, 1, ok, NULL), SF_OK);
    char *t = render(m);
    cr_assert(strstr(t, "req_seconds_bucket{route=\"/x\",code=\"200\",le=\"+Inf\"} 0\n") != NULL, "%s", t);
    cr_assert(strstr(t, "req_seconds_count{route=\"/x\",code=\"200\"} 0\n") != NULL, "%s", t);
    cr_assert(strstr(t, "jobs_total{status=\"ok\"} 0\n") != NULL, "%s", t);
    cr_assert_eq(sf_metrics_add(m, 1, ok, 3, NULL), SF_OK);
    cr_assert_eq(sf_metrics_touch(m, 1, ok, NULL), SF_OK);
    cr_assert(strstr(render(m), "jobs_total{status=\"ok\"} 3\n") != NULL, "a touch reset a series");
    cr_assert_eq(sf_metrics_touch(m, 7, ok, NULL), SF_ERR_INVALID);
    sf_metrics_free(m);
}

Test(metrics, cleared_metrics_lose_their_series_and_free_the_room)
{
    sf_metrics *m = NULL;
    cr_assert_eq(sf_metrics_new(DEFS, 3, 2, &m, NULL), SF_OK);
    const char *a[] = {"a"}, *b[] = {"b"};
    cr_assert_eq(sf_metrics_set(m, 2, NULL, 5, NULL), SF_OK);
    cr_assert_eq(sf_metrics_add(m, 1, a, 1, NULL), SF_OK);
    cr_assert_eq(sf_metrics_add(m, 1, b, 1, NULL), SF_ERR_LIMIT);
    sf_metrics_clear(m, 2);
    char *t = render(m);
    cr_assert(strstr(t, "\ndepth ") == NULL, "%s", t);
    cr_assert(strstr(t, "# TYPE depth gauge\n") != NULL, "%s", t);
    cr_assert(strstr(t, "jobs_total{status=\"a\"} 1\n") != NULL, "%s", t);
    cr_assert_eq(sf_metrics_add(m, 1, b, 1, NULL), SF_OK, "the cleared series' room was not reused");
    sf_metrics_set(m, 2, NULL, 7, NULL);
    cr_assert_eq(sf_metrics_add(m, 1, b, 1, NULL), SF_OK);
    sf_metrics_free(m);
}

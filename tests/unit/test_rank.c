/* Tests for the rankable metrics table and the top-K rule (sf/rank.h): the
 * table matches its literal lists, every metric is a key of the metrics JSON
 * the farm stores and reads back as the value the engine ranks by, the order
 * (direction, non-finite last, ties by index) and the one meaning of top. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sf/rank.h"
#include "sf/result.h"

/* The names of the table joined with ", " (only the lower-is-better ones when lower). */
static void join_names(int lower_only, char *out, size_t size)
{
    out[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < sf_rank_count(); i++) {
        const sf_rank_metric *m = sf_rank_at(i);
        if (lower_only && m->dir != SF_RANK_LOWER)
            continue;
        len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "", m->name);
        cr_assert_lt(len, size);
    }
}

Test(rank, the_literal_lists_are_the_table)
{
    char all[512], lower[512];
    join_names(0, all, sizeof all);
    join_names(1, lower, sizeof lower);
    cr_assert_str_eq(all, SF_RANK_LIST);
    cr_assert_str_eq(lower, SF_RANK_LOWER_LIST);
    cr_assert_eq(sf_rank_count(), 11);
    cr_assert_null(sf_rank_at(sf_rank_count()));
}

Test(rank, names_are_unique_sql_safe_and_found)
{
    for (size_t i = 0; i < sf_rank_count(); i++) {
        const sf_rank_metric *m = sf_rank_at(i);
        cr_assert_lt(strlen(m->name), SF_RANK_NAME_MAX);
        cr_assert_eq(strspn(m->name, "abcdefghijklmnopqrstuvwxyz_"), strlen(m->name), "%s", m->name);
        cr_assert_eq(sf_rank_find(m->name), m, "%s", m->name);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(sf_rank_at(j)->name, m->name);
    }
    cr_assert_not_null(sf_rank_find(SF_RANK_DEFAULT));
    cr_assert_eq(sf_rank_find("fees")->dir, SF_RANK_LOWER);
    cr_assert_eq(sf_rank_find("max_drawdown")->dir, SF_RANK_LOWER);
    cr_assert_eq(sf_rank_find("sharpe")->dir, SF_RANK_HIGHER);
    cr_assert_null(sf_rank_find("luck"));
    cr_assert_null(sf_rank_find("Sharpe"));
    cr_assert_null(sf_rank_find(""));
    cr_assert_null(sf_rank_find(NULL));
}

/* The farm ranks by results.metrics ->> name: the JSON the worker stores must
 * hold, under each name, the very value the engine ranks by. */
Test(rank, every_metric_is_a_key_of_the_stored_metrics_with_the_ranked_value)
{
    sf_perf p = {.final_equity = 10523.75,
                 .total_return = 0.052375,
                 .cagr = 0.0126,
                 .sharpe = 0.41,
                 .sortino = 0.58,
                 .max_drawdown = 0.142,
                 .drawdown_peak_time = 86400,
                 .drawdown_trough_time = 172800,
                 .win_rate = 0.45,
                 .profit_factor = 1.31,
                 .trades = 22,
                 .exposure = 0.48,
                 .fees = 231.5};
    sf_buf b;
    sf_buf_init(&b, 1 << 16);
    sf_err err;
    cr_assert_eq(sf_perf_to_json(&p, &b, &err), SF_OK, "%s", err.msg);
    json_t *j = json_loads(sf_buf_str(&b), 0, NULL);
    cr_assert_not_null(j, "%s", sf_buf_str(&b));
    for (size_t i = 0; i < sf_rank_count(); i++) {
        const sf_rank_metric *m = sf_rank_at(i);
        json_t *v = json_object_get(j, m->name);
        cr_assert(json_is_number(v), "metrics JSON has no number %s: %s", m->name, sf_buf_str(&b));
        double got = json_number_value(v), want = m->get(&p);
        cr_assert(memcmp(&got, &want, sizeof got) == 0, "%s: JSON %.17g, struct %.17g", m->name, got, want);
    }
    json_decref(j);
    sf_buf_destroy(&b);
}

Test(rank, the_key_points_the_better_way_and_is_nan_when_not_finite)
{
    sf_perf p = {.sharpe = 1.5,
                 .max_drawdown = 0.2,
                 .fees = 12.0,
                 .profit_factor = INFINITY,
                 .sortino = NAN,
                 .cagr = -INFINITY,
                 .trades = 3};
    cr_assert_eq(sf_rank_key(sf_rank_find("sharpe"), &p), 1.5);
    cr_assert_eq(sf_rank_key(sf_rank_find("max_drawdown"), &p), -0.2);
    cr_assert_eq(sf_rank_key(sf_rank_find("fees"), &p), -12.0);
    cr_assert_eq(sf_rank_key(sf_rank_find("trades"), &p), 3.0);
    /* +Inf, NaN and -Inf are all null in the stored JSON: all rank last. */
    cr_assert(isnan(sf_rank_key(sf_rank_find("profit_factor"), &p)));
    cr_assert(isnan(sf_rank_key(sf_rank_find("sortino"), &p)));
    cr_assert(isnan(sf_rank_key(sf_rank_find("cagr"), &p)));
}

Test(rank, members_order_by_key_then_index_with_nan_last)
{
    cr_assert_lt(sf_rank_cmp(2.0, 9, 1.0, 0), 0, "the larger key first");
    cr_assert_gt(sf_rank_cmp(1.0, 0, 2.0, 9), 0);
    cr_assert_lt(sf_rank_cmp(1.0, 3, 1.0, 4), 0, "ties by index");
    cr_assert_gt(sf_rank_cmp(1.0, 4, 1.0, 3), 0);
    cr_assert_eq(sf_rank_cmp(1.0, 4, 1.0, 4), 0);
    cr_assert_lt(sf_rank_cmp(-1e300, 9, NAN, 0), 0, "any number before NaN");
    cr_assert_gt(sf_rank_cmp(NAN, 0, -1e300, 9), 0);
    cr_assert_lt(sf_rank_cmp(NAN, 1, NAN, 2), 0, "NaN among themselves by index");
    cr_assert_eq(sf_rank_cmp(-0.0, 1, 0.0, 1), 0, "-0 and 0 are the same value, as in SQL");
}

/* 0 is not "all": the same error locally, in sfctl and in the API. */
Test(rank, top_is_from_1_to_1000_with_default_10_and_0_is_an_error)
{
    size_t k = 0;
    sf_err err;
    cr_assert_eq(sf_rank_top_parse(NULL, &k, &err), SF_OK);
    cr_assert_eq(k, SF_RANK_TOP_DEFAULT);
    cr_assert_eq(k, 10);
    cr_assert_eq(sf_rank_top_parse("1", &k, &err), SF_OK);
    cr_assert_eq(k, 1);
    cr_assert_eq(sf_rank_top_parse("1000", &k, &err), SF_OK);
    cr_assert_eq(k, SF_RANK_TOP_MAX);
    const char *bad[] = {"0", "1001", "-1", "abc", "", " 5", "5x", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        k = 77;
        sf_err_clear(&err);
        cr_assert_eq(sf_rank_top_parse(bad[i], &k, &err), SF_ERR_INVALID, "\"%s\" accepted", bad[i]);
        cr_assert_eq(k, 77, "\"%s\" changed the output", bad[i]);
        cr_assert(strncmp(err.msg, "top: must be an integer from 1 to 1000", 38) == 0, "%s", err.msg);
    }
    sf_rank_top_parse("0", &k, &err);
    cr_assert_str_eq(err.msg, "top: must be an integer from 1 to 1000, got \"0\"");
    cr_assert_eq(sf_rank_top_parse("0", &k, NULL), SF_ERR_INVALID);
}

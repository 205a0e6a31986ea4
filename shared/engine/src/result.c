/* result: results and leaderboards as JSON text; see sf/result.h.
 *
 * Written straight into an sf_buf (no jansson tree): the keys are fixed ASCII,
 * the only strings are times, exit reasons and sides, and a sweep's params
 * object is already JSON from sf_grid_params_json. One table lists the
 * metrics, in output order. Numbers go through sf_buf_put_g17 / _put_i64
 * (printf's bytes without printf's cost, which showed in the workers'
 * profiles; sf-bench-fmt measures both), strings through plain appends. */
#include "sf/result.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sf/time.h"

typedef enum mkind { MK_DOUBLE, MK_TIME, MK_SIZE } mkind;

static const struct {
    const char *name;
    mkind kind;
    size_t off;
} metric_fields[] = {
    {"final_equity", MK_DOUBLE, offsetof(sf_perf, final_equity)},
    {"total_return", MK_DOUBLE, offsetof(sf_perf, total_return)},
    {"cagr", MK_DOUBLE, offsetof(sf_perf, cagr)},
    {"sharpe", MK_DOUBLE, offsetof(sf_perf, sharpe)},
    {"sortino", MK_DOUBLE, offsetof(sf_perf, sortino)},
    {"max_drawdown", MK_DOUBLE, offsetof(sf_perf, max_drawdown)},
    {"max_drawdown_peak_time", MK_TIME, offsetof(sf_perf, drawdown_peak_time)},
    {"max_drawdown_trough_time", MK_TIME, offsetof(sf_perf, drawdown_trough_time)},
    {"win_rate", MK_DOUBLE, offsetof(sf_perf, win_rate)},
    {"profit_factor", MK_DOUBLE, offsetof(sf_perf, profit_factor)},
    {"trades", MK_SIZE, offsetof(sf_perf, trades)},
    {"exposure", MK_DOUBLE, offsetof(sf_perf, exposure)},
    {"fees", MK_DOUBLE, offsetof(sf_perf, fees)},
};

#define N_FIELDS (sizeof metric_fields / sizeof metric_fields[0])

/* A double as %.17g (round-trippable), or null when not finite. */
static sf_status put_double(sf_buf *out, double v, sf_err *err)
{
    if (!isfinite(v))
        return sf_buf_puts(out, "null", err);
    return sf_buf_put_g17(out, v, err);
}

/* A count as %zu. */
static sf_status put_size(sf_buf *out, size_t n, sf_err *err)
{
    if (n > INT64_MAX)
        return sf_buf_printf(out, err, "%zu", n);
    return sf_buf_put_i64(out, (int64_t)n, err);
}

/* Text that needs no escaping, in quotes: "text" after the prefix. */
static sf_status put_quoted(sf_buf *out, const char *prefix, const char *text, sf_err *err)
{
    sf_status st = sf_buf_puts(out, prefix, err);
    if (st == SF_OK)
        st = sf_buf_puts(out, "\"", err);
    if (st == SF_OK)
        st = sf_buf_puts(out, text, err);
    return st != SF_OK ? st : sf_buf_puts(out, "\"", err);
}

static sf_status put_time(sf_buf *out, int64_t ts, sf_err *err)
{
    char iso[SF_TIME_ISO_MAX];
    sf_time_format_iso8601(ts, iso, sizeof iso);
    return put_quoted(out, "", iso, err);
}

static sf_status put_field(sf_buf *out, const sf_perf *p, size_t i, sf_err *err)
{
    const char *base = (const char *)p + metric_fields[i].off;
    sf_status st = put_quoted(out, i ? ", " : "", metric_fields[i].name, err);
    if (st == SF_OK)
        st = sf_buf_puts(out, ": ", err);
    if (st != SF_OK)
        return st;
    switch (metric_fields[i].kind) {
    case MK_TIME: return put_time(out, *(const int64_t *)(const void *)base, err);
    case MK_SIZE: return put_size(out, *(const size_t *)(const void *)base, err);
    default: return put_double(out, *(const double *)(const void *)base, err);
    }
}

sf_status sf_perf_to_json(const sf_perf *perf, sf_buf *out, sf_err *err)
{
    sf_status st = sf_buf_puts(out, "{", err);
    for (size_t i = 0; i < N_FIELDS && st == SF_OK; i++)
        st = put_field(out, perf, i, err);
    return st != SF_OK ? st : sf_buf_puts(out, "}", err);
}

/* One field of metric_fields from its JSON value (NULL: absent). */
static sf_status get_field(json_t *v, sf_perf *p, size_t i, sf_err *err)
{
    char *base = (char *)p + metric_fields[i].off;
    int missing = v == NULL || json_is_null(v);
    if (metric_fields[i].kind == MK_TIME) {
        const char *s = json_string_value(v);
        int64_t *t = (int64_t *)(void *)base;
        *t = 0;
        if (missing)
            return SF_OK;
        if (s == NULL || sf_time_parse_iso8601(s, strlen(s), t, NULL) != SF_OK)
            return sf_err_set(err, SF_ERR_PARSE, "metrics: %s: not a time", metric_fields[i].name);
        return SF_OK;
    }
    if (!missing && !json_is_number(v))
        return sf_err_set(err, SF_ERR_PARSE, "metrics: %s: not a number", metric_fields[i].name);
    if (metric_fields[i].kind == MK_SIZE)
        *(size_t *)(void *)base = missing || json_number_value(v) < 0 ? 0 : (size_t)json_number_value(v);
    else
        *(double *)(void *)base = missing ? NAN : json_number_value(v);
    return SF_OK;
}

sf_status sf_perf_from_json(const char *text, size_t len, sf_perf *out, sf_err *err)
{
    /* every number is read as a double: PostgreSQL's jsonb prints one at or
     * above 2^63 as an integer without exponent, which json_int_t cannot hold */
    json_t *root = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, NULL);
    sf_status st = json_is_object(root) ? SF_OK : sf_err_set(err, SF_ERR_PARSE, "metrics: not a JSON object");
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < N_FIELDS && st == SF_OK; i++)
        st = get_field(json_object_get(root, metric_fields[i].name), out, i, err);
    json_decref(root);
    return st;
}

static sf_status put_trade(sf_buf *out, const sf_trade *t, sf_err *err)
{
    sf_status st = sf_buf_puts(out, "{\"entry_time\": ", err);
    if (st == SF_OK)
        st = put_time(out, t->entry_time, err);
    if (st == SF_OK)
        st = sf_buf_puts(out, ", \"entry_price\": ", err);
    if (st == SF_OK)
        st = put_double(out, t->entry_price, err);
    if (st == SF_OK)
        st = sf_buf_puts(out, ", \"exit_time\": ", err);
    if (st == SF_OK)
        st = put_time(out, t->exit_time, err);
    const struct {
        const char *key;
        double v;
    } nums[] = {{"exit_price", t->exit_price}, {"qty", t->qty}, {"pnl", t->pnl}, {"fees", t->fees}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0] && st == SF_OK; i++) {
        st = put_quoted(out, ", ", nums[i].key, err);
        if (st == SF_OK)
            st = sf_buf_puts(out, ": ", err);
        if (st == SF_OK)
            st = put_double(out, nums[i].v, err);
    }
    if (st == SF_OK)
        st = put_quoted(out, ", \"exit_reason\": ", sf_exit_reason_name(t->exit_reason), err);
    if (st == SF_OK)
        st = put_quoted(out, ", \"side\": ", t->side < 0 ? "short" : "long", err);
    return st != SF_OK ? st : sf_buf_puts(out, "}", err);
}

static sf_status put_trades_array(sf_buf *out, const sf_result *r, int with, sf_err *err)
{
    sf_status st = sf_buf_puts(out, "[", err);
    size_t n = with && r->trades != NULL ? r->n_trades : 0;
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        st = i ? sf_buf_puts(out, ", ", err) : SF_OK;
        if (st == SF_OK)
            st = put_trade(out, &r->trades[i], err);
    }
    return st != SF_OK ? st : sf_buf_puts(out, "]", err);
}

static sf_status put_trades(sf_buf *out, const sf_result *r, int with, sf_err *err)
{
    sf_status st = sf_buf_puts(out, "\"trades\": ", err);
    return st != SF_OK ? st : put_trades_array(out, r, with, err);
}

static sf_status put_equity(sf_buf *out, const sf_result *r, int with, sf_err *err)
{
    sf_status st = sf_buf_puts(out, "\"equity\": [", err);
    size_t n = with && r->equity != NULL ? r->n_equity : 0;
    for (size_t i = 0; i < n && st == SF_OK; i++) {
        st = sf_buf_puts(out, i ? ", {\"time\": " : "{\"time\": ", err);
        if (st == SF_OK)
            st = put_time(out, r->ts[i], err);
        if (st == SF_OK)
            st = sf_buf_puts(out, ", \"equity\": ", err);
        if (st == SF_OK)
            st = put_double(out, r->equity[i], err);
        if (st == SF_OK)
            st = sf_buf_puts(out, "}", err);
    }
    return st != SF_OK ? st : sf_buf_puts(out, "]", err);
}

sf_status sf_result_to_json(const sf_result *result, int with_trades, int with_equity, sf_buf *out, sf_err *err)
{
    sf_status st = sf_buf_puts(out, "{\"metrics\": ", err);
    if (st == SF_OK)
        st = sf_perf_to_json(&result->perf, out, err);
    if (st == SF_OK)
        st = sf_buf_puts(out, ", ", err);
    if (st == SF_OK)
        st = put_trades(out, result, with_trades, err);
    if (st == SF_OK)
        st = sf_buf_puts(out, ", ", err);
    if (st == SF_OK)
        st = put_equity(out, result, with_equity, err);
    return st != SF_OK ? st : sf_buf_puts(out, "}", err);
}

sf_status sf_result_trades_json(const sf_result *result, sf_buf *out, sf_err *err)
{
    return put_trades_array(out, result, 1, err);
}

static sf_status put_member(sf_buf *out, const sf_sweep_member *m, sf_err *err)
{
    sf_status st = sf_buf_puts(out, "{\"rank\": ", err);
    if (st == SF_OK)
        st = put_size(out, m->rank, err);
    if (st == SF_OK)
        st = sf_buf_puts(out, ", \"index\": ", err);
    if (st == SF_OK)
        st = put_size(out, m->index, err);
    if (st == SF_OK)
        st = sf_buf_puts(out, ", \"params\": ", err);
    if (st == SF_OK)
        st = sf_buf_puts(out, m->params_json ? m->params_json : "{}", err);
    if (st == SF_OK)
        st = sf_buf_puts(out, ", \"metrics\": ", err);
    if (st == SF_OK)
        st = sf_perf_to_json(&m->perf, out, err);
    return st != SF_OK ? st : sf_buf_puts(out, "}", err);
}

sf_status sf_sweep_to_json(const sf_sweep_result *sweep, sf_buf *out, sf_err *err)
{
    sf_status st = sf_buf_printf(out, err, "{\"combinations\": %zu, \"rank_by\": \"%s\", \"members\": [",
                                 sweep->n_combos, sweep->rank_by);
    for (size_t i = 0; i < sweep->n_members && st == SF_OK; i++) {
        st = i ? sf_buf_puts(out, ", ", err) : SF_OK;
        if (st == SF_OK)
            st = put_member(out, &sweep->members[i], err);
    }
    if (st == SF_OK && sweep->has_overfit) {
        st = sf_buf_puts(out, "], \"overfit\": ", err);
        if (st == SF_OK)
            st = sf_overfit_to_json(&sweep->overfit, out, err);
        return st != SF_OK ? st : sf_buf_puts(out, "}", err);
    }
    return st != SF_OK ? st : sf_buf_puts(out, "]}", err);
}

/* table: sfctl's tables of metrics and leaderboards; see table.h.
 *
 * One row table gives each metric its label and number format; the values
 * are read through sf/rank.h's getters, so this file names no sf_perf field
 * that the rank table does not. */
#include "table.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sf/rank.h"
#include "sf/time.h"

typedef enum { F_MONEY, F_PCT, F_RATIO, F_COUNT } fkind;

static const struct {
    const char *key; /* an sf/rank.h name */
    const char *label;
    fkind kind;
} ROWS[] = {
    {"final_equity", "final equity", F_MONEY},
    {"total_return", "total return", F_PCT},
    {"cagr", "CAGR", F_PCT},
    {"sharpe", "Sharpe", F_RATIO},
    {"sortino", "Sortino", F_RATIO},
    {"max_drawdown", "max drawdown", F_PCT},
    {"win_rate", "win rate", F_PCT},
    {"profit_factor", "profit factor", F_RATIO},
    {"trades", "trades", F_COUNT},
    {"exposure", "exposure", F_PCT},
    {"fees", "fees", F_MONEY},
};

#define N_ROWS (sizeof ROWS / sizeof ROWS[0])

/* The leaderboard's fixed metric columns. */
static const char *const BOARD_KEYS[] = {"sharpe", "sortino", "total_return", "max_drawdown", "trades"};

static void fmt_num(char *buf, size_t size, double v, fkind kind)
{
    static const char *const fmts[] = {"%.2f", "%.2f%%", "%.3f", "%.0f"};
    if (!isfinite(v))
        snprintf(buf, size, "%s", isnan(v) ? "n/a" : v > 0 ? "inf" : "-inf");
    else
        snprintf(buf, size, fmts[kind], v * (kind == F_PCT ? 100.0 : 1.0));
}

/* The value of metric key in p, formatted as its row says. */
static void fmt_metric(char *buf, size_t size, const char *key, const sf_perf *p)
{
    const sf_rank_metric *m = sf_rank_find(key);
    fkind kind = F_RATIO;
    for (size_t i = 0; i < N_ROWS; i++)
        if (strcmp(ROWS[i].key, key) == 0)
            kind = ROWS[i].kind;
    fmt_num(buf, size, m ? m->get(p) : NAN, kind);
}

void tbl_metrics(const sf_perf *p)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        char v[64];
        fmt_metric(v, sizeof v, ROWS[i].key, p);
        printf("  %-15s %s\n", ROWS[i].label, v);
    }
    char a[SF_TIME_ISO_MAX], b[SF_TIME_ISO_MAX];
    sf_time_format_iso8601(p->drawdown_peak_time, a, sizeof a);
    sf_time_format_iso8601(p->drawdown_trough_time, b, sizeof b);
    printf("  %-15s %s .. %s\n", "drawdown span", a, b);
}

/* Whether the ranking metric needs a column of its own. */
static int extra_column(const char *rank_by)
{
    if (rank_by == NULL || sf_rank_find(rank_by) == NULL)
        return 0;
    for (size_t i = 0; i < sizeof BOARD_KEYS / sizeof BOARD_KEYS[0]; i++)
        if (strcmp(BOARD_KEYS[i], rank_by) == 0)
            return 0;
    return 1;
}

void tbl_board_head(const char *rank_by, int with_jobs)
{
    printf("  %4s %6s", "rank", "index");
    if (with_jobs)
        printf(" %-36s", "job");
    printf(" %9s %9s %10s %10s %7s", "sharpe", "sortino", "return", "max dd", "trades");
    if (extra_column(rank_by))
        printf(" %13s", rank_by);
    printf("  %s\n", "params");
}

void tbl_board_row(const char *rank_by, size_t rank, size_t index, const char *job_id, const sf_perf *p,
                   const char *params_json)
{
    char v[5][32], x[32];
    for (size_t i = 0; i < 5; i++)
        fmt_metric(v[i], sizeof v[i], BOARD_KEYS[i], p);
    printf("  %4zu %6zu", rank, index);
    if (job_id != NULL)
        printf(" %-36s", job_id);
    printf(" %9s %9s %10s %10s %7s", v[0], v[1], v[2], v[3], v[4]);
    if (extra_column(rank_by)) {
        fmt_metric(x, sizeof x, rank_by, p);
        printf(" %13s", x);
    }
    printf("  %s\n", params_json ? params_json : "-");
}

/* A number with prec decimals, or n/a. */
static const char *ovf_num(char *buf, size_t size, double v, int prec)
{
    if (!isfinite(v))
        snprintf(buf, size, "n/a");
    else
        snprintf(buf, size, "%.*f", prec, v);
    return buf;
}

void tbl_overfit(const sf_overfit *o)
{
    char a[32], b[32], c[32], d[32];
    printf("\noverfitting: %s\n", o->verdict);
    if (!o->ok)
        return;
    printf("PBO %s", ovf_num(a, sizeof a, o->pbo, 3));
    if (o->sampled)
        printf(" +- %s", ovf_num(b, sizeof b, o->pbo_margin, 3));
    printf(" over %llu of %llu splits of %d blocks; the in-sample best's out-of-sample Sharpe %s a bar, "
           "below 0 in %s%% of splits\n",
           (unsigned long long)o->splits, (unsigned long long)o->splits_total, o->blocks,
           ovf_num(c, sizeof c, o->oos_sharpe_mean, 4), ovf_num(d, sizeof d, o->prob_loss * 100, 1));
    printf("DSR %s of member %lld (Sharpe %s a bar over %zu returns, SR0 %s for %.0f trials)",
           ovf_num(a, sizeof a, o->dsr, 3), (long long)o->best_index, ovf_num(b, sizeof b, o->best_sharpe, 4),
           o->returns, ovf_num(c, sizeof c, o->sr0, 4), o->trials);
    printf("%s%s\n", o->dsr_reason[0] ? ": " : "", o->dsr_reason);
}

/* rank: the rankable metrics and the top-K rule; see sf/rank.h.
 *
 * DESIGN
 * The table is the only list of rankable metrics: sweep.c ranks with it,
 * sf-api validates rank_by and ?by= and picks ASC or DESC with it, sfctl
 * validates --by and --top with it. Non-finite values rank last because
 * results store them as JSON null, so a NaN and an infinity look the same
 * to the farm's SQL: ranking an infinite profit factor first here would make
 * the local leaderboard differ from the farm's. */
#include "sf/rank.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sf/config.h"

static double m_sharpe(const sf_perf *p)
{
    return p->sharpe;
}
static double m_sortino(const sf_perf *p)
{
    return p->sortino;
}
static double m_total_return(const sf_perf *p)
{
    return p->total_return;
}
static double m_cagr(const sf_perf *p)
{
    return p->cagr;
}
static double m_final_equity(const sf_perf *p)
{
    return p->final_equity;
}
static double m_max_drawdown(const sf_perf *p)
{
    return p->max_drawdown;
}
static double m_win_rate(const sf_perf *p)
{
    return p->win_rate;
}
static double m_profit_factor(const sf_perf *p)
{
    return p->profit_factor;
}
static double m_trades(const sf_perf *p)
{
    return (double)p->trades;
}
static double m_exposure(const sf_perf *p)
{
    return p->exposure;
}
static double m_fees(const sf_perf *p)
{
    return p->fees;
}

static const sf_rank_metric TABLE[] = {
    {"sharpe", SF_RANK_HIGHER, m_sharpe},
    {"sortino", SF_RANK_HIGHER, m_sortino},
    {"total_return", SF_RANK_HIGHER, m_total_return},
    {"cagr", SF_RANK_HIGHER, m_cagr},
    {"final_equity", SF_RANK_HIGHER, m_final_equity},
    {"max_drawdown", SF_RANK_LOWER, m_max_drawdown},
    {"win_rate", SF_RANK_HIGHER, m_win_rate},
    {"profit_factor", SF_RANK_HIGHER, m_profit_factor},
    {"trades", SF_RANK_HIGHER, m_trades},
    {"exposure", SF_RANK_HIGHER, m_exposure},
    {"fees", SF_RANK_LOWER, m_fees},
};

#define N_METRICS (sizeof TABLE / sizeof TABLE[0])

const sf_rank_metric *sf_rank_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < N_METRICS; i++)
        if (strcmp(TABLE[i].name, name) == 0)
            return &TABLE[i];
    return NULL;
}

size_t sf_rank_count(void)
{
    return N_METRICS;
}

const sf_rank_metric *sf_rank_at(size_t i)
{
    return i < N_METRICS ? &TABLE[i] : NULL;
}

double sf_rank_key(const sf_rank_metric *m, const sf_perf *perf)
{
    double v = m->get(perf);
    return isfinite(v) ? (double)m->dir * v : NAN;
}

int sf_rank_cmp(double key_a, size_t index_a, double key_b, size_t index_b)
{
    int na = isnan(key_a), nb = isnan(key_b);
    if (na != nb)
        return na - nb;
    if (!na && key_a != key_b)
        return key_a > key_b ? -1 : 1;
    return index_a < index_b ? -1 : index_a > index_b;
}

sf_status sf_rank_top_parse(const char *text, size_t *out, sf_err *err)
{
    int64_t k = SF_RANK_TOP_DEFAULT;
    if (text != NULL && sf_config_parse_int(text, 1, SF_RANK_TOP_MAX, &k, err) != SF_OK) {
        sf_err_prefix(err, "top");
        return SF_ERR_INVALID;
    }
    *out = (size_t)k;
    return SF_OK;
}

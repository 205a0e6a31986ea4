/*
 * overfit: is a sweep's best member real or the luck of many trials? Block
 * statistics of each member's per-bar returns, the Probability of Backtest
 * Overfitting by combinatorially symmetric cross-validation (CSCV) and the
 * Deflated Sharpe Ratio of the best member.
 *
 *   D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu, "The
 *   Probability of Backtest Overfitting", Journal of Computational Finance
 *   20(4), 2017, 39-69.
 *   D. H. Bailey and M. López de Prado, "The Deflated Sharpe Ratio:
 *   Correcting for Selection Bias, Backtest Overfitting and Non-Normality",
 *   Journal of Portfolio Management 40(5), 2014, 94-107.
 *
 * Block statistics (sf_blocks): the per-bar returns a member's Sharpe uses
 * (sf/perf.h: r_i = equity[i]/equity[i-1] - 1, i = 1 .. up to ruin) fall in S
 * equal consecutive blocks of the bar axis (block k holds returns
 * 1 + k(n-1)/S .. 1 + (k+1)(n-1)/S - 1, so the blocks are the same periods
 * for every member of a sweep; a ruined member's later blocks are short or
 * empty). Per block: the count, the sum and the sum of squares; over the
 * whole series the central third and fourth power sums. From them the
 * Sharpe ratio of any union of blocks is exact (sf_blocks_sharpe). A few
 * hundred bytes a member, packed for storage by sf_blocks_pack.
 *
 * Sharpe ratios here are per bar (not annualised): mean / sample deviation.
 * A union with fewer than 2 returns has none (NaN); inside CSCV a union with
 * no variation counts as 0 (a flat period earns nothing), while for the DSR a
 * member whose whole series does not vary has no Sharpe and is left out.
 *
 * CSCV (sf_overfit_compute): for each way of taking S/2 blocks as in-sample
 * (a "split"), the member with the best in-sample Sharpe (ties: the first
 * added) is ranked among all N members by out-of-sample Sharpe (mid-rank of
 * ties; a member with no out-of-sample Sharpe ranks lowest): omega =
 * rank / (N + 1), logit = ln(omega / (1 - omega)); PBO is the share of
 * splits with logit <= 0. The work is bounded: when C(S, S/2) x N is above
 * opts.work (SF_OVERFIT_WORK_DEFAULT member-split evaluations), K =
 * max(SF_OVERFIT_SPLITS_MIN, work / N) splits are drawn (each an independent
 * uniform half of the blocks, from a fixed-seed generator: deterministic)
 * and the PBO is their share, within pbo_margin = 1/sqrt(K) of the
 * exhaustive value with 95% confidence (a binomial proportion: 1.96 x 0.5 /
 * sqrt(K) at most). Splits are never more than SF_OVERFIT_SPLITS_MAX.
 * Members are processed in cache-sized chunks, all splits per chunk, in two
 * passes (the in-sample winners, then the out-of-sample counts): time
 * O(K x N x S), memory O(N x S + K).
 *
 * DSR: SR* the best per-bar Sharpe, V the sample variance of the members'
 * Sharpe ratios, trials = opts.effective_trials or N;
 * SR0 = sqrt(V) ((1 - g) Phi^-1(1 - 1/trials) + g Phi^-1(1 - 1/(trials e)))
 * (g the Euler-Mascheroni constant; 0 with one trial), and
 * DSR = Phi((SR* - SR0) sqrt(T - 1) / sqrt(1 - skew SR* + (kurt - 1)/4 SR*^2))
 * with T, skew and (non-excess) kurtosis of the best member's returns.
 *
 * Everything is deterministic: fixed orders of summation, a fixed seed.
 * Thread safety: pure; a set is not shared while it is being added to.
 * Ownership: sf_overfit_set_new returns a set freed by sf_overfit_set_free
 * (accepts NULL); everything else is caller storage.
 */
#ifndef SF_OVERFIT_H
#define SF_OVERFIT_H

#include <stddef.h>
#include <stdint.h>

#include "sf/buf.h"
#include "sf/err.h"

#define SF_OVERFIT_BLOCKS_DEFAULT 16
#define SF_OVERFIT_BLOCKS_MIN 2
#define SF_OVERFIT_BLOCKS_MAX 32
#define SF_OVERFIT_PACKED_MAX (20 + 20 * SF_OVERFIT_BLOCKS_MAX) /* sf_blocks_pack's bytes, at most */
#define SF_OVERFIT_WORK_DEFAULT ((uint64_t)50000000)            /* member-split evaluations a pass */
#define SF_OVERFIT_SPLITS_MIN 1000
#define SF_OVERFIT_SPLITS_MAX 50000
#define SF_OVERFIT_HIST_BINS 10 /* logits: (-inf,-4], (-4,-3], ..., (3,4], (4,inf) */
#define SF_OVERFIT_TEXT_MAX 200

typedef struct sf_blocks {
    int s;                               /* blocks; 0 = none */
    uint32_t n[SF_OVERFIT_BLOCKS_MAX];   /* returns in block k */
    double sum[SF_OVERFIT_BLOCKS_MAX];   /* their sum */
    double sumsq[SF_OVERFIT_BLOCKS_MAX]; /* their sum of squares */
    double c3, c4;                       /* sum over all returns of (r - mean)^3 and (r - mean)^4 */
} sf_blocks;

/* SF_OK when s is even and within SF_OVERFIT_BLOCKS_MIN..MAX; else
 * SF_ERR_INVALID naming the rule. */
sf_status sf_overfit_blocks_check(long long s, sf_err *err);

/* The block statistics of an equity curve of n points (the engine's, one a
 * bar) in s blocks; s outside the valid range gives out->s = 0. Sums are
 * compensated (Neumaier), in bar order. */
void sf_blocks_compute(const double *equity, size_t n, int s, sf_blocks *out);

/* The same statistics while the curve is being produced (the engine feeds
 * each chunk of bars while it is in cache): sf_blocks_scan_init for n points
 * and s blocks, sf_blocks_scan_feed whenever points 0 .. upto-1 of equity are
 * final (upto never decreasing; equity is the whole curve's array, of which
 * the scan reads those points), then sf_blocks_scan_finish with the whole
 * curve, whose out is bit for bit sf_blocks_compute's (which is these
 * calls). Fields of sf_blocks_scan are private. */
typedef struct sf_blocks_scan {
    sf_blocks b;           /* the result so far */
    size_t n, lo, hi, pos; /* the current block k: returns lo .. hi-1, pos the next */
    size_t end;            /* returns end before this bar (ruin); 0 before the first feed */
    int k;
    double acc[4]; /* the current block's compensated sums: sum, sum of squares, their compensations */
    double all[2]; /* the blocks' sums, compensated */
} sf_blocks_scan;

void sf_blocks_scan_init(sf_blocks_scan *sc, size_t n, int s);
void sf_blocks_scan_feed(sf_blocks_scan *sc, const double *equity, size_t upto);
void sf_blocks_scan_finish(sf_blocks_scan *sc, const double *equity, sf_blocks *out);

/* Per-bar Sharpe of the union of the blocks whose bits are set in mask
 * (block k = bit k), summed in block order: NaN with fewer than 2 returns,
 * 0 with zero deviation. */
double sf_blocks_sharpe(const sf_blocks *b, uint32_t mask);

/* Pack into out (cap bytes, SF_OVERFIT_PACKED_MAX is enough): a version
 * byte, S, then little-endian counts and IEEE doubles. Returns the bytes
 * written, 0 when b has no blocks or cap is too small. */
size_t sf_blocks_pack(const sf_blocks *b, uint8_t *out, size_t cap);

/* Unpack what sf_blocks_pack wrote: SF_ERR_PARSE when len or the version
 * does not match. */
sf_status sf_blocks_unpack(const uint8_t *p, size_t len, sf_blocks *out, sf_err *err);

/* The members of one sweep, each with its combination index. */
typedef struct sf_overfit_set sf_overfit_set;

sf_status sf_overfit_set_new(int s, sf_overfit_set **out, sf_err *err);
/* Append a member; SF_ERR_INVALID when its S differs from the set's. */
sf_status sf_overfit_set_add(sf_overfit_set *set, int64_t index, const sf_blocks *b, sf_err *err);
/* Make the set hold exactly n members, the new ones empty (no returns), so
 * that threads may fill distinct slots at once with sf_overfit_set_put. */
sf_status sf_overfit_set_resize(sf_overfit_set *set, size_t n, sf_err *err);
/* Fill slot i (< the count); SF_ERR_INVALID as sf_overfit_set_add. */
sf_status sf_overfit_set_put(sf_overfit_set *set, size_t i, int64_t index, const sf_blocks *b, sf_err *err);
size_t sf_overfit_set_count(const sf_overfit_set *set);
void sf_overfit_set_free(sf_overfit_set *set);

typedef struct sf_overfit_opts {
    double effective_trials; /* 0 = the number of members */
    uint64_t work;           /* member-split evaluations a pass; 0 = SF_OVERFIT_WORK_DEFAULT */
} sf_overfit_opts;

typedef struct sf_overfit {
    int ok;                           /* 0: not enough data, reason says why */
    char reason[SF_OVERFIT_TEXT_MAX]; /* "" when ok */
    int blocks;
    size_t members;
    double trials;         /* the N of SR0 */
    uint64_t splits;       /* evaluated */
    uint64_t splits_total; /* C(S, S/2) */
    int sampled;
    double pbo, pbo_margin; /* margin: 95% bound of the sampling error; 0 when exhaustive */
    double logit_q[5];      /* 5th, 25th, 50th, 75th, 95th percentiles */
    uint64_t logit_hist[SF_OVERFIT_HIST_BINS];
    double oos_sharpe_mean;   /* the in-sample winners' out-of-sample Sharpe (per bar) */
    double degradation_slope; /* OLS slope of out- on in-sample Sharpe; NaN if undefined */
    double prob_loss;         /* share of splits whose winner's out-of-sample Sharpe < 0 */
    int64_t best_index;       /* the member with the best Sharpe (its combination index) */
    size_t returns;           /* its T */
    double best_sharpe, skewness, kurtosis, sharpe_variance, sr0;
    double dsr;                           /* NaN when undefined: dsr_reason says why */
    char dsr_reason[SF_OVERFIT_TEXT_MAX]; /* "" when dsr is defined */
    char verdict[SF_OVERFIT_TEXT_MAX];
} sf_overfit;

/*
 * PBO, DSR and the verdict of the set's members (opts may be NULL). Not
 * enough data is a result, not an error: out->ok = 0 with the reason (one
 * member, fewer than 2 returns a block, fewer than two members whose
 * returns vary) and the verdict "not enough data: <reason>". Errors:
 * SF_ERR_NOMEM. Verdict: "likely overfit" when PBO >= 0.5 or DSR < 0.5, "no
 * sign of overfitting" when PBO <= 0.1 and DSR >= 0.95, else "possibly
 * overfit", each followed by ": PBO x.xx, DSR y.yy".
 */
sf_status sf_overfit_compute(const sf_overfit_set *set, const sf_overfit_opts *opts, sf_overfit *out, sf_err *err);

/* Append the report as a JSON object: {"blocks", "members",
 * "effective_trials", "splits", "splits_total", "sampled", "pbo",
 * "pbo_margin", "logit": {"p05", "p25", "median", "p75", "p95",
 * "histogram": {"edges", "counts"}}, "oos_sharpe_mean", "degradation_slope",
 * "prob_loss", "best": {"index", "sharpe", "returns", "skewness",
 * "kurtosis"}, "sharpe_variance", "sr0", "dsr", "dsr_reason", "reason",
 * "verdict"}; every undefined number is null, never NaN. */
sf_status sf_overfit_to_json(const sf_overfit *o, sf_buf *out, sf_err *err);

/* The standard normal CDF (from erfc) and its inverse (Acklam's rational
 * approximation with one Halley step: full double precision); the inverse
 * is -Inf at 0, +Inf at 1, NaN outside [0, 1]. */
double sf_norm_cdf(double x);
double sf_norm_ppf(double p);

#endif

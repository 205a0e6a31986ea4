/*
 * indicator: technical indicators over an sf_bars series, with TA-Lib's values
 * and warm-up.
 *
 * Each indicator type is described by a row of a table (name, parameters with
 * defaults and bounds, output names), so the logic parser validates specs and
 * the CLI lists types from the same data. sf_ind_compute fills one array of
 * bars->n doubles per output, NaN before the first defined bar (the lookback),
 * in O(n) whatever the period (cci over a period above 128: O(n log n)).
 *
 * Thread safety: everything is pure; the table is const.
 * Ownership: the caller allocates the output arrays.
 */
#ifndef SF_INDICATOR_H
#define SF_INDICATOR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sf/bars.h"
#include "sf/err.h"

typedef enum sf_ind_type {
    SF_IND_SMA,
    SF_IND_EMA,
    SF_IND_WMA,
    SF_IND_RSI,
    SF_IND_MACD,
    SF_IND_BBANDS,
    SF_IND_ATR,
    SF_IND_ADX,
    SF_IND_CCI,
    SF_IND_STOCH,
    SF_IND_ROC,
    SF_IND_HIGHEST,
    SF_IND_LOWEST,
    SF_IND_OBV,
    SF_IND_DEMA,
    SF_IND_TEMA,
    SF_IND_WILLR,
    SF_IND_MFI,
    SF_IND_PSAR,
    SF_IND__COUNT
} sf_ind_type;

typedef enum sf_field {
    SF_FIELD_OPEN,
    SF_FIELD_HIGH,
    SF_FIELD_LOW,
    SF_FIELD_CLOSE,
    SF_FIELD_VOLUME,
    SF_FIELD__COUNT
} sf_field;

#define SF_IND_MAX_OUTPUTS 3
#define SF_IND_MAX_PARAMS 4
/* Upper bound of every period-like parameter (TA-Lib's). */
#define SF_IND_PERIOD_MAX 100000

/* Parameter slots of a spec; which ones a type uses is in its info row. */
typedef enum sf_ind_param_id {
    SF_IP_PERIOD,
    SF_IP_FAST,
    SF_IP_SLOW,
    SF_IP_SIGNAL,
    SF_IP_K,
    SF_IP_K_SMOOTH,
    SF_IP_D,
    SF_IP_STDDEV,
    SF_IP_ACCEL,
    SF_IP_MAX_ACCEL,
    SF_IP__COUNT
} sf_ind_param_id;

typedef struct sf_ind_spec {
    sf_ind_type type;
    sf_field source;            /* only for types with has_source */
    double param[SF_IP__COUNT]; /* integers are stored as whole doubles */
} sf_ind_spec;

typedef struct sf_ind_param_info {
    const char *name; /* JSON key: "period", "fast", "stddev", ... */
    sf_ind_param_id id;
    int is_int;      /* must be a whole number */
    double def;      /* default when the key is absent; NaN = required */
    double min, max; /* inclusive bounds */
} sf_ind_param_info;

typedef struct sf_ind_info {
    const char *name; /* "sma" */
    int has_source;   /* takes "source" */
    sf_field default_source;
    int n_params;
    sf_ind_param_info params[SF_IND_MAX_PARAMS];
    int n_outputs;
    const char *outputs[SF_IND_MAX_OUTPUTS]; /* {"value"} or {"macd","signal","hist"} */
} sf_ind_info;

/* NULL when type is out of range. */
const sf_ind_info *sf_ind_info_get(sf_ind_type type);
/* NULL when the name is unknown. */
const sf_ind_info *sf_ind_info_find(const char *name, sf_ind_type *type);
/* "open" ... "volume"; -1 when unknown. */
int sf_field_find(const char *name);
/* NULL when f is out of range. */
const char *sf_field_name(sf_field f);
/* A spec with every parameter at its default. */
void sf_ind_spec_default(sf_ind_type type, sf_ind_spec *spec);

/* Index of the first defined value of output 0 (TA-Lib's lookback); every
 * output of a type starts at the same bar. SIZE_MAX for an invalid spec. */
size_t sf_ind_lookback(const sf_ind_spec *spec);

/* Check one value v of parameter p: NaN means absent ("is required"), then
 * integrality and the bounds. On failure fills err with "<path>: must be an
 * integer >= 1" (path names the parameter, e.g. "indicators.fast.period")
 * and returns SF_ERR_INVALID. */
sf_status sf_ind_param_check(const sf_ind_param_info *p, double v, const char *path, sf_err *err);

/* Check a whole spec: its type, its source (if it takes one) and each of its
 * parameters. Messages name "<prefix>.<param>"; a NULL prefix uses the type
 * name ("sma.period: is required"). */
sf_status sf_ind_spec_validate(const sf_ind_spec *spec, const char *prefix, sf_err *err);

/* Make equal specs equal byte for byte (for cache keys): parameters the type
 * does not use become 0, -0.0 becomes 0.0, and a type without a source gets
 * its default source. */
void sf_ind_spec_normalize(sf_ind_spec *spec);

/* Most scratch bytes one sf_ind_compute of spec over n bars allocates
 * (freed before it returns); 0 for an invalid spec. */
size_t sf_ind_scratch_bytes(const sf_ind_spec *spec, size_t n);

/* Compute every output into outs[0 .. n_outputs-1], each bars->n doubles.
 * Fails only on an invalid spec (SF_ERR_INVALID) or out of memory. */
sf_status sf_ind_compute(const sf_ind_spec *spec, const sf_bars *bars, double *const *outs, sf_err *err);

/* When a computation gives up: cancel raised (non-zero), or the monotonic
 * clock (sf_time_mono_ms) at or past deadline_ms (0 = no deadline). */
typedef struct sf_ind_stop {
    const atomic_int *cancel; /* may be NULL */
    int64_t deadline_ms;
} sf_ind_stop;

/* Units of work (a bar of a loop; a bar of cci's window is its period)
 * between two reads of a stop: some 64K, well under a millisecond. */
#define SF_IND_STOP_WORK 65536

/* SF_OK, or SF_ERR_CANCELLED ("cancelled") / SF_ERR_TIMEOUT ("deadline
 * passed") as stop says; SF_OK for a NULL stop. */
sf_status sf_ind_stop_check(const sf_ind_stop *stop, sf_err *err);

/* sf_ind_compute that reads stop (may be NULL) before it starts and every
 * SF_IND_STOP_WORK units of work of a window longer than one bar (cci), and
 * fails as sf_ind_stop_check says; the outputs are then partly written. */
sf_status sf_ind_compute_stop(const sf_ind_spec *spec, const sf_bars *bars, double *const *outs,
                              const sf_ind_stop *stop, sf_err *err);

#endif

/*
 * logic: the trading-logic JSON (README, "Logic format"), parsed and validated into an
 * immutable compiled program that the engine runs.
 *
 * Validation collects errors (up to SF_LOGIC_MAX_ERRORS), each naming the JSON
 * path and the rule: "indicators.fast.period: must be an integer >= 1".
 * Unknown keys are rejected, not ignored. Depth, node count and indicator
 * count are bounded.
 *
 * Thread safety: a compiled sf_logic is immutable; share it freely.
 * Ownership: sf_logic_parse returns a new object freed by sf_logic_free
 * (accepts NULL). sf_logic_errors is caller storage. The compiled program
 * keeps no pointer into the text. (The engine's private logic_json.h compiles
 * an already parsed jansson tree; jansson stays out of this header.)
 */
#ifndef SF_LOGIC_H
#define SF_LOGIC_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"
#include "sf/indicator.h"

#define SF_LOGIC_MAX_ERRORS 32
#define SF_LOGIC_ERROR_MAX 256
#define SF_LOGIC_MAX_INDICATORS 64
#define SF_LOGIC_MAX_NODES 1024 /* condition nodes, both trees together */
#define SF_LOGIC_MAX_DEPTH 32   /* nesting of conditions */
#define SF_LOGIC_MAX_OFFSET 10000
#define SF_LOGIC_NAME_MAX 64
#define SF_LOGIC_MAX_INPUT ((size_t)1 << 20) /* bytes of logic JSON text */

typedef struct sf_logic_errors {
    int count;                                             /* errors stored */
    int dropped;                                           /* errors past SF_LOGIC_MAX_ERRORS, not stored */
    char path[SF_LOGIC_MAX_ERRORS][SF_LOGIC_ERROR_MAX];    /* "indicators.fast.period" */
    char message[SF_LOGIC_MAX_ERRORS][SF_LOGIC_ERROR_MAX]; /* "must be an integer >= 1" */
} sf_logic_errors;

typedef enum sf_operand_kind {
    SF_OPD_NUMBER, /* a constant */
    SF_OPD_FIELD,  /* open/high/low/close/volume of the bar */
    SF_OPD_OUTPUT, /* an indicator output */
} sf_operand_kind;

typedef struct sf_operand {
    sf_operand_kind kind;
    double number;  /* SF_OPD_NUMBER */
    sf_field field; /* SF_OPD_FIELD */
    int indicator;  /* SF_OPD_OUTPUT: index into sf_logic.indicators */
    int output;     /* SF_OPD_OUTPUT: output index of that indicator */
    int offset;     /* bars back (ref/offset); 0 = this bar */
} sf_operand;

typedef enum sf_cond_op {
    SF_COND_ALL,
    SF_COND_ANY,
    SF_COND_NOT,
    SF_COND_GT,
    SF_COND_GTE,
    SF_COND_LT,
    SF_COND_LTE,
    SF_COND_CROSSES_ABOVE,
    SF_COND_CROSSES_BELOW,
} sf_cond_op;

/* Conditions are a flat array; children of all/any/not are listed in
 * sf_logic.children[first_child .. first_child + n_children). */
typedef struct sf_cond {
    sf_cond_op op;
    int first_child;
    int n_children;
    sf_operand a, b; /* comparisons and crosses */
} sf_cond;

typedef struct sf_logic_indicator {
    char name[SF_LOGIC_NAME_MAX]; /* key in "indicators" */
    sf_ind_spec spec;
} sf_logic_indicator;

typedef enum sf_fill { SF_FILL_NEXT_OPEN, SF_FILL_CLOSE } sf_fill;

typedef struct sf_logic {
    char name[SF_LOGIC_NAME_MAX];
    int side; /* +1 long, -1 short */
    int n_indicators;
    sf_logic_indicator *indicators;
    int n_conds;
    sf_cond *conds;
    int *children;          /* child node indices, see sf_cond */
    int entry;              /* root node of "entry" */
    int exit;               /* root node of "exit"; -1 when absent (exit by stops/end only) */
    double stop_loss_pct;   /* NaN when not set */
    double take_profit_pct; /* NaN when not set */
    sf_fill fill;
    double fee_bps;
    double slippage_bps;
    double initial_capital;
    double position_pct;     /* 0 < pct <= 100 */
    double periods_per_year; /* 252 unless the logic says otherwise */
    int max_offset;          /* largest ref offset used */
} sf_logic;

/*
 * Parse and validate logic JSON text of len bytes. On SF_OK *out is a new
 * program. On SF_ERR_INVALID / SF_ERR_PARSE / SF_ERR_LIMIT, errs (if not NULL)
 * holds every problem found and err a one-line summary (the first one).
 */
sf_status sf_logic_parse(const char *json, size_t len, sf_logic **out, sf_logic_errors *errs, sf_err *err);

void sf_logic_free(sf_logic *logic);

/* One "path: message" line per error, joined by "\n", into buf. */
void sf_logic_errors_format(const sf_logic_errors *errs, char *buf, size_t size);

#endif

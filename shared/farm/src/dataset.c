/*
 * dataset: data sets in PostgreSQL; see sf/dataset.h.
 *
 * DESIGN. Both directions use binary COPY: no number is ever printed or
 * parsed as text, so bars round-trip bit for bit, and a million bars load in
 * a fraction of a second. COPY takes no bind parameters, so the load passes
 * symbol and timeframe as transaction-local settings (set_config(..., true)
 * with bind parameters, read back with current_setting()): values still never
 * become SQL text. Timestamps travel as PostgreSQL's binary timestamptz:
 * microseconds since 2000-01-01 UTC.
 */
#include "sf/dataset.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_EPOCH_UNIX INT64_C(946684800) /* 2000-01-01T00:00:00Z */
#define US_PER_S INT64_C(1000000)
#define TS_MIN INT64_C(-62135596800) /* 0001-01-01T00:00:00Z */
#define TS_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define COPY_CHUNK ((size_t)1 << 20)
#define LOAD_FIELDS 6
#define LOAD_ROW_BYTES (2 + LOAD_FIELDS * (4 + 8))

static const char COPY_SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};

/* ---- names -------------------------------------------------------------- */

static int symbol_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == ':' || c == '/' || c == '-';
}

sf_status sf_dataset_validate_symbol(const char *symbol, sf_err *err)
{
    if (symbol == NULL || symbol[0] == '\0')
        return sf_err_set(err, SF_ERR_INVALID, "symbol: must not be empty");
    size_t len = strnlen(symbol, SF_DATASET_SYMBOL_MAX + 1);
    if (len > SF_DATASET_SYMBOL_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "symbol: longer than %d characters", SF_DATASET_SYMBOL_MAX);
    for (size_t i = 0; i < len; i++)
        if (!symbol_char(symbol[i]))
            return sf_err_set(err, SF_ERR_INVALID, "symbol: character %zu is not one of A-Z a-z 0-9 . _ : / -", i + 1);
    return SF_OK;
}

sf_status sf_dataset_validate_timeframe(const char *timeframe, sf_err *err)
{
    if (timeframe == NULL || timeframe[0] == '\0')
        return sf_err_set(err, SF_ERR_INVALID, "timeframe: must not be empty");
    size_t len = strnlen(timeframe, SF_DATASET_TIMEFRAME_MAX + 1);
    if (len > SF_DATASET_TIMEFRAME_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "timeframe: longer than %d characters", SF_DATASET_TIMEFRAME_MAX);
    if (timeframe[0] < '0' || timeframe[0] > '9')
        return sf_err_set(err, SF_ERR_INVALID, "timeframe: must start with a digit (\"1d\", \"5m\")");
    for (size_t i = 0; i < len; i++) {
        char c = timeframe[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return sf_err_set(err, SF_ERR_INVALID, "timeframe: character %zu is not one of a-z 0-9", i + 1);
    }
    return SF_OK;
}

static sf_status validate_names(const char *symbol, const char *timeframe, sf_err *err)
{
    sf_status st = sf_dataset_validate_symbol(symbol, err);
    return st != SF_OK ? st : sf_dataset_validate_timeframe(timeframe, err);
}

/* ---- small helpers ------------------------------------------------------ */

static int parse_i64(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return 0;
    *out = (int64_t)v;
    return 1;
}

static void put_be16(unsigned char *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, 2);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, 4);
}

static void put_be64(unsigned char *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static uint32_t get_be32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}

static uint16_t get_be16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return be16toh(v);
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* Fill info from a row: symbol, timeframe, version, bars, first, last, updated. */
static sf_status info_from_row(const sf_db_res *res, int row, sf_dataset_info *info, sf_err *err)
{
    memset(info, 0, sizeof *info);
    snprintf(info->symbol, sizeof info->symbol, "%s", sf_db_get(res, row, 0));
    snprintf(info->timeframe, sizeof info->timeframe, "%s", sf_db_get(res, row, 1));
    int64_t *dst[] = {&info->version, &info->bars, &info->first_ts, &info->last_ts, &info->updated_at};
    for (int c = 0; c < 5; c++) {
        const char *v = sf_db_get(res, row, c + 2);
        if (v != NULL && !parse_i64(v, dst[c]))
            return sf_err_set(err, SF_ERR_INTERNAL, "unexpected value in datasets row: \"%s\"", v);
    }
    return SF_OK;
}

#define INFO_COLUMNS                                                                                                   \
    "symbol, timeframe, version, bars, extract(epoch FROM first_ts)::bigint, "                                         \
    "extract(epoch FROM last_ts)::bigint, extract(epoch FROM updated_at)::bigint"

/* ---- import ------------------------------------------------------------- */

static sf_status check_import_bars(const sf_bars *bars, sf_err *err)
{
    if (bars == NULL || bars->n == 0)
        return sf_err_set(err, SF_ERR_INVALID, "no bars to import");
    if (bars->n > (size_t)INT32_MAX)
        return sf_err_set(err, SF_ERR_LIMIT, "too many bars: %zu (most %d)", bars->n, INT32_MAX);
    sf_status st = sf_bars_validate(bars, err);
    if (st != SF_OK)
        return st;
    if (bars->ts[0] < TS_MIN || bars->ts[bars->n - 1] > TS_MAX)
        return sf_err_set(err, SF_ERR_INVALID, "bar timestamps must lie in years 1 to 9999");
    return SF_OK;
}

static size_t put_text_field(unsigned char *p, const char *s, size_t len)
{
    put_be32(p, (uint32_t)len);
    memcpy(p + 4, s, len);
    return 4 + len;
}

/* One binary COPY tuple for bar i; returns its size. */
static size_t encode_row(unsigned char *p, const char *sym, size_t slen, const char *tf, size_t tlen, const sf_bars *b,
                         size_t i)
{
    size_t o = 0;
    put_be16(p, 8);
    o += 2;
    o += put_text_field(p + o, sym, slen);
    o += put_text_field(p + o, tf, tlen);
    put_be32(p + o, 8);
    put_be64(p + o + 4, (uint64_t)((b->ts[i] - PG_EPOCH_UNIX) * US_PER_S));
    o += 12;
    const double *cols[] = {b->open, b->high, b->low, b->close, b->volume};
    for (int c = 0; c < 5; c++) {
        put_be32(p + o, 8);
        put_be64(p + o + 4, double_bits(cols[c][i]));
        o += 12;
    }
    return o;
}

/* Stream the bars through COPY in chunks of about COPY_CHUNK bytes. */
static sf_status copy_bars_in(sf_db *db, const char *sym, const char *tf, const sf_bars *b, sf_err *err)
{
    size_t slen = strlen(sym), tlen = strlen(tf), row_max = 2 + 4 + slen + 4 + tlen + 6 * 12;
    unsigned char *buf = malloc(COPY_CHUNK + row_max + 32);
    if (buf == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    sf_status st = sf_db_copy_start(db,
                                    "COPY bars (symbol, timeframe, ts, open, high, low, close, "
                                    "volume) FROM STDIN (FORMAT binary)",
                                    err);
    if (st != SF_OK) {
        free(buf);
        return st;
    }
    size_t used = sizeof COPY_SIGNATURE + 8;
    memcpy(buf, COPY_SIGNATURE, sizeof COPY_SIGNATURE);
    memset(buf + sizeof COPY_SIGNATURE, 0, 8);
    for (size_t i = 0; i < b->n && st == SF_OK; i++) {
        used += encode_row(buf + used, sym, slen, tf, tlen, b, i);
        if (used >= COPY_CHUNK) {
            st = sf_db_copy_put(db, (const char *)buf, used, err);
            used = 0;
        }
    }
    if (st == SF_OK) {
        put_be16(buf + used, 0xFFFF);
        st = sf_db_copy_put(db, (const char *)buf, used + 2, err);
    }
    free(buf);
    if (st != SF_OK) {
        sf_err keep = err ? *err : (sf_err){0};
        sf_db_copy_end(db, "import aborted", NULL);
        if (err)
            *err = keep;
        return st;
    }
    return sf_db_copy_end(db, NULL, err);
}

static sf_status upsert_dataset(sf_db *db, const char *sym, const char *tf, const sf_bars *b, sf_dataset_info *info,
                                sf_err *err)
{
    char n[24], first[24], last[24];
    snprintf(n, sizeof n, "%zu", b->n);
    snprintf(first, sizeof first, "%" PRId64, b->ts[0]);
    snprintf(last, sizeof last, "%" PRId64, b->ts[b->n - 1]);
    const char *params[] = {sym, tf, n, first, last};
    sf_db_res *res = NULL;
    sf_status st =
        sf_db_query(db,
                    "INSERT INTO datasets AS d (symbol, timeframe, version, bars, first_ts, last_ts, updated_at) "
                    "VALUES ($1, $2, 1, $3::integer, to_timestamp($4::bigint), to_timestamp($5::bigint), now()) "
                    "ON CONFLICT (symbol, timeframe) DO UPDATE SET version = d.version + 1, "
                    "bars = EXCLUDED.bars, first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts, "
                    "updated_at = now() RETURNING " INFO_COLUMNS,
                    5, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) != 1)
        st = sf_err_set(err, SF_ERR_INTERNAL, "upsert of datasets returned no row");
    sf_dataset_info tmp;
    if (st == SF_OK)
        st = info_from_row(res, 0, info ? info : &tmp, err);
    sf_db_res_free(res);
    return st;
}

sf_status sf_dataset_import(sf_db *db, const char *symbol, const char *timeframe, const sf_bars *bars,
                            sf_dataset_info *info, sf_err *err)
{
    sf_status st = validate_names(symbol, timeframe, err);
    if (st == SF_OK)
        st = check_import_bars(bars, err);
    if (st != SF_OK)
        return st;
    if ((st = sf_db_begin(db, err)) != SF_OK)
        return st;
    const char *params[] = {symbol, timeframe};
    st = upsert_dataset(db, symbol, timeframe, bars, info, err);
    if (st == SF_OK)
        st = sf_db_query(db, "DELETE FROM bars WHERE symbol = $1 AND timeframe = $2", 2, params, NULL, err);
    if (st == SF_OK)
        st = copy_bars_in(db, symbol, timeframe, bars, err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK) {
        sf_db_rollback(db);
        sf_err_prefix(err, "could not import %s %s", symbol, timeframe);
    }
    return st;
}

/* ---- reading ------------------------------------------------------------ */

sf_status sf_dataset_get(sf_db *db, const char *symbol, const char *timeframe, sf_dataset_info *info, sf_err *err)
{
    sf_status st = validate_names(symbol, timeframe, err);
    if (st != SF_OK)
        return st;
    const char *params[] = {symbol, timeframe};
    sf_db_res *res = NULL;
    st = sf_db_query(db, "SELECT " INFO_COLUMNS " FROM datasets WHERE symbol = $1 AND timeframe = $2", 2, params, &res,
                     err);
    if (st == SF_OK && sf_db_nrows(res) == 0)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "no data set %s %s", symbol, timeframe);
    if (st == SF_OK)
        st = info_from_row(res, 0, info, err);
    sf_db_res_free(res);
    return st;
}

sf_status sf_dataset_version(sf_db *db, const char *symbol, const char *timeframe, int64_t *version, sf_err *err)
{
    sf_status st = validate_names(symbol, timeframe, err);
    if (st != SF_OK)
        return st;
    const char *params[] = {symbol, timeframe};
    sf_db_res *res = NULL;
    st = sf_db_query_prepared(db, "SELECT version FROM datasets WHERE symbol = $1 AND timeframe = $2", 2, params, &res,
                              err);
    if (st == SF_OK && sf_db_nrows(res) == 0)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "no data set %s %s", symbol, timeframe);
    if (st == SF_OK && !parse_i64(sf_db_get(res, 0, 0), version))
        st = sf_err_set(err, SF_ERR_INTERNAL, "unexpected datasets.version");
    sf_db_res_free(res);
    return st;
}

static int64_t clamp_ts(int64_t t)
{
    return t < TS_MIN ? TS_MIN : t > TS_MAX ? TS_MAX : t;
}

sf_status sf_dataset_has_bars(sf_db *db, const char *symbol, const char *timeframe, int64_t from, int64_t to, int *has,
                              sf_err *err)
{
    *has = 0;
    sf_status st = validate_names(symbol, timeframe, err);
    if (st != SF_OK)
        return st;
    char from_s[24], to_s[24];
    snprintf(from_s, sizeof from_s, "%" PRId64, clamp_ts(from));
    snprintf(to_s, sizeof to_s, "%" PRId64, clamp_ts(to));
    const char *params[] = {symbol, timeframe, from_s, to_s};
    sf_db_res *res = NULL;
    /* one probe of the primary key (symbol, timeframe, ts) */
    st = sf_db_query_prepared(db,
                              "SELECT EXISTS (SELECT 1 FROM bars WHERE symbol = $1 AND timeframe = $2 "
                              "AND ts >= to_timestamp($3::bigint) AND ts <= to_timestamp($4::bigint))",
                              4, params, &res, err);
    if (st == SF_OK)
        *has = strcmp(sf_db_get(res, 0, 0), "t") == 0;
    sf_db_res_free(res);
    return st;
}

sf_status sf_dataset_list(sf_db *db, sf_dataset_info *out, size_t max, size_t *n, int *more, sf_err *err)
{
    *n = 0;
    if (more)
        *more = 0;
    if (max > SF_DATASET_LIST_MAX)
        max = SF_DATASET_LIST_MAX;
    char limit[24];
    snprintf(limit, sizeof limit, "%zu", max + 1);
    const char *params[] = {limit};
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db,
                               "SELECT " INFO_COLUMNS " FROM datasets "
                               "ORDER BY symbol, timeframe LIMIT $1::bigint",
                               1, params, &res, err);
    if (st != SF_OK)
        return st;
    size_t rows = (size_t)sf_db_nrows(res);
    if (more)
        *more = rows > max;
    for (size_t i = 0; i < rows && i < max && st == SF_OK; i++) {
        st = info_from_row(res, (int)i, &out[i], err);
        *n = i + 1;
    }
    sf_db_res_free(res);
    return st;
}

/* ---- load --------------------------------------------------------------- */

typedef struct load_state {
    sf_bars *bars; /* allocated for cap rows */
    size_t cap;
    size_t n;   /* rows stored */
    int header; /* 1 once the file header was consumed */
    int done;   /* 1 after the trailer */
} load_state;

static sf_status load_header(load_state *ls, const unsigned char **p, const unsigned char *end, sf_err *err)
{
    size_t avail = (size_t)(end - *p);
    if (avail < sizeof COPY_SIGNATURE + 8 || memcmp(*p, COPY_SIGNATURE, sizeof COPY_SIGNATURE) != 0)
        return sf_err_set(err, SF_ERR_INTERNAL, "unexpected binary copy header");
    uint32_t ext = get_be32(*p + sizeof COPY_SIGNATURE + 4);
    if (ext > avail - sizeof COPY_SIGNATURE - 8)
        return sf_err_set(err, SF_ERR_INTERNAL, "unexpected binary copy header extension");
    *p += sizeof COPY_SIGNATURE + 8 + ext;
    ls->header = 1;
    return SF_OK;
}

/* Store one tuple (ts, open, high, low, close, volume) at *p. */
static sf_status load_row(load_state *ls, const unsigned char *p, sf_err *err)
{
    if (ls->n >= ls->cap)
        return sf_err_set(err, SF_ERR_CONFLICT, "data set holds more bars than datasets.bars says");
    for (int f = 0; f < LOAD_FIELDS; f++)
        if (get_be32(p + 2 + f * 12) != 8)
            return sf_err_set(err, SF_ERR_INTERNAL, "unexpected NULL or width in bars row");
    sf_bars *b = ls->bars;
    size_t i = ls->n++;
    int64_t us = (int64_t)get_be64(p + 6);
    int64_t s = us / US_PER_S - (us % US_PER_S < 0);
    b->ts[i] = s + PG_EPOCH_UNIX;
    double *cols[] = {b->open, b->high, b->low, b->close, b->volume};
    for (int c = 0; c < 5; c++) {
        uint64_t u = get_be64(p + 6 + (size_t)(c + 1) * 12);
        memcpy(&cols[c][i], &u, 8);
    }
    return SF_OK;
}

static sf_status load_chunk(const char *data, size_t len, void *ctx, sf_err *err)
{
    load_state *ls = ctx;
    const unsigned char *p = (const unsigned char *)data, *end = p + len;
    sf_status st = SF_OK;
    if (!ls->header && (st = load_header(ls, &p, end, err)) != SF_OK)
        return st;
    while (p < end && st == SF_OK) {
        if (ls->done || end - p < 2)
            return sf_err_set(err, SF_ERR_INTERNAL, "unexpected data in binary copy");
        int16_t nf = (int16_t)get_be16(p);
        if (nf == -1) {
            ls->done = 1;
            p += 2;
            continue;
        }
        if (nf != LOAD_FIELDS || end - p < LOAD_ROW_BYTES)
            return sf_err_set(err, SF_ERR_INTERNAL, "unexpected row in binary copy");
        st = load_row(ls, p, err);
        p += LOAD_ROW_BYTES;
    }
    return st;
}

/* In the open snapshot: the version and bar count, and remember the names
 * for the COPY. */
static sf_status load_prepare(sf_db *db, const char *symbol, const char *timeframe, int64_t *version, int64_t *count,
                              sf_err *err)
{
    const char *params[] = {symbol, timeframe};
    sf_db_res *res = NULL;
    sf_status st =
        sf_db_query(db,
                    "SELECT version, bars, set_config('sf.ds_symbol', $1, true), "
                    "set_config('sf.ds_timeframe', $2, true) FROM datasets WHERE symbol = $1 AND timeframe = $2",
                    2, params, &res, err);
    if (st == SF_OK && sf_db_nrows(res) == 0)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "no data set %s %s", symbol, timeframe);
    if (st == SF_OK &&
        (!parse_i64(sf_db_get(res, 0, 0), version) || !parse_i64(sf_db_get(res, 0, 1), count) || *count < 0))
        st = sf_err_set(err, SF_ERR_INTERNAL, "unexpected datasets row");
    sf_db_res_free(res);
    return st;
}

static sf_status load_in_snapshot(sf_db *db, const char *symbol, const char *timeframe, size_t max_bars, sf_bars **out,
                                  int64_t *version, sf_err *err)
{
    int64_t count = 0;
    sf_status st = load_prepare(db, symbol, timeframe, version, &count, err);
    if (st != SF_OK)
        return st;
    if ((uint64_t)count > max_bars)
        return sf_err_set(err, SF_ERR_LIMIT, "data set %s %s has %" PRId64 " bars (most %zu)", symbol, timeframe, count,
                          max_bars);
    load_state ls = {0};
    ls.cap = (size_t)count;
    if ((st = sf_bars_new(ls.cap, &ls.bars, err)) != SF_OK)
        return st;
    st = sf_db_copy_out(db,
                        "COPY (SELECT ts, open, high, low, close, volume FROM bars "
                        "WHERE symbol = current_setting('sf.ds_symbol') "
                        "AND timeframe = current_setting('sf.ds_timeframe') ORDER BY ts) "
                        "TO STDOUT (FORMAT binary)",
                        load_chunk, &ls, err);
    if (st == SF_OK && (ls.n != ls.cap || !ls.done))
        st = sf_err_set(err, SF_ERR_CONFLICT, "data set holds %zu bars, datasets.bars says %zu", ls.n, ls.cap);
    if (st != SF_OK) {
        sf_bars_free(ls.bars);
        return st;
    }
    *out = ls.bars;
    return SF_OK;
}

sf_status sf_dataset_load(sf_db *db, const char *symbol, const char *timeframe, size_t max_bars, sf_bars **out,
                          int64_t *version, sf_err *err)
{
    *out = NULL;
    sf_status st = validate_names(symbol, timeframe, err);
    if (st != SF_OK)
        return st;
    int64_t ver = 0;
    /* The primary key (symbol, timeframe, ts) already yields the bars in
     * order; without fresh statistics the planner may pick a bitmap scan
     * plus an external sort instead, which is several times slower. */
    st = sf_db_exec(db,
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                    "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "
                    "SET LOCAL enable_sort = off",
                    err);
    if (st != SF_OK)
        return st;
    st = load_in_snapshot(db, symbol, timeframe, max_bars ? max_bars : SF_BARS_MAX_DEFAULT, out, &ver, err);
    if (st == SF_OK)
        st = sf_db_commit(db, err);
    if (st != SF_OK) {
        sf_db_rollback(db);
        sf_bars_free(*out);
        *out = NULL;
        return st;
    }
    if (version)
        *version = ver;
    return SF_OK;
}

/* ---- slicing ------------------------------------------------------------ */

/* First index whose ts is >= t (upper = 0) or > t (upper = 1). */
static size_t search_ts(const int64_t *ts, size_t n, int64_t t, int upper)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ts[mid] < t || (upper && ts[mid] == t))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void sf_dataset_slice(const sf_bars *all, int64_t from, int64_t to, sf_bars *view)
{
    if (all->n == 0) {
        *view = *all;
        return;
    }
    size_t b = search_ts(all->ts, all->n, from, 0);
    size_t e = search_ts(all->ts, all->n, to, 1);
    if (e < b)
        e = b;
    view->n = e - b;
    view->ts = all->ts + b;
    view->open = all->open + b;
    view->high = all->high + b;
    view->low = all->low + b;
    view->close = all->close + b;
    view->volume = all->volume + b;
}

/* batchfit: a sweep's overfitting report from its stored members; see
 * sf/batchfit.h. */
#include "sf/batchfit.h"

#include <stdlib.h>
#include <string.h>

#include "sf/overfit.h"

static const char BATCH_SQL[] = "SELECT overfit::text, blocks, coalesce(effective_trials, 0) FROM batches "
                                "WHERE id = $1::uuid";

static const char MEMBERS_SQL[] = "SELECT j.combo_index, encode(r.blocks, 'hex') FROM jobs j "
                                  "JOIN results r ON r.job_id = j.id "
                                  "WHERE j.batch_id = $1::uuid AND j.status = 'succeeded' AND r.blocks IS NOT NULL "
                                  "ORDER BY j.combo_index";

static int hex_val(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One member's hex text into b. */
static sf_status member_blocks(const char *hex, sf_blocks *b, sf_err *err)
{
    uint8_t raw[SF_OVERFIT_PACKED_MAX];
    size_t len = strlen(hex);
    if (len % 2 != 0 || len / 2 > sizeof raw)
        return sf_err_set(err, SF_ERR_PARSE, "could not read block statistics: %zu hex digits", len);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return sf_err_set(err, SF_ERR_PARSE, "could not read block statistics: not hex");
        raw[i] = (uint8_t)(hi << 4 | lo);
    }
    return sf_blocks_unpack(raw, len / 2, b, err);
}

/* The members' statistics in combination order. */
static sf_status load_set(sf_db *db, const char *batch_id, int s, sf_overfit_set **out, sf_err *err)
{
    sf_status st = sf_overfit_set_new(s, out, err);
    sf_db_res *res = NULL;
    if (st == SF_OK)
        st = sf_db_query(db, MEMBERS_SQL, 1, &batch_id, &res, err);
    for (int r = 0; st == SF_OK && r < sf_db_nrows(res); r++) {
        sf_blocks b;
        st = member_blocks(sf_db_get(res, r, 1), &b, err);
        if (st == SF_OK)
            st = sf_overfit_set_add(*out, strtoll(sf_db_get(res, r, 0), NULL, 10), &b, err);
    }
    sf_db_res_free(res);
    return st;
}

/* Compute the report into out (at out->len on), and keep it when finished. */
static sf_status compute(sf_db *db, const char *batch_id, int s, double trials, int finished, sf_buf *out, sf_err *err)
{
    sf_overfit_set *set = NULL;
    sf_status st = load_set(db, batch_id, s, &set, err);
    sf_overfit o;
    sf_overfit_opts opts = {.effective_trials = trials};
    if (st == SF_OK)
        st = sf_overfit_compute(set, &opts, &o, err);
    sf_overfit_set_free(set);
    size_t at = out->len;
    if (st == SF_OK)
        st = sf_overfit_to_json(&o, out, err);
    if (st == SF_OK && finished) {
        const char *p[] = {batch_id, sf_buf_str(out) + at};
        st = sf_db_query(db, "UPDATE batches SET overfit = $2::jsonb WHERE id = $1::uuid AND overfit IS NULL", 2, p,
                         NULL, err);
    }
    return st;
}

sf_status sf_batchfit_report(sf_db *db, const char *batch_id, int finished, sf_buf *out, sf_err *err)
{
    sf_db_res *res = NULL;
    sf_status st = sf_db_query(db, BATCH_SQL, 1, &batch_id, &res, err);
    if (st == SF_OK && sf_db_nrows(res) != 1)
        st = sf_err_set(err, SF_ERR_NOTFOUND, "could not find batch %.40s", batch_id);
    if (st == SF_OK && finished && !sf_db_is_null(res, 0, 0))
        st = sf_buf_puts(out, sf_db_get(res, 0, 0), err);
    else if (st == SF_OK)
        st = compute(db, batch_id, (int)strtol(sf_db_get(res, 0, 1), NULL, 10), strtod(sf_db_get(res, 0, 2), NULL),
                     finished, out, err);
    sf_db_res_free(res);
    return st;
}

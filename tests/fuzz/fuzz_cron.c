/*
 * libFuzzer harness for the cron parser (sf_cron_parse) and the fire-time
 * search of a parsed expression. Beyond "no crash, no leak, no UB" it checks
 * the contract: a refusal is SF_ERR_PARSE or SF_ERR_LIMIT with a message; an accepted expression (which must
 * fire at some time) gives fire times that match it, fall on whole minutes
 * and ascend; sf_cron_next agrees with the first of sf_cron_between and
 * sf_cron_last with the last of a complete sf_cron_between, over a few
 * windows (the epoch, today, the year 9999). Build and run with scripts/fuzz.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sf/cron.h"

#define MAX_TIMES 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_window(const sf_cron *c, int64_t a, int64_t b)
{
    int64_t times[MAX_TIMES], next = 0, last = 0;
    size_t n = 0;
    int more = 0, found = 0;
    sf_err err = {0};
    if (sf_cron_between(c, a, b, times, MAX_TIMES, &n, &more, &err) != SF_OK || n > MAX_TIMES || (more && n == 0))
        __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (times[i] <= a || times[i] > b || times[i] % 60 != 0 || !sf_cron_matches(c, times[i]) ||
            (i > 0 && times[i] <= times[i - 1]))
            __builtin_trap();
    sf_status st = sf_cron_next(c, a, &next, &err);
    if (n > 0 && (st != SF_OK || next != times[0]))
        __builtin_trap();
    if (st == SF_OK && (next <= a || next % 60 != 0 || !sf_cron_matches(c, next) || (n == 0 && next <= b)))
        __builtin_trap();
    if (sf_cron_last(c, a, b, &last, &found, &err) != SF_OK || found != (n > 0))
        __builtin_trap();
    if (found && !more && last != times[n - 1])
        __builtin_trap();
    if (found && (last <= a || last > b || !sf_cron_matches(c, last)))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char expr[SF_CRON_EXPR_MAX + 8];
    if (size >= sizeof expr)
        return 0;
    memcpy(expr, data, size);
    expr[size] = '\0';
    sf_cron c;
    sf_err err = {0};
    sf_status st = sf_cron_parse(expr, &c, &err);
    if (st != SF_OK) {
        if ((st != SF_ERR_PARSE && st != SF_ERR_LIMIT) || err.msg[0] == '\0' || err.code != st)
            __builtin_trap();
        return 0;
    }
    if (c.minutes == 0 || c.hours == 0 || c.mdays == 0 || c.months == 0 || c.wdays == 0)
        __builtin_trap();
    check_window(&c, 0, 3 * 86400);
    check_window(&c, 1700000000, 1700000000 + 40 * 86400);
    check_window(&c, SF_CRON_TIME_MAX - 2 * 86400, SF_CRON_TIME_MAX);
    return 0;
}

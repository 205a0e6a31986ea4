/*
 * bars: OHLCV columns in one allocation and the strict CSV loader; see sf/bars.h.
 *
 * DESIGN. Loading a million bars must take a small fraction of a second, so
 * the loader makes two passes over the bytes and never calls strtod on the
 * common path:
 *   1. count the newlines (memchr) to size the columns once, capped by the
 *      caller's max_bars so a huge file cannot make us allocate unboundedly;
 *   2. parse line by line: the timestamp (Unix seconds or ISO-8601 through
 *      sf_time), then five numbers with a small decimal parser. A number with
 *      at most 19 significant digits whose value is m * 10^e with m < 2^53 and
 *      |e| <= 22 is computed as one IEEE multiplication or division of two
 *      exact doubles, which is correctly rounded (Clinger's fast path); every
 *      other number goes to strtod on a bounded NUL-terminated copy, so the
 *      result always equals strtod's.
 * Each row is checked as it is parsed (the same check sf_bars_validate uses),
 * and the first failure is reported with its line and column name.
 *
 * Failure: nothing is returned and nothing leaks; *out stays NULL.
 * Locale: the strtod fallback assumes the "C" numeric locale (the programs
 * never call setlocale).
 */
#include "sf/bars.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf/buf.h"
#include "sf/time.h"

#define ALIGN 64
#define N_COLS 6
#define SHOW_MAX 40 /* input bytes quoted in a message */
#define NUM_TEXT_MAX SF_BARS_NUMBER_MAX
#define MANT_DIGITS 19 /* significant digits that always fit in a uint64 */
#define EXP_CAP 100000 /* exponents beyond this saturate */
#define UNIX_DIGITS_MAX 18

static const char HEADER[] = "timestamp,open,high,low,close,volume";
static const char *const COL_NAMES[N_COLS] = {"timestamp", "open", "high", "low", "close", "volume"};
enum { C_TS, C_OPEN, C_HIGH, C_LOW, C_CLOSE, C_VOLUME };

/* Powers of ten that are exact doubles. */
static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* ---- the series ---------------------------------------------------------------- */

static size_t round_up(size_t x)
{
    return (x + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

/* One 64-byte-aligned block: the struct, then six 64-byte-aligned columns. */
static sf_status bars_alloc(size_t n, bool zero, sf_bars **out, sf_err *err)
{
    size_t head = round_up(sizeof(sf_bars));
    if (n > (SIZE_MAX / 2 - head) / (N_COLS * sizeof(double)) - ALIGN)
        return sf_err_set(err, SF_ERR_LIMIT, "could not allocate %zu bars: too many", n);
    size_t col = round_up(n * sizeof(double));
    size_t total = head + N_COLS * col;
    char *block = aligned_alloc(ALIGN, total);
    if (block == NULL)
        return sf_err_set(err, SF_ERR_NOMEM, "could not allocate %zu bars (%zu bytes)", n, total);
    if (zero)
        memset(block, 0, total);
    sf_bars *b = (sf_bars *)(void *)block;
    double *c[N_COLS];
    for (size_t i = 0; i < N_COLS; i++)
        c[i] = (double *)(void *)(block + head + i * col);
    b->n = n;
    b->ts = (int64_t *)(void *)c[0];
    b->open = c[1];
    b->high = c[2];
    b->low = c[3];
    b->close = c[4];
    b->volume = c[5];
    *out = b;
    return SF_OK;
}

sf_status sf_bars_new(size_t n, sf_bars **out, sf_err *err)
{
    *out = NULL;
    return bars_alloc(n, true, out, err);
}

void sf_bars_free(sf_bars *bars)
{
    free(bars);
}

/* ---- row checks (shared by the CSV loader and sf_bars_validate) ----------------- */

typedef struct row {
    int64_t ts;
    double v[N_COLS]; /* v[C_OPEN..C_VOLUME]; v[C_TS] unused */
} row;

/* "<unit> <num>, column <name>: <reason>" */
__attribute__((format(printf, 6, 7))) static sf_status col_error(sf_err *err, sf_status code, const char *unit,
                                                                 size_t num, int col, const char *fmt, ...)
{
    char why[SF_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return sf_err_set(err, code, "%s %zu, column %s: %s", unit, num, COL_NAMES[col], why);
}

static sf_status check_row(const row *r, const int64_t *prev, const char *unit, size_t num, sf_err *err)
{
    const double *v = r->v;
    for (int c = C_OPEN; c <= C_VOLUME; c++)
        if (!isfinite(v[c]))
            return col_error(err, SF_ERR_INVALID, unit, num, c, "not a finite number (%g)", v[c]);
    if (prev && r->ts <= *prev) {
        char when[SF_TIME_ISO_MAX];
        sf_time_format_iso8601(*prev, when, sizeof when);
        return col_error(err, SF_ERR_INVALID, unit, num, C_TS, "not after the previous bar (%s)", when);
    }
    double lo = v[C_OPEN] < v[C_CLOSE] ? v[C_OPEN] : v[C_CLOSE]; /* finite: no fmin needed */
    double hi = v[C_OPEN] > v[C_CLOSE] ? v[C_OPEN] : v[C_CLOSE];
    if (v[C_LOW] > lo)
        return col_error(err, SF_ERR_INVALID, unit, num, C_LOW,
                         "above min(open, close) (low %.15g, open %.15g, close %.15g)", v[C_LOW], v[C_OPEN],
                         v[C_CLOSE]);
    if (v[C_HIGH] < hi)
        return col_error(err, SF_ERR_INVALID, unit, num, C_HIGH,
                         "below max(open, close) (high %.15g, open %.15g, close %.15g)", v[C_HIGH], v[C_OPEN],
                         v[C_CLOSE]);
    if (v[C_LOW] > v[C_HIGH])
        return col_error(err, SF_ERR_INVALID, unit, num, C_LOW, "above high (low %.15g, high %.15g)", v[C_LOW],
                         v[C_HIGH]);
    if (v[C_VOLUME] < 0)
        return col_error(err, SF_ERR_INVALID, unit, num, C_VOLUME, "negative (%.15g)", v[C_VOLUME]);
    return SF_OK;
}

sf_status sf_bars_validate(const sf_bars *bars, sf_err *err)
{
    if (bars == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "no bars");
    for (size_t i = 0; i < bars->n; i++) {
        row r = {bars->ts[i], {0, bars->open[i], bars->high[i], bars->low[i], bars->close[i], bars->volume[i]}};
        sf_status st = check_row(&r, i ? &bars->ts[i - 1] : NULL, "bar", i, err);
        if (st != SF_OK)
            return st;
    }
    return SF_OK;
}

/* ---- numbers ---------------------------------------------------------------------- */

typedef enum num_result { NUM_OK, NUM_SYNTAX, NUM_NONFINITE, NUM_RANGE, NUM_LONG } num_result;

static const char *const NUM_REASONS[] = {
    [NUM_OK] = "ok",
    [NUM_SYNTAX] = "not a number",
    [NUM_NONFINITE] = "not a finite number",
    [NUM_RANGE] = "out of range",
    [NUM_LONG] = "number too long",
};

static bool is_digit(char c)
{
    return (unsigned)(unsigned char)c - '0' <= 9;
}

/* "nan..." or "inf..." after an optional sign, any case: named for the message. */
static bool looks_nonfinite(const char *s, const char *e)
{
    if (s < e && (*s == '+' || *s == '-'))
        s++;
    if (e - s < 3)
        return false;
    char w[4] = {(char)(s[0] | 0x20), (char)(s[1] | 0x20), (char)(s[2] | 0x20), 0};
    return strcmp(w, "nan") == 0 || strcmp(w, "inf") == 0;
}

static num_result slow_number(const char *s, size_t len, double *out)
{
    char copy[NUM_TEXT_MAX + 1];
    if (len > NUM_TEXT_MAX)
        return NUM_LONG;
    memcpy(copy, s, len);
    copy[len] = '\0';
    errno = 0;
    char *end;
    double v = strtod(copy, &end);
    if (end != copy + len)
        return NUM_SYNTAX;
    if (!isfinite(v))
        return NUM_RANGE;
    *out = v;
    return NUM_OK;
}

/* Digits of the exponent after 'e'; saturates at EXP_CAP. NULL without digits. */
static const char *scan_exponent(const char *p, const char *e, int64_t *exp10)
{
    int sign = 1, v = 0;
    if (p < e && (*p == '+' || *p == '-'))
        sign = *p++ == '-' ? -1 : 1;
    if (p == e || !is_digit(*p))
        return NULL;
    for (; p < e && is_digit(*p); p++)
        if (v < EXP_CAP)
            v = v * 10 + (*p - '0');
    *exp10 += sign * v;
    return p;
}

typedef struct mant {
    uint64_t m;    /* the first MANT_DIGITS significant digits */
    int nd;        /* significant digits in m */
    bool many;     /* more significant digits than fit */
    int64_t exp10; /* value = m * 10^exp10 (when !many) */
    size_t seen;   /* digits of any kind */
} mant;

/* A run of digits; frac: they follow the decimal point. */
static inline __attribute__((always_inline)) const char *scan_digits(const char *p, const char *e, bool frac, mant *x)
{
    const char *start = p;
    for (; p < e && is_digit(*p); p++) {
        if (x->nd == MANT_DIGITS) {
            x->many = true;
            continue;
        }
        x->m = x->m * 10 + (uint64_t)(*p - '0');
        x->nd += x->m != 0; /* leading zeros are not significant */
        x->exp10 -= frac;
    }
    x->seen += (size_t)(p - start);
    return p;
}

/*
 * Scan the longest number at s (not past e): [+-] digits [. digits]
 * [(e|E) [+-] digits], one digit at least. *stop is where the text ended; the
 * caller decides whether that is a valid end of the field.
 */
static num_result scan_number(const char *s, const char *e, double *out, const char **stop)
{
    const char *p = s;
    bool neg = p < e && *p == '-';
    p += p < e && (*p == '+' || *p == '-');
    mant x = {0, 0, false, 0, 0};
    p = scan_digits(p, e, false, &x);
    if (p < e && *p == '.')
        p = scan_digits(p + 1, e, true, &x);
    *stop = p;
    if (x.seen == 0)
        return looks_nonfinite(s, e) ? NUM_NONFINITE : NUM_SYNTAX;
    if (p < e && (*p == 'e' || *p == 'E') && (p = scan_exponent(p + 1, e, &x.exp10)) == NULL)
        return NUM_SYNTAX;
    *stop = p;
    if (p - s > NUM_TEXT_MAX)
        return NUM_LONG;
    if (x.many || x.m >= (UINT64_C(1) << 53) || x.exp10 < -22 || x.exp10 > 22)
        return slow_number(s, (size_t)(p - s), out);
    double v = x.exp10 >= 0 ? (double)x.m * POW10[x.exp10] : (double)x.m / POW10[-x.exp10];
    *out = neg ? -v : v;
    return NUM_OK;
}

sf_status sf_bars_parse_number(const char *s, size_t len, double *out, sf_err *err)
{
    const char *stop = s;
    num_result r = s ? scan_number(s, s + len, out, &stop) : NUM_SYNTAX;
    if (r == NUM_OK && stop != s + len)
        r = NUM_SYNTAX;
    if (r == NUM_OK)
        return SF_OK;
    int show = len > SHOW_MAX ? SHOW_MAX : (int)len;
    return sf_err_set(err, SF_ERR_PARSE, "%s (\"%.*s%s\")", NUM_REASONS[r], show, s ? s : "",
                      len > SHOW_MAX ? "..." : "");
}

/* ---- CSV ------------------------------------------------------------------------- */

typedef struct line {
    const char *p, *e; /* without the '\n' and a trailing '\r' */
    size_t num;        /* 1-based */
} line;

static const char *next_line(const char *p, const char *end, line *ln)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end;
    ln->p = p;
    ln->e = e > p && e[-1] == '\r' ? e - 1 : e;
    ln->num++;
    return nl ? nl + 1 : end;
}

static sf_status field_error(sf_err *err, const line *ln, int col, const char *reason, const char *s, const char *e)
{
    size_t len = (size_t)(e - s);
    int show = len > SHOW_MAX ? SHOW_MAX : (int)len;
    return col_error(err, SF_ERR_PARSE, "line", ln->num, col, "%s (\"%.*s%s\")", reason, show, s,
                     len > SHOW_MAX ? "..." : "");
}

static sf_status parse_ts(const line *ln, const char *s, const char *e, int64_t *out, sf_err *err)
{
    const char *p = s + (s < e && *s == '-');
    const char *d = p;
    while (d < e && is_digit(*d))
        d++;
    if (d == e && d > p) { /* Unix seconds */
        if (d - p > UNIX_DIGITS_MAX)
            return field_error(err, ln, C_TS, "out of range", s, e);
        int64_t v = 0;
        for (; p < e; p++)
            v = v * 10 + (*p - '0');
        *out = *s == '-' ? -v : v;
        return SF_OK;
    }
    if (sf_time_parse_iso8601(s, (size_t)(e - s), out, err) == SF_OK)
        return SF_OK;
    sf_err_prefix(err, "line %zu, column timestamp", ln->num);
    return SF_ERR_PARSE;
}

static sf_status columns_error(sf_err *err, const line *ln)
{
    size_t found = 1;
    for (const char *q = ln->p; q < ln->e; q++)
        found += *q == ',';
    return sf_err_set(err, SF_ERR_PARSE, "line %zu: expected %d columns, found %zu", ln->num, N_COLS, found);
}

/* A number field at p ending at ',' (not the last column) or at the line end. */
static sf_status number_field(const line *ln, int c, const char *p, double *out, const char **next, sf_err *err)
{
    const char *stop;
    num_result nr = scan_number(p, ln->e, out, &stop);
    bool last = c == N_COLS - 1;
    bool at_end = last ? stop == ln->e : stop < ln->e && *stop == ',';
    if (nr == NUM_OK && at_end)
        return *next = stop + 1, SF_OK;
    const char *fe = memchr(p, ',', (size_t)(ln->e - p));
    fe = fe ? fe : ln->e;
    if ((fe == ln->e) != last)
        return columns_error(err, ln);
    if (fe == p)
        return col_error(err, SF_ERR_PARSE, "line", ln->num, c, "empty");
    if (!at_end || nr == NUM_SYNTAX || nr == NUM_NONFINITE)
        nr = looks_nonfinite(p, fe) ? NUM_NONFINITE : NUM_SYNTAX;
    return field_error(err, ln, c, NUM_REASONS[nr], p, fe);
}

static sf_status parse_row(const line *ln, row *r, sf_err *err)
{
    const char *p = ln->p;
    const char *fe = memchr(p, ',', (size_t)(ln->e - p));
    if (fe == NULL)
        return columns_error(err, ln);
    if (fe == p)
        return col_error(err, SF_ERR_PARSE, "line", ln->num, C_TS, "empty");
    if (parse_ts(ln, p, fe, &r->ts, err) != SF_OK)
        return SF_ERR_PARSE;
    p = fe + 1;
    for (int c = C_OPEN; c <= C_VOLUME; c++)
        if (number_field(ln, c, p, &r->v[c], &p, err) != SF_OK)
            return SF_ERR_PARSE;
    return SF_OK;
}

static sf_status check_header(const char **p, const char *end, line *ln, sf_err *err)
{
    if (end - *p >= 3 && memcmp(*p, "\xEF\xBB\xBF", 3) == 0) /* UTF-8 BOM */
        *p += 3;
    if (*p == end)
        return sf_err_set(err, SF_ERR_PARSE, "empty file: expected the header \"%s\"", HEADER);
    *p = next_line(*p, end, ln);
    size_t len = (size_t)(ln->e - ln->p);
    if (len == sizeof HEADER - 1 && memcmp(ln->p, HEADER, len) == 0)
        return SF_OK;
    int show = len > SHOW_MAX ? SHOW_MAX : (int)len;
    return sf_err_set(err, SF_ERR_PARSE, "line 1: expected the header \"%s\" (found \"%.*s%s\")", HEADER, show, ln->p,
                      len > SHOW_MAX ? "..." : "");
}

/* Rows the text can hold: one per newline after the header, plus a last unterminated one. */
static size_t count_rows(const char *p, const char *end)
{
    size_t n = 1;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* Parse every data line into b (capacity cap); blank lines only at the end. */
static sf_status parse_rows(const char *p, const char *end, line *ln, size_t cap, size_t max_bars, sf_bars *b,
                            sf_err *err)
{
    size_t n = 0, blank_at = 0;
    while (p < end) {
        p = next_line(p, end, ln);
        if (ln->p == ln->e) {
            blank_at = blank_at ? blank_at : ln->num;
            continue;
        }
        if (blank_at)
            return sf_err_set(err, SF_ERR_PARSE, "line %zu: empty line", blank_at);
        if (n == max_bars || n == cap)
            return sf_err_set(err, SF_ERR_LIMIT, "line %zu: too many bars (the limit is %zu)", ln->num, max_bars);
        row r = {0, {0}};
        sf_status st = parse_row(ln, &r, err);
        if (st == SF_OK)
            st = check_row(&r, n ? &b->ts[n - 1] : NULL, "line", ln->num, err);
        if (st != SF_OK)
            return st;
        b->ts[n] = r.ts;
        b->open[n] = r.v[C_OPEN];
        b->high[n] = r.v[C_HIGH];
        b->low[n] = r.v[C_LOW];
        b->close[n] = r.v[C_CLOSE];
        b->volume[n] = r.v[C_VOLUME];
        n++;
    }
    if (n == 0)
        return sf_err_set(err, SF_ERR_PARSE, "no bars: only the header");
    b->n = n;
    return SF_OK;
}

sf_status sf_bars_parse_csv(const char *text, size_t len, size_t max_bars, sf_bars **out, sf_err *err)
{
    *out = NULL;
    if (text == NULL && len > 0)
        return sf_err_set(err, SF_ERR_INVALID, "no text");
    const char *p = text, *end = text + len;
    line ln = {NULL, NULL, 0};
    sf_status st = check_header(&p, end, &ln, err);
    if (st != SF_OK)
        return st;
    size_t cap = count_rows(p, end);
    cap = cap > max_bars ? max_bars : cap;
    sf_bars *b = NULL;
    if ((st = bars_alloc(cap, false, &b, err)) != SF_OK)
        return st;
    if ((st = parse_rows(p, end, &ln, cap, max_bars, b, err)) != SF_OK) {
        sf_bars_free(b);
        return st;
    }
    *out = b;
    return SF_OK;
}

/* ---- files ------------------------------------------------------------------------- */

/* "could not <verb> \"path\": <the system's text for errno>". */
static sf_status sys_error(sf_err *err, sf_status code, const char *what, const char *path)
{
    int e = errno;
    return sf_err_sys(err, code, e, "%s \"%s\": %s", what, path, sf_err_errno_text(e).text);
}

static sf_status read_all(int fd, const char *path, sf_buf *buf, sf_err *err)
{
    char chunk[65536];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return sys_error(err, SF_ERR_IO, "could not read", path);
        if (got == 0)
            return SF_OK;
        if (sf_buf_append(buf, chunk, (size_t)got, err) != SF_OK)
            return sf_err_set(err, SF_ERR_LIMIT, "more than %zu bytes of input", buf->max);
    }
}

static sf_status parse_stream(int fd, const char *path, size_t max_bars, sf_bars **out, sf_err *err)
{
    sf_buf buf;
    sf_buf_init(&buf, SF_BARS_READ_MAX);
    sf_status st = read_all(fd, path, &buf, err);
    if (st == SF_OK)
        st = sf_bars_parse_csv(buf.data, buf.len, max_bars, out, err);
    sf_buf_destroy(&buf);
    return st;
}

static sf_status parse_mapped(int fd, const char *path, size_t size, size_t max_bars, sf_bars **out, sf_err *err)
{
    if (size == 0)
        return sf_bars_parse_csv("", 0, max_bars, out, err);
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        return sys_error(err, SF_ERR_IO, "could not map", path);
    (void)madvise(map, size, MADV_SEQUENTIAL);
    sf_status st = sf_bars_parse_csv(map, size, max_bars, out, err);
    munmap(map, size);
    return st;
}

static sf_status load_fd(int fd, const char *path, size_t max_bars, sf_bars **out, sf_err *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return sys_error(err, SF_ERR_IO, "could not stat", path);
    if (!S_ISREG(sb.st_mode))
        return parse_stream(fd, path, max_bars, out, err);
    return parse_mapped(fd, path, (size_t)sb.st_size, max_bars, out, err);
}

sf_status sf_bars_load_csv_file(const char *path, size_t max_bars, sf_bars **out, sf_err *err)
{
    *out = NULL;
    if (path == NULL)
        return sf_err_set(err, SF_ERR_INVALID, "no file name");
    if (strcmp(path, "-") == 0) {
        sf_status st = parse_stream(STDIN_FILENO, "-", max_bars, out, err);
        if (st != SF_OK && st != SF_ERR_IO)
            sf_err_prefix(err, "standard input");
        return st;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sys_error(err, errno == ENOENT ? SF_ERR_NOTFOUND : SF_ERR_IO, "could not open", path);
    sf_status st = load_fd(fd, path, max_bars, out, err);
    close(fd);
    if (st != SF_OK && st != SF_ERR_IO && st != SF_ERR_NOMEM)
        sf_err_prefix(err, "%s", path);
    return st;
}

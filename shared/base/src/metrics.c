/* metrics: Prometheus registry; see sf/metrics.h. */
#include "sf/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct series {
    size_t metric;
    char values[SF_METRICS_MAX_LABELS][SF_METRICS_LABEL_MAX];
    double value;             /* counter, gauge; histogram sum */
    unsigned long long count; /* histogram */
    unsigned long long bucket[SF_METRICS_MAX_BUCKETS];
} series;

struct sf_metrics {
    const sf_metric_def *defs;
    size_t n_defs;
    pthread_mutex_t mu; /* guards n_series and every series */
    size_t n_series, max_series;
    series *s;
};

static size_t n_labels(const sf_metric_def *d)
{
    size_t n = 0;
    while (n < SF_METRICS_MAX_LABELS && d->labels[n] != NULL)
        n++;
    return n;
}

sf_status sf_metrics_new(const sf_metric_def *defs, size_t n_defs, size_t max_series, sf_metrics **out, sf_err *err)
{
    for (size_t i = 0; i < n_defs; i++)
        if (defs[i].n_buckets > SF_METRICS_MAX_BUCKETS)
            return sf_err_set(err, SF_ERR_INVALID, "metric %s: more than %d buckets", defs[i].name,
                              SF_METRICS_MAX_BUCKETS);
    sf_metrics *m = calloc(1, sizeof *m);
    series *s = calloc(max_series ? max_series : 1, sizeof *s);
    if (m == NULL || s == NULL) {
        free(m);
        free(s);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    m->defs = defs;
    m->n_defs = n_defs;
    m->max_series = max_series;
    m->s = s;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return SF_OK;
}

void sf_metrics_free(sf_metrics *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->s);
    free(m);
}

/* The series for (metric, values), created if new; NULL past max_series. Under mu. */
static series *find_series(sf_metrics *m, size_t metric, const char *const *values)
{
    size_t nl = n_labels(&m->defs[metric]);
    for (size_t i = 0; i < m->n_series; i++) {
        series *s = &m->s[i];
        size_t k = 0;
        while (s->metric == metric && k < nl && strncmp(s->values[k], values[k], SF_METRICS_LABEL_MAX - 1) == 0)
            k++;
        if (s->metric == metric && k == nl)
            return s;
    }
    if (m->n_series >= m->max_series)
        return NULL;
    series *s = &m->s[m->n_series++];
    memset(s, 0, sizeof *s);
    s->metric = metric;
    for (size_t k = 0; k < nl; k++)
        snprintf(s->values[k], sizeof s->values[k], "%s", values[k] ? values[k] : "");
    return s;
}

static void record(series *s, const sf_metric_def *d, double v)
{
    if (d->type == SF_METRIC_GAUGE) {
        s->value = v;
        return;
    }
    s->value += v;
    if (d->type != SF_METRIC_HISTOGRAM)
        return;
    s->count++;
    for (size_t b = 0; b < d->n_buckets; b++)
        if (v <= d->buckets[b])
            s->bucket[b]++;
}

static sf_status update(sf_metrics *m, size_t metric, sf_metric_type want, const char *const *values, double v,
                        sf_err *err)
{
    if (metric >= m->n_defs || m->defs[metric].type != want)
        return sf_err_set(err, SF_ERR_INVALID, "metric %zu is not of the type used", metric);
    pthread_mutex_lock(&m->mu);
    series *s = find_series(m, metric, values);
    if (s != NULL)
        record(s, &m->defs[metric], v);
    pthread_mutex_unlock(&m->mu);
    if (s == NULL)
        return sf_err_set(err, SF_ERR_LIMIT, "more than %zu metric series", m->max_series);
    return SF_OK;
}

sf_status sf_metrics_add(sf_metrics *m, size_t metric, const char *const *values, double v, sf_err *err)
{
    if (!(v >= 0))
        return sf_err_set(err, SF_ERR_INVALID, "a counter only goes up");
    return update(m, metric, SF_METRIC_COUNTER, values, v, err);
}

sf_status sf_metrics_set(sf_metrics *m, size_t metric, const char *const *values, double v, sf_err *err)
{
    return update(m, metric, SF_METRIC_GAUGE, values, v, err);
}

sf_status sf_metrics_observe(sf_metrics *m, size_t metric, const char *const *values, double v, sf_err *err)
{
    return update(m, metric, SF_METRIC_HISTOGRAM, values, v, err);
}

sf_status sf_metrics_touch(sf_metrics *m, size_t metric, const char *const *values, sf_err *err)
{
    if (metric >= m->n_defs)
        return sf_err_set(err, SF_ERR_INVALID, "no metric %zu", metric);
    pthread_mutex_lock(&m->mu);
    series *s = find_series(m, metric, values);
    pthread_mutex_unlock(&m->mu);
    if (s == NULL)
        return sf_err_set(err, SF_ERR_LIMIT, "more than %zu metric series", m->max_series);
    return SF_OK;
}

void sf_metrics_clear(sf_metrics *m, size_t metric)
{
    pthread_mutex_lock(&m->mu);
    size_t kept = 0;
    for (size_t i = 0; i < m->n_series; i++)
        if (m->s[i].metric != metric) {
            if (kept != i)
                m->s[kept] = m->s[i];
            kept++;
        }
    m->n_series = kept;
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering -------------------------------------------------------------- */

/* {a="x",b="y"[,le="..."]} with label values escaped; nothing when empty. */
static sf_status put_labels(sf_buf *out, const sf_metric_def *d, const series *s, const char *le, sf_err *err)
{
    size_t nl = n_labels(d);
    if (nl == 0 && le == NULL)
        return SF_OK;
    sf_status st = sf_buf_puts(out, "{", err);
    for (size_t k = 0; k < nl && st == SF_OK; k++) {
        st = sf_buf_printf(out, err, "%s%s=\"", k ? "," : "", d->labels[k]);
        for (const char *p = s->values[k]; *p && st == SF_OK; p++) {
            const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
            st = esc ? sf_buf_puts(out, esc, err) : sf_buf_append(out, p, 1, err);
        }
        if (st == SF_OK)
            st = sf_buf_puts(out, "\"", err);
    }
    if (st == SF_OK && le != NULL)
        st = sf_buf_printf(out, err, "%sle=\"%s\"", nl ? "," : "", le);
    return st == SF_OK ? sf_buf_puts(out, "}", err) : st;
}

static sf_status render_histogram(sf_buf *out, const sf_metric_def *d, const series *s, sf_err *err)
{
    sf_status st = SF_OK;
    for (size_t b = 0; b <= d->n_buckets && st == SF_OK; b++) {
        char le[32];
        if (b < d->n_buckets)
            snprintf(le, sizeof le, "%.15g", d->buckets[b]);
        else
            snprintf(le, sizeof le, "+Inf");
        st = sf_buf_printf(out, err, "%s_bucket", d->name);
        if (st == SF_OK)
            st = put_labels(out, d, s, le, err);
        if (st == SF_OK)
            st = sf_buf_printf(out, err, " %llu\n", b < d->n_buckets ? s->bucket[b] : s->count);
    }
    const char *parts[] = {"_sum", "_count"};
    for (int i = 0; i < 2 && st == SF_OK; i++) {
        st = sf_buf_printf(out, err, "%s%s", d->name, parts[i]);
        if (st == SF_OK)
            st = put_labels(out, d, s, NULL, err);
        if (st == SF_OK)
            st = i == 0 ? sf_buf_printf(out, err, " %.17g\n", s->value) : sf_buf_printf(out, err, " %llu\n", s->count);
    }
    return st;
}

static sf_status render_metric(sf_metrics *m, size_t i, sf_buf *out, sf_err *err)
{
    static const char *const TYPES[] = {"counter", "gauge", "histogram"};
    const sf_metric_def *d = &m->defs[i];
    sf_status st = sf_buf_printf(out, err, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, TYPES[d->type]);
    for (size_t k = 0; k < m->n_series && st == SF_OK; k++) {
        const series *s = &m->s[k];
        if (s->metric != i)
            continue;
        if (d->type == SF_METRIC_HISTOGRAM) {
            st = render_histogram(out, d, s, err);
            continue;
        }
        st = sf_buf_puts(out, d->name, err);
        if (st == SF_OK)
            st = put_labels(out, d, s, NULL, err);
        if (st == SF_OK)
            st = sf_buf_printf(out, err, " %.17g\n", s->value);
    }
    return st;
}

sf_status sf_metrics_render(sf_metrics *m, sf_buf *out, sf_err *err)
{
    sf_status st = SF_OK;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_defs && st == SF_OK; i++)
        st = render_metric(m, i, out, err);
    pthread_mutex_unlock(&m->mu);
    return st;
}

/* ---- process metrics -------------------------------------------------------- */

static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f == NULL)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &rss);
    fclose(f);
    return n == 2 ? (double)rss * (double)sysconf(_SC_PAGESIZE) : 0;
}

static double open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return 0;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n - 1; /* the directory's own descriptor */
}

sf_status sf_metrics_render_process(double start_time, sf_buf *out, sf_err *err)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    return sf_buf_printf(out, err,
                         "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                         "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n"
                         "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                         "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %.0f\n"
                         "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                         "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n"
                         "# HELP process_open_fds Number of open file descriptors.\n"
                         "# TYPE process_open_fds gauge\nprocess_open_fds %.0f\n",
                         cpu, resident_bytes(), start_time, open_fds());
}

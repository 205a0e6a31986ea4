/*
 * metrics: a small in-process registry of Prometheus counters, gauges and
 * histograms, driven by a table of definitions, rendered in the Prometheus
 * text format (version 0.0.4), plus the standard process metrics.
 *
 * A metric is addressed by its index in the definition table and its label
 * values (in the order of the definition's label names). Each distinct label
 * set is one series; at most max_series series exist in all, and a new
 * series past that is refused with SF_ERR_LIMIT (nothing is recorded), so a
 * label with unbounded values can't eat memory.
 *
 * Thread safety: every function may be called from any thread (one mutex
 * guards all series). Ownership: sf_metrics_new returns a registry freed by
 * sf_metrics_free (accepts NULL); the definition table, its strings and
 * bucket arrays are borrowed and must outlive it.
 */
#ifndef SF_METRICS_H
#define SF_METRICS_H

#include <stddef.h>

#include "sf/buf.h"
#include "sf/err.h"

#define SF_METRICS_MAX_LABELS 4
#define SF_METRICS_MAX_BUCKETS 32
#define SF_METRICS_LABEL_MAX 128 /* bytes of one label value, longer ones are cut */

typedef enum sf_metric_type { SF_METRIC_COUNTER, SF_METRIC_GAUGE, SF_METRIC_HISTOGRAM } sf_metric_type;

typedef struct sf_metric_def {
    const char *name; /* "http_request_duration_seconds" */
    sf_metric_type type;
    const char *help;
    const char *labels[SF_METRICS_MAX_LABELS]; /* names; unused slots NULL */
    const double *buckets;                     /* histograms: upper bounds, increasing (+Inf implied) */
    size_t n_buckets;
} sf_metric_def;

typedef struct sf_metrics sf_metrics;

sf_status sf_metrics_new(const sf_metric_def *defs, size_t n_defs, size_t max_series, sf_metrics **out, sf_err *err);
void sf_metrics_free(sf_metrics *m);

/* Counter: add v (>= 0). Gauge: set to v. Histogram: observe v. values holds
 * one string per label of the definition. */
sf_status sf_metrics_add(sf_metrics *m, size_t metric, const char *const *values, double v, sf_err *err);
sf_status sf_metrics_set(sf_metrics *m, size_t metric, const char *const *values, double v, sf_err *err);
sf_status sf_metrics_observe(sf_metrics *m, size_t metric, const char *const *values, double v, sf_err *err);

/* Create the series (metric, values) at zero if it does not exist (a
 * counter or histogram then renders 0 from the first scrape, so rate() works
 * from the start); an existing series is left as it is. SF_ERR_LIMIT past
 * max_series. */
sf_status sf_metrics_touch(sf_metrics *m, size_t metric, const char *const *values, sf_err *err);

/* Remove every series of metric (a gauge this process stops exporting,
 * e.g. a replica that stopped leading); the room they held is reused. */
void sf_metrics_clear(sf_metrics *m, size_t metric);

/* Append every metric with HELP and TYPE lines (in table order; series in
 * creation order) to out. */
sf_status sf_metrics_render(sf_metrics *m, sf_buf *out, sf_err *err);

/* Append process_cpu_seconds_total, process_resident_memory_bytes,
 * process_start_time_seconds (start_time: Unix seconds) and process_open_fds,
 * read from /proc/self. */
sf_status sf_metrics_render_process(double start_time, sf_buf *out, sf_err *err);

#endif

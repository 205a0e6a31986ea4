/*
 * time: clocks and ISO-8601 UTC text.
 *
 * Times in the engine and the database layer are int64 Unix seconds (UTC);
 * log lines use milliseconds. Parsing is strict: the whole string must match.
 *
 * Thread safety: every function is reentrant (gmtime_r/timegm style, no static
 * buffers). Ownership: output buffers are the caller's.
 */
#ifndef SF_TIME_H
#define SF_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "sf/err.h"

#define SF_TIME_ISO_MAX 32 /* "2024-01-02T03:04:05.678Z" plus room */

/* Wall clock, milliseconds since the epoch (CLOCK_REALTIME). */
int64_t sf_time_now_ms(void);
/* Monotonic clock in milliseconds and nanoseconds, for durations and deadlines. */
int64_t sf_time_mono_ms(void);
int64_t sf_time_mono_ns(void);

/*
 * Parse an ISO-8601 UTC timestamp into Unix seconds. Accepts
 * "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS]" with 'T' or ' ' as separator, an
 * optional fraction (truncated), and an optional "Z" or "+00:00"; any other
 * offset such as "+02:00" is converted to UTC. Fails with SF_ERR_PARSE.
 */
sf_status sf_time_parse_iso8601(const char *s, size_t len, int64_t *out, sf_err *err);

/* "2024-01-02T03:04:05Z" into buf (at least SF_TIME_ISO_MAX bytes). */
void sf_time_format_iso8601(int64_t secs, char *buf, size_t size);
/* "2024-01-02T03:04:05.678Z" from milliseconds. */
void sf_time_format_iso8601_ms(int64_t ms, char *buf, size_t size);

#endif

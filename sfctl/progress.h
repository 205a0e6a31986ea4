/*
 * progress: how sfctl shows long work (submit --wait, data import, local
 * sweeps, watch and sweep --watch) on stderr; never on stdout, which stays
 * the command's result for scripts.
 *
 * On a terminal (isatty(stderr)): one line rewritten in place with \r, at
 * most every 0.1 s: "label: [####......] done/total unit (40.0%)  rate/s
 * ETA 12 s" and the caller's extra text; ctl_progress_end leaves its last
 * state on screen with a newline.
 * Elsewhere (a pipe, a file): plain lines, never \r: "progress: label:
 * 4000/10000 members (40%), 2.1 s" at the first count, each time another
 * 10% is done, when CTL_PROGRESS_PIPE_S seconds passed with new work, and at
 * the end.
 * A state (ctl_progress_state, e.g. a job's "queued", "running",
 * "succeeded") shows with the time since ctl_progress_start: redrawn on a
 * terminal, one line per change in a pipe.
 *
 * Counts in bytes (CTL_PROGRESS_BYTES) show as MB.
 *
 * Thread safety: ctl_progress_update may be called from several threads at
 * once (a local sweep's workers); a count lower than the highest one seen is
 * ignored. start, state and end: one thread, not concurrently with update.
 */
#ifndef SFCTL_PROGRESS_H
#define SFCTL_PROGRESS_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#define CTL_PROGRESS_PIPE_S 5.0
#define CTL_PROGRESS_BYTES 1
#define CTL_PROGRESS_TEXT_MAX 160

typedef struct ctl_progress {
    pthread_mutex_t mu;
    FILE *out; /* stderr */
    int tty, bytes;
    char label[64], unit[16];
    uint64_t total, done, first;       /* done: the highest seen; first: the first (the rate counts from it) */
    int started;                       /* an update came */
    double t0, shown_at;               /* monotonic seconds */
    int shown_step;                    /* pipe: the last 10% step printed (-1 none) */
    uint64_t shown_done;               /* the count last printed */
    int drawn;                         /* terminal: a line is on screen without its newline */
    char state[CTL_PROGRESS_TEXT_MAX]; /* the last state shown */
    char extra[CTL_PROGRESS_TEXT_MAX]; /* the last update's extra text */
} ctl_progress;

/* Begin: label (e.g. "sweep"), unit (e.g. "members"; "" for none), total (0
 * when not known yet), flags 0 or CTL_PROGRESS_BYTES. Prints nothing. */
void ctl_progress_start(ctl_progress *p, const char *label, const char *unit, uint64_t total, int flags);

/* done out of total (0: keep the last total); extra (may be NULL) is appended
 * to the line (e.g. "running 2, failed 0"). */
void ctl_progress_update(ctl_progress *p, uint64_t done, uint64_t total, const char *extra);

/* A state text (e.g. "running"): redrawn on a terminal, a line in a pipe
 * when it differs from the last one. */
void ctl_progress_state(ctl_progress *p, const char *state);

/* End: a terminal's line gets its newline; a pipe gets the final count when
 * it was not printed yet. Releases p. */
void ctl_progress_end(ctl_progress *p);

#endif

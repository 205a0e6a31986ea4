/* progress: sfctl's progress on stderr; see progress.h. */
#include "progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define TTY_REDRAW_S 0.1
#define BAR_WIDTH 20

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ctl_progress_start(ctl_progress *p, const char *label, const char *unit, uint64_t total, int flags)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->out = stderr;
    p->tty = isatty(STDERR_FILENO);
    p->bytes = (flags & CTL_PROGRESS_BYTES) != 0;
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->t0 = now_s();
    p->shown_step = -1;
}

/* "4000/10000 members" or "1.5/4.0 MB". */
static void counts(const ctl_progress *p, char *buf, size_t size)
{
    if (p->bytes)
        snprintf(buf, size, "%.1f/%.1f MB", (double)p->done / 1e6, (double)p->total / 1e6);
    else
        snprintf(buf, size, "%llu/%llu%s%s", (unsigned long long)p->done, (unsigned long long)p->total,
                 p->unit[0] ? " " : "", p->unit);
}

static double fraction(const ctl_progress *p)
{
    return p->total > 0 ? (double)p->done / (double)p->total : 0.0;
}

/* The terminal's line: bar, counts, percent, rate, ETA, extra. */
static void draw_tty(ctl_progress *p, double now)
{
    const char *extra = p->extra;
    char bar[BAR_WIDTH + 1], c[64], rate[48] = "", eta[32] = "";
    int fill = (int)(fraction(p) * BAR_WIDTH + 0.5);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    counts(p, c, sizeof c);
    double el = now - p->t0, per_s = el > 0 ? (double)(p->done - p->first) / el : 0;
    if (per_s > 0 && p->bytes)
        snprintf(rate, sizeof rate, "  %.1f MB/s", per_s / 1e6);
    else if (per_s > 0)
        snprintf(rate, sizeof rate, "  %.0f/s", per_s);
    if (per_s > 0 && p->done < p->total)
        snprintf(eta, sizeof eta, "  ETA %.0f s", (double)(p->total - p->done) / per_s);
    fprintf(p->out, "\r%s: [%s] %s (%.1f%%)%s%s%s%s\033[K", p->label, bar, c, 100.0 * fraction(p), rate, eta,
            extra[0] ? "  " : "", extra);
    fflush(p->out);
    p->drawn = 1;
    p->shown_at = now;
    p->shown_done = p->done;
}

static void line_pipe(ctl_progress *p, double now)
{
    const char *extra = p->extra;
    char c[64];
    counts(p, c, sizeof c);
    fprintf(p->out, "progress: %s: %s (%d%%), %.1f s%s%s\n", p->label, c, (int)(100.0 * fraction(p)), now - p->t0,
            extra[0] ? ", " : "", extra);
    fflush(p->out);
    p->shown_at = now;
    p->shown_done = p->done;
    p->shown_step = (int)(10.0 * fraction(p));
}

void ctl_progress_update(ctl_progress *p, uint64_t done, uint64_t total, const char *extra)
{
    pthread_mutex_lock(&p->mu);
    if (total > 0)
        p->total = total;
    if (!p->started || done > p->done) {
        if (!p->started)
            p->first = done;
        p->started = 1;
        p->done = done;
        snprintf(p->extra, sizeof p->extra, "%s", extra ? extra : "");
        double now = now_s();
        int end = p->done >= p->total;
        if (p->tty && (end || now - p->shown_at >= TTY_REDRAW_S))
            draw_tty(p, now);
        else if (!p->tty &&
                 (end || (int)(10.0 * fraction(p)) > p->shown_step || now - p->shown_at >= CTL_PROGRESS_PIPE_S))
            line_pipe(p, now);
    }
    pthread_mutex_unlock(&p->mu);
}

void ctl_progress_state(ctl_progress *p, const char *state)
{
    double el = now_s() - p->t0;
    if (p->tty) {
        fprintf(p->out, "\r%s: %s  %.1f s\033[K", p->label, state, el);
        fflush(p->out);
        p->drawn = 1;
    } else if (strcmp(state, p->state) != 0) {
        fprintf(p->out, "progress: %s: %s (%.1f s)\n", p->label, state, el);
        fflush(p->out);
    }
    snprintf(p->state, sizeof p->state, "%s", state);
}

void ctl_progress_end(ctl_progress *p)
{
    if (p->tty && p->drawn && p->started && p->shown_done != p->done)
        draw_tty(p, now_s());
    if (p->tty && p->drawn)
        fputc('\n', p->out);
    else if (!p->tty && p->started && p->shown_done != p->done)
        line_pipe(p, now_s());
    fflush(p->out);
    pthread_mutex_destroy(&p->mu);
}

/*
 * cancels: the worker's subscriber to the cancel channel (sf:{NAME}:cancel).
 *
 * DESIGN. sf-api answers "running; asked to stop" after setting
 * jobs.cancel_requested and PUBLISHes the job's id (sf_queue_publish_cancel;
 * a batch cancel publishes its running members). This thread holds its own
 * Redis connection SUBSCRIBEd to that channel and, for each id, sets the
 * cancel flag of the slot holding that job (assigned or running), so the
 * engine stops at its next check: a cancel lands in milliseconds instead of
 * at the next heartbeat (lease/3). It waits for messages at most
 * CANCEL_WAIT_MS at a time, so it notices the end of the program, and
 * reconnects and subscribes again after a lost connection. Pub/sub is at
 * most once: a message published while it was not subscribed is lost, and
 * the heartbeat, which reads cancel_requested with every lease renewal,
 * stays the fallback. Neither is needed for correctness: the completion
 * itself turns any outcome of a job whose cancel was requested into
 * `cancelled` with no result (sf/job.h).
 */
#include <string.h>

#include "sf/queue.h"
#include "sf/redis.h"

#include "worker.h"

#define CANCEL_WAIT_MS 200

/* Set the cancel flag of the slot holding job id, if any; 1 when one did. */
static int mark(wrk *w, const char *id)
{
    int hit = 0;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < w->n_slots; i++) {
        wrk_slot *s = &w->slots[i];
        if (s->state != SLOT_IDLE && strcmp(s->job.id, id) == 0) {
            atomic_store(&s->cancel, 1);
            hit = 1;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return hit;
}

/* A pub/sub message ["message", channel, id]: the id, else NULL. */
static const char *message_id(const sf_redis_reply *rep)
{
    if (rep == NULL || sf_redis_reply_type(rep) != SF_REDIS_ARRAY || sf_redis_reply_len(rep) != 3)
        return NULL;
    const char *kind = sf_redis_reply_str(sf_redis_reply_at(rep, 0), NULL);
    if (kind == NULL || strcmp(kind, "message") != 0)
        return NULL;
    const char *id = sf_redis_reply_str(sf_redis_reply_at(rep, 2), NULL);
    return id && strlen(id) < SF_JOB_ID_MAX ? id : NULL;
}

/* SUBSCRIBE channel on r, reconnecting while Redis is away; 0 when stopping. */
static int subscribe(wrk *w, sf_redis *r, const char *channel)
{
    for (;;) {
        const char *argv[] = {"SUBSCRIBE", channel};
        sf_redis_reply *rep = NULL;
        sf_err err = {0};
        sf_status st = sf_redis_cmd(r, 2, argv, NULL, &rep, &err);
        sf_redis_reply_free(rep);
        if (st == SF_OK)
            return 1;
        if (st != SF_ERR_UNAVAILABLE) {
            sf_log_warn(w->log, "could not subscribe to the cancel channel", SF_LF_STR("error", err.msg));
            if (wrk_is_stopping(w, NULL))
                return 0;
            wrk_sleep_ms(1000);
        } else if (!wrk_redis_recover(w, r, "cancels", &err, NULL)) {
            return 0;
        }
    }
}

/* Read messages until the program ends (1 = resubscribe after a lost
 * connection, 0 = stopping). */
static int hear(wrk *w, sf_redis *r)
{
    while (!wrk_is_stopping(w, NULL)) {
        sf_redis_reply *rep = NULL;
        sf_err err = {0};
        sf_status st = sf_redis_read_wait(r, CANCEL_WAIT_MS, &rep, &err);
        const char *id = st == SF_OK ? message_id(rep) : NULL;
        if (id && mark(w, id))
            sf_log_info(w->log, "cancel heard; stopping the job", SF_LF_STR("job_id", id));
        sf_redis_reply_free(rep);
        if (st == SF_ERR_UNAVAILABLE)
            return wrk_redis_recover(w, r, "cancels", &err, NULL);
    }
    return 0;
}

void *wrk_cancels_main(void *arg)
{
    wrk *w = arg;
    pthread_setname_np(pthread_self(), "sf-cancels");
    sf_queue *q = NULL;
    sf_err err = {0};
    if (sf_queue_new(w->cfg->queue, NULL, &q, &err) != SF_OK) {
        sf_log_error(w->log, "cancel subscriber not started", SF_LF_STR("error", err.msg));
        return NULL;
    }
    sf_redis *r = wrk_redis_connect(w, "cancels", NULL);
    while (r != NULL && subscribe(w, r, sf_queue_cancel_channel(q)) && hear(w, r))
        ;
    sf_redis_close(r);
    sf_queue_free(q);
    return NULL;
}

/*
 * sf-api: stored logics (logics.c) and schedules (schedules.c), issue 13
 * items 3 and 4.
 *
 * A stored logic is a user's named logic, validated by the submit routes'
 * validator (sf_logic_parse) and versioned: POST creates version 1, PUT
 * adds the next version (versions are immutable, in logic_versions,
 * migration 0014), GET shows the current version or ?version=N, DELETE is
 * soft (jobs keep referring to the version they ran; a deleted logic takes
 * no new submission or schedule: 410 logic_deleted). Another user's logic
 * is 404 on every verb, exactly like a missing one.
 *
 * A schedule fires a logic at the times of a 5-field UTC cron expression
 * (sf/cron.h) as logic_execution jobs (sf-scheduler's cronfire); its logic
 * is a stored logic's version (pinned at creation) or inline; its webhook
 * URL is checked against the address policy the workers use
 * (SF_WEBHOOK_ALLOW_CIDRS, sf/netpolicy.h), and its secret (generated when
 * absent) is returned once, in the creation's answer.
 */
#ifndef API_STORED_H
#define API_STORED_H

#include "api.h"

#define API_NEXT_FIRES 5 /* next firing times a schedule shows */

/* A stored logic's version, resolved for a submission. */
typedef struct api_logic_ref {
    char id[SF_AUTH_ID_MAX];
    int64_t version;
    char *text; /* the version's body (malloc'd; api_logic_ref_free) */
} api_logic_ref;

/* body's "logic_id" (a UUID) and optional "logic_version" (an integer >= 1;
 * absent: the current version) of user into out: 400 for a bad value, 404
 * logic_not_found for another user's or a missing logic or version, 410
 * logic_deleted for a deleted one. Answers and returns 0 on failure. */
int api_logic_ref_resolve(api_app *app, sf_httpd_req *req, sf_db *db, const sf_auth_user *user, json_t *body,
                          api_logic_ref *out);
void api_logic_ref_free(api_logic_ref *r);

/* Validate text with sf_logic_parse; answers 400 invalid_logic listing every
 * error (fields under prefix) and returns 0 when invalid. On success *out
 * (may be NULL) is the compiled logic (sf_logic_free). */
int api_logic_valid(api_app *app, sf_httpd_req *req, const char *prefix, const char *text, sf_logic **out);

/* handlers */
void api_logic_create(sf_httpd_req *req, void *app);
void api_logics_list(sf_httpd_req *req, void *app);
void api_logic_get(sf_httpd_req *req, void *app);
void api_logic_update(sf_httpd_req *req, void *app);
void api_logic_delete(sf_httpd_req *req, void *app);
void api_schedule_create(sf_httpd_req *req, void *app);
void api_schedules_list(sf_httpd_req *req, void *app);
void api_schedule_get(sf_httpd_req *req, void *app);
void api_schedule_delete(sf_httpd_req *req, void *app);
void api_schedule_signals(sf_httpd_req *req, void *app);

#endif

/*
 * sf-api: stored logics: POST/GET /v1/logics, GET/PUT/DELETE
 * /v1/logics/{id}, and the resolution of "logic_id" for the submit routes
 * and schedules; see stored.h.
 *
 * logics holds the current version's name and body and its number;
 * logic_versions every version (migration 0014). A PUT is one statement:
 * the UPDATE of logics (version + 1; its row lock orders concurrent PUTs)
 * and the INSERT of the new version from what it returned.
 */
#include "stored.h"
#include "lists.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf/joblist.h"

#define NAME_MAX_CHARS 200

#define HASH(c) "encode(sha256(convert_to(" c "::text, 'UTF8')), 'hex')"

/* A logic's version as GET shows it (l: logics, v: logic_versions). */
#define LOGIC_JSON                                                                                                     \
    "json_build_object('id', l.id, 'name', v.name, 'version', v.version, 'current_version', l.version, "               \
    "'logic_hash', v.logic_hash, 'logic', v.body, 'created_at', v.created_at, 'updated_at', l.updated_at, "            \
    "'deleted_at', l.deleted_at, 'links', json_build_object('self', '/v1/logics/' || l.id))::text"

static int bad(sf_httpd_req *req, int http, const char *code, const char *field, const char *msg)
{
    sf_httpd_reply_error(req, http, code, msg, field);
    return 0;
}

/* Run a query; answers 5xx and returns NULL on failure. */
static sf_db_res *query(api_app *app, sf_httpd_req *req, const char *sql, int n, const char *const *p)
{
    sf_db *db = NULL;
    sf_db_res *res = NULL;
    sf_err err = {0};
    sf_status st = api_db(app, &db, &err);
    if (st == SF_OK)
        st = sf_db_query(db, sql, n, p, &res, &err);
    if (st != SF_OK)
        api_fail(app, req, st, &err);
    return st == SF_OK ? res : NULL;
}

int api_logic_valid(api_app *app, sf_httpd_req *req, const char *prefix, const char *text, sf_logic **out)
{
    sf_logic *logic = NULL;
    sf_logic_errors *errs = calloc(1, sizeof *errs);
    sf_err err = {0};
    if (out)
        *out = NULL;
    if (errs == NULL) {
        api_fail(app, req, SF_ERR_NOMEM, NULL);
        return 0;
    }
    sf_status st = sf_logic_parse(text, strlen(text), &logic, errs, &err);
    if (st == SF_OK && out)
        *out = logic;
    else
        sf_logic_free(logic);
    if (st == SF_ERR_NOMEM)
        api_fail(app, req, st, &err);
    else if (st != SF_OK && errs->count == 0)
        sf_httpd_reply_error(req, 400, "invalid_logic", err.msg, prefix);
    else if (st != SF_OK)
        api_reply_logic_errors(app, req, prefix, errs);
    free(errs);
    return st == SF_OK;
}

void api_logic_ref_free(api_logic_ref *r)
{
    free(r->text);
    r->text = NULL;
}

/* The {id} capture when it is a UUID; else answers 404 and returns NULL. */
static const char *logic_id(sf_httpd_req *req)
{
    const char *id = sf_httpd_param(req, "id");
    if (!api_is_uuid(id)) {
        bad(req, 404, "logic_not_found", NULL, "no such logic");
        return NULL;
    }
    return id;
}

/* Answer 404 (none of the user's) or 410 (deleted) for a row (deleted?) or none. */
static void reply_gone(sf_httpd_req *req, const sf_db_res *res, const char *field)
{
    if (res == NULL || sf_db_nrows(res) == 0)
        bad(req, 404, "logic_not_found", field, field ? "logic_id: no such logic" : "no such logic");
    else
        bad(req, 410, "logic_deleted", field,
            "the logic was deleted: it takes no new submission (jobs that ran it keep their version)");
}

static const char RESOLVE_SQL[] =
    "SELECT l.deleted_at IS NOT NULL, v.version, v.body::text FROM logics l "
    "LEFT JOIN logic_versions v ON v.logic_id = l.id AND v.version = coalesce($3::integer, l.version) "
    "WHERE l.id = $1::uuid AND l.user_id = $2::uuid";

/* "logic_version": absent (NULL text) or an integer >= 1. */
static int version_arg(sf_httpd_req *req, json_t *v, char *buf, size_t size, const char **out)
{
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 1;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2147483647)
        return bad(req, 400, "invalid_request", "logic_version", "logic_version: must be an integer of 1 or more");
    snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    *out = buf;
    return 1;
}

int api_logic_ref_resolve(api_app *app, sf_httpd_req *req, sf_db *db, const sf_auth_user *user, json_t *body,
                          api_logic_ref *out)
{
    json_t *id = json_object_get(body, "logic_id");
    char vbuf[24];
    const char *version = NULL;
    memset(out, 0, sizeof *out);
    if (!json_is_string(id) || !api_is_uuid(json_string_value(id)))
        return bad(req, 400, "invalid_request", "logic_id", "logic_id: must be a logic id (a UUID)");
    if (!version_arg(req, json_object_get(body, "logic_version"), vbuf, sizeof vbuf, &version))
        return 0;
    const char *p[] = {json_string_value(id), user->id, version};
    sf_db_res *res = NULL;
    sf_err err = {0};
    sf_status st = sf_db_query(db, RESOLVE_SQL, 3, p, &res, &err);
    int ok = 0;
    if (st != SF_OK)
        api_fail(app, req, st, &err);
    else if (sf_db_nrows(res) == 0 || strcmp(sf_db_get(res, 0, 0), "t") == 0)
        reply_gone(req, res, "logic_id");
    else if (sf_db_is_null(res, 0, 1))
        bad(req, 404, "logic_not_found", "logic_version", "logic_version: the logic has no such version");
    else if ((out->text = strdup(sf_db_get(res, 0, 2))) == NULL)
        api_fail(app, req, SF_ERR_NOMEM, NULL);
    else {
        snprintf(out->id, sizeof out->id, "%s", json_string_value(id));
        out->version = strtoll(sf_db_get(res, 0, 1), NULL, 10);
        ok = 1;
    }
    sf_db_res_free(res);
    return ok;
}

/* ---- the body of POST and PUT ------------------------------------------------------ */

typedef struct logic_in {
    const char *name; /* NULL: keep (PUT) */
    char *text;       /* the logic, compact JSON (malloc'd) */
} logic_in;

/* {"name"?, "logic"}: name 1 to 200 characters (POST: the logic's own
 * "name" when absent), logic valid. Answers and returns 0 when bad. */
static int logic_body(api_app *app, sf_httpd_req *req, json_t *body, int create, logic_in *in)
{
    static const char *const KEYS[] = {"name", "logic", NULL};
    json_t *logic = json_object_get(body, "logic"), *name = json_object_get(body, "name");
    memset(in, 0, sizeof *in);
    if (!api_only_keys(req, body, KEYS))
        return 0;
    if (!json_is_object(logic))
        return bad(req, 400, "invalid_request", "logic", "logic: required (a JSON object, see Logic format)");
    if (name == NULL && create)
        name = json_object_get(logic, "name");
    if (name != NULL &&
        (!json_is_string(name) || json_string_length(name) < 1 || json_string_length(name) > NAME_MAX_CHARS ||
         strlen(json_string_value(name)) != json_string_length(name)))
        return bad(req, 400, "invalid_request", "name", "name: must be a string of 1 to 200 characters");
    if (name == NULL && create)
        return bad(req, 400, "invalid_request", "name", "name: required (or a \"name\" in the logic)");
    in->name = json_string_value(name);
    in->text = json_dumps(logic, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (in->text == NULL) {
        api_fail(app, req, SF_ERR_NOMEM, NULL);
        return 0;
    }
    return api_logic_valid(app, req, "logic", in->text, NULL);
}

/* ---- POST /v1/logics ------------------------------------------------------------------ */

static const char CREATE_SQL[] =
    "WITH l AS (INSERT INTO logics (user_id, name, body) VALUES ($1::uuid, $2, $3::jsonb) "
    "  RETURNING id, name, body, version, created_at, updated_at, deleted_at), "
    "v AS (INSERT INTO logic_versions (logic_id, version, name, body, logic_hash, created_at) "
    "  SELECT id, 1, name, body, " HASH("body") ", created_at FROM l "
                                                "  RETURNING logic_id, version, name, body, logic_hash, created_at) "
                                                "SELECT " LOGIC_JSON " FROM l JOIN v ON v.logic_id = l.id";

static void reply_logic(api_app *app, sf_httpd_req *req, int status, const sf_db_res *res, int col)
{
    char self[96];
    json_t *out = api_json_from_db(sf_db_get(res, 0, col));
    snprintf(self, sizeof self, "/v1/logics/%s", json_string_value(json_object_get(out, "id")));
    if (status == 201)
        sf_httpd_set_header(req, "Location", self, NULL);
    api_reply_json(app, req, status, out);
}

void api_logic_create(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    json_t *body = api_body_object(req);
    logic_in in;
    sf_db_res *res = NULL;
    if (body != NULL && logic_body(app, req, body, 1, &in)) {
        const char *p[] = {user.id, in.name, in.text};
        if ((res = query(app, req, CREATE_SQL, 3, p)) != NULL)
            reply_logic(app, req, 201, res, 0);
    }
    if (body != NULL)
        free(in.text);
    sf_db_res_free(res);
    json_decref(body);
}

/* ---- GET /v1/logics, GET /v1/logics/{id} ------------------------------------------------ */

void api_logics_list(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    if (!api_authenticate(app, req, &user))
        return;
    sf_joblist_filter f = {.user_id = user.id, .limit = SF_JOBLIST_LIMIT_DEFAULT};
    sf_joblist_query q;
    sf_err err = {0};
    if (!api_page_args(req, &f))
        return;
    sf_status st = sf_joblist_logics(&f, &q, &err);
    if (st == SF_ERR_INVALID)
        bad(req, 400, "invalid_request", NULL, err.msg);
    else if (st != SF_OK)
        api_fail(app, req, st, &err);
    else
        api_reply_page(app, req, &f, &q);
}

static const char GET_SQL[] = "SELECT l.deleted_at IS NOT NULL, v.version IS NULL, " LOGIC_JSON " FROM logics l "
                              "LEFT JOIN logic_versions v ON v.logic_id = l.id "
                              "AND v.version = coalesce($3::integer, l.version) "
                              "WHERE l.id = $1::uuid AND l.user_id = $2::uuid";

void api_logic_get(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = logic_id(req)) == NULL)
        return;
    const char *version = sf_httpd_query(req, "version");
    int64_t n = 0;
    if (version && sf_config_parse_int(version, 1, 2147483647, &n, NULL) != SF_OK) {
        bad(req, 400, "invalid_request", "version", "version: must be an integer of 1 or more");
        return;
    }
    const char *p[] = {id, user.id, version};
    sf_db_res *res = query(app, req, GET_SQL, 3, p);
    if (res == NULL)
        return;
    if (sf_db_nrows(res) == 0 || (version == NULL && strcmp(sf_db_get(res, 0, 0), "t") == 0))
        reply_gone(req, res, NULL); /* a deleted logic's versions stay readable by number */
    else if (strcmp(sf_db_get(res, 0, 1), "t") == 0)
        bad(req, 404, "logic_not_found", "version", "version: the logic has no such version");
    else
        reply_logic(app, req, 200, res, 2);
    sf_db_res_free(res);
}

/* ---- PUT /v1/logics/{id}, DELETE /v1/logics/{id} ---------------------------------------------- */

/* After an UPDATE that matched no row: 404 or 410. */
static void reply_not_updated(api_app *app, sf_httpd_req *req, const char *id, const sf_auth_user *user)
{
    const char *p[] = {id, user->id};
    sf_db_res *res = query(app, req, "SELECT 1 FROM logics WHERE id = $1::uuid AND user_id = $2::uuid", 2, p);
    if (res != NULL)
        reply_gone(req, res, NULL);
    sf_db_res_free(res);
}

static const char UPDATE_SQL[] =
    "WITH l AS (UPDATE logics SET name = coalesce($3, name), body = $4::jsonb, version = version + 1, "
    "  updated_at = now() WHERE id = $1::uuid AND user_id = $2::uuid AND deleted_at IS NULL "
    "  RETURNING id, name, body, version, created_at, updated_at, deleted_at), "
    "v AS (INSERT INTO logic_versions (logic_id, version, name, body, logic_hash, created_at) "
    "  SELECT id, version, name, body, " HASH(
        "body") ", updated_at FROM l "
                "  RETURNING logic_id, version, name, body, logic_hash, created_at) "
                "SELECT " LOGIC_JSON " FROM l JOIN v ON v.logic_id = l.id";

void api_logic_update(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = logic_id(req)) == NULL)
        return;
    json_t *body = api_body_object(req);
    logic_in in;
    sf_db_res *res = NULL;
    if (body != NULL && logic_body(app, req, body, 0, &in)) {
        const char *p[] = {id, user.id, in.name, in.text};
        if ((res = query(app, req, UPDATE_SQL, 4, p)) != NULL && sf_db_nrows(res) == 1)
            reply_logic(app, req, 200, res, 0);
        else if (res != NULL)
            reply_not_updated(app, req, id, &user);
    }
    if (body != NULL)
        free(in.text);
    sf_db_res_free(res);
    json_decref(body);
}

void api_logic_delete(sf_httpd_req *req, void *appv)
{
    api_app *app = appv;
    sf_auth_user user;
    const char *id;
    if (!api_authenticate(app, req, &user) || (id = logic_id(req)) == NULL)
        return;
    const char *p[] = {id, user.id};
    sf_db_res *res = query(app, req,
                           "UPDATE logics SET deleted_at = now() WHERE id = $1::uuid AND user_id = $2::uuid "
                           "AND deleted_at IS NULL RETURNING json_build_object('id', id, 'version', version, "
                           "'deleted_at', deleted_at)::text",
                           2, p);
    if (res != NULL && sf_db_nrows(res) == 1)
        api_reply_text(app, req, 200, sf_db_get(res, 0, 0));
    else if (res != NULL)
        reply_not_updated(app, req, id, &user);
    sf_db_res_free(res);
}

/*
 * The OpenAPI document (api/openapi.json, GET /openapi.json) against the real
 * sf-api: a private farm (sf-api, sf-scheduler, one sf-worker) with a data
 * set and two users, then tests/tools/check-openapi.mjs (node, ajv's JSON
 * Schema 2020-12) checks that every route of api/ops.c is documented and
 * every documented path is a route, and sends each route requests that
 * succeed and that fail, validating status, content type and body against
 * the document. The script's output is printed when it fails (it names the
 * route and the mismatch).
 */
#include "../support/farm.h"

#include "sf/auth.h"

#define METRICS_TOKEN "openapi-scrape"

static void setup(void)
{
    farm_setup();
}

static void teardown(void)
{
    farm_teardown();
}

TestSuite(openapi, .init = setup, .fini = teardown, .timeout = 300);

static void user_key(const char *email, char *env, size_t size, const char *var)
{
    char id[SF_AUTH_ID_MAX];
    sf_auth_key key;
    sf_err err = {0};
    cr_assert_eq(sf_auth_user_add(F.db, email, email, "premium", id, &key, &err), SF_OK, "%s", err.msg);
    snprintf(env, size, "%s=%s", var, key.text);
    sf_auth_key_wipe(&key);
}

static int api_up(void *url)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "curl -sf -o /dev/null %s/ready", (const char *)url);
    return system(cmd) == 0;
}

Test(openapi, every_route_documented_and_answering_as_documented)
{
    char key1[160], key2[160], port[32], url[96], url_env[128];
    farm_dataset("OA", "1m", 400, 7);
    user_key("one@openapi.test", key1, sizeof key1, "SF_API_KEY");
    user_key("two@openapi.test", key2, sizeof key2, "SF_API_KEY2");
    int p = sf_proc_free_port();
    snprintf(port, sizeof port, "PORT=%d", p);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", p);
    snprintf(url_env, sizeof url_env, "SF_API_URL=%s", url);
    const char *api_env[] = {port, "BIND_ADDRESS=127.0.0.1", "METRICS_TOKEN=" METRICS_TOKEN, NULL};
    farm_start("api", "sf-api", api_env);
    farm_scheduler("sched", NULL);
    sf_proc *w1 = farm_worker("w1", 2, 5, NULL);
    FARM_ASSERT(sf_proc_wait_until(api_up, url, 15000, 100), "sf-api did not become ready on %s", url);

    /* the checker freezes the worker (SIGSTOP) around the cancel of a job
     * that must still be waiting, so that cancel never races the worker */
    char worker_pid[64];
    snprintf(worker_pid, sizeof worker_pid, "SF_WORKER_PID=%d", (int)w1->pid);
    const char *env[] = {url_env,           key1,       key2, "SF_METRICS_TOKEN=" METRICS_TOKEN, "SF_SYMBOL=OA",
                         "SF_TIMEFRAME=1m", worker_pid, NULL};
    const char *argv[] = {"node", SF_SOURCE_DIR "/tests/tools/check-openapi.mjs", NULL};
    sf_proc *node = sf_proc_start("check-openapi", "/usr/bin/node", argv, env, F.dir);
    int exited = sf_proc_wait_exit(node, 240000);
    char *out = sf_proc_log_read(node, 1 << 20);
    if (!exited || sf_proc_exit_code(node) != 0)
        fprintf(stderr, "%s\n", out ? out : "(no output)");
    FARM_ASSERT(exited, "check-openapi.mjs did not finish within 240 s");
    FARM_ASSERT(sf_proc_exit_code(node) == 0, "check-openapi.mjs failed (its output is above)");
    free(out);
}

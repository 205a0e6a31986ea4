/* sfctl me: GET /v1/me; see me.h. */
#include "me.h"

#include <jansson.h>
#include <stdio.h>

#include "cli.h"

static const char me_usage[] = "usage: sfctl me [--json]\n"
                               "\n"
                               "Show who SF_API_KEY is: the user, the tier, its quotas (running, queued,\n"
                               "sweep members; \"unlimited\" when none), its request rate limit, and the jobs\n"
                               "counted against them now.\n";

/* A quota's value: the number, or "unlimited" for null. */
static void print_limit(const char *label, json_t *v, json_t *usage)
{
    char lim[32] = "unlimited";
    if (json_is_integer(v))
        snprintf(lim, sizeof lim, "%lld", (long long)json_integer_value(v));
    if (usage != NULL)
        printf("%-16s %lld of %s\n", label, (long long)json_integer_value(usage), lim);
    else
        printf("%-16s %s\n", label, lim);
}

static void print_me(json_t *me)
{
    json_t *q = json_object_get(me, "quotas"), *u = json_object_get(me, "usage");
    printf("%-16s %s\n%-16s %s\n%-16s %s\n%-16s %lld\n", "user", json_string_value(json_object_get(me, "user_id")),
           "email", json_string_value(json_object_get(me, "email")), "tier",
           json_string_value(json_object_get(me, "tier")), "key id",
           (long long)json_integer_value(json_object_get(me, "key_id")));
    print_limit("running", json_object_get(q, "running"), json_object_get(u, "running"));
    print_limit("queued", json_object_get(q, "queued"), json_object_get(u, "queued"));
    print_limit("sweep members", json_object_get(q, "sweep_members"), NULL);
    print_limit("rate per second", json_object_get(q, "rate_per_second"), NULL);
    print_limit("rate burst", json_object_get(q, "rate_burst"), NULL);
}

int ctl_me(int argc, char **argv)
{
    const char *pos[1];
    int json_out = 0;
    size_t npos = 0;
    const cli_opt opts[] = {{"json", 0, NULL, &json_out, NULL, "the API's answer (GET /v1/me) as JSON"}};
    int rc = cli_parse(argc, argv, 1, opts, 1, me_usage, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    cli_api api;
    if ((rc = cli_api_open(&api)) >= 0)
        return rc;
    json_t *me = NULL;
    long status = 0;
    rc = cli_api_call(&api, "GET", "/v1/me", NULL, NULL, 0, &status, &me);
    if (rc < 0 && json_out) {
        json_dumpf(me, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else if (rc < 0) {
        print_me(me);
    }
    json_decref(me);
    cli_api_close(&api);
    return rc < 0 ? CTL_EXIT_OK : rc;
}

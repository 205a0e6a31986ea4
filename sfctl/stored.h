/*
 * stored: the sfctl commands over stored logics and schedules of sf-api:
 *
 *   sfctl logics create --file L.json [--name N] | list | show ID [--version N]
 *                | update ID --file L.json [--name N] | delete ID
 *   sfctl schedules create --name N --cron C (--logic-id ID [--logic-version N] | --file L.json)
 *                --symbol S --timeframe TF [--catch-up P] [--webhook-url U [--webhook-secret S]]
 *                | list | show ID | delete ID | signals ID
 *
 * Output: the API's JSON, indented (a list: one page, --cursor for the
 * next; --all for every page's items). Exit statuses are exit.h's.
 *
 * Thread safety: called once from main.
 */
#ifndef SFCTL_STORED_H
#define SFCTL_STORED_H

int ctl_logics(int argc, char **argv);
int ctl_schedules(int argc, char **argv);

#endif

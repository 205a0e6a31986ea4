/*
 * remote: the sfctl commands that go through sf-api (SF_API_URL, SF_API_KEY):
 *
 *   sfctl submit --logic L.json --symbol S --timeframe TF [--priority p] [--wait]
 *   sfctl sweep --logic L.json --grid G.json --symbol S --timeframe TF [--watch]
 *   sfctl status ID          sfctl result ID [--json]
 *   sfctl batch ID [--top K] [--by M] [--json]
 *   sfctl watch BATCH_ID     sfctl cancel ID
 *
 * `sfctl sweep` with --data FILE is the local sweep (local.c); ctl_sweep_any
 * dispatches on that. Exit statuses are exit.h's: an API answer is mapped by
 * cli_http_exit (401/403: 4, 404: 5, other 4xx: 2 with the API's message,
 * 5xx: 3), a network failure is 3, a job that failed or a finished sweep
 * with failed or dead members is 1.
 *
 * Thread safety: called once from main.
 */
#ifndef SFCTL_REMOTE_H
#define SFCTL_REMOTE_H

int ctl_submit(int argc, char **argv);
int ctl_sweep_any(int argc, char **argv);
int ctl_status(int argc, char **argv);
int ctl_result(int argc, char **argv);
int ctl_batch(int argc, char **argv);
int ctl_watch(int argc, char **argv);
int ctl_cancel(int argc, char **argv);

#endif

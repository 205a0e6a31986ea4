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
 * dispatches on that. An API answer 4xx exits 2 with the API's message, a
 * server or network failure exits 1.
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

/*
 * lists: the sfctl commands over the lists and reruns of sf-api:
 *
 *   sfctl jobs [filters] [--limit N] [--cursor C | --all] [--json]
 *   sfctl batches [--since T] [--until T] [--limit N] [--cursor C | --all] [--json]
 *   sfctl rerun JOB_ID | --batch ID [--status S,...] | filters  [--dry-run | --yes] [--latest]
 *
 * Output: a table on a terminal, TSV otherwise (one line a row, a header
 * first), or with --json the API's page ({"items", "next_cursor"}; with
 * --all every page's items in one {"items"} document). A rerun of a batch
 * or a filter without --yes only shows the dry run's count and exits 1 with
 * a hint; --dry-run shows it and exits 0. Exit statuses are exit.h's.
 *
 * Thread safety: called once from main.
 */
#ifndef SFCTL_LISTS_H
#define SFCTL_LISTS_H

int ctl_jobs(int argc, char **argv);
int ctl_batches(int argc, char **argv);
int ctl_rerun(int argc, char **argv);

#endif

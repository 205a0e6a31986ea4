/* sfctl: the command line of the backtest farm. One table maps a command name
 * to its function and its one-line summary; `sfctl --help` lists it and
 * `sfctl <command> --help` is each command's own usage; `sfctl --version`
 * (or `sfctl version`) prints "sfctl <version>". Exit statuses:
 * exit.h (0 ok, 1 a job failed, 2 usage, 3 unreachable, 4 authentication,
 * 5 not found), listed by `sfctl --help`. */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "cli.h"
#include "data.h"
#include "exit.h"
#include "lists.h"
#include "local.h"
#include "me.h"
#include "remote.h"
#include "sf/daemon.h"
#include "stored.h"

typedef int (*ctl_cmd_fn)(int argc, char **argv);

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct {
    const char *name;
    ctl_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"backtest", ctl_backtest, "run a logic over a local CSV file and print its metrics"},
    {"sweep", ctl_sweep_any, "run a parameter grid: on the farm, or over a local CSV file with --data"},
    {"indicator", ctl_indicator, "print an indicator's values over a local CSV file as CSV"},
    {"submit", ctl_submit, "submit a backtest to the farm (--wait for its metrics)"},
    {"status", ctl_status, "show a job's status"},
    {"result", ctl_result, "show a finished job's metrics"},
    {"batch", ctl_batch, "show a sweep's progress and leaderboard"},
    {"watch", ctl_watch, "follow a sweep's progress until it finishes"},
    {"cancel", ctl_cancel, "cancel a job or a whole sweep"},
    {"jobs", ctl_jobs, "list your jobs, newest first, with filters"},
    {"batches", ctl_batches, "list your sweeps, newest first"},
    {"rerun", ctl_rerun, "run a job, a sweep's failed members or every job of a filter again"},
    {"logics", ctl_logics, "store, list, show, update and delete versioned logics"},
    {"schedules", ctl_schedules, "create, list, show and delete live schedules; their signals"},
    {"data", ctl_data, "import, fetch and list market data sets"},
    {"me", ctl_me, "show your user, tier, quotas and what counts against them now"},
    {"admin", ctl_admin, "users, tiers and API keys (list, add, rotate, revoke; straight in PostgreSQL)"},
    {"version", cmd_version, "print sfctl's version (also sfctl --version)"},
    {"help", cmd_help, "show this help, or a command's help (sfctl help <command>)"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: sfctl <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`sfctl <command> --help` describes a command's options.\n\n%s", CTL_EXIT_HELP);
}

static int find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return (int)i;
    return -1;
}

static const char help_usage[] = "usage: sfctl help [COMMAND]\n"
                                 "\n"
                                 "Show the list of commands, or COMMAND's help (as sfctl COMMAND --help).\n";

static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return CTL_EXIT_OK;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(help_usage, stdout);
        cli_print_opts(stdout, NULL, 0);
        return CTL_EXIT_OK;
    }
    int k = find_command(argv[1]);
    if (k < 0 || commands[k].fn == cmd_help) {
        if (k < 0)
            fprintf(stderr, "sfctl: unknown command \"%.64s\" (see sfctl --help)\n", argv[1]);
        else
            usage(stdout);
        return k < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    char help_opt[] = "--help";
    char *sub[] = {argv[1], help_opt, NULL};
    return commands[k].fn(2, sub);
}

static const char version_usage[] = "usage: sfctl version\n       sfctl --version\n"
                                    "\n"
                                    "Print \"sfctl <version>\" (the project's version, as sf-api --version).\n";

static int cmd_version(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(version_usage, stdout);
        cli_print_opts(stdout, NULL, 0);
        return CTL_EXIT_OK;
    }
    if (argc >= 2) {
        fprintf(stderr, "sfctl: version: unexpected argument \"%.64s\" (see sfctl version --help)\n", argv[1]);
        return CTL_EXIT_USAGE;
    }
    printf("sfctl %s\n", sf_daemon_version());
    return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(1, argv);
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(argc - 1, argv + 1);
    int k = find_command(argv[1]);
    if (k < 0) {
        fprintf(stderr, "sfctl: unknown command \"%.64s\" (see sfctl --help)\n", argv[1]);
        return CTL_EXIT_USAGE;
    }
    return commands[k].fn(argc - 1, argv + 1);
}

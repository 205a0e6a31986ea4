/*
 * local: the sfctl commands that run the engine on local files, with no
 * servers: backtest, sweep and indicator.
 *
 * Each command takes the arguments after "sfctl" (argv[0] is the command
 * name), prints its output on stdout and any error on stderr as one line
 * "sfctl: <message>" (logic validation: one "sfctl: path: message" line per
 * problem), and returns the process exit status (exit.h): CTL_EXIT_OK,
 * CTL_EXIT_FAIL (the run itself failed: out of memory, output error) or
 * CTL_EXIT_USAGE (bad arguments or bad input files).
 *
 * Thread safety: called once from main.
 */
#ifndef SFCTL_LOCAL_H
#define SFCTL_LOCAL_H

#include "exit.h"

int ctl_backtest(int argc, char **argv);
int ctl_sweep(int argc, char **argv);
int ctl_indicator(int argc, char **argv);

#endif

/*
 * data: `sfctl data ...`, market data sets straight against PostgreSQL
 * (DATABASE_URL):
 *
 *   sfctl data import --symbol S --timeframe TF FILE.csv
 *   sfctl data fetch --symbol S --timeframe TF URL [--max-bytes N] [--timeout-ms MS]
 *   sfctl data list
 *
 * The CSV is validated whole before anything is written, and an import
 * replaces the data set in one transaction (sf/dataset.h).
 * Thread safety: called once from main.
 */
#ifndef SFCTL_DATA_H
#define SFCTL_DATA_H

int ctl_data(int argc, char **argv);

#endif

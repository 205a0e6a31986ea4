/*
 * admin: `sfctl admin ...`, user and API key administration straight against
 * PostgreSQL (DATABASE_URL), for operators and scripts/stack:
 *
 *   sfctl admin user add --email E --name N [--tier T] [--key-only]
 *   sfctl admin key add --email E [--key-only]
 *   sfctl admin key revoke --id N
 *
 * A new key is printed once (with --key-only: only the key, one line).
 * Thread safety: called once from main.
 */
#ifndef SFCTL_ADMIN_H
#define SFCTL_ADMIN_H

int ctl_admin(int argc, char **argv);

#endif

/*
 * me: `sfctl me [--json]`, who the API key is (GET /v1/me): the user, the
 * tier, its quotas and rate limit, and the jobs counted against them now.
 * Exit statuses as every API command (exit.h). Thread safety: called once
 * from main.
 */
#ifndef SFCTL_ME_H
#define SFCTL_ME_H

int ctl_me(int argc, char **argv);

#endif

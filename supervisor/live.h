/*
 * live: the live supervisor: poll the broker, decide with policy.h, start
 * and stop workers, persist the state file. Runs until SIGTERM or SIGINT.
 */
#ifndef SLUICE_SUPERVISOR_LIVE_H
#define SLUICE_SUPERVISOR_LIVE_H

#include "config.h"

/* Supervises workers as configured by c (loaded from config_path, or NULL
 * for the embedded defaults; borrowed). Returns the process exit status. */
int sup_run_live(const cfg *c, const char *config_path);

#endif

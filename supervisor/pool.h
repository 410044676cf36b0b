/*
 * pool: the worker processes. Starts them with posix_spawn (NNG is not
 * fork-safe), each in its own process group; stops them with SIGTERM so
 * they finish and ack their batch, and SIGKILL only after shutdown_grace;
 * restarts a worker that dies unasked, with exponential backoff, and
 * reports one that crashes repeatedly as crash-looping instead of
 * restarting it in a tight loop. Every worker watches its supervisor
 * (PR_SET_PDEATHSIG, see worker/) so none outlives it.
 *
 * Each worker tells its state on a pipe (fd 3 in the worker,
 * SLUICE_STATUS_FD): 'B' when it starts holding leases, 'I' when it holds
 * none. Scale-down stops idle workers first.
 *
 * Not thread-safe: the supervisor's loop is its only user.
 */
#ifndef SLUICE_SUP_POOL_H
#define SLUICE_SUP_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sup_pool sup_pool;

typedef struct sup_pool_opts {
	char *const *argv;        /* the worker command, NULL-terminated; copied */
	int64_t shutdown_grace_ms;
	int64_t restart_base_ms;
	int64_t restart_max_ms;
	int crash_loop_count;     /* crashes within crash_loop_window_ms that make a loop */
	int64_t crash_loop_window_ms;
} sup_pool_opts;

/* Returns 0, or -1 (out of memory) with a message in err. */
int sup_pool_open(const sup_pool_opts *o, sup_pool **out, char *err, size_t errlen);
/* Stops every worker (SIGTERM, then SIGKILL after the grace), waits for
 * them and frees. Accepts NULL. */
void sup_pool_close(sup_pool *p);

/* Starts or stops workers so that n are wanted (now: monotonic ms). */
void sup_pool_resize(sup_pool *p, int n, int64_t now_ms);
/* Reaps exited children, reads status pipes, restarts crashed workers whose
 * backoff has passed, and SIGKILLs stopping workers past their grace. */
void sup_pool_tick(sup_pool *p, int64_t now_ms);

int sup_pool_wanted(const sup_pool *p);   /* the last resize */
int sup_pool_running(const sup_pool *p);  /* alive and not being stopped */
int sup_pool_busy(const sup_pool *p);     /* of those, holding leases */
int sup_pool_stopping(const sup_pool *p); /* told to stop, not yet gone */
uint64_t sup_pool_restarts(const sup_pool *p);
bool sup_pool_crash_looping(const sup_pool *p);

/* File descriptors worth waking for (status pipes), for poll(2): fills up
 * to max and returns how many. */
size_t sup_pool_fds(const sup_pool *p, int *fds, size_t max);

#endif

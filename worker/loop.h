/*
 * loop: the worker's cycle: lease a batch (lingering for it to fill),
 * hand it to the sink, acknowledge what the sink took, nack what failed,
 * hand back what it could not try. Around it: the circuit breaker, the
 * keepalive thread that touches leases while a long batch runs, the
 * health report sent with each ACK, the status byte for the supervisor,
 * and the periodic SUMMARY line.
 *
 * Threads: wrk_loop_run runs on one thread (it alone uses the sink);
 * wrk_loop_stop may be called from any other thread. The loop starts and
 * joins its keepalive thread itself.
 */
#ifndef SLUICE_WRK_LOOP_H
#define SLUICE_WRK_LOOP_H

#include "client.h"
#include "config.h"
#include "sink.h"

#define WRK_OK 0
#define WRK_E_NOMEM 1
#define WRK_E_THREAD 2

typedef struct wrk_loop wrk_loop;

typedef struct wrk_loop_cfg {
	const cfg_worker *worker;  /* borrowed: queue, batch, linger, visibility, grace, breaker */
	sluice_client *client;     /* borrowed */
	const wrk_sink_ops *ops;   /* the sink's table */
	void *sink;                /* borrowed: opened with ops->open */
	int status_fd;             /* SLUICE_STATUS_FD, non-blocking; -1 = none */
} wrk_loop_cfg;

/* Returns WRK_OK or WRK_E_NOMEM. c is copied. */
int wrk_loop_open(const wrk_loop_cfg *c, wrk_loop **out);

/* Works until wrk_loop_stop, then finishes the batch in hand within the
 * shutdown grace and returns WRK_OK (WRK_E_THREAD if the keepalive thread
 * cannot start). Transient failures (sink, broker) never end it. */
int wrk_loop_run(wrk_loop *l);

/* Asks the loop to stop leasing and finish: safe from any thread, not
 * from a signal handler. */
void wrk_loop_stop(wrk_loop *l);

void wrk_loop_close(wrk_loop *l); /* after run returned; accepts NULL */

#endif

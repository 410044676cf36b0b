/*
 * fixture: what integration tests share: a configuration in the case's
 * scratch directory, the real programs started from build/bin, a client,
 * and counting rows in a SQLite sink. Built on harness.h.
 */
#ifndef SLUICE_FIXTURE_H
#define SLUICE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"

/* Extra YAML lines for each section of the configuration; each may be NULL
 * and holds lines without indentation ("max_depth: 10\nmax_attempts: 2"):
 * fx_config indents them into their section. */
typedef struct fx_cfg {
	const char *broker;
	const char *queue_defaults;
	const char *queues;     /* raw, already indented by 2 per queue level */
	const char *worker;
	const char *sink;
	const char *supervisor;
} fx_cfg;

/* Where the programs of the current case are (set by fx_config). */
typedef struct fx_env {
	const char *config;    /* th_dir()/sluice.yaml */
	const char *url;       /* the broker's tcp://127.0.0.1:PORT */
	const char *ipc;       /* the broker's ipc:// path */
	const char *http;      /* 127.0.0.1:PORT */
	const char *data;      /* the broker's database */
	const char *sink;      /* the worker's SQLite sink */
	const char *state;     /* the supervisor's state file */
} fx_env;

extern fx_env fx;

/* Writes th_dir()/sluice.yaml: a broker on a fresh port and ipc path,
 * everything stored in the scratch directory, plus extra. Returns its path. */
const char *fx_config(const fx_cfg *extra);

/* Starts sluice-broker -c fx.config, logging to th_path(log), and waits
 * until it answers PING (fails the case after 10 s). */
pid_t fx_broker(const char *log);
/* Starts sluice-worker -c fx.config (plus argv extras, NULL-terminated). */
pid_t fx_worker(const char *log, const char *const *extra);
/* Starts sluice-supervisor -c fx.config (plus extras). */
pid_t fx_supervisor(const char *log, const char *const *extra);

/* A client to fx.url (closed when the case ends). */
sluice_client *fx_client(void);
/* Enqueues n messages "PREFIX-i" (i from start) to queue in batches;
 * returns how many were acknowledged. */
long fx_put(sluice_client *c, const char *queue, const char *prefix, long start, long n,
            int batch);
/* Producers: FX_PRODUCERS threads, each with its own client, enqueuing
 * "PREFIX-i" for i in [0, n) to queue between them in batches of 500,
 * spread evenly over spread_ms (0: as fast as the broker takes them). */
#define FX_PRODUCERS 4
typedef struct fx_producers fx_producers;
fx_producers *fx_produce(const char *queue, const char *prefix, long n, int64_t spread_ms);
/* Waits for them and frees; returns how many messages were acknowledged. */
long fx_produce_wait(fx_producers *p);

/* A queue's stat field (-1 if absent or the call failed). */
int64_t fx_stat(sluice_client *c, const char *queue, const char *field);
/* Waits until the backlog (ready + delayed + in flight) of queue is 0. */
bool fx_drained(sluice_client *c, const char *queue, int timeout_ms);

/* Rows and distinct ids in a SQLite sink table (-1 on error). */
void fx_sink_count(const char *db, const char *table, long *rows, long *distinct);
/* Payloads "PREFIX-i" for i in [start, start+n) missing from, or present more
 * than once in, the sink table. */
void fx_sink_audit(const char *db, const char *table, const char *prefix, long start, long n,
                   long *missing, long *duplicated);

#endif

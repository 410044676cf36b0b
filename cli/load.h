/*
 * load: `sluice load`, a closed-loop load generator, as a library.
 *
 * Virtual users (VUs) each send one request, wait for its answer (or its
 * timeout), optionally think, and repeat. The number of VUs follows stages
 * (k6 style: a linear ramp from the previous target to each stage's
 * target over the stage's duration). Three targets:
 *   sluice  ENQUEUE frames over NNG REQ contexts, asynchronous (load_sluice.c)
 *   http    POST /v1/queues/Q/messages over keep-alive HTTP/1.1, one epoll
 *           thread (load_http.c)
 *   direct  one row per transaction straight into the sink's database
 *           (SQLite, or PostgreSQL with opts.dsn) through a pool of
 *           connections, no buffer in between (load_direct.c)
 *
 * Measuring and printing are separate: cli_load_run() fills a load_result;
 * cli_load_report() and cli_load_json() turn it into text and JSON. The
 * `sluice load` command (load.c) is one caller; the demo is another.
 *
 * Latencies are kept in HDR-style histograms (common/hist.h, relative error
 * under 1.6%), never in a capped list of samples.
 */
#ifndef SLUICE_CLI_LOAD_H
#define SLUICE_CLI_LOAD_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jbuf.h"

/* cli_load_run results (the same numbers as the command's exit codes). */
#define LOAD_OK 0
#define LOAD_E_SETUP 1   /* the target cannot be reached, or setup failed */
#define LOAD_E_INVALID 2 /* bad options */

enum load_target { LOAD_TARGET_SLUICE = 0, LOAD_TARGET_HTTP = 1, LOAD_TARGET_DIRECT = 2 };

/* How a request ended. */
enum load_kind {
	LOAD_KIND_OK = 0,
	LOAD_KIND_BUSY,      /* ERROR QUEUE_FULL, HTTP 429 */
	LOAD_KIND_TIMEOUT,   /* no answer within the timeout, or no pool connection in time */
	LOAD_KIND_DATABASE,  /* direct: SQLite busy, locked or failing */
	LOAD_KIND_BROKER,    /* any other ERROR reply, HTTP 4xx/5xx, a reply that makes no sense */
	LOAD_KIND_TRANSPORT, /* NNG or socket failure: refused, reset, closed */
	LOAD_NKINDS
};

/* "ok", "busy", "timeout", "database", "broker", "transport". */
const char *cli_load_kind_name(int kind);

/* One stage: ramp to target_vus over duration_ms. */
typedef struct load_stage {
	int64_t duration_ms;
	int target_vus;
} load_stage;

typedef struct load_progress load_progress;

/* What to run. Strings are borrowed for the duration of cli_load_run. */
typedef struct load_opts {
	int target;              /* enum load_target */
	load_stage *stages;      /* borrowed; at least one */
	size_t nstages;
	int start_vus;           /* VUs at t=0 (0 for k6-style stages; N for a flat --vus N) */
	int64_t think_ms;        /* pause between a VU's answer and its next request */
	int64_t timeout_ms;      /* per request; default 30 s */
	const char *queue;
	int batch;               /* sluice: messages per ENQUEUE; default 1 */
	size_t size;             /* payload bytes, at least the unique "PREFIX-SEQ" (the
	                          * command's default is 200) */
	bool no_keys;            /* sluice, http: send no idempotency keys */
	const char *prefix;      /* payloads are "PREFIX-SEQ" padded with '.'; NULL = random */
	/* sluice */
	const char *broker;      /* NNG URL */
	int connections;         /* sluice: REQ sockets (default one per 256 VUs); http:
	                          * connections (default one per VU) */
	/* http */
	const char *url;         /* http://HOST:PORT (a path prefix is allowed) */
	/* direct */
	const char *db;          /* SQLite file; with dsn, only shown ("postgres") */
	const char *dsn;         /* PostgreSQL connection string or URI instead; NULL: SQLite */
	const char *password_file; /* dsn: the password's file (NULL: libpq's PGPASSWORD etc.) */
	const char *table;       /* default "events" */
	int pool;                /* connections and threads; default 50 */
	int64_t busy_timeout_ms; /* SQLite busy_timeout (0 = fail at once; the command's
	                          * default is worker.sink.busy_timeout, 5 s) */
	/* Called about once a second from the thread running cli_load_run, with
	 * the second just ended; NULL for none. */
	void (*progress)(const load_progress *p, void *arg);
	void *progress_arg;
	/* When it becomes non-zero (a signal handler may set it), the run stops
	 * early, drains and reports what it measured. NULL for none. */
	const volatile sig_atomic_t *cancel;
} load_opts;

/* Latencies in milliseconds (from microsecond histograms). */
typedef struct load_latency {
	uint64_t count;
	double p50_ms, p95_ms, p99_ms, max_ms, mean_ms;
} load_latency;

/* Figures of a stage, or of the whole run. */
typedef struct load_figures {
	double duration_s;       /* wall time measured (the last stage includes the drain) */
	int from_vus, to_vus;    /* the ramp (total: 0 and the last stage's target) */
	int max_vus;
	uint64_t requests;       /* completed: ok + every error */
	uint64_t ok;
	uint64_t messages;       /* messages acknowledged: ok * batch */
	uint64_t errors[LOAD_NKINDS]; /* [LOAD_KIND_OK] is unused (0) */
	uint64_t failed;         /* sum of errors */
	double rps;              /* requests / duration_s */
	double ok_rps;           /* ok / duration_s */
	double mps;              /* messages / duration_s */
	double error_rate;       /* failed / requests, 0..1 */
	load_latency latency;    /* every completed request, failures included */
	load_latency ok_latency; /* successful requests only */
} load_figures;

/* One second of the timeline: requests completed in (t-1, t]. */
typedef struct load_second {
	int t;                   /* seconds since the start, from 1 */
	int vus;                 /* the VU target at the end of the second */
	uint64_t requests;
	uint64_t ok;
	uint64_t errors[LOAD_NKINDS];
	double p50_ms, p99_ms, max_ms;
} load_second;

struct load_progress {
	double elapsed_s;
	int vus;
	const load_second *last; /* the second just ended */
	uint64_t requests;       /* so far */
	uint64_t failed;         /* so far */
	int stage;               /* 0-based */
};

/* What cli_load_run measured. Arrays are owned: release with
 * cli_load_result_fini. */
typedef struct load_result {
	load_figures total;
	load_figures *stages;    /* nstages entries */
	size_t nstages;
	load_second *timeline;   /* one per second, the last one possibly partial */
	size_t nseconds;
	double cpu_user_s;       /* the generator's own CPU during the run */
	double cpu_sys_s;
	bool cancelled;          /* stopped early by opts.cancel */
	char address[256];       /* what was loaded: URL or database path */
	char prefix[64];         /* payload prefix used */
	char first_error[LOAD_NKINDS][160]; /* the first message of each kind ("" if none) */
	char error[512];         /* why cli_load_run did not return LOAD_OK */
} load_result;

/* Runs the whole staged load. Fills *out (also on failure: out->error says
 * why); returns LOAD_OK, LOAD_E_SETUP or LOAD_E_INVALID. Requests that fail
 * are measurements, not failures of the run. */
int cli_load_run(const load_opts *o, load_result *out);
void cli_load_result_fini(load_result *r); /* accepts NULL; idempotent */

/* Parses "10s:100,80s:2000,10s:0" into a new array (*out, free()); on a
 * bad part returns -1 and says which in err. */
int cli_load_stages_parse(const char *text, load_stage **out, size_t *n, char *err,
                          size_t errlen);

/* The human report (stages, totals, errors, generator CPU). */
void cli_load_report(FILE *f, const load_opts *o, const load_result *r);
/* Every figure as one JSON object (see load.c's usage text for the layout). */
void cli_load_json(jbuf *b, const load_opts *o, const load_result *r);

/*
 * Private: what the run and its target drivers share. Not for callers.
 */
typedef struct load_rec load_rec;

typedef struct load_run {
	const load_opts *o;           /* defaults filled in */
	load_rec *rec;
	atomic_int vus;               /* the VU target now */
	atomic_bool stopping;         /* no new requests */
	atomic_uint_least64_t seq;    /* next payload sequence number */
	char prefix[64];
	size_t payload_len;           /* max(size, len of the longest "PREFIX-SEQ") */
} load_run;

/* Records one finished request: thread-safe. latency_ns from the request's
 * start; detail (may be NULL) is kept for the first failure of each kind. */
void load_rec_add(load_rec *r, int kind, int64_t latency_ns, const char *detail);

/* Writes message seq's payload, "PREFIX-SEQ" padded with '.' to o->size;
 * buf has room for run->payload_len bytes. Returns the length. */
size_t load_payload(const load_run *run, uint64_t seq, char *buf);
/* Only the unique head, "PREFIX-SEQ", into buf (LOAD_HEAD_MAX bytes, not
 * NUL-terminated); returns its length. */
#define LOAD_HEAD_MAX 64
size_t load_payload_head(const load_run *run, uint64_t seq, char *buf);

/* A target: a table of operations (load_sluice.c, load_http.c,
 * load_direct.c), all called from the thread running cli_load_run.
 *   open     checks that the target can be reached and prepares max_vus VUs
 *   set_vus  run->vus changed: start idle VUs under the new target; VUs at
 *            or over it finish their request and stop
 *   tick     every few ms (expire what waits too long, for instance)
 *   stop     run->stopping is set: start no new request
 *   inflight requests started and not yet finished (after stop: 0 = drained)
 *   close    abandon anything left, free everything; accepts what open made */
typedef struct load_driver {
	const char *name;
	int (*open)(load_run *run, int max_vus, void **out, char *err, size_t errlen);
	void (*set_vus)(void *d, int vus);
	void (*tick)(void *d, int64_t now_ns);
	void (*stop)(void *d);
	int (*inflight)(void *d);
	void (*close)(void *d);
} load_driver;

extern const load_driver load_sluice_driver;
extern const load_driver load_http_driver;
extern const load_driver load_direct_driver;

#endif

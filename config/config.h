/*
 * config: Sluice's YAML configuration, parsed with libyaml into typed
 * structs with every default filled in. One file configures every program;
 * each reads the sections it needs. Validation errors name the file, line,
 * column and dotted key ("sluice.yaml:4:3: broker.listne: unknown key (did
 * you mean 'listen'?)"). Depends on nothing else of Sluice's.
 *
 * Durations are written 250ms, 30s, 1.5s, 5m, 2h or 1d (a bare number means
 * seconds); sizes 512, 64KiB, 1MiB, 2GiB (also KB/MB/GB as powers of 1000).
 * Every field below is filled: a default where the file says nothing. The
 * structs are plain data, owned by the cfg that holds them.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes. */
#define CFG_OK 0
#define CFG_E_IO 1      /* file cannot be read */
#define CFG_E_SYNTAX 2  /* malformed YAML */
#define CFG_E_INVALID 3 /* unknown key, wrong type, out of range, duplicate */
#define CFG_E_NOMEM 4

/* Where and what went wrong; message is ready to print as one line:
 * "FILE:LINE:COLUMN: key.path: what is wrong". line/column are 1-based. */
typedef struct cfg_error {
	int line;
	int column;
	char key[128];     /* dotted path, e.g. "supervisor.max_replicas" */
	char message[512]; /* the whole line, as above */
} cfg_error;

enum cfg_durability { CFG_DURABILITY_FULL = 0, CFG_DURABILITY_FAST = 1 };
enum cfg_sink_type { CFG_SINK_SQLITE = 0, CFG_SINK_EXEC = 1, CFG_SINK_POSTGRES = 2 };
enum cfg_sink_format { CFG_FORMAT_RAW = 0, CFG_FORMAT_JSON = 1 };
enum cfg_sync { CFG_SYNC_FULL = 0, CFG_SYNC_NORMAL = 1, CFG_SYNC_OFF = 2 };
enum cfg_mode { CFG_MODE_RESPONSIVE = 0, CFG_MODE_KEDA = 1 };
enum cfg_metric { CFG_METRIC_BACKLOG = 0, CFG_METRIC_DEPTH = 1 };
enum cfg_metric_type { CFG_METRIC_AVERAGE_VALUE = 0, CFG_METRIC_VALUE = 1 };
enum cfg_select { CFG_SELECT_MAX = 0, CFG_SELECT_MIN = 1, CFG_SELECT_DISABLED = 2 };
enum cfg_policy_type { CFG_POLICY_PODS = 0, CFG_POLICY_PERCENT = 1 };
enum cfg_fallback_behavior {
	CFG_FALLBACK_STATIC = 0,
	CFG_FALLBACK_CURRENT = 1,         /* current_replicas */
	CFG_FALLBACK_CURRENT_IF_HIGHER = 2, /* current_replicas_if_higher */
	CFG_FALLBACK_CURRENT_IF_LOWER = 3,  /* current_replicas_if_lower */
};

/* Per-queue settings: queue_defaults, and each entry of queues. */
typedef struct cfg_queue {
	char name[129];         /* NUL-terminated; empty for queue_defaults */
	int64_t max_depth;      /* ready + delayed + in flight; 0 = unlimited. default 1000000 */
	int max_attempts;       /* deliveries before dead-lettering; default 5 */
	int64_t visibility_ms;  /* lease length when a LEASE asks for 0; default 30s */
	int64_t retry_base_ms;  /* retry.base, default 1s */
	int64_t retry_max_ms;   /* retry.max, default 5m */
	bool archive;           /* keep acked messages in an archive table; default false */
} cfg_queue;

typedef struct cfg_broker {
	char **listen;          /* NNG URLs; default ["tcp://127.0.0.1:7450"] */
	size_t nlisten;
	char *http;             /* host:port of the HTTP API; "" disables; default "127.0.0.1:7451" */
	char *http_token;       /* bearer token required by the HTTP API; NULL = none */
	char *http_token_file;  /* file holding that token; NULL = none */
	char *data;             /* SQLite database path; default "sluice-data/broker.db" */
	int durability;         /* enum cfg_durability; default full */
	int64_t max_message_bytes;     /* default 1MiB */
	int64_t idempotency_window_ms; /* default 24h */
	int max_queues;         /* default 10000 */
	char *tls_cert;         /* tls.cert: PEM file for tls+tcp:// listeners */
	char *tls_key;          /* tls.key */
	char *tls_ca;           /* tls.ca: CA to verify client certificates */
	bool tls_require_client_cert; /* tls.require_client_cert; default false */
	char *log_level;        /* "error", "warn", "info", "debug"; default "info" */
} cfg_broker;

typedef struct cfg_sink {
	int type;               /* enum cfg_sink_type; default sqlite */
	/* sqlite */
	char *path;             /* default "sluice-data/app.db" */
	char *table;            /* default "events" (also postgres) */
	int64_t busy_timeout_ms; /* default 5s */
	int synchronous;        /* enum cfg_sync; default full */
	/* exec */
	char **command;         /* argv; NULL-terminated too; ncommand entries */
	size_t ncommand;
	int64_t timeout_ms;     /* per job; default 30s */
	int concurrency;        /* jobs at once per worker; default 1 */
	/* postgres */
	char *dsn;              /* libpq connection string or URI */
	char *password_file;
	int64_t statement_timeout_ms; /* default 30s */
	int format;             /* enum cfg_sink_format; default raw */
} cfg_sink;

typedef struct cfg_worker {
	char *broker;           /* NNG URL; default: first of broker.listen */
	char *queue;            /* default "default" */
	int batch_size;         /* default 500 */
	int64_t linger_ms;      /* default 50ms */
	int64_t visibility_ms;  /* lease length asked for; default 30s */
	int64_t shutdown_grace_ms; /* default 30s */
	int64_t breaker_base_ms;   /* breaker.base, default 500ms */
	int64_t breaker_max_ms;    /* breaker.max, default 30s */
	int64_t report_interval_ms; /* periodic summary line; default 10s */
	cfg_sink sink;
} cfg_worker;

typedef struct cfg_scale_policy {
	int type;               /* enum cfg_policy_type */
	int64_t value;          /* pods, or percent */
	int64_t period_ms;
} cfg_scale_policy;

/* behavior.scale_up / behavior.scale_down, HPA defaults filled in. */
typedef struct cfg_scale_rules {
	int64_t window_ms;      /* stabilization_window */
	int select;             /* enum cfg_select */
	cfg_scale_policy *policies;
	size_t npolicies;
} cfg_scale_rules;

typedef struct cfg_supervisor {
	char *broker;           /* default: worker.broker */
	char *queue;            /* default: worker.queue */
	int mode;               /* enum cfg_mode; default responsive */
	int min_replicas;       /* default 0 */
	int max_replicas;       /* default 100 */
	int idle_replicas;      /* -1 = unset */
	int initial_replicas;   /* -1 = unset (then min_replicas) */
	int64_t target_per_worker; /* default 100 */
	int metric_type;        /* enum cfg_metric_type; default average_value */
	int metric;             /* enum cfg_metric; default backlog */
	int64_t activation_threshold; /* default 0 */
	/* tolerance in parts per million, so the band test is exact: 0.1 -> 100000 */
	int64_t tolerance_up_ppm;
	int64_t tolerance_down_ppm;
	int64_t polling_interval_ms;      /* default 1s */
	int64_t cooldown_ms;              /* cooldown_period, default 300s */
	int64_t initial_cooldown_ms;      /* initial_cooldown_period, default 0 */
	int64_t downscale_stabilization_ms; /* default 300s */
	bool behavior_set;      /* behavior present (even {}): the HPA v2 path */
	cfg_scale_rules scale_up;
	cfg_scale_rules scale_down;
	bool fallback_set;
	int fallback_failure_threshold;
	int fallback_replicas;
	int fallback_behavior;  /* enum cfg_fallback_behavior; default static */
	char *state_file;       /* default "sluice-data/supervisor-state.yaml" */
	char **worker_command;  /* argv; NULL = sluice-worker beside the supervisor, same -c */
	size_t nworker_command;
	int64_t shutdown_grace_ms;        /* default 30s */
	int64_t restart_base_ms;          /* restart.base, default 1s */
	int64_t restart_max_ms;           /* restart.max, default 60s */
	int crash_loop_count;             /* restart.crash_loop_count, default 5 */
	int64_t crash_loop_window_ms;     /* restart.crash_loop_window, default 60s */
	bool guard_set;         /* guard present */
	int64_t guard_max_commit_p99_ms;  /* guard.max_commit_p99; 0 = no limit */
	double guard_max_failure_ratio;   /* guard.max_failure_ratio; 0 = no limit */
	int64_t guard_window_ms;          /* guard.window, default 30s */
} cfg_supervisor;

typedef struct cfg {
	char *path;             /* file loaded, or NULL for the embedded defaults */
	cfg_broker broker;
	cfg_queue queue_defaults;
	cfg_queue *queues;      /* the queues section, in file order */
	size_t nqueues;
	cfg_worker worker;
	cfg_supervisor supervisor;
} cfg;

/* Loads path (NULL: the embedded defaults, as in config/sluice.yaml) into a
 * new cfg. On failure returns a CFG_E_* code, fills err and sets *out NULL. */
int cfg_load(const char *path, cfg **out, cfg_error *err);
/* The same from memory; name is used in error messages as the file name. */
int cfg_load_buffer(const char *name, const char *text, size_t len, cfg **out, cfg_error *err);
void cfg_free(cfg *c); /* accepts NULL */

/* The settings for a queue: its entry under queues, else queue_defaults
 * (with name left empty). Borrowed from c. */
const cfg_queue *cfg_queue_for(const cfg *c, const char *name);

/* Parsers shared with the command line: 0 on success, -1 if malformed. */
int cfg_duration_parse(const char *text, int64_t *ms);
int cfg_size_parse(const char *text, int64_t *bytes);

/* Checks a queue name: 1-128 of [A-Za-z0-9._-]. */
bool cfg_queue_name_valid(const char *name, size_t len);

#endif

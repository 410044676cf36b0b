/*
 * policy: the supervisor's scaling decision, one poll at a time, as a pure
 * function of (policy, state, time, poll). No I/O, no clock, no globals:
 * the caller passes the time, so the live loop and --replay decide alike.
 *
 * The rules are those of the autoscaling contract, explained for users in
 * docs/scaling.md: a KEDA step (activation from zero, cooldown to zero or
 * to idle) and, when that step does not decide, an HPA step (tolerance,
 * stabilization windows, rate policies, clamping); `mode: responsive`
 * changes three of them; the database guard is Sluice's own.
 *
 * Times are milliseconds on one clock chosen by the caller (replay uses the
 * trace's t, the live supervisor the Unix epoch); they must not go back.
 * Windows are strict: an entry stamped te counts at time t iff t - te < W.
 *
 * Arithmetic is exact: ratios are compared and rounded in integers (128-bit
 * where products need it), so a band edge is an edge, not a float accident.
 */
#ifndef SLUICE_SUPERVISOR_POLICY_H
#define SLUICE_SUPERVISOR_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg_supervisor;

/* Return codes. */
#define SUP_OK 0
#define SUP_E_INVALID 1 /* a setting or an input out of range */
#define SUP_E_NOMEM 2
#define SUP_E_TRACE 3   /* replay: a bad trace line (message says where) */
#define SUP_E_IO 4      /* a file could not be read or written */

/* Ranges the policy accepts; beyond them sup_decide returns SUP_E_INVALID.
 * They keep every product inside 128 bits. */
#define SUP_REPLICAS_MAX 1000000
#define SUP_METRIC_MAX INT64_C(1000000000000000) /* depth, in_flight: 1e15 */
#define SUP_TARGET_MAX INT64_C(1000000000000)    /* target_per_worker: 1e12 */
#define SUP_PPM_MAX INT64_C(1000000000)          /* tolerance 1000.0 */
#define SUP_POLICY_VALUE_MAX INT64_C(1000000000)
#define SUP_MAX_POLICIES 16

enum sup_mode { SUP_MODE_RESPONSIVE = 0, SUP_MODE_KEDA = 1 };
enum sup_metric { SUP_METRIC_BACKLOG = 0, SUP_METRIC_DEPTH = 1 };
enum sup_metric_type { SUP_AVERAGE_VALUE = 0, SUP_VALUE = 1 };
enum sup_select { SUP_SELECT_MAX = 0, SUP_SELECT_MIN = 1, SUP_SELECT_DISABLED = 2 };
enum sup_rate_type { SUP_RATE_PODS = 0, SUP_RATE_PERCENT = 1 };
enum sup_fallback {
	SUP_FALLBACK_STATIC = 0,
	SUP_FALLBACK_CURRENT = 1,           /* current_replicas */
	SUP_FALLBACK_CURRENT_IF_HIGHER = 2, /* current_replicas_if_higher */
	SUP_FALLBACK_CURRENT_IF_LOWER = 3,  /* current_replicas_if_lower */
};

/* One rate policy: at most value pods, or value percent, per period. */
typedef struct sup_rate {
	int type;          /* enum sup_rate_type */
	int64_t value;     /* pods, or percent */
	int64_t period_ms;
} sup_rate;

/* behavior.scale_up or behavior.scale_down, defaults filled in. */
typedef struct sup_rules {
	int64_t window_ms; /* stabilization window */
	int select;        /* enum sup_select */
	size_t nrates;     /* 0 means no change is allowed, as in the HPA */
	sup_rate rates[SUP_MAX_POLICIES];
} sup_rules;

/* The settings that decide; plain data, built by sup_policy_from_cfg. */
typedef struct sup_policy {
	int mode;                 /* enum sup_mode */
	int min_replicas;
	int max_replicas;
	int idle_replicas;        /* -1 = unset */
	int64_t target;           /* target_per_worker, >= 1 */
	int metric_type;          /* enum sup_metric_type */
	int metric;               /* enum sup_metric */
	int64_t activation_threshold;
	int64_t tolerance_up_ppm;
	int64_t tolerance_down_ppm;
	int64_t cooldown_ms;
	int64_t initial_cooldown_ms;
	int64_t downscale_stabilization_ms;
	bool behavior_set;        /* false: the HPA's legacy path */
	sup_rules scale_up;       /* used only when behavior_set */
	sup_rules scale_down;
	bool fallback_set;
	int fallback_failure_threshold;
	int fallback_replicas;
	int fallback_behavior;    /* enum sup_fallback */
	bool guard_set;
	int64_t guard_max_commit_p99_ms; /* 0 = no limit */
	double guard_max_failure_ratio;  /* 0 = no limit */
	int64_t guard_window_ms;
} sup_policy;

/* Fills *p from the supervisor section of a loaded configuration and checks
 * it. On failure returns SUP_E_INVALID and writes "supervisor.KEY: what is
 * wrong" into err (errlen bytes, NUL-terminated). */
int sup_policy_from_cfg(const struct cfg_supervisor *c, sup_policy *p, char *err, size_t errlen);

/* A timestamped value: a raw recommendation (n replicas) or a scale event
 * (n = |change|). */
typedef struct sup_sample {
	int64_t t_ms;
	int64_t n;
} sup_sample;

/* Private: a growable ring of samples in time order. */
typedef struct sup_series {
	sup_sample *v;
	size_t head, len, cap;
} sup_series;

/*
 * What the supervisor remembers between polls (and persists in its state
 * file). The public fields may be read and set; the series are private:
 * use the functions below.
 *
 * The recommendation history is kept as two monotonic queues (one for the
 * largest recent value, one for the smallest), each pruned to its window.
 * An older entry that is no larger (or no smaller) than a newer one can
 * never decide a "max (or min) over the last W" again, whatever W is, so
 * dropping it changes no decision and keeps a poll O(1) amortized.
 */
typedef struct sup_state {
	int current;           /* workers running now (the last decision) */
	int64_t t0_ms;         /* start; initial_cooldown counts from here */
	bool has_last_active;  /* false: never active since start */
	int64_t last_active_ms;
	int failures;          /* consecutive failed reads */
	bool seeded;           /* false: the first poll seeds the history with (t, current) */
	bool guard_over;       /* the sink has been over its guard limits since guard_since_ms */
	int64_t guard_since_ms;
	/* private */
	sup_series rec_max_;   /* recommendations, decreasing values: max over the down window */
	sup_series rec_min_;   /* recommendations, increasing values: min over the up window */
	sup_series up_;        /* scale-up events made by the HPA step (v2 path) */
	sup_series down_;      /* scale-down events */
} sup_state;

/* A fresh state: no history (the first poll seeds it), never active, no
 * failures. Cannot fail; sup_state_fini releases what polls allocate. */
void sup_state_init(sup_state *st, int current, int64_t t0_ms);
void sup_state_fini(sup_state *st); /* accepts NULL */

/* Appends a raw recommendation and marks the history as present. Samples
 * must come in time order (t_ms not below the last one): SUP_E_INVALID
 * otherwise. SUP_E_NOMEM leaves the state as it was. */
int sup_state_add_recommendation(sup_state *st, int64_t t_ms, int64_t n);
/* Appends a scale event (up: true for scale_up_events), same rules. */
int sup_state_add_event(sup_state *st, bool up, int64_t t_ms, int64_t n);

/* Copies the recommendation history (oldest first) into out, at most cap
 * entries; returns how many there are. */
size_t sup_state_recommendations(const sup_state *st, sup_sample *out, size_t cap);
/* The same for the scale-up (up) or scale-down events. */
size_t sup_state_events(const sup_state *st, bool up, sup_sample *out, size_t cap);

/* One poll's inputs. */
typedef struct sup_poll {
	bool ok;               /* the read succeeded: depth and in_flight are valid */
	int64_t depth;         /* ready messages */
	int64_t in_flight;     /* leased and not yet acknowledged */
	int current;           /* -1, or the live count before this poll (overrides state) */
	int ready;             /* -1, or workers running and ready (value metric; default current) */
	int leases;            /* -1 (unknown: min(current, in_flight) is assumed), or workers holding leases */
	bool sink_reported;    /* the sink's health below is known */
	int64_t sink_commit_p99_ms;
	double sink_failure_ratio; /* failed / attempted commits, 0..1 */
} sup_poll;

/* A poll with nothing known: fill in ok, depth and in_flight. */
#define SUP_POLL_INIT {.current = -1, .ready = -1, .leases = -1}

/* What limited or decided the count; see sup_limit_name. */
enum sup_limit {
	SUP_LIMIT_NONE = 0,
	SUP_LIMIT_MAX_REPLICAS,
	SUP_LIMIT_MIN_REPLICAS,
	SUP_LIMIT_SCALE_UP_RATE,           /* a scale_up policy, or the legacy max(2 x current, 4) */
	SUP_LIMIT_SCALE_DOWN_RATE,         /* a scale_down policy */
	SUP_LIMIT_SCALE_UP_STABILIZATION,
	SUP_LIMIT_SCALE_DOWN_STABILIZATION,
	SUP_LIMIT_TOLERANCE,               /* the ratio was inside the band: keep current */
	SUP_LIMIT_ACTIVATION,              /* activation decided (from 0), or the metric is below it at 0 */
	SUP_LIMIT_COOLDOWN,                /* scaled to idle/min after the cooldown, or held until it ends */
	SUP_LIMIT_FALLBACK,                /* the metric is the fallback's and nothing else limited */
	SUP_LIMIT_ERROR,                   /* the read failed, no fallback: hold */
	SUP_LIMIT_GUARD,                   /* the database guard held or scaled down */
	SUP_LIMIT_LEASES,                  /* responsive: held at the workers holding leases */
};

/* Which step decided. */
enum sup_step {
	SUP_STEP_HOLD_ZERO = 0,  /* at 0 and nothing to activate */
	SUP_STEP_ACTIVATE,       /* KEDA step: from 0 (or idle) to running */
	SUP_STEP_DEACTIVATE,     /* KEDA step: to idle or min after the cooldown */
	SUP_STEP_RAISE_TO_MIN,   /* KEDA step: inactive and below min */
	SUP_STEP_HPA,            /* HPA step */
};

typedef struct sup_decision {
	int replicas;          /* the new count; also state->current after the call */
	int previous;          /* the count before this poll (after any override) */
	int step;              /* enum sup_step */
	int limit;             /* enum sup_limit */
	bool active;           /* the trigger was active */
	bool has_metric;       /* false for a failed read without fallback */
	bool fallback;         /* the metric is the fallback's */
	int64_t metric_num;    /* the metric is metric_num / metric_den (den > 1 */
	int64_t metric_den;    /*   only for a value-type fallback) */
	int64_t raw;           /* raw recommendation; -1 if the HPA step computed none */
	int64_t stabilized;    /* after the stabilization windows; -1 likewise */
	char reason[256];      /* one line in words, NUL-terminated */
} sup_decision;

/*
 * Decides one poll at now_ms and updates *st (current, last_active,
 * failures, history, events, guard). Returns SUP_OK; SUP_E_INVALID if the
 * poll is out of range (nothing changed); SUP_E_NOMEM (nothing changed).
 */
int sup_decide(const sup_policy *p, sup_state *st, int64_t now_ms, const sup_poll *poll,
               sup_decision *out);

/* "max_replicas", "scale-up stabilization", ...; "none" for SUP_LIMIT_NONE. */
const char *sup_limit_name(int limit);

/* Writes num/den as a decimal: "12000", or "66.667" (3 decimals, rounded,
 * trailing zeros dropped). Returns the length written, as snprintf. */
int sup_format_metric(int64_t num, int64_t den, char *buf, size_t len);
/* Writes a duration: "300s", "1.5s", "250ms". */
int sup_format_duration(int64_t ms, char *buf, size_t len);

#endif

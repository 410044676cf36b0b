/* policy_test: every rule of the scaling decision, poll by poll, in both
 * modes. Each case builds a policy from a cfg_supervisor with the
 * documented defaults, then runs a table of polls and checks the count and
 * the limit that applied (and, where it matters, the words). */
#include "config.h"
#include "harness.h"
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>

#define S(x) ((int64_t)(x) * 1000) /* seconds to ms */

/* ---- building policies --------------------------------------------------- */

static cfg_scale_policy up_defaults[] = {
	{CFG_POLICY_PODS, 4, 15000},
	{CFG_POLICY_PERCENT, 100, 15000},
};
static cfg_scale_policy down_defaults[] = {{CFG_POLICY_PERCENT, 100, 15000}};

/* The configuration defaults of config/sluice.yaml. */
static cfg_supervisor
base(int mode)
{
	cfg_supervisor c;
	memset(&c, 0, sizeof(c));
	c.mode = mode;
	c.min_replicas = 0;
	c.max_replicas = 100;
	c.idle_replicas = -1;
	c.initial_replicas = -1;
	c.target_per_worker = 100;
	c.metric_type = CFG_METRIC_AVERAGE_VALUE;
	c.metric = CFG_METRIC_BACKLOG;
	c.activation_threshold = 0;
	c.tolerance_up_ppm = 100000;
	c.tolerance_down_ppm = 100000;
	c.polling_interval_ms = 1000;
	c.cooldown_ms = S(300);
	c.initial_cooldown_ms = 0;
	c.downscale_stabilization_ms = S(300);
	c.behavior_set = false;
	c.scale_up = (cfg_scale_rules){0, CFG_SELECT_MAX, up_defaults, 2};
	c.scale_down = (cfg_scale_rules){S(300), CFG_SELECT_MAX, down_defaults, 1};
	c.guard_window_ms = S(30);
	return c;
}

static sup_policy
mk(const cfg_supervisor *c)
{
	sup_policy p;
	char err[256];
	if (sup_policy_from_cfg(c, &p, err, sizeof(err)) != SUP_OK)
		th_fail(__FILE__, __LINE__, "policy refused: %s", err);
	return p;
}

/* ---- running polls ------------------------------------------------------- */

typedef struct step {
	int64_t t;          /* ms */
	int64_t depth;
	int64_t in_flight;
	bool fail;          /* the read failed */
	int want;           /* replicas */
	int limit;          /* enum sup_limit */
	bool any_limit;     /* do not check limit */
	const char *says;   /* a phrase the reason must hold, or NULL */
	bool has_cur;
	int cur;
	bool has_ready;
	int ready;
	bool has_leases;
	int leases;
	bool health;
	int64_t p99;
	double ratio;
} step;

static sup_decision last;

static void
run_steps(const sup_policy *p, sup_state *st, const step *s, size_t n, int line)
{
	for (size_t i = 0; i < n; i++) {
		sup_poll poll = SUP_POLL_INIT;
		poll.ok = !s[i].fail;
		poll.depth = s[i].depth;
		poll.in_flight = s[i].in_flight;
		if (s[i].has_cur)
			poll.current = s[i].cur;
		if (s[i].has_ready)
			poll.ready = s[i].ready;
		if (s[i].has_leases)
			poll.leases = s[i].leases;
		poll.sink_reported = s[i].health;
		poll.sink_commit_p99_ms = s[i].p99;
		poll.sink_failure_ratio = s[i].ratio;
		int rc = sup_decide(p, st, s[i].t, &poll, &last);
		if (rc != SUP_OK)
			th_fail(__FILE__, line, "step %zu (t=%lldms): sup_decide returned %d", i,
			        (long long)s[i].t, rc);
		if (last.replicas != s[i].want || (!s[i].any_limit && last.limit != s[i].limit) ||
		    (s[i].says != NULL && strstr(last.reason, s[i].says) == NULL))
			th_fail(__FILE__, line,
			        "step %zu (t=%lldms): got %d limited by %s (\"%s\"); want %d limited by %s%s%s",
			        i, (long long)s[i].t, last.replicas, sup_limit_name(last.limit), last.reason,
			        s[i].want, s[i].any_limit ? "anything" : sup_limit_name(s[i].limit),
			        s[i].says ? ", saying " : "", s[i].says ? s[i].says : "");
		if (st->current != last.replicas)
			th_fail(__FILE__, line, "step %zu: state current %d != decision %d", i, st->current,
			        last.replicas);
	}
}

#define RUN(p, st, steps) run_steps((p), (st), (steps), sizeof(steps) / sizeof((steps)[0]), __LINE__)

/* A single poll from a fresh state at current = cur (seeded at the poll). */
static sup_decision
once(const sup_policy *p, int cur, int64_t depth, int64_t in_flight)
{
	sup_state st;
	sup_decision d;
	sup_poll poll = SUP_POLL_INIT;
	poll.ok = true;
	poll.depth = depth;
	poll.in_flight = in_flight;
	sup_state_init(&st, cur, 0);
	CHECK_EQ(sup_decide(p, &st, S(1), &poll, &d), SUP_OK);
	sup_state_fini(&st);
	return d;
}

typedef struct single {
	int cur;
	int64_t m;
	int want;
	int limit;
} single;

static void
check_singles(const sup_policy *p, const single *v, size_t n, int line)
{
	for (size_t i = 0; i < n; i++) {
		sup_decision d = once(p, v[i].cur, v[i].m, 0);
		if (d.replicas != v[i].want || d.limit != v[i].limit)
			th_fail(__FILE__, line, "row %zu: current %d, metric %lld: got %d (%s, \"%s\"), want %d (%s)",
			        i, v[i].cur, (long long)v[i].m, d.replicas, sup_limit_name(d.limit), d.reason,
			        v[i].want, sup_limit_name(v[i].limit));
	}
}

#define SINGLES(p, v) check_singles((p), (v), sizeof(v) / sizeof((v)[0]), __LINE__)

/* ---- configuration to policy ------------------------------------------- */

static void
policy_from_cfg_maps_and_checks(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	c.fallback_set = true;
	c.fallback_failure_threshold = 3;
	c.fallback_replicas = 2;
	c.fallback_behavior = CFG_FALLBACK_CURRENT_IF_HIGHER;
	c.metric = CFG_METRIC_DEPTH;
	c.metric_type = CFG_METRIC_VALUE;
	sup_policy p = mk(&c);
	CHECK_EQ(p.mode, SUP_MODE_KEDA);
	CHECK_EQ(p.metric, SUP_METRIC_DEPTH);
	CHECK_EQ(p.metric_type, SUP_VALUE);
	CHECK_EQ(p.scale_up.nrates, 2);
	CHECK_EQ(p.scale_up.rates[1].type, SUP_RATE_PERCENT);
	CHECK_EQ(p.scale_up.rates[1].value, 100);
	CHECK_EQ(p.scale_down.window_ms, S(300));
	CHECK_EQ(p.fallback_behavior, SUP_FALLBACK_CURRENT_IF_HIGHER);
	CHECK_EQ(p.idle_replicas, -1);

	char err[256];
	sup_policy q;
	c = base(CFG_MODE_KEDA);
	c.max_replicas = 0;
	CHECK_EQ(sup_policy_from_cfg(&c, &q, err, sizeof(err)), SUP_E_INVALID);
	CHECK_CONTAINS(err, "supervisor.max_replicas");
	c = base(CFG_MODE_KEDA);
	c.min_replicas = 5;
	c.max_replicas = 2;
	CHECK_EQ(sup_policy_from_cfg(&c, &q, err, sizeof(err)), SUP_E_INVALID);
	CHECK_CONTAINS(err, "supervisor.min_replicas");
	c = base(CFG_MODE_KEDA);
	c.target_per_worker = 0;
	CHECK_EQ(sup_policy_from_cfg(&c, &q, err, sizeof(err)), SUP_E_INVALID);
	CHECK_CONTAINS(err, "supervisor.target_per_worker");
	c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	c.scale_up.npolicies = SUP_MAX_POLICIES + 1;
	CHECK_EQ(sup_policy_from_cfg(&c, &q, err, sizeof(err)), SUP_E_INVALID);
	CHECK_CONTAINS(err, "supervisor.behavior.scale_up.policies");
}

/* ---- tolerance --------------------------------------------------------- */

static void
tolerance_band_is_inclusive(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.downscale_stabilization_ms = 0;
	sup_policy p = mk(&c);
	static const single v[] = {
		{10, 1100, 10, SUP_LIMIT_TOLERANCE}, /* ratio 1.1: on the edge, inside */
		{10, 1101, 12, SUP_LIMIT_NONE},      /* 1.101: out, ceil(11.01) */
		{10, 900, 10, SUP_LIMIT_TOLERANCE},  /* 0.9: inside */
		{10, 899, 9, SUP_LIMIT_NONE},        /* 0.899 */
		{10, 1000, 10, SUP_LIMIT_NONE},
		{3, 330, 3, SUP_LIMIT_TOLERANCE},    /* 1.1 exactly, where floats wobble */
		{3, 331, 4, SUP_LIMIT_NONE},
		{20, 1800, 20, SUP_LIMIT_TOLERANCE}, /* 0.9 exactly */
		{20, 1799, 18, SUP_LIMIT_NONE},
	};
	SINGLES(&p, v);

	/* tolerance {up: 0.5, down: 0.05} */
	c.tolerance_up_ppm = 500000;
	c.tolerance_down_ppm = 50000;
	c.max_replicas = 1000;
	p = mk(&c);
	static const single w[] = {
		{100, 15000, 100, SUP_LIMIT_TOLERANCE},
		{100, 15001, 151, SUP_LIMIT_NONE},
		{100, 9500, 100, SUP_LIMIT_TOLERANCE},
		{100, 9499, 95, SUP_LIMIT_NONE},
	};
	SINGLES(&p, w);
}

static void
responsive_has_no_band_on_scale_up(void)
{
	cfg_supervisor c = base(CFG_MODE_RESPONSIVE);
	c.downscale_stabilization_ms = 0;
	sup_policy p = mk(&c);
	static const single v[] = {
		{10, 1001, 11, SUP_LIMIT_NONE}, /* keda would hold here */
		{10, 1100, 11, SUP_LIMIT_NONE},
		{10, 1000, 10, SUP_LIMIT_NONE},
		{10, 900, 10, SUP_LIMIT_TOLERANCE}, /* the band still holds scale-down */
		{10, 899, 9, SUP_LIMIT_NONE},
	};
	SINGLES(&p, v);
}

/* ---- metrics ------------------------------------------------------------- */

static void
value_metric_uses_ready(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.metric_type = CFG_METRIC_VALUE;
	c.downscale_stabilization_ms = 0;
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 4, 0);
	st.seeded = true;
	static const step steps[] = {
		/* ratio 250/100 = 2.5, x 2 ready */
		{.t = S(1), .depth = 250, .has_ready = true, .ready = 2, .want = 5,
		 .says = "backlog 250 / 100 x 2 ready = 5"},
		/* ready defaults to current (5): 1.05 is inside the band */
		{.t = S(2), .depth = 105, .want = 5, .limit = SUP_LIMIT_TOLERANCE},
		{.t = S(3), .depth = 111, .want = 6},  /* ceil(1.11 x 5) */
		{.t = S(4), .depth = 50, .want = 3},   /* ceil(0.5 x 6) */
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);
}

static void
metric_backlog_or_depth(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.downscale_stabilization_ms = 0;
	sup_policy p = mk(&c);
	sup_decision d = once(&p, 2, 200, 800);
	CHECK_EQ(d.metric_num, 1000);
	CHECK_EQ(d.replicas, 4); /* raw 10, legacy limit max(2 x 2, 4) */
	CHECK_EQ(d.limit, SUP_LIMIT_SCALE_UP_RATE);
	c.metric = CFG_METRIC_DEPTH;
	p = mk(&c);
	d = once(&p, 2, 200, 800);
	CHECK_EQ(d.metric_num, 200);
	CHECK_EQ(d.replicas, 2);
	CHECK_CONTAINS(d.reason, "depth 200");
}

/* ---- KEDA step ----------------------------------------------------------- */

static void
activation_threshold_is_strict(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.activation_threshold = 5;
	sup_policy p = mk(&c);
	sup_decision d = once(&p, 0, 5, 0);
	CHECK_EQ(d.replicas, 0);
	CHECK_EQ(d.limit, SUP_LIMIT_ACTIVATION);
	CHECK_STR(d.reason, "hold: backlog 5 <= activation threshold 5, stay at 0");
	d = once(&p, 0, 3, 3);
	CHECK_EQ(d.replicas, 1);
	CHECK_EQ(d.step, SUP_STEP_ACTIVATE);
	CHECK_STR(d.reason, "scale up: backlog 6 > activation threshold 5, activate at 1");
	d = once(&p, 0, 100000, 0); /* keda: 1, whatever the backlog */
	CHECK_EQ(d.replicas, 1);
	c.min_replicas = 3;
	p = mk(&c);
	d = once(&p, 0, 6, 0);
	CHECK_EQ(d.replicas, 3);
	CHECK_CONTAINS(d.reason, "activate at min_replicas 3");
}

static void
responsive_activates_straight_to_need(void)
{
	cfg_supervisor c = base(CFG_MODE_RESPONSIVE);
	c.activation_threshold = 5;
	sup_policy p = mk(&c);
	sup_decision d = once(&p, 0, 5, 0);
	CHECK_EQ(d.replicas, 0);
	d = once(&p, 0, 6, 0);
	CHECK_EQ(d.replicas, 1);
	d = once(&p, 0, 1234, 0);
	CHECK_EQ(d.replicas, 13);
	CHECK_STR(d.reason,
	          "scale up: backlog 1234 > activation threshold 5, activate at 1234 / 100 per worker = 13");
	c.max_replicas = 8;
	p = mk(&c);
	d = once(&p, 0, 1234, 0);
	CHECK_EQ(d.replicas, 8);
	CHECK_CONTAINS(d.reason, "limited to 8 by max_replicas");
	c.min_replicas = 3;
	p = mk(&c);
	d = once(&p, 0, 150, 0);
	CHECK_EQ(d.replicas, 3);
	CHECK_CONTAINS(d.reason, "raised to 3 by min_replicas");
}

static void
cooldown_to_zero_is_strict(int mode)
{
	cfg_supervisor c = base(mode);
	c.downscale_stabilization_ms = 0;
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 2, 0);
	const step steps[] = {
		{.t = 0, .depth = 200, .want = 2},
		/* inactive: the HPA keeps one until the KEDA step may act */
		{.t = S(1), .depth = 0, .want = 1, .limit = SUP_LIMIT_MIN_REPLICAS,
		 .says = "kept at 1 until the cooldown ends"},
		{.t = S(300), .depth = 0, .want = 1, .limit = SUP_LIMIT_MIN_REPLICAS},
		/* last_active 0 + 300s < t only from 300.001 */
		{.t = S(300) + 1, .depth = 0, .want = 0, .limit = SUP_LIMIT_COOLDOWN,
		 .says = "past cooldown 300s, to min_replicas 0"},
		{.t = S(301), .depth = 0, .want = 0, .limit = SUP_LIMIT_ACTIVATION},
	};
	RUN(&p, &st, steps);
	CHECK_EQ(last.step, SUP_STEP_HOLD_ZERO);
	sup_state_fini(&st);
}

static void
cooldown_keda(void)
{
	cooldown_to_zero_is_strict(CFG_MODE_KEDA);
}

static void
cooldown_responsive(void)
{
	cooldown_to_zero_is_strict(CFG_MODE_RESPONSIVE);
}

static void
initial_cooldown(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.downscale_stabilization_ms = 0;
	c.initial_cooldown_ms = S(60);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 1, 0);
	static const step steps[] = {
		{.t = 0, .want = 1, .limit = SUP_LIMIT_MIN_REPLICAS},
		{.t = S(60), .want = 1, .limit = SUP_LIMIT_MIN_REPLICAS},
		{.t = S(60) + 1, .want = 0, .limit = SUP_LIMIT_COOLDOWN,
		 .says = "since start, past initial cooldown 60s"},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);

	/* the default initial cooldown is 0: t0 + 0 < t from the first ms */
	c.initial_cooldown_ms = 0;
	p = mk(&c);
	sup_state_init(&st, 3, S(10));
	static const step steps0[] = {
		{.t = S(10), .want = 1, .limit = SUP_LIMIT_MIN_REPLICAS},
		{.t = S(10) + 1, .want = 0, .limit = SUP_LIMIT_COOLDOWN},
	};
	RUN(&p, &st, steps0);
	sup_state_fini(&st);
}

static void
idle_replicas(int mode)
{
	cfg_supervisor c = base(mode);
	c.idle_replicas = 0;
	c.min_replicas = 2;
	c.max_replicas = 10;
	c.cooldown_ms = S(10);
	c.downscale_stabilization_ms = 0;
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 0, 0);
	static const step steps[] = {
		{.t = 0, .depth = 50, .want = 2, .limit = SUP_LIMIT_ACTIVATION},
		{.t = S(1), .depth = 50, .want = 2, .limit = SUP_LIMIT_MIN_REPLICAS},
		{.t = S(2), .depth = 0, .want = 2, .limit = SUP_LIMIT_MIN_REPLICAS},
		{.t = S(11), .depth = 0, .want = 2, .limit = SUP_LIMIT_MIN_REPLICAS},
		/* straight to idle, below min */
		{.t = S(11) + 1, .depth = 0, .want = 0, .limit = SUP_LIMIT_COOLDOWN,
		 .says = "to idle_replicas 0"},
		{.t = S(12), .depth = 0, .want = 0, .limit = SUP_LIMIT_ACTIVATION},
		{.t = S(13), .depth = 50, .want = 2, .limit = SUP_LIMIT_ACTIVATION},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);
}

static void
idle_replicas_keda(void)
{
	idle_replicas(CFG_MODE_KEDA);
}

static void
idle_replicas_responsive(void)
{
	idle_replicas(CFG_MODE_RESPONSIVE);
}

static void
inactive_below_min_is_raised(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.min_replicas = 2;
	sup_policy p = mk(&c);
	sup_decision d = once(&p, 0, 0, 0);
	CHECK_EQ(d.replicas, 2);
	CHECK_EQ(d.step, SUP_STEP_RAISE_TO_MIN);
	CHECK_EQ(d.limit, SUP_LIMIT_MIN_REPLICAS);
	d = once(&p, 1, 0, 0);
	CHECK_EQ(d.replicas, 2);
	CHECK_EQ(d.step, SUP_STEP_RAISE_TO_MIN);
}

/* ---- HPA step: clamping -------------------------------------------------- */

static void
clamps_to_max_and_min(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.max_replicas = 8;
	sup_policy p = mk(&c);
	sup_decision d = once(&p, 12, 100, 0);
	CHECK_EQ(d.replicas, 8);
	CHECK_EQ(d.limit, SUP_LIMIT_MAX_REPLICAS);
	CHECK_STR(d.reason, "scale down: 12 running, above max_replicas 8");
	d = once(&p, 5, 12000, 0);
	CHECK_EQ(d.replicas, 8);
	CHECK_EQ(d.limit, SUP_LIMIT_MAX_REPLICAS);
	CHECK_STR(d.reason, "scale up: backlog 12000 / 100 per worker = 120, limited to 8 by max_replicas");

	c = base(CFG_MODE_KEDA);
	c.min_replicas = 3;
	p = mk(&c);
	d = once(&p, 1, 100, 0);
	CHECK_EQ(d.replicas, 3);
	CHECK_EQ(d.limit, SUP_LIMIT_MIN_REPLICAS);
	CHECK_STR(d.reason, "scale up: 1 running, below min_replicas 3");
}

static void
legacy_scale_up_limit(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	sup_policy p = mk(&c);
	static const single v[] = {
		{3, 10000, 6, SUP_LIMIT_SCALE_UP_RATE}, /* max(2 x 3, 4) */
		{1, 10000, 4, SUP_LIMIT_SCALE_UP_RATE}, /* max(2, 4) */
		{30, 10000, 60, SUP_LIMIT_SCALE_UP_RATE},
	};
	SINGLES(&p, v);
	CHECK_CONTAINS(once(&p, 3, 10000, 0).reason, "limited to 6 by the scale-up limit max(2 x 3, 4)");
	c.max_replicas = 6;
	p = mk(&c);
	static const single w[] = {
		{3, 10000, 6, SUP_LIMIT_MAX_REPLICAS}, /* equal: named max_replicas, as the HPA does */
		{2, 10000, 4, SUP_LIMIT_SCALE_UP_RATE},
	};
	SINGLES(&p, w);
	c.max_replicas = 5;
	p = mk(&c);
	static const single x[] = {{3, 10000, 5, SUP_LIMIT_MAX_REPLICAS}};
	SINGLES(&p, x);
	/* responsive keeps the same path */
	c = base(CFG_MODE_RESPONSIVE);
	p = mk(&c);
	SINGLES(&p, v);
}

/* ---- HPA step: stabilization --------------------------------------------- */

static void
legacy_window_is_strict(int mode)
{
	cfg_supervisor c = base(mode);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 10, 0);
	static const step steps[] = {
		/* seeded with (0, 10): raw 5 is held up by it */
		{.t = 0, .depth = 500, .want = 10, .limit = SUP_LIMIT_SCALE_DOWN_STABILIZATION,
		 .says = "held at 10 by scale-down stabilization (max over 300s)"},
		{.t = S(300) - 1, .depth = 500, .want = 10, .limit = SUP_LIMIT_SCALE_DOWN_STABILIZATION},
		/* the seed is 300s old: out */
		{.t = S(300), .depth = 500, .want = 5},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);
}

static void
legacy_window_keda(void)
{
	legacy_window_is_strict(CFG_MODE_KEDA);
}

static void
legacy_window_responsive(void)
{
	legacy_window_is_strict(CFG_MODE_RESPONSIVE);
}

static void
v2_scale_up_window(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	c.scale_up.window_ms = S(60);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 2, 0);
	static const step steps[] = {
		{.t = 0, .depth = 1000, .want = 2, .limit = SUP_LIMIT_SCALE_UP_STABILIZATION,
		 .says = "held at 2 by scale-up stabilization (min over 60s)"},
		{.t = S(30), .depth = 1000, .want = 2, .limit = SUP_LIMIT_SCALE_UP_STABILIZATION},
		{.t = S(60) - 1, .depth = 1000, .want = 2, .limit = SUP_LIMIT_SCALE_UP_STABILIZATION},
		/* the seed (0, 2) has left the window; the rate policies take over */
		{.t = S(60), .depth = 1000, .want = 6, .limit = SUP_LIMIT_SCALE_UP_RATE},
	};
	RUN(&p, &st, steps);
	CHECK_EQ(last.raw, 10);
	CHECK_EQ(last.stabilized, 10);
	sup_state_fini(&st);
}

static void
v2_scale_down_window(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	c.min_replicas = 1;
	c.scale_down.window_ms = S(100);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 8, 0);
	st.seeded = true;
	static const step steps[] = {
		{.t = 0, .depth = 800, .want = 8},
		{.t = S(10), .depth = 200, .want = 8, .limit = SUP_LIMIT_SCALE_DOWN_STABILIZATION},
		{.t = S(100) - 1, .depth = 200, .want = 8, .limit = SUP_LIMIT_SCALE_DOWN_STABILIZATION},
		{.t = S(100), .depth = 200, .want = 2},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);
}

/* ---- HPA step: rate policies --------------------------------------------- */

static void
rate_scale_up_select_max(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 2, 0);
	static const step steps[] = {
		/* start 2: pods 6, percent 4; max */
		{.t = 0, .depth = 100000, .want = 6, .limit = SUP_LIMIT_SCALE_UP_RATE,
		 .says = "limited to 6 by scale-up policy pods 4 per 15s"},
		/* start = 6 - 4 = 2 */
		{.t = S(1), .depth = 100000, .want = 6, .limit = SUP_LIMIT_SCALE_UP_RATE},
		/* the event is 15s old: start 6, pods 10, percent 12 */
		{.t = S(15), .depth = 100000, .want = 12, .limit = SUP_LIMIT_SCALE_UP_RATE,
		 .says = "percent 100 per 15s"},
		{.t = S(16), .depth = 100000, .want = 12, .limit = SUP_LIMIT_SCALE_UP_RATE},
		{.t = S(30), .depth = 100000, .want = 24, .limit = SUP_LIMIT_SCALE_UP_RATE},
		{.t = S(45), .depth = 100000, .want = 48, .limit = SUP_LIMIT_SCALE_UP_RATE},
		{.t = S(60), .depth = 100000, .want = 96, .limit = SUP_LIMIT_SCALE_UP_RATE},
		{.t = S(75), .depth = 100000, .want = 100, .limit = SUP_LIMIT_MAX_REPLICAS},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);
}

static void
rate_scale_up_select_min_and_disabled(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	c.scale_up.select = CFG_SELECT_MIN;
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 2, 0);
	static const step steps[] = {
		{.t = 0, .depth = 100000, .want = 4, .limit = SUP_LIMIT_SCALE_UP_RATE,
		 .says = "percent 100 per 15s"},
		{.t = S(15), .depth = 100000, .want = 8, .limit = SUP_LIMIT_SCALE_UP_RATE},
		{.t = S(30), .depth = 100000, .want = 12, .limit = SUP_LIMIT_SCALE_UP_RATE,
		 .says = "pods 4 per 15s"},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);

	c.scale_up.select = CFG_SELECT_DISABLED;
	p = mk(&c);
	sup_state_init(&st, 2, 0);
	static const step off[] = {
		{.t = 0, .depth = 100000, .want = 2, .limit = SUP_LIMIT_SCALE_UP_RATE,
		 .says = "held at 2: scale-up disabled"},
	};
	RUN(&p, &st, off);
	sup_state_fini(&st);

	/* percent rounds up: ceil(3 x 1.5) */
	static cfg_scale_policy half[] = {{CFG_POLICY_PERCENT, 50, 60000}};
	c.scale_up = (cfg_scale_rules){0, CFG_SELECT_MAX, half, 1};
	p = mk(&c);
	CHECK_EQ(once(&p, 3, 100000, 0).replicas, 5);
}

static void
rate_scale_down_policies(void)
{
	static cfg_scale_policy pods2[] = {{CFG_POLICY_PODS, 2, 60000}};
	static cfg_scale_policy half[] = {{CFG_POLICY_PERCENT, 50, 60000}};
	static cfg_scale_policy both[] = {{CFG_POLICY_PODS, 1, 60000}, {CFG_POLICY_PERCENT, 50, 60000}};
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	c.min_replicas = 1; /* keep the KEDA step out of it */
	c.scale_down = (cfg_scale_rules){0, CFG_SELECT_MAX, pods2, 1};
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 10, 0);
	static const step steps[] = {
		{.t = 0, .want = 8, .limit = SUP_LIMIT_SCALE_DOWN_RATE,
		 .says = "limited to 8 by scale-down policy pods 2 per 60s"},
		/* start = 8 + 2 */
		{.t = S(10), .want = 8, .limit = SUP_LIMIT_SCALE_DOWN_RATE},
		{.t = S(60) - 1, .want = 8, .limit = SUP_LIMIT_SCALE_DOWN_RATE},
		{.t = S(60), .want = 6, .limit = SUP_LIMIT_SCALE_DOWN_RATE},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);

	/* percent rounds down: floor(5 x 0.5) */
	c.scale_down = (cfg_scale_rules){0, CFG_SELECT_MAX, half, 1};
	p = mk(&c);
	sup_state_init(&st, 5, 0);
	static const step halfsteps[] = {
		{.t = 0, .want = 2, .limit = SUP_LIMIT_SCALE_DOWN_RATE},
		{.t = S(1), .want = 2, .limit = SUP_LIMIT_SCALE_DOWN_RATE}, /* start 5 again */
		{.t = S(60), .want = 1, .limit = SUP_LIMIT_MIN_REPLICAS},
	};
	RUN(&p, &st, halfsteps);
	sup_state_fini(&st);

	/* select max: the most change (smallest proposal); min: the least */
	c.scale_down = (cfg_scale_rules){0, CFG_SELECT_MAX, both, 2};
	p = mk(&c);
	CHECK_EQ(once(&p, 10, 0, 0).replicas, 5);
	c.scale_down.select = CFG_SELECT_MIN;
	p = mk(&c);
	CHECK_EQ(once(&p, 10, 0, 0).replicas, 9);
	c.scale_down.select = CFG_SELECT_DISABLED;
	p = mk(&c);
	sup_decision d = once(&p, 10, 0, 0);
	CHECK_EQ(d.replicas, 10);
	CHECK_CONTAINS(d.reason, "held at 10: scale-down disabled");
}

static void
rate_start_counts_both_directions(void)
{
	static cfg_scale_policy up4[] = {{CFG_POLICY_PODS, 4, 60000}};
	static cfg_scale_policy down1[] = {{CFG_POLICY_PODS, 1, 60000}};
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	c.min_replicas = 1;
	c.scale_up = (cfg_scale_rules){0, CFG_SELECT_MAX, up4, 1};
	c.scale_down = (cfg_scale_rules){0, CFG_SELECT_MAX, down1, 1};
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 2, 0);
	static const step steps[] = {
		{.t = 0, .depth = 10000, .want = 6, .limit = SUP_LIMIT_SCALE_UP_RATE},
		/* start = 6 - 4 + 0 = 2: down to 2 - 1 = 1 allowed */
		{.t = S(10), .depth = 100, .want = 1},
		/* start = 1 - 4 + 5 = 2: up to 6 */
		{.t = S(20), .depth = 10000, .want = 6, .limit = SUP_LIMIT_SCALE_UP_RATE},
	};
	RUN(&p, &st, steps);
	sup_sample ev[4];
	CHECK_EQ(sup_state_events(&st, true, ev, 4), 2);
	CHECK_EQ(ev[1].n, 5);
	CHECK_EQ(sup_state_events(&st, false, ev, 4), 1);
	CHECK_EQ(ev[0].n, 5);
	sup_state_fini(&st);
}

/* ---- fallback ------------------------------------------------------------ */

static sup_decision
fallback_once(int behavior, int cur, int metric_type)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.downscale_stabilization_ms = 0;
	c.metric_type = metric_type;
	c.fallback_set = true;
	c.fallback_failure_threshold = 0;
	c.fallback_replicas = 5;
	c.fallback_behavior = behavior;
	sup_policy p = mk(&c);
	sup_state st;
	sup_decision d;
	sup_poll poll = SUP_POLL_INIT;
	sup_state_init(&st, cur, 0);
	CHECK_EQ(sup_decide(&p, &st, S(1), &poll, &d), SUP_OK);
	sup_state_fini(&st);
	return d;
}

static void
fallback_threshold_is_strict(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.downscale_stabilization_ms = 0;
	c.fallback_set = true;
	c.fallback_failure_threshold = 2;
	c.fallback_replicas = 5;
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 4, 0);
	static const step steps[] = {
		{.t = 0, .fail = true, .want = 4, .limit = SUP_LIMIT_ERROR,
		 .says = "hold: metric read failed (1 in a row)"},
		{.t = S(1), .fail = true, .want = 4, .limit = SUP_LIMIT_ERROR},
		{.t = S(2), .fail = true, .want = 5, .limit = SUP_LIMIT_FALLBACK,
		 .says = "scale up: fallback after 3 failed reads (static 5): backlog 500 / 100 per worker = 5"},
		{.t = S(3), .fail = true, .want = 5, .limit = SUP_LIMIT_FALLBACK},
		/* a good read resets the count */
		{.t = S(4), .depth = 100, .want = 1},
		{.t = S(5), .fail = true, .want = 1, .limit = SUP_LIMIT_ERROR},
	};
	RUN(&p, &st, steps);
	CHECK_EQ(st.failures, 1);
	sup_state_fini(&st);
}

static void
fallback_behaviors(void)
{
	static const struct {
		int behavior, cur, want;
	} v[] = {
		{CFG_FALLBACK_STATIC, 4, 5},
		{CFG_FALLBACK_STATIC, 9, 5},
		{CFG_FALLBACK_CURRENT, 4, 4},
		{CFG_FALLBACK_CURRENT, 9, 9},
		{CFG_FALLBACK_CURRENT_IF_HIGHER, 4, 5},
		{CFG_FALLBACK_CURRENT_IF_HIGHER, 6, 6},
		{CFG_FALLBACK_CURRENT_IF_LOWER, 4, 4},
		{CFG_FALLBACK_CURRENT_IF_LOWER, 6, 5},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		sup_decision d = fallback_once(v[i].behavior, v[i].cur, CFG_METRIC_AVERAGE_VALUE);
		if (d.replicas != v[i].want || !d.fallback || !d.active)
			th_fail(__FILE__, __LINE__, "row %zu: got %d (\"%s\"), want %d", i, d.replicas, d.reason,
			        v[i].want);
	}
	/* value: target x R / current, exactly */
	sup_decision d = fallback_once(CFG_FALLBACK_STATIC, 3, CFG_METRIC_VALUE);
	CHECK_EQ(d.metric_num, 500);
	CHECK_EQ(d.metric_den, 3);
	CHECK_EQ(d.replicas, 5);
	CHECK_CONTAINS(d.reason, "backlog 166.667 / 100 x 3 ready = 5");
	/* a fallback poll is active: from 0 it activates */
	d = fallback_once(CFG_FALLBACK_STATIC, 0, CFG_METRIC_AVERAGE_VALUE);
	CHECK_EQ(d.replicas, 1);
	CHECK_EQ(d.step, SUP_STEP_ACTIVATE);
}

static void
read_error_holds(void)
{
	cfg_supervisor c = base(CFG_MODE_RESPONSIVE);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 3, 0);
	static const step steps[] = {
		{.t = 0, .fail = true, .want = 3, .limit = SUP_LIMIT_ERROR},
		{.t = S(400), .fail = true, .want = 3, .limit = SUP_LIMIT_ERROR}, /* no cooldown on error */
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);
	sup_state_init(&st, 0, 0);
	static const step zero[] = {
		{.t = 0, .fail = true, .want = 0, .limit = SUP_LIMIT_ERROR,
		 .says = "hold: metric read failed (1 in a row), stay at 0"},
	};
	RUN(&p, &st, zero);
	sup_state_fini(&st);
}

/* ---- history ------------------------------------------------------------- */

static void
history_seeded_on_first_poll(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 5, 0);
	static const step steps[] = {
		{.t = S(10), .depth = 100, .want = 5, .limit = SUP_LIMIT_SCALE_DOWN_STABILIZATION},
		{.t = S(310) - 1, .depth = 100, .want = 5, .limit = SUP_LIMIT_SCALE_DOWN_STABILIZATION},
		{.t = S(310), .depth = 100, .want = 1},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);

	/* an empty history (recommendations: []) is not seeded */
	sup_state_init(&st, 5, 0);
	st.seeded = true;
	static const step empty[] = {{.t = S(10), .depth = 100, .want = 1}};
	RUN(&p, &st, empty);
	sup_state_fini(&st);
}

static void
history_keeps_what_can_decide(void)
{
	sup_state st;
	sup_sample v[16];
	sup_state_init(&st, 1, 0);
	CHECK_EQ(sup_state_add_recommendation(&st, 0, 5), SUP_OK);
	CHECK_EQ(sup_state_add_recommendation(&st, 1000, 3), SUP_OK);
	CHECK_EQ(sup_state_add_recommendation(&st, 2000, 7), SUP_OK);
	CHECK_EQ(sup_state_add_recommendation(&st, 3000, 4), SUP_OK);
	CHECK_EQ(sup_state_add_recommendation(&st, 2500, 4), SUP_E_INVALID);
	/* max queue 7,4; min queue 3,4: (0,5) can never be a max or a min again */
	size_t n = sup_state_recommendations(&st, v, 16);
	CHECK_EQ(n, 3);
	CHECK_EQ(v[0].t_ms, 1000);
	CHECK_EQ(v[1].n, 7);
	CHECK_EQ(v[2].t_ms, 3000);
	CHECK_EQ(v[2].n, 4);
	sup_state_fini(&st);
}

/* A metric that flaps must not flap the count: the stabilization windows
 * hold it, in both modes and on both paths. */
static void
flapping_metric_holds_count(void)
{
	for (int mode = 0; mode < 2; mode++) {
		for (int v2 = 0; v2 < 2; v2++) {
			cfg_supervisor c = base(mode == 0 ? CFG_MODE_KEDA : CFG_MODE_RESPONSIVE);
			c.behavior_set = v2;
			sup_policy p = mk(&c);
			sup_state st;
			sup_state_init(&st, 10, 0);
			int changes = 0;
			for (int i = 0; i < 900; i++) {
				sup_poll poll = SUP_POLL_INIT;
				sup_decision d;
				poll.ok = true;
				poll.depth = i % 2 ? 100 : 1000; /* 1 worker's worth, then 10 */
				CHECK_EQ(sup_decide(&p, &st, S(i), &poll, &d), SUP_OK);
				if (d.replicas != d.previous)
					changes++;
				if (d.replicas != 10)
					th_fail(__FILE__, __LINE__, "mode %d v2 %d poll %d: %d (\"%s\")", mode, v2, i,
					        d.replicas, d.reason);
			}
			CHECK_EQ(changes, 0);
			/* a slower flap around the target: keda holds inside the band;
			 * responsive (no band above the target) rises once, to 11, and
			 * the window holds it there */
			changes = 0;
			for (int i = 900; i < 1200; i++) {
				sup_poll poll = SUP_POLL_INIT;
				sup_decision d;
				poll.ok = true;
				poll.depth = (i / 7) % 2 ? 950 : 1050;
				CHECK_EQ(sup_decide(&p, &st, S(i), &poll, &d), SUP_OK);
				if (d.replicas != d.previous)
					changes++;
				CHECK_EQ(d.replicas, mode == 0 ? 10 : 11);
			}
			CHECK_EQ(changes, mode == 0 ? 0 : 1);
			sup_state_fini(&st);
		}
	}
}

/* ---- responsive scale-in floor ------------------------------------------ */

static void
responsive_never_below_leases(void)
{
	cfg_supervisor c = base(CFG_MODE_RESPONSIVE);
	c.downscale_stabilization_ms = 0;
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 6, 0);
	static const step steps[] = {
		/* backlog 300 wants 3, but 5 workers hold leases */
		{.t = S(1), .in_flight = 300, .has_leases = true, .leases = 5, .want = 5,
		 .limit = SUP_LIMIT_LEASES, .says = "held at 5 by workers holding leases"},
		/* unknown leases: assume min(current, in_flight) */
		{.t = S(2), .in_flight = 300, .want = 5, .limit = SUP_LIMIT_LEASES},
		{.t = S(3), .in_flight = 2, .want = 2, .limit = SUP_LIMIT_LEASES},
		{.t = S(4), .depth = 100, .in_flight = 0, .want = 1},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);

	/* keda mode has no floor */
	c.mode = CFG_MODE_KEDA;
	p = mk(&c);
	sup_state_init(&st, 6, 0);
	static const step keda[] = {
		{.t = S(1), .in_flight = 300, .has_leases = true, .leases = 5, .want = 3},
	};
	RUN(&p, &st, keda);
	sup_state_fini(&st);

	/* metric depth does not count in-flight work: no floor */
	c.mode = CFG_MODE_RESPONSIVE;
	c.metric = CFG_METRIC_DEPTH;
	p = mk(&c);
	sup_state_init(&st, 6, 0);
	static const step depth[] = {
		{.t = S(1), .depth = 300, .in_flight = 300, .has_leases = true, .leases = 5, .want = 3},
	};
	RUN(&p, &st, depth);
	sup_state_fini(&st);

	/* the cooldown's scale-in obeys the floor too */
	c.metric = CFG_METRIC_BACKLOG;
	c.activation_threshold = 10;
	p = mk(&c);
	sup_state_init(&st, 3, 0);
	static const step cool[] = {
		{.t = S(1), .in_flight = 5, .want = 3, .limit = SUP_LIMIT_LEASES},
		{.t = S(2), .in_flight = 5, .has_leases = true, .leases = 1, .want = 1,
		 .limit = SUP_LIMIT_LEASES},
		{.t = S(3), .want = 0, .limit = SUP_LIMIT_COOLDOWN},
	};
	RUN(&p, &st, cool);
	sup_state_fini(&st);
}

/* ---- database guard ------------------------------------------------------ */

static void
guard_holds_and_scales_down(int mode)
{
	cfg_supervisor c = base(mode);
	c.downscale_stabilization_ms = 0;
	c.guard_set = true;
	c.guard_max_commit_p99_ms = 200;
	c.guard_window_ms = S(30);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 4, 0);
	st.seeded = true;
	static const step steps[] = {
		{.t = 0, .depth = 2000, .health = true, .p99 = 250, .want = 4, .limit = SUP_LIMIT_GUARD,
		 .says = "hold: sink commit p99 250ms over guard limit 200ms, not scaling up to 8"},
		{.t = S(30) - 1, .depth = 2000, .health = true, .p99 = 250, .want = 4,
		 .limit = SUP_LIMIT_GUARD},
		{.t = S(30), .depth = 2000, .health = true, .p99 = 250, .want = 3, .limit = SUP_LIMIT_GUARD,
		 .says = "scale down: sink commit p99 250ms over guard limit 200ms for 30s, 4 -> 3"},
		/* the window restarted at 30s */
		{.t = S(59), .depth = 2000, .health = true, .p99 = 250, .want = 3, .limit = SUP_LIMIT_GUARD},
		{.t = S(60), .depth = 2000, .health = true, .p99 = 250, .want = 2, .limit = SUP_LIMIT_GUARD},
		/* healthy: scaling resumes (legacy limit max(2 x 2, 4)) */
		{.t = S(61), .depth = 2000, .health = true, .p99 = 100, .want = 4,
		 .limit = SUP_LIMIT_SCALE_UP_RATE},
		{.t = S(62), .depth = 2000, .health = true, .p99 = 201, .want = 4, .limit = SUP_LIMIT_GUARD},
		/* a poll without a report changes nothing */
		{.t = S(63), .depth = 2000, .want = 8, .limit = SUP_LIMIT_SCALE_UP_RATE},
		/* the streak began at 62s: 30s later it scales down */
		{.t = S(92), .depth = 800, .health = true, .p99 = 300, .want = 7, .limit = SUP_LIMIT_GUARD},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);
}

static void
guard_keda(void)
{
	guard_holds_and_scales_down(CFG_MODE_KEDA);
}

static void
guard_responsive(void)
{
	guard_holds_and_scales_down(CFG_MODE_RESPONSIVE);
}

static void
guard_failure_ratio_and_floor(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.downscale_stabilization_ms = 0;
	c.min_replicas = 1;
	c.guard_set = true;
	c.guard_max_failure_ratio = 0.05;
	c.guard_window_ms = 0;
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 2, 0);
	st.seeded = true;
	static const step steps[] = {
		{.t = 0, .depth = 200, .health = true, .ratio = 0.08, .want = 1, .limit = SUP_LIMIT_GUARD,
		 .says = "sink failure ratio 0.08 over guard limit 0.05"},
		/* not below max(min_replicas, 1) */
		{.t = S(1), .depth = 100, .health = true, .ratio = 0.08, .want = 1, .limit = SUP_LIMIT_NONE},
		{.t = S(2), .depth = 1000, .health = true, .ratio = 0.08, .want = 1,
		 .limit = SUP_LIMIT_GUARD, .says = "not scaling up to 4"},
		{.t = S(3), .depth = 1000, .health = true, .ratio = 0.05, .want = 4,
		 .limit = SUP_LIMIT_SCALE_UP_RATE},
	};
	RUN(&p, &st, steps);
	sup_state_fini(&st);
}

/* On the v2 path the rate policies count the HPA's own changes only: a
 * guard hold or a guard scale-down is not an event. */
static void
guard_changes_are_not_hpa_events(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	c.behavior_set = true;
	c.min_replicas = 1;
	c.guard_set = true;
	c.guard_max_commit_p99_ms = 200;
	c.guard_window_ms = S(10);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 4, 0);
	st.seeded = true;
	static const step steps[] = {
		{.t = 0, .depth = 2000, .health = true, .p99 = 300, .want = 4, .limit = SUP_LIMIT_GUARD},
		{.t = S(10), .depth = 400, .health = true, .p99 = 300, .want = 3, .limit = SUP_LIMIT_GUARD},
		/* healthy: start = 3 (no events), pods 4 -> 7, percent 100 -> 6 */
		{.t = S(11), .depth = 2000, .want = 7, .limit = SUP_LIMIT_SCALE_UP_RATE},
	};
	RUN(&p, &st, steps);
	sup_sample ev[4];
	CHECK_EQ(sup_state_events(&st, false, ev, 4), 0);
	CHECK_EQ(sup_state_events(&st, true, ev, 4), 1);
	CHECK_EQ(ev[0].n, 4);
	sup_state_fini(&st);
}

/* ---- inputs -------------------------------------------------------------- */

static void
current_override_and_bad_input(void)
{
	cfg_supervisor c = base(CFG_MODE_KEDA);
	sup_policy p = mk(&c);
	sup_state st;
	sup_state_init(&st, 5, 0);
	static const step steps[] = {
		{.t = 0, .depth = 200, .has_cur = true, .cur = 2, .want = 2},
	};
	RUN(&p, &st, steps);
	CHECK_EQ(last.previous, 2);

	sup_poll poll = SUP_POLL_INIT;
	sup_decision d;
	poll.ok = true;
	poll.depth = -1;
	CHECK_EQ(sup_decide(&p, &st, S(1), &poll, &d), SUP_E_INVALID);
	poll.depth = SUP_METRIC_MAX + 1;
	CHECK_EQ(sup_decide(&p, &st, S(1), &poll, &d), SUP_E_INVALID);
	poll.depth = 0;
	poll.current = SUP_REPLICAS_MAX + 1;
	CHECK_EQ(sup_decide(&p, &st, S(1), &poll, &d), SUP_E_INVALID);
	CHECK_EQ(st.current, 2);
	/* the largest inputs stay exact */
	poll = (sup_poll)SUP_POLL_INIT;
	poll.ok = true;
	poll.depth = SUP_METRIC_MAX;
	poll.in_flight = SUP_METRIC_MAX;
	CHECK_EQ(sup_decide(&p, &st, S(2), &poll, &d), SUP_OK);
	CHECK_EQ(d.raw, INT64_C(20000000000000));
	CHECK_EQ(d.replicas, 4);
	sup_state_fini(&st);
}

static void
format_helpers(void)
{
	char b[64];
	sup_format_metric(12000, 1, b, sizeof(b));
	CHECK_STR(b, "12000");
	sup_format_metric(500, 3, b, sizeof(b));
	CHECK_STR(b, "166.667");
	sup_format_metric(5, 2, b, sizeof(b));
	CHECK_STR(b, "2.5");
	sup_format_metric(2, 3, b, sizeof(b));
	CHECK_STR(b, "0.667");
	sup_format_duration(300000, b, sizeof(b));
	CHECK_STR(b, "300s");
	sup_format_duration(1500, b, sizeof(b));
	CHECK_STR(b, "1.5s");
	sup_format_duration(250, b, sizeof(b));
	CHECK_STR(b, "250ms");
}

static const th_case cases[] = {
	TH_CASE(policy_from_cfg_maps_and_checks),
	TH_CASE(tolerance_band_is_inclusive),
	TH_CASE(responsive_has_no_band_on_scale_up),
	TH_CASE(value_metric_uses_ready),
	TH_CASE(metric_backlog_or_depth),
	TH_CASE(activation_threshold_is_strict),
	TH_CASE(responsive_activates_straight_to_need),
	TH_CASE(cooldown_keda),
	TH_CASE(cooldown_responsive),
	TH_CASE(initial_cooldown),
	TH_CASE(idle_replicas_keda),
	TH_CASE(idle_replicas_responsive),
	TH_CASE(inactive_below_min_is_raised),
	TH_CASE(clamps_to_max_and_min),
	TH_CASE(legacy_scale_up_limit),
	TH_CASE(legacy_window_keda),
	TH_CASE(legacy_window_responsive),
	TH_CASE(v2_scale_up_window),
	TH_CASE(v2_scale_down_window),
	TH_CASE(rate_scale_up_select_max),
	TH_CASE(rate_scale_up_select_min_and_disabled),
	TH_CASE(rate_scale_down_policies),
	TH_CASE(rate_start_counts_both_directions),
	TH_CASE(fallback_threshold_is_strict),
	TH_CASE(fallback_behaviors),
	TH_CASE(read_error_holds),
	TH_CASE(history_seeded_on_first_poll),
	TH_CASE(history_keeps_what_can_decide),
	TH_CASE(flapping_metric_holds_count),
	TH_CASE(responsive_never_below_leases),
	TH_CASE(guard_keda),
	TH_CASE(guard_responsive),
	TH_CASE(guard_failure_ratio_and_floor),
	TH_CASE(guard_changes_are_not_hpa_events),
	TH_CASE(current_override_and_bad_input),
	TH_CASE(format_helpers),
	{NULL, NULL},
};

TH_MAIN(cases)

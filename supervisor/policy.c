/*
 * policy: the scaling decision (see policy.h). One poll runs, in order:
 * read (metric or fallback), activity, the KEDA step, the HPA step, then
 * the mode's scale-in floor and the database guard. The two modes differ in
 * three places only; those are the mode_ops table below.
 *
 * Every ratio is compared in integers: the metric is a fraction num/den
 * (den > 1 only for a value-type fallback), tolerances are parts per
 * million, and the products are formed in 128 bits. The ranges in policy.h
 * bound every product well inside that.
 */
#include "policy.h"

#include "config.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GCC and Clang on every 64-bit target we build for. */
typedef __int128 wide;

#define PPM INT64_C(1000000)

/* ---- small arithmetic ---------------------------------------------------- */

static wide
floor_div(wide a, wide b)
{
	assert(b > 0);
	wide q = a / b;
	if (a % b != 0 && a < 0)
		q--;
	return q;
}

static wide
ceil_div(wide a, wide b)
{
	assert(b > 0);
	wide q = a / b;
	if (a % b != 0 && a > 0)
		q++;
	return q;
}

/* Narrows a count to int64, saturating: raw recommendations can exceed any
 * replica count (a huge backlog with a tiny target); every use clamps them
 * to max_replicas later, so saturation changes no decision. */
static int64_t
sat64(wide v)
{
	if (v > INT64_MAX)
		return INT64_MAX;
	if (v < INT64_MIN)
		return INT64_MIN;
	return (int64_t)v;
}

static int64_t
max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t
gcd64(int64_t a, int64_t b)
{
	while (b != 0) {
		int64_t r = a % b;
		a = b;
		b = r;
	}
	return a;
}

/* ---- reasons ---------------------------------------------------------- */

/* The reason under construction: appends, truncating quietly at the end of
 * the decision's buffer. */
typedef struct reason {
	char *buf;
	size_t len, cap;
} reason;

static void
say(reason *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(reason *r, const char *fmt, ...)
{
	if (r->len + 1 >= r->cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->buf + r->len, r->cap - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len = r->len + (size_t)n < r->cap ? r->len + (size_t)n : r->cap - 1;
}

/* The hot fragments without printf: a string, a whole number. */
static void
say_s(reason *r, const char *s)
{
	size_t n = strlen(s);
	if (r->len + n >= r->cap)
		n = r->cap - 1 - r->len;
	memcpy(r->buf + r->len, s, n);
	r->len += n;
	r->buf[r->len] = '\0';
}

static void
say_i(reason *r, int64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	*--p = '\0';
	do {
		*--p = (char)('0' + a % 10);
		a /= 10;
	} while (a != 0);
	if (v < 0)
		*--p = '-';
	say_s(r, p);
}

/* ---- formatting ---------------------------------------------------------- */

int
sup_format_metric(int64_t num, int64_t den, char *buf, size_t len)
{
	if (den <= 1) {
		reason r = {.buf = buf, .len = 0, .cap = len};
		if (len == 0)
			return 0;
		buf[0] = '\0';
		say_i(&r, num);
		return (int)r.len;
	}
	/* round half up to thousandths */
	wide milli = floor_div((wide)num * 2000 + den, (wide)den * 2);
	int64_t whole = (int64_t)(milli / 1000);
	int frac = (int)(milli % 1000);
	if (frac == 0)
		return snprintf(buf, len, "%" PRId64, whole);
	char digits[12];
	snprintf(digits, sizeof(digits), "%03d", frac);
	for (int i = 2; i > 0 && digits[i] == '0'; i--)
		digits[i] = '\0';
	return snprintf(buf, len, "%" PRId64 ".%s", whole, digits);
}

int
sup_format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		return snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	if (ms < 1000)
		return snprintf(buf, len, "%" PRId64 "ms", ms);
	char digits[12];
	snprintf(digits, sizeof(digits), "%03d", (int)(ms % 1000));
	for (int i = 2; i > 0 && digits[i] == '0'; i--)
		digits[i] = '\0';
	return snprintf(buf, len, "%" PRId64 ".%ss", ms / 1000, digits);
}

const char *
sup_limit_name(int limit)
{
	static const char *const names[] = {
		[SUP_LIMIT_NONE] = "none",
		[SUP_LIMIT_MAX_REPLICAS] = "max_replicas",
		[SUP_LIMIT_MIN_REPLICAS] = "min_replicas",
		[SUP_LIMIT_SCALE_UP_RATE] = "scale-up rate",
		[SUP_LIMIT_SCALE_DOWN_RATE] = "scale-down rate",
		[SUP_LIMIT_SCALE_UP_STABILIZATION] = "scale-up stabilization",
		[SUP_LIMIT_SCALE_DOWN_STABILIZATION] = "scale-down stabilization",
		[SUP_LIMIT_TOLERANCE] = "tolerance",
		[SUP_LIMIT_ACTIVATION] = "activation",
		[SUP_LIMIT_COOLDOWN] = "cooldown",
		[SUP_LIMIT_FALLBACK] = "fallback",
		[SUP_LIMIT_ERROR] = "read error",
		[SUP_LIMIT_GUARD] = "guard",
		[SUP_LIMIT_LEASES] = "leases",
	};
	if (limit < 0 || (size_t)limit >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[limit];
}

/* ---- policy from configuration ------------------------------------------- */

static int
bad(char *err, size_t errlen, const char *key, const char *what)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "supervisor.%s: %s", key, what);
	return SUP_E_INVALID;
}

static int
rules_from_cfg(const cfg_scale_rules *c, sup_rules *r, const char *key, char *err, size_t errlen)
{
	char k[96];
	if (c->window_ms < 0) {
		snprintf(k, sizeof(k), "behavior.%s.stabilization_window", key);
		return bad(err, errlen, k, "must not be negative");
	}
	if (c->select < CFG_SELECT_MAX || c->select > CFG_SELECT_DISABLED) {
		snprintf(k, sizeof(k), "behavior.%s.select_policy", key);
		return bad(err, errlen, k, "must be max, min or disabled");
	}
	if (c->npolicies > SUP_MAX_POLICIES) {
		snprintf(k, sizeof(k), "behavior.%s.policies", key);
		return bad(err, errlen, k, "at most 16 policies");
	}
	r->window_ms = c->window_ms;
	r->select = c->select == CFG_SELECT_MIN   ? SUP_SELECT_MIN
	            : c->select == CFG_SELECT_MAX ? SUP_SELECT_MAX
	                                          : SUP_SELECT_DISABLED;
	r->nrates = c->npolicies;
	for (size_t i = 0; i < c->npolicies; i++) {
		const cfg_scale_policy *cp = &c->policies[i];
		snprintf(k, sizeof(k), "behavior.%s.policies[%zu]", key, i);
		if (cp->type != CFG_POLICY_PODS && cp->type != CFG_POLICY_PERCENT)
			return bad(err, errlen, k, "type must be pods or percent");
		if (cp->value < 0 || cp->value > SUP_POLICY_VALUE_MAX)
			return bad(err, errlen, k, "value must be between 0 and 1000000000");
		if (cp->period_ms < 0)
			return bad(err, errlen, k, "period must not be negative");
		r->rates[i].type = cp->type == CFG_POLICY_PODS ? SUP_RATE_PODS : SUP_RATE_PERCENT;
		r->rates[i].value = cp->value;
		r->rates[i].period_ms = cp->period_ms;
	}
	return SUP_OK;
}

int
sup_policy_from_cfg(const cfg_supervisor *c, sup_policy *p, char *err, size_t errlen)
{
	int rc;

	memset(p, 0, sizeof(*p));
	if (c->max_replicas < 1 || c->max_replicas > SUP_REPLICAS_MAX)
		return bad(err, errlen, "max_replicas", "must be between 1 and 1000000");
	if (c->min_replicas < 0 || c->min_replicas > c->max_replicas)
		return bad(err, errlen, "min_replicas", "must be between 0 and max_replicas");
	if (c->idle_replicas < -1 || c->idle_replicas > c->max_replicas)
		return bad(err, errlen, "idle_replicas", "must be between 0 and max_replicas");
	if (c->target_per_worker < 1 || c->target_per_worker > SUP_TARGET_MAX)
		return bad(err, errlen, "target_per_worker", "must be between 1 and 1000000000000");
	if (c->activation_threshold < 0 || c->activation_threshold > SUP_METRIC_MAX)
		return bad(err, errlen, "activation_threshold", "must be between 0 and 1e15");
	if (c->tolerance_up_ppm < 0 || c->tolerance_up_ppm > SUP_PPM_MAX ||
	    c->tolerance_down_ppm < 0 || c->tolerance_down_ppm > SUP_PPM_MAX)
		return bad(err, errlen, "tolerance", "must be between 0 and 1000");
	if (c->cooldown_ms < 0)
		return bad(err, errlen, "cooldown_period", "must not be negative");
	if (c->initial_cooldown_ms < 0)
		return bad(err, errlen, "initial_cooldown_period", "must not be negative");
	if (c->downscale_stabilization_ms < 0)
		return bad(err, errlen, "downscale_stabilization", "must not be negative");

	p->mode = c->mode == CFG_MODE_KEDA ? SUP_MODE_KEDA : SUP_MODE_RESPONSIVE;
	p->min_replicas = c->min_replicas;
	p->max_replicas = c->max_replicas;
	p->idle_replicas = c->idle_replicas < 0 ? -1 : c->idle_replicas;
	p->target = c->target_per_worker;
	p->metric_type = c->metric_type == CFG_METRIC_VALUE ? SUP_VALUE : SUP_AVERAGE_VALUE;
	p->metric = c->metric == CFG_METRIC_DEPTH ? SUP_METRIC_DEPTH : SUP_METRIC_BACKLOG;
	p->activation_threshold = c->activation_threshold;
	p->tolerance_up_ppm = c->tolerance_up_ppm;
	p->tolerance_down_ppm = c->tolerance_down_ppm;
	p->cooldown_ms = c->cooldown_ms;
	p->initial_cooldown_ms = c->initial_cooldown_ms;
	p->downscale_stabilization_ms = c->downscale_stabilization_ms;

	p->behavior_set = c->behavior_set;
	if (c->behavior_set) {
		if ((rc = rules_from_cfg(&c->scale_up, &p->scale_up, "scale_up", err, errlen)) != SUP_OK)
			return rc;
		if ((rc = rules_from_cfg(&c->scale_down, &p->scale_down, "scale_down", err, errlen)) !=
		    SUP_OK)
			return rc;
	}

	p->fallback_set = c->fallback_set;
	if (c->fallback_set) {
		if (c->fallback_failure_threshold < 0)
			return bad(err, errlen, "fallback.failure_threshold", "must not be negative");
		if (c->fallback_replicas < 0 || c->fallback_replicas > SUP_REPLICAS_MAX)
			return bad(err, errlen, "fallback.replicas", "must be between 0 and 1000000");
		if (c->fallback_behavior < CFG_FALLBACK_STATIC ||
		    c->fallback_behavior > CFG_FALLBACK_CURRENT_IF_LOWER)
			return bad(err, errlen, "fallback.behavior",
			           "must be static, current_replicas, current_replicas_if_higher or "
			           "current_replicas_if_lower");
		p->fallback_failure_threshold = c->fallback_failure_threshold;
		p->fallback_replicas = c->fallback_replicas;
		p->fallback_behavior = c->fallback_behavior == CFG_FALLBACK_CURRENT ? SUP_FALLBACK_CURRENT
		                       : c->fallback_behavior == CFG_FALLBACK_CURRENT_IF_HIGHER
		                           ? SUP_FALLBACK_CURRENT_IF_HIGHER
		                       : c->fallback_behavior == CFG_FALLBACK_CURRENT_IF_LOWER
		                           ? SUP_FALLBACK_CURRENT_IF_LOWER
		                           : SUP_FALLBACK_STATIC;
	}

	p->guard_set = c->guard_set;
	if (c->guard_set) {
		if (c->guard_max_commit_p99_ms < 0)
			return bad(err, errlen, "guard.max_commit_p99", "must not be negative");
		if (!(c->guard_max_failure_ratio >= 0.0 && c->guard_max_failure_ratio <= 1.0))
			return bad(err, errlen, "guard.max_failure_ratio", "must be between 0 and 1");
		if (c->guard_window_ms < 0)
			return bad(err, errlen, "guard.window", "must not be negative");
		p->guard_max_commit_p99_ms = c->guard_max_commit_p99_ms;
		p->guard_max_failure_ratio = c->guard_max_failure_ratio;
		p->guard_window_ms = c->guard_window_ms;
	}
	return SUP_OK;
}

/* ---- sample series ------------------------------------------------------- */

static sup_sample *
at(const sup_series *s, size_t i)
{
	return &s->v[(s->head + i) % s->cap];
}

/* Makes room for n more samples, so that later pushes cannot fail. */
static int
reserve(sup_series *s, size_t n)
{
	if (s->len + n <= s->cap)
		return SUP_OK;
	size_t ncap = s->cap ? s->cap * 2 : 16;
	while (ncap < s->len + n)
		ncap *= 2;
	sup_sample *nv = malloc(ncap * sizeof(*nv));
	if (nv == NULL)
		return SUP_E_NOMEM;
	for (size_t i = 0; i < s->len; i++)
		nv[i] = *at(s, i);
	free(s->v);
	s->v = nv;
	s->head = 0;
	s->cap = ncap;
	return SUP_OK;
}

static void
push_back(sup_series *s, int64_t t_ms, int64_t n)
{
	assert(s->len < s->cap);
	*at(s, s->len) = (sup_sample){t_ms, n};
	s->len++;
}

static void
pop_front(sup_series *s)
{
	s->head = (s->head + 1) % s->cap;
	s->len--;
}

static const sup_sample *
back(const sup_series *s)
{
	return s->len ? at(s, s->len - 1) : NULL;
}

/* Drops the samples that no window of w can count again at now. */
static void
prune(sup_series *s, int64_t now_ms, int64_t w_ms)
{
	while (s->len > 0 && now_ms - at(s, 0)->t_ms >= w_ms)
		pop_front(s);
}

/* Monotonic queue pushes: rec_max_ keeps values strictly decreasing from
 * front to back, rec_min_ strictly increasing; an older sample dominated
 * by the new one can never be a window's max (min) again. */
static void
push_max(sup_series *s, int64_t t_ms, int64_t n)
{
	while (s->len > 0 && back(s)->n <= n)
		s->len--;
	push_back(s, t_ms, n);
}

static void
push_min(sup_series *s, int64_t t_ms, int64_t n)
{
	while (s->len > 0 && back(s)->n >= n)
		s->len--;
	push_back(s, t_ms, n);
}

/* Sum of the events younger than period at now (strict). */
static int64_t
recent_sum(const sup_series *s, int64_t now_ms, int64_t period_ms)
{
	int64_t sum = 0;
	for (size_t i = s->len; i > 0; i--) {
		const sup_sample *e = at(s, i - 1);
		if (!(now_ms - e->t_ms < period_ms))
			break;
		sum += e->n;
	}
	return sum;
}

void
sup_state_init(sup_state *st, int current, int64_t t0_ms)
{
	memset(st, 0, sizeof(*st));
	st->current = current;
	st->t0_ms = t0_ms;
}

void
sup_state_fini(sup_state *st)
{
	if (st == NULL)
		return;
	free(st->rec_max_.v);
	free(st->rec_min_.v);
	free(st->up_.v);
	free(st->down_.v);
	memset(&st->rec_max_, 0, sizeof(st->rec_max_));
	memset(&st->rec_min_, 0, sizeof(st->rec_min_));
	memset(&st->up_, 0, sizeof(st->up_));
	memset(&st->down_, 0, sizeof(st->down_));
}

/* The newest time in the history, for the order check. */
static bool
history_last(const sup_state *st, int64_t *t_ms)
{
	const sup_sample *a = back(&st->rec_max_), *b = back(&st->rec_min_);
	if (a == NULL && b == NULL)
		return false;
	*t_ms = a == NULL ? b->t_ms : b == NULL ? a->t_ms : max64(a->t_ms, b->t_ms);
	return true;
}

int
sup_state_add_recommendation(sup_state *st, int64_t t_ms, int64_t n)
{
	int64_t last;
	if (history_last(st, &last) && t_ms < last)
		return SUP_E_INVALID;
	if (reserve(&st->rec_max_, 1) != SUP_OK || reserve(&st->rec_min_, 1) != SUP_OK)
		return SUP_E_NOMEM;
	push_max(&st->rec_max_, t_ms, n);
	push_min(&st->rec_min_, t_ms, n);
	st->seeded = true;
	return SUP_OK;
}

int
sup_state_add_event(sup_state *st, bool up, int64_t t_ms, int64_t n)
{
	sup_series *s = up ? &st->up_ : &st->down_;
	if (s->len > 0 && t_ms < back(s)->t_ms)
		return SUP_E_INVALID;
	if (reserve(s, 1) != SUP_OK)
		return SUP_E_NOMEM;
	push_back(s, t_ms, n);
	return SUP_OK;
}

size_t
sup_state_recommendations(const sup_state *st, sup_sample *out, size_t cap)
{
	const sup_series *a = &st->rec_max_, *b = &st->rec_min_;
	size_t i = 0, j = 0, n = 0;

	/* merge by time; a sample pushed to both queues appears once */
	while (i < a->len || j < b->len) {
		const sup_sample *x = i < a->len ? at(a, i) : NULL;
		const sup_sample *y = j < b->len ? at(b, j) : NULL;
		sup_sample s;
		if (x != NULL && y != NULL && x->t_ms == y->t_ms && x->n == y->n) {
			s = *x;
			i++;
			j++;
		} else if (y == NULL || (x != NULL && x->t_ms <= y->t_ms)) {
			s = *x;
			i++;
		} else {
			s = *y;
			j++;
		}
		if (n < cap)
			out[n] = s;
		n++;
	}
	return n;
}

size_t
sup_state_events(const sup_state *st, bool up, sup_sample *out, size_t cap)
{
	const sup_series *s = up ? &st->up_ : &st->down_;
	for (size_t i = 0; i < s->len && i < cap; i++)
		out[i] = *at(s, i);
	return s->len;
}

/* ---- the modes ----------------------------------------------------------- */

/* The metric of this poll: num/den. */
typedef struct metric {
	int64_t num;
	int64_t den;
} metric;

/* The three places where `mode: responsive` departs from KEDA + HPA. */
typedef struct mode_ops {
	/* the count to activate at (from 0, or from idle below min) */
	int (*activate)(const sup_policy *p, metric m);
	/* whether the tolerance band holds back a scale-up */
	bool band_on_scale_up;
	/* the lowest count a scale-in may reach this poll (0: no floor) */
	int (*scale_in_floor)(const sup_policy *p, const sup_poll *poll, int current);
} mode_ops;

static int
keda_activate(const sup_policy *p, metric m)
{
	(void)m;
	return p->min_replicas > 0 ? p->min_replicas : 1;
}

static int
no_floor(const sup_policy *p, const sup_poll *poll, int current)
{
	(void)p;
	(void)poll;
	(void)current;
	return 0;
}

static int64_t
clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static int
responsive_activate(const sup_policy *p, metric m)
{
	int64_t want = sat64(ceil_div(m.num, (wide)m.den * p->target));
	return (int)clamp64(want, p->min_replicas > 1 ? p->min_replicas : 1, p->max_replicas);
}

/* Never below the workers holding leases while the metric still counts
 * in-flight work: those workers are processing, and stopping them would
 * throw their batches back on the queue. */
static int
lease_floor(const sup_policy *p, const sup_poll *poll, int current)
{
	if (!poll->ok || p->metric != SUP_METRIC_BACKLOG || poll->in_flight <= 0)
		return 0;
	int64_t leases = poll->leases >= 0 ? poll->leases : min64(current, poll->in_flight);
	return (int)min64(leases, current);
}

static const mode_ops keda_ops = {
	.activate = keda_activate,
	.band_on_scale_up = true,
	.scale_in_floor = no_floor,
};

static const mode_ops responsive_ops = {
	.activate = responsive_activate,
	.band_on_scale_up = false,
	.scale_in_floor = lease_floor,
};

/* ---- one poll ------------------------------------------------------------ */

/* Everything one poll works with. */
typedef struct pollctx {
	const sup_policy *p;
	const mode_ops *ops;
	sup_state *st;
	const sup_poll *poll;
	int64_t now;
	int current;
	bool error;       /* failed read without fallback */
	bool fallback;
	int fallback_r;   /* R of the fallback */
	bool active;
	bool guarded;     /* the guard changed the policy's decision */
	metric m;
	char mtext[48];   /* the metric, formatted */
	sup_decision *out;
	reason r;
} pollctx;

static const char *
metric_name(const sup_policy *p)
{
	return p->metric == SUP_METRIC_DEPTH ? "depth" : "backlog";
}

static const char *
fallback_name(int b)
{
	switch (b) {
	case SUP_FALLBACK_CURRENT:
		return "current_replicas";
	case SUP_FALLBACK_CURRENT_IF_HIGHER:
		return "current_replicas_if_higher";
	case SUP_FALLBACK_CURRENT_IF_LOWER:
		return "current_replicas_if_lower";
	default:
		return "static";
	}
}

static const char *
verb(int from, int to)
{
	return to > from ? "scale up" : to < from ? "scale down" : "hold";
}

/* "scale up: " and, for a fallback poll, what the metric stands for. */
static void
say_head(pollctx *c, int to)
{
	say_s(&c->r, verb(c->current, to));
	say_s(&c->r, ": ");
	if (c->fallback)
		say(&c->r, "fallback after %d failed read%s (%s %d): ", c->st->failures,
		    c->st->failures == 1 ? "" : "s", fallback_name(c->p->fallback_behavior), c->fallback_r);
}

/* Step 1: the metric, or the fallback's, or an error. */
static void
read_metric(pollctx *c)
{
	const sup_policy *p = c->p;
	sup_state *st = c->st;

	if (c->poll->ok) {
		st->failures = 0;
		c->m.num = c->poll->depth + (p->metric == SUP_METRIC_BACKLOG ? c->poll->in_flight : 0);
		c->m.den = 1;
		return;
	}
	if (st->failures < INT32_MAX)
		st->failures++;
	if (!p->fallback_set || !(st->failures > p->fallback_failure_threshold)) {
		c->error = true;
		return;
	}
	int cur = c->current, fr = p->fallback_replicas, r;
	switch (p->fallback_behavior) {
	case SUP_FALLBACK_CURRENT:
		r = cur;
		break;
	case SUP_FALLBACK_CURRENT_IF_HIGHER:
		r = cur > fr ? cur : fr;
		break;
	case SUP_FALLBACK_CURRENT_IF_LOWER:
		r = cur < fr ? cur : fr;
		break;
	default:
		r = fr;
		break;
	}
	c->fallback = true;
	c->fallback_r = r;
	c->m.num = p->target * r;
	/* value: target x R / current; at 0 workers (activation only) / 1 */
	c->m.den = p->metric_type == SUP_VALUE && cur > 1 ? cur : 1;
	int64_t g = gcd64(c->m.num, c->m.den);
	if (g > 1) {
		c->m.num /= g;
		c->m.den /= g;
	}
}

/* The mode's scale-in floor, applied to a decision below current. */
static int
floor_scale_in(pollctx *c, int to, bool *floored)
{
	*floored = false;
	if (to >= c->current)
		return to;
	int f = c->ops->scale_in_floor(c->p, c->poll, c->current);
	if (to < f) {
		*floored = true;
		return f;
	}
	return to;
}

static void
decide(pollctx *c, int step, int replicas, int limit)
{
	c->out->step = step;
	c->out->replicas = replicas;
	c->out->limit = limit;
}

/* Step 3, the KEDA step. Returns true if it decided. */
static bool
keda_step(pollctx *c)
{
	const sup_policy *p = c->p;
	sup_state *st = c->st;
	int cur = c->current;
	bool idle_set = p->idle_replicas >= 0;

	if (c->active) {
		st->has_last_active = true;
		st->last_active_ms = c->now;
		if (cur == 0 || (idle_set && cur < p->min_replicas)) {
			int to = c->ops->activate(p, c->m);
			say_head(c, to);
			if (!c->fallback)
				say(&c->r, "%s %s > activation threshold %" PRId64 ", ", metric_name(p), c->mtext,
				    p->activation_threshold);
			if (c->ops->activate == keda_activate) {
				if (p->min_replicas > 0)
					say(&c->r, "activate at min_replicas %d", to);
				else
					say(&c->r, "activate at 1");
			} else {
				int64_t want = sat64(ceil_div(c->m.num, (wide)c->m.den * p->target));
				say(&c->r, "activate at %s / %" PRId64 " per worker = %" PRId64, c->mtext,
				    p->target, want);
				if (want > to)
					say(&c->r, ", limited to %d by max_replicas", to);
				else if (want < to)
					say(&c->r, ", raised to %d by min_replicas", to);
			}
			decide(c, SUP_STEP_ACTIVATE, to, SUP_LIMIT_ACTIVATION);
			return true;
		}
		return false;
	}
	if (c->error)
		return false;

	/* inactive */
	if ((idle_set && cur > p->idle_replicas) || (cur > 0 && p->min_replicas == 0)) {
		bool initial = !st->has_last_active;
		bool expired = initial ? st->t0_ms + p->initial_cooldown_ms < c->now
		                       : st->last_active_ms + p->cooldown_ms < c->now;
		if (!expired)
			return false;
		int to = idle_set ? p->idle_replicas : p->min_replicas;
		bool floored;
		int fto = floor_scale_in(c, to, &floored);
		char d[32];
		sup_format_duration(initial ? p->initial_cooldown_ms : p->cooldown_ms, d, sizeof(d));
		say(&c->r, "%s: %s %s <= activation threshold %" PRId64 " ", verb(cur, fto),
		    metric_name(p), c->mtext, p->activation_threshold);
		if (initial)
			say(&c->r, "since start, past initial cooldown %s", d);
		else
			say(&c->r, "past cooldown %s", d);
		say(&c->r, ", to %s %d", idle_set ? "idle_replicas" : "min_replicas", to);
		if (floored)
			say(&c->r, ", held at %d by workers holding leases", fto);
		decide(c, SUP_STEP_DEACTIVATE, fto, floored ? SUP_LIMIT_LEASES : SUP_LIMIT_COOLDOWN);
		return true;
	}
	if (!idle_set && cur < p->min_replicas) {
		say(&c->r, "scale up: %s %s <= activation threshold %" PRId64 ", raise to min_replicas %d",
		    metric_name(p), c->mtext, p->activation_threshold, p->min_replicas);
		decide(c, SUP_STEP_RAISE_TO_MIN, p->min_replicas, SUP_LIMIT_MIN_REPLICAS);
		return true;
	}
	return false;
}

/* The rate limit of one direction: the proposal select_policy picks, and
 * the policy that made it (NULL when disabled or empty). */
static int64_t
rate_limit(pollctx *c, bool up, const sup_rate **which)
{
	const sup_rules *r = up ? &c->p->scale_up : &c->p->scale_down;
	int64_t cur = c->current, best = cur;
	bool have = false;

	*which = NULL;
	if (r->select == SUP_SELECT_DISABLED)
		return cur;
	for (size_t i = 0; i < r->nrates; i++) {
		const sup_rate *rt = &r->rates[i];
		int64_t start = cur - recent_sum(&c->st->up_, c->now, rt->period_ms) +
		                recent_sum(&c->st->down_, c->now, rt->period_ms);
		int64_t prop;
		if (up)
			prop = rt->type == SUP_RATE_PODS ? start + rt->value
			                                 : sat64(ceil_div((wide)start * (100 + rt->value), 100));
		else
			prop = rt->type == SUP_RATE_PODS ? start - rt->value
			                                 : sat64(floor_div((wide)start * (100 - rt->value), 100));
		/* up: max takes the largest proposal; down: max takes the smallest
		 * (the most change) */
		bool better = !have || (up == (r->select == SUP_SELECT_MAX) ? prop > best : prop < best);
		if (better) {
			best = prop;
			*which = rt;
			have = true;
		}
	}
	if (!have)
		return cur;
	return up ? max64(best, cur) : min64(best, cur);
}

static void
say_rate(pollctx *c, bool up, const sup_rate *rt, int to)
{
	const char *dir = up ? "scale-up" : "scale-down";
	if (rt == NULL) {
		const sup_rules *r = up ? &c->p->scale_up : &c->p->scale_down;
		say(&c->r, ", held at %d: %s %s", to, dir,
		    r->select == SUP_SELECT_DISABLED ? "disabled" : "has no policies");
		return;
	}
	char d[32];
	sup_format_duration(rt->period_ms, d, sizeof(d));
	say(&c->r, ", limited to %d by %s policy %s %" PRId64 " per %s", to, dir,
	    rt->type == SUP_RATE_PODS ? "pods" : "percent", rt->value, d);
}

/* What the HPA step worked out, for its reason. */
typedef struct hpa_calc {
	int ready;
	int64_t computed;  /* ceil(m / target) (or x ready for value) */
	int64_t raw;       /* computed, or current inside the tolerance band */
	int64_t stab;      /* after the stabilization windows */
	int64_t to;
	int limit;
	const sup_rate *rate; /* the policy that limited, if one did */
} hpa_calc;

/* The raw recommendation: the band test and the rounding, exact. */
static void
recommend(pollctx *c, hpa_calc *h)
{
	const sup_policy *p = c->p;
	int64_t cur = c->current;
	metric m = c->m;
	/* ratio = num / d */
	wide d = (wide)m.den * p->target * (p->metric_type == SUP_AVERAGE_VALUE ? cur : 1);
	wide scaled = (wide)m.num * PPM;
	bool within = (wide)(PPM - p->tolerance_down_ppm) * d <= scaled &&
	              scaled <= (wide)(PPM + p->tolerance_up_ppm) * d;
	if (within && !c->ops->band_on_scale_up && (wide)m.num > d)
		within = false; /* responsive: no band above the target */

	if (p->metric_type == SUP_AVERAGE_VALUE)
		h->computed = sat64(ceil_div(m.num, (wide)m.den * p->target));
	else
		h->computed = sat64(ceil_div((wide)m.num * h->ready, (wide)m.den * p->target));
	h->raw = within ? cur : h->computed;
	h->limit = h->raw != h->computed ? SUP_LIMIT_TOLERANCE : SUP_LIMIT_NONE;
}

/* Legacy path: the max over the downscale window, then the HPA's fixed
 * scale-up limit max(2 x current, 4). */
static void
stabilize_legacy(pollctx *c, hpa_calc *h)
{
	const sup_policy *p = c->p;
	sup_state *st = c->st;
	int64_t cur = c->current, hpa_min = p->min_replicas > 1 ? p->min_replicas : 1;

	prune(&st->rec_max_, c->now, p->downscale_stabilization_ms);
	prune(&st->rec_min_, c->now, 0);
	h->stab = h->raw;
	if (st->rec_max_.len > 0)
		h->stab = max64(h->stab, at(&st->rec_max_, 0)->n);
	push_max(&st->rec_max_, c->now, h->raw);
	push_min(&st->rec_min_, c->now, h->raw);
	if (h->stab != h->raw)
		h->limit = SUP_LIMIT_SCALE_DOWN_STABILIZATION;

	int64_t legacy_up = max64(2 * cur, 4);
	h->to = clamp64(h->stab, hpa_min, min64(p->max_replicas, legacy_up));
	if (h->to < h->stab)
		h->limit = p->max_replicas > legacy_up ? SUP_LIMIT_SCALE_UP_RATE : SUP_LIMIT_MAX_REPLICAS;
	else if (h->to > h->stab)
		h->limit = SUP_LIMIT_MIN_REPLICAS;
}

/* v2 path: both windows bound the recommendation, then the rate policies. */
static void
stabilize_v2(pollctx *c, hpa_calc *h)
{
	const sup_policy *p = c->p;
	sup_state *st = c->st;
	int64_t cur = c->current, hpa_min = p->min_replicas > 1 ? p->min_replicas : 1;

	prune(&st->rec_min_, c->now, p->scale_up.window_ms);
	prune(&st->rec_max_, c->now, p->scale_down.window_ms);
	int64_t up_bound = h->raw, down_bound = h->raw;
	if (st->rec_min_.len > 0)
		up_bound = min64(up_bound, at(&st->rec_min_, 0)->n);
	if (st->rec_max_.len > 0)
		down_bound = max64(down_bound, at(&st->rec_max_, 0)->n);
	h->stab = cur;
	if (h->stab < up_bound)
		h->stab = up_bound;
	if (h->stab > down_bound)
		h->stab = down_bound;
	push_min(&st->rec_min_, c->now, h->raw);
	push_max(&st->rec_max_, c->now, h->raw);
	if (h->stab != h->raw)
		h->limit = h->raw > cur ? SUP_LIMIT_SCALE_UP_STABILIZATION
		                        : SUP_LIMIT_SCALE_DOWN_STABILIZATION;

	h->to = h->stab;
	if (h->stab > cur) {
		int64_t up_limit = rate_limit(c, true, &h->rate);
		int64_t allowed = min64(p->max_replicas, up_limit);
		if (h->stab > allowed) {
			h->to = allowed;
			h->limit = up_limit < p->max_replicas ? SUP_LIMIT_SCALE_UP_RATE : SUP_LIMIT_MAX_REPLICAS;
		}
	} else if (h->stab < cur) {
		int64_t down_limit = rate_limit(c, false, &h->rate);
		int64_t allowed = max64(hpa_min, down_limit);
		if (h->stab < allowed) {
			h->to = allowed;
			h->limit = down_limit > hpa_min ? SUP_LIMIT_SCALE_DOWN_RATE : SUP_LIMIT_MIN_REPLICAS;
		}
	}
}

/* "scale up: backlog 12000 / 100 per worker = 120, limited to 8 by
 * max_replicas" */
static void
say_hpa(pollctx *c, const hpa_calc *h)
{
	const sup_policy *p = c->p;
	char d[32];

	say_head(c, (int)h->to);
	if (p->metric_type == SUP_AVERAGE_VALUE) {
		say_s(&c->r, metric_name(p));
		say_s(&c->r, " ");
		say_s(&c->r, c->mtext);
		say_s(&c->r, " / ");
		say_i(&c->r, p->target);
		say_s(&c->r, " per worker = ");
		say_i(&c->r, h->computed);
	} else
		say(&c->r, "%s %s / %" PRId64 " x %d ready = %" PRId64, metric_name(p), c->mtext, p->target,
		    h->ready, h->computed);

	/* the windows moved it, and a later limit then applied */
	bool stab_named = h->limit == SUP_LIMIT_SCALE_UP_STABILIZATION ||
	                  h->limit == SUP_LIMIT_SCALE_DOWN_STABILIZATION;
	if (h->stab != h->raw && !stab_named) {
		bool up = h->stab < h->raw;
		int64_t w = !p->behavior_set ? p->downscale_stabilization_ms
		            : up             ? p->scale_up.window_ms
		                             : p->scale_down.window_ms;
		sup_format_duration(w, d, sizeof(d));
		say(&c->r, ", stabilized to %" PRId64 " (%s over %s)", h->stab, up ? "min" : "max", d);
	} else if (h->raw != h->computed && h->limit != SUP_LIMIT_TOLERANCE) {
		say(&c->r, ", within tolerance of %d", c->current);
	}

	switch (h->limit) {
	case SUP_LIMIT_TOLERANCE:
		say(&c->r, ", within tolerance of %d", c->current);
		break;
	case SUP_LIMIT_SCALE_UP_STABILIZATION:
	case SUP_LIMIT_SCALE_DOWN_STABILIZATION: {
		bool up = h->limit == SUP_LIMIT_SCALE_UP_STABILIZATION;
		int64_t w = !p->behavior_set ? p->downscale_stabilization_ms
		            : up             ? p->scale_up.window_ms
		                             : p->scale_down.window_ms;
		sup_format_duration(w, d, sizeof(d));
		say(&c->r, ", held at %" PRId64 " by %s stabilization (%s over %s)", h->to,
		    up ? "scale-up" : "scale-down", up ? "min" : "max", d);
		break;
	}
	case SUP_LIMIT_SCALE_UP_RATE:
		if (!p->behavior_set)
			say(&c->r, ", limited to %" PRId64 " by the scale-up limit max(2 x %d, 4)", h->to,
			    c->current);
		else
			say_rate(c, true, h->rate, (int)h->to);
		break;
	case SUP_LIMIT_SCALE_DOWN_RATE:
		say_rate(c, false, h->rate, (int)h->to);
		break;
	case SUP_LIMIT_MAX_REPLICAS:
		say_s(&c->r, ", limited to ");
		say_i(&c->r, h->to);
		say_s(&c->r, " by max_replicas");
		break;
	case SUP_LIMIT_MIN_REPLICAS:
		if (p->min_replicas >= 1)
			say(&c->r, ", raised to %" PRId64 " by min_replicas", h->to);
		else if (!c->active)
			say(&c->r, ", kept at 1 until the cooldown ends");
		else
			say(&c->r, ", raised to 1");
		break;
	default:
		break;
	}
}

/* Step 4, the HPA step (current >= 1). */
static void
hpa_step(pollctx *c)
{
	const sup_policy *p = c->p;
	int cur = c->current;
	int hpa_min = p->min_replicas > 1 ? p->min_replicas : 1;

	if (cur > p->max_replicas) {
		say(&c->r, "scale down: %d running, above max_replicas %d", cur, p->max_replicas);
		decide(c, SUP_STEP_HPA, p->max_replicas, SUP_LIMIT_MAX_REPLICAS);
		return;
	}
	if (cur < hpa_min) {
		say(&c->r, "scale up: %d running, below min_replicas %d", cur, hpa_min);
		decide(c, SUP_STEP_HPA, hpa_min, SUP_LIMIT_MIN_REPLICAS);
		return;
	}
	if (c->error) {
		say(&c->r, "hold: metric read failed (%d in a row)", c->st->failures);
		decide(c, SUP_STEP_HPA, cur, SUP_LIMIT_ERROR);
		return;
	}

	hpa_calc h = {.ready = c->poll->ready >= 0 ? c->poll->ready : cur};
	recommend(c, &h);
	if (p->behavior_set)
		stabilize_v2(c, &h);
	else
		stabilize_legacy(c, &h);
	c->out->raw = h.raw;
	c->out->stabilized = h.stab;
	say_hpa(c, &h);
	if (h.limit == SUP_LIMIT_NONE && c->fallback)
		h.limit = SUP_LIMIT_FALLBACK;
	decide(c, SUP_STEP_HPA, (int)h.to, h.limit);
}

/* The guard's reading of the sink: true if over a limit; describes it. */
static bool
guard_over(const sup_policy *p, const sup_poll *poll, char *what, size_t len)
{
	bool p99 = p->guard_max_commit_p99_ms > 0 && poll->sink_commit_p99_ms > p->guard_max_commit_p99_ms;
	bool ratio = p->guard_max_failure_ratio > 0 && poll->sink_failure_ratio > p->guard_max_failure_ratio;
	int n = 0;
	what[0] = '\0';
	if (p99)
		n = snprintf(what, len, "sink commit p99 %" PRId64 "ms over guard limit %" PRId64 "ms",
		             poll->sink_commit_p99_ms, p->guard_max_commit_p99_ms);
	if (ratio && n >= 0 && (size_t)n < len)
		snprintf(what + n, len - (size_t)n, "%ssink failure ratio %g over guard limit %g",
		         p99 ? " and " : "", poll->sink_failure_ratio, p->guard_max_failure_ratio);
	return p99 || ratio;
}

/* The database guard, after the policy has decided. */
static void
guard_step(pollctx *c)
{
	const sup_policy *p = c->p;
	sup_state *st = c->st;
	sup_decision *out = c->out;
	int cur = c->current;
	char what[192];

	if (!p->guard_set || !c->poll->sink_reported)
		return;
	if (!guard_over(p, c->poll, what, sizeof(what))) {
		st->guard_over = false;
		return;
	}
	if (!st->guard_over) {
		st->guard_over = true;
		st->guard_since_ms = c->now;
	}
	if (c->now - st->guard_since_ms >= p->guard_window_ms) {
		st->guard_since_ms = c->now; /* the window restarts */
		int lo = p->min_replicas > 1 ? p->min_replicas : 1;
		int to = cur - 1 > lo ? cur - 1 : lo;
		bool floored;
		to = floor_scale_in(c, to, &floored);
		if (out->replicas > to && to < cur) {
			char d[32];
			sup_format_duration(p->guard_window_ms, d, sizeof(d));
			c->r.len = 0;
			say(&c->r, "scale down: %s for %s, %d -> %d%s", what, d, cur, to,
			    floored ? " (held there by workers holding leases)" : "");
			out->replicas = to;
			out->limit = floored ? SUP_LIMIT_LEASES : SUP_LIMIT_GUARD;
			c->guarded = true;
			return;
		}
	}
	if (out->replicas > cur) {
		c->r.len = 0;
		say(&c->r, "hold: %s, not scaling up to %d", what, out->replicas);
		out->replicas = cur;
		out->limit = SUP_LIMIT_GUARD;
		c->guarded = true;
	}
}

static bool
poll_valid(const sup_poll *poll)
{
	if (poll->ok && (poll->depth < 0 || poll->depth > SUP_METRIC_MAX || poll->in_flight < 0 ||
	                 poll->in_flight > SUP_METRIC_MAX))
		return false;
	if (poll->current < -1 || poll->current > SUP_REPLICAS_MAX)
		return false;
	if (poll->ready < -1 || poll->ready > SUP_REPLICAS_MAX)
		return false;
	if (poll->leases < -1 || poll->leases > SUP_REPLICAS_MAX)
		return false;
	return true;
}

int
sup_decide(const sup_policy *p, sup_state *st, int64_t now_ms, const sup_poll *poll,
           sup_decision *out)
{
	if (!poll_valid(poll) || st->current < 0 || st->current > SUP_REPLICAS_MAX)
		return SUP_E_INVALID;
	/* every push below has its room already: nothing can fail halfway
	 * (the seed, if any, and this poll's recommendation) */
	size_t pushes = st->seeded ? 1 : 2;
	if (reserve(&st->rec_max_, pushes) != SUP_OK || reserve(&st->rec_min_, pushes) != SUP_OK ||
	    reserve(&st->up_, 1) != SUP_OK || reserve(&st->down_, 1) != SUP_OK)
		return SUP_E_NOMEM;

	memset(out, 0, sizeof(*out));
	out->raw = -1;
	out->stabilized = -1;
	pollctx c = {
		.p = p,
		.ops = p->mode == SUP_MODE_KEDA ? &keda_ops : &responsive_ops,
		.st = st,
		.poll = poll,
		.now = now_ms,
		.out = out,
		.r = {.buf = out->reason, .len = 0, .cap = sizeof(out->reason)},
	};

	if (poll->current >= 0)
		st->current = poll->current;
	c.current = st->current;
	out->previous = c.current;
	if (!st->seeded) {
		push_max(&st->rec_max_, now_ms, c.current);
		push_min(&st->rec_min_, now_ms, c.current);
		st->seeded = true;
	}

	read_metric(&c);
	if (!c.error)
		sup_format_metric(c.m.num, c.m.den, c.mtext, sizeof(c.mtext));
	c.active = !c.error && (c.fallback || (wide)c.m.num > (wide)p->activation_threshold * c.m.den);
	out->active = c.active;
	out->has_metric = !c.error;
	out->fallback = c.fallback;
	out->metric_num = c.error ? 0 : c.m.num;
	out->metric_den = c.error ? 1 : c.m.den;

	bool hpa = false;
	if (!keda_step(&c)) {
		if (c.current == 0) {
			if (c.error)
				say(&c.r, "hold: metric read failed (%d in a row), stay at 0", st->failures);
			else
				say(&c.r, "hold: %s %s <= activation threshold %" PRId64 ", stay at 0",
				    metric_name(p), c.mtext, p->activation_threshold);
			decide(&c, SUP_STEP_HOLD_ZERO, 0, c.error ? SUP_LIMIT_ERROR : SUP_LIMIT_ACTIVATION);
		} else {
			hpa_step(&c);
			hpa = true;
			bool floored;
			int to = floor_scale_in(&c, out->replicas, &floored);
			if (floored) {
				say(&c.r, ", held at %d by workers holding leases", to);
				out->replicas = to;
				out->limit = SUP_LIMIT_LEASES;
			}
			/* inactive, and the KEDA step will take it lower once the
			 * cooldown ends */
			bool idle_set = p->idle_replicas >= 0;
			if (!c.active && !c.error && out->limit != SUP_LIMIT_MIN_REPLICAS &&
			    out->replicas <= c.current &&
			    ((idle_set && out->replicas > p->idle_replicas) ||
			     (out->replicas > 0 && p->min_replicas == 0))) {
				char d[32];
				sup_format_duration(st->has_last_active ? p->cooldown_ms : p->initial_cooldown_ms, d,
				                    sizeof(d));
				say(&c.r, "; inactive: %s %d after %s %s", idle_set ? "to idle_replicas" : "to",
				    idle_set ? p->idle_replicas : p->min_replicas, d,
				    st->has_last_active ? "cooldown" : "initial cooldown");
			}
		}
	}

	guard_step(&c);

	/* the v2 path remembers the HPA step's own changes for its rate
	 * policies; the KEDA step and the guard are not the HPA's */
	if (hpa && p->behavior_set && !c.guarded && out->replicas != c.current) {
		if (out->replicas > c.current)
			push_back(&st->up_, now_ms, out->replicas - c.current);
		else
			push_back(&st->down_, now_ms, c.current - out->replicas);
	}
	/* keep the event lists to their longest period */
	if (p->behavior_set) {
		int64_t up_p = 0, down_p = 0;
		for (size_t i = 0; i < p->scale_up.nrates; i++)
			up_p = max64(up_p, p->scale_up.rates[i].period_ms);
		for (size_t i = 0; i < p->scale_down.nrates; i++)
			down_p = max64(down_p, p->scale_down.rates[i].period_ms);
		prune(&st->up_, now_ms, up_p);
		prune(&st->down_, now_ms, down_p);
	}

	assert(out->replicas >= 0);
	st->current = out->replicas;
	return SUP_OK;
}

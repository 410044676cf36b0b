/*
 * load_run: the controller of a load run. It follows the stages (setting
 * the VU target every few milliseconds), closes one timeline second at a
 * time, drains at the end and turns the recorder's histograms into figures.
 *
 * Threads: cli_load_run's thread is the controller; drivers complete
 * requests on their own threads (NNG's, an epoll thread, a pool) and call
 * load_rec_add, which takes the recorder's mutex for a few hundred
 * nanoseconds. Everything else here belongs to the controller.
 */
#include "load.h"

#include "clock.h"
#include "config.h"
#include "hist.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#define TICK_MS 10
#define MAX_VUS 1000000

typedef struct rec_stage {
	hist *all;  /* owned: every completed request, microseconds */
	hist *ok;   /* owned: successful ones */
	uint64_t count[LOAD_NKINDS];
} rec_stage;

struct load_rec {
	pthread_mutex_t mu;
	size_t stage;               /* where completions go now; guarded by mu */
	size_t nstages;
	rec_stage *st;              /* owned, nstages */
	hist *sec;                  /* owned: the current second */
	uint64_t sec_count[LOAD_NKINDS];
	uint64_t requests, failed;  /* so far */
	char first[LOAD_NKINDS][160];
};

const char *
cli_load_kind_name(int kind)
{
	static const char *const names[LOAD_NKINDS] = {"ok", "busy", "timeout", "database", "broker",
	                                               "transport"};
	return kind >= 0 && kind < LOAD_NKINDS ? names[kind] : "?";
}

void
load_rec_add(load_rec *r, int kind, int64_t latency_ns, const char *detail)
{
	uint64_t us = latency_ns > 0 ? (uint64_t)(latency_ns + 500) / 1000 : 0;
	pthread_mutex_lock(&r->mu);
	rec_stage *s = &r->st[r->stage];
	s->count[kind]++;
	hist_record(s->all, us);
	if (kind == LOAD_KIND_OK)
		hist_record(s->ok, us);
	else
		r->failed++;
	hist_record(r->sec, us);
	r->sec_count[kind]++;
	r->requests++;
	if (kind != LOAD_KIND_OK && detail != NULL && r->first[kind][0] == '\0')
		snprintf(r->first[kind], sizeof(r->first[kind]), "%s", detail);
	pthread_mutex_unlock(&r->mu);
}

static void
rec_free(load_rec *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; r->st != NULL && i < r->nstages; i++) {
		hist_free(r->st[i].all);
		hist_free(r->st[i].ok);
	}
	free(r->st);
	hist_free(r->sec);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static load_rec *
rec_alloc(size_t nstages)
{
	load_rec *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	r->nstages = nstages;
	r->st = calloc(nstages, sizeof(*r->st));
	r->sec = hist_alloc();
	if (r->st == NULL || r->sec == NULL)
		goto fail;
	for (size_t i = 0; i < nstages; i++) {
		r->st[i].all = hist_alloc();
		r->st[i].ok = hist_alloc();
		if (r->st[i].all == NULL || r->st[i].ok == NULL)
			goto fail;
	}
	return r;
fail:
	rec_free(r);
	return NULL;
}

size_t
load_payload_head(const load_run *run, uint64_t seq, char *buf)
{
	char tmp[LOAD_HEAD_MAX + 1];
	int n = snprintf(tmp, sizeof(tmp), "%s-%" PRIu64, run->prefix, seq);
	size_t len = n < 0 ? 0 : (size_t)n < LOAD_HEAD_MAX ? (size_t)n : LOAD_HEAD_MAX;
	memcpy(buf, tmp, len);
	return len;
}

size_t
load_payload(const load_run *run, uint64_t seq, char *buf)
{
	size_t len = load_payload_head(run, seq, buf);
	if (len < run->o->size) {
		memset(buf + len, '.', run->o->size - len);
		len = run->o->size;
	}
	return len;
}

/* ---- stages ---- */

int
cli_load_stages_parse(const char *text, load_stage **out, size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (text == NULL || *text == '\0') {
		snprintf(err, errlen, "no stages (e.g. 10s:100,80s:2000,10s:0)");
		return -1;
	}
	size_t cap = 1;
	for (const char *p = text; *p; p++)
		cap += *p == ',';
	load_stage *st = calloc(cap, sizeof(*st));
	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	const char *p = text;
	size_t i = 0;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char part[64], dur[64];
		if (len == 0 || len >= sizeof(part)) {
			snprintf(err, errlen, "stage %zu ('%.*s'): expected DURATION:VUS, e.g. 30s:100", i + 1,
			         (int)(len < 40 ? len : 40), p);
			goto fail;
		}
		memcpy(part, p, len);
		part[len] = '\0';
		char *colon = strchr(part, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "stage %zu ('%s'): expected DURATION:VUS, e.g. 30s:100", i + 1,
			         part);
			goto fail;
		}
		memcpy(dur, part, (size_t)(colon - part));
		dur[colon - part] = '\0';
		int64_t ms;
		if (cfg_duration_parse(dur, &ms) != 0 || ms <= 0) {
			snprintf(err, errlen, "stage %zu ('%s'): bad duration '%s' (e.g. 500ms, 30s, 2m)",
			         i + 1, part, dur);
			goto fail;
		}
		char *e;
		const char *vs = colon + 1;
		long v = strtol(vs, &e, 10);
		if (*vs == '\0' || *e != '\0' || v < 0 || v > MAX_VUS) {
			snprintf(err, errlen, "stage %zu ('%s'): bad VU count '%s' (0 to %d)", i + 1, part, vs,
			         MAX_VUS);
			goto fail;
		}
		st[i].duration_ms = ms;
		st[i].target_vus = (int)v;
		i++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	*out = st;
	*n = i;
	return 0;
fail:
	free(st);
	return -1;
}

/* ---- figures ---- */

static void
latency_of(const hist *h, load_latency *l)
{
	l->count = hist_count(h);
	if (l->count == 0) {
		memset(l, 0, sizeof(*l));
		return;
	}
	l->p50_ms = (double)hist_quantile(h, 0.50) / 1000.0;
	l->p95_ms = (double)hist_quantile(h, 0.95) / 1000.0;
	l->p99_ms = (double)hist_quantile(h, 0.99) / 1000.0;
	l->max_ms = (double)hist_max(h) / 1000.0;
	l->mean_ms = hist_mean(h) / 1000.0;
}

static void
figures_of(load_figures *f, const hist *all, const hist *ok, const uint64_t *count, int batch)
{
	f->ok = count[LOAD_KIND_OK];
	f->requests = 0;
	f->failed = 0;
	for (int k = 0; k < LOAD_NKINDS; k++) {
		f->requests += count[k];
		if (k != LOAD_KIND_OK) {
			f->errors[k] = count[k];
			f->failed += count[k];
		}
	}
	f->messages = f->ok * (uint64_t)batch;
	if (f->duration_s > 0) {
		f->rps = (double)f->requests / f->duration_s;
		f->ok_rps = (double)f->ok / f->duration_s;
		f->mps = (double)f->messages / f->duration_s;
	}
	f->error_rate = f->requests > 0 ? (double)f->failed / (double)f->requests : 0;
	latency_of(all, &f->latency);
	latency_of(ok, &f->ok_latency);
}

/* ---- the run ---- */

typedef struct ctl {
	load_run run;
	load_opts o;              /* the caller's, with defaults filled in */
	const load_driver *drv;
	void *d;
	load_result *out;
	size_t seccap;
	int64_t t0_ns;
} ctl;

void
cli_load_result_fini(load_result *r)
{
	if (r == NULL)
		return;
	free(r->stages);
	free(r->timeline);
	r->stages = NULL;
	r->timeline = NULL;
	r->nstages = r->nseconds = 0;
}

static int
invalid(load_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
invalid(load_result *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->error, sizeof(out->error), fmt, ap);
	va_end(ap);
	return LOAD_E_INVALID;
}

static int
check_opts(load_opts *o, load_result *out)
{
	if (o->nstages == 0 || o->stages == NULL)
		return invalid(out, "no stages");
	if (o->start_vus < 0 || o->start_vus > MAX_VUS)
		return invalid(out, "start VUs out of range");
	for (size_t i = 0; i < o->nstages; i++)
		if (o->stages[i].duration_ms <= 0 || o->stages[i].target_vus < 0 ||
		    o->stages[i].target_vus > MAX_VUS)
			return invalid(out, "a stage has no duration or a VU count out of range");
	if (o->timeout_ms <= 0)
		o->timeout_ms = 30000;
	if (o->think_ms < 0)
		return invalid(out, "negative think time");
	if (o->batch <= 0)
		o->batch = 1;
	if (o->batch > 100000)
		return invalid(out, "--batch at most 100000");
	if (o->batch > 1 && o->target != LOAD_TARGET_SLUICE)
		return invalid(out, "--batch applies to --target sluice only");
	if (o->size > 64u * 1024 * 1024)
		return invalid(out, "--size at most 64MiB");
	if (o->queue == NULL || !cfg_queue_name_valid(o->queue, strlen(o->queue)))
		return invalid(out, "bad queue name '%s': use 1-128 of A-Z a-z 0-9 . _ -",
		               o->queue ? o->queue : "");
	if (o->connections < 0)
		return invalid(out, "--connections must be positive");
	if (o->pool <= 0)
		o->pool = 50;
	if (o->pool > 4096)
		return invalid(out, "--pool at most 4096");
	if (o->busy_timeout_ms < 0)
		return invalid(out, "negative busy timeout");
	if (o->table == NULL)
		o->table = "events";
	if (o->prefix != NULL && (strlen(o->prefix) == 0 || strlen(o->prefix) > 40))
		return invalid(out, "--prefix must be 1-40 characters");
	switch (o->target) {
	case LOAD_TARGET_SLUICE:
		if (o->broker == NULL)
			return invalid(out, "no broker URL");
		break;
	case LOAD_TARGET_HTTP:
		if (o->url == NULL)
			return invalid(out, "no HTTP URL (broker.http is empty: give --url)");
		break;
	case LOAD_TARGET_DIRECT:
		if (o->db == NULL)
			return invalid(out, "no database (--db PATH)");
		break;
	default: return invalid(out, "unknown target");
	}
	return LOAD_OK;
}

/* The VU target at elapsed ms within stage i. */
static int
ramp(const load_opts *o, size_t i, int64_t stage_start_ms, int64_t el_ms)
{
	int from = i == 0 ? o->start_vus : o->stages[i - 1].target_vus;
	int to = o->stages[i].target_vus;
	double f = (double)(el_ms - stage_start_ms) / (double)o->stages[i].duration_ms;
	if (f < 0)
		f = 0;
	if (f > 1)
		f = 1;
	return (int)lround(from + (to - from) * f);
}

/* Closes the timeline second ending at t (s since start): its counts and
 * latencies, then resets the second's histogram. */
static int
close_second(ctl *c, int t, bool partial)
{
	load_result *out = c->out;
	if (out->nseconds == c->seccap) {
		size_t cap = c->seccap ? c->seccap * 2 : 64;
		load_second *tl = realloc(out->timeline, cap * sizeof(*tl));
		if (tl == NULL)
			return -1;
		out->timeline = tl;
		c->seccap = cap;
	}
	load_second *s = &out->timeline[out->nseconds++];
	memset(s, 0, sizeof(*s));
	s->t = t;
	s->vus = atomic_load(&c->run.vus);
	load_rec *r = c->run.rec;
	pthread_mutex_lock(&r->mu);
	for (int k = 0; k < LOAD_NKINDS; k++) {
		s->requests += r->sec_count[k];
		if (k == LOAD_KIND_OK)
			s->ok = r->sec_count[k];
		else
			s->errors[k] = r->sec_count[k];
		r->sec_count[k] = 0;
	}
	if (hist_count(r->sec) > 0) {
		s->p50_ms = (double)hist_quantile(r->sec, 0.50) / 1000.0;
		s->p99_ms = (double)hist_quantile(r->sec, 0.99) / 1000.0;
		s->max_ms = (double)hist_max(r->sec) / 1000.0;
	}
	hist_reset(r->sec);
	uint64_t requests = r->requests, failed = r->failed;
	size_t stage = r->stage < r->nstages ? r->stage : r->nstages - 1;
	pthread_mutex_unlock(&r->mu);

	if (c->o.progress != NULL && !partial) {
		load_progress p = {
			.elapsed_s = (double)(clk_mono_ns() - c->t0_ns) / 1e9,
			.vus = s->vus,
			.last = s,
			.requests = requests,
			.failed = failed,
			.stage = (int)stage,
		};
		c->o.progress(&p, c->o.progress_arg);
	}
	return 0;
}

static double
tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void
random_prefix(char *buf, size_t len)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)clk_wall_ms() ^ (uint32_t)clk_mono_ns();
	snprintf(buf, len, "load-%08" PRIx32, r);
}

int
cli_load_run(const load_opts *opts, load_result *out)
{
	ctl c;
	int rc;
	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.o = *opts;
	c.out = out;
	if ((rc = check_opts(&c.o, out)) != LOAD_OK)
		return rc;
	const load_opts *o = &c.o;
	int max_vus = o->start_vus;
	for (size_t i = 0; i < o->nstages; i++)
		if (o->stages[i].target_vus > max_vus)
			max_vus = o->stages[i].target_vus;

	c.run.o = o;
	atomic_init(&c.run.vus, 0);
	atomic_init(&c.run.stopping, false);
	atomic_init(&c.run.seq, 0);
	if (o->prefix != NULL)
		snprintf(c.run.prefix, sizeof(c.run.prefix), "%s", o->prefix);
	else
		random_prefix(c.run.prefix, sizeof(c.run.prefix));
	snprintf(out->prefix, sizeof(out->prefix), "%s", c.run.prefix);
	c.run.payload_len = strlen(c.run.prefix) + 1 + 20; /* "-" and a 64-bit number */
	if (c.run.payload_len < o->size)
		c.run.payload_len = o->size;
	snprintf(out->address, sizeof(out->address), "%s",
	         o->target == LOAD_TARGET_SLUICE ? o->broker
	         : o->target == LOAD_TARGET_HTTP ? o->url
	                                         : o->db);

	c.drv = o->target == LOAD_TARGET_SLUICE ? &load_sluice_driver
	        : o->target == LOAD_TARGET_HTTP ? &load_http_driver
	                                        : &load_direct_driver;
	if ((c.run.rec = rec_alloc(o->nstages)) == NULL) {
		snprintf(out->error, sizeof(out->error), "out of memory");
		return LOAD_E_SETUP;
	}
	out->stages = calloc(o->nstages, sizeof(*out->stages));
	if (out->stages == NULL) {
		rec_free(c.run.rec);
		snprintf(out->error, sizeof(out->error), "out of memory");
		return LOAD_E_SETUP;
	}
	if (c.drv->open(&c.run, max_vus, &c.d, out->error, sizeof(out->error)) != 0) {
		rec_free(c.run.rec);
		cli_load_result_fini(out);
		return LOAD_E_SETUP;
	}

	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	c.t0_ns = clk_mono_ns();
	size_t stage = 0;
	int64_t stage_start_ms = 0;
	int next_sec = 1;
	int cur = -1;
	bool oom = false;
	out->nstages = 1;
	out->stages[0].from_vus = o->start_vus;
	out->stages[0].to_vus = o->stages[0].target_vus;
	for (;;) {
		int64_t el_ms = (clk_mono_ns() - c.t0_ns) / 1000000;
		if (o->cancel != NULL && *o->cancel) {
			out->cancelled = true;
			break;
		}
		while (stage < o->nstages && el_ms >= stage_start_ms + o->stages[stage].duration_ms) {
			if (stage + 1 == o->nstages)
				break; /* the last stage ends with the drain */
			out->stages[stage].duration_s = (double)o->stages[stage].duration_ms / 1000.0;
			stage_start_ms += o->stages[stage].duration_ms;
			stage++;
			pthread_mutex_lock(&c.run.rec->mu);
			c.run.rec->stage = stage;
			pthread_mutex_unlock(&c.run.rec->mu);
			out->nstages = stage + 1;
			out->stages[stage].from_vus = o->stages[stage - 1].target_vus;
			out->stages[stage].to_vus = o->stages[stage].target_vus;
			out->stages[stage].max_vus = cur; /* still running, until the ramp moves */
		}
		while (!oom && el_ms >= (int64_t)next_sec * 1000)
			oom = close_second(&c, next_sec++, false) != 0;
		if (el_ms >= stage_start_ms + o->stages[stage].duration_ms)
			break;
		int v = ramp(o, stage, stage_start_ms, el_ms);
		if (v != cur) {
			atomic_store(&c.run.vus, v);
			c.drv->set_vus(c.d, v);
			cur = v;
		}
		if (v > out->stages[stage].max_vus)
			out->stages[stage].max_vus = v;
		c.drv->tick(c.d, clk_mono_ns());
		clk_sleep_ms(TICK_MS);
	}

	/* Drain: no new requests; those in flight end by their own timeout. */
	atomic_store(&c.run.stopping, true);
	atomic_store(&c.run.vus, 0);
	c.drv->stop(c.d);
	int64_t deadline = clk_mono_ns() + (o->timeout_ms + o->think_ms + 2000) * 1000000;
	while (c.drv->inflight(c.d) > 0 && clk_mono_ns() < deadline) {
		c.drv->tick(c.d, clk_mono_ns());
		int64_t el_ms = (clk_mono_ns() - c.t0_ns) / 1000000;
		while (!oom && el_ms >= (int64_t)next_sec * 1000)
			oom = close_second(&c, next_sec++, false) != 0;
		clk_sleep_ms(2);
	}
	int64_t end_ns = clk_mono_ns();
	getrusage(RUSAGE_SELF, &ru1);
	c.drv->close(c.d);
	/* the last, partial second */
	if (!oom && end_ns - c.t0_ns > (int64_t)(next_sec - 1) * 1000000000)
		oom = close_second(&c, next_sec, true) != 0;

	out->cpu_user_s = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
	out->cpu_sys_s = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
	double total_s = (double)(end_ns - c.t0_ns) / 1e9;
	out->stages[stage].duration_s = total_s - (double)stage_start_ms / 1000.0;

	/* figures: each stage, and their sum */
	load_rec *r = c.run.rec;
	hist *all = hist_alloc(), *ok = hist_alloc();
	uint64_t count[LOAD_NKINDS] = {0};
	for (size_t i = 0; i < out->nstages; i++) {
		figures_of(&out->stages[i], r->st[i].all, r->st[i].ok, r->st[i].count, o->batch);
		for (int k = 0; k < LOAD_NKINDS; k++)
			count[k] += r->st[i].count[k];
		if (all != NULL && ok != NULL) {
			hist_merge(all, r->st[i].all);
			hist_merge(ok, r->st[i].ok);
		}
		if (out->stages[i].max_vus > out->total.max_vus)
			out->total.max_vus = out->stages[i].max_vus;
	}
	out->total.duration_s = total_s;
	out->total.from_vus = o->start_vus;
	out->total.to_vus = out->stages[out->nstages - 1].to_vus;
	if (all != NULL && ok != NULL)
		figures_of(&out->total, all, ok, count, o->batch);
	memcpy(out->first_error, r->first, sizeof(out->first_error));
	hist_free(all);
	hist_free(ok);
	rec_free(r);
	return LOAD_OK;
}

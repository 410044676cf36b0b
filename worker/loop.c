/*
 * loop: lease, commit, settle; see loop.h.
 *
 * A batch is one or more leases ("parts", each with its own token): the
 * first lease long-polls for up to IDLE_WAIT_MS; once a message is in hand
 * further leases ask for the rest with wait = what is left of the linger.
 * The sink gets the whole batch; each part is then settled with its own
 * token: ACK (with the health report) for what the sink took, NACK with
 * the error for what failed, and NACK with NO_ATTEMPT (sluice_release) for
 * what it could not try, so an outage never pushes good messages toward
 * the dead-letter queue.
 *
 * Exactly-once in the sink rests on the sink being idempotent on message
 * id, not on this loop: a worker killed between commit and ack leaves
 * leases that expire and are delivered again, and the sink ignores them.
 *
 * Threads: the loop thread owns everything except `parts`, which the
 * keepalive thread reads under mu to touch leases still in hand; `stopping`
 * is written by wrk_loop_stop from another thread.
 */
#include "loop.h"

#include "breaker.h"
#include "clock.h"
#include "codec.h"
#include "hist.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IDLE_WAIT_MS 1000      /* long poll of an idle worker */
#define WINDOW_MS 10000        /* health report: two alternating windows */
#define REPORT_EVERY_MS 1000   /* REPORT frames while the breaker is open */
#define RETRY_MIN_MS 100       /* broker calls: backoff between tries */
#define RETRY_MAX_MS 2000
#define NREPORT 5

/* One lease of the batch in hand. */
typedef struct part {
	sluice_batch *b;    /* owned */
	size_t first;       /* index of its first message in the batch */
	int64_t touched_ms; /* monotonic: leased or last touched */
} part;

/* Sink health over the last 10-20 s, for the report. */
typedef struct window {
	hist *commit_us;
	int64_t batches;
	int64_t failures;
} window;

/* What the SUMMARY line tells, since the last one. */
typedef struct summary {
	int64_t since_ms;
	int64_t acked;
	int64_t failed;   /* nacked with an error */
	int64_t released; /* handed back untried */
	int64_t lost;     /* ack/nack refused: lease expired or gone */
	int64_t batches;
	int64_t failures; /* sink failures */
} summary;

struct wrk_loop {
	const cfg_worker *cfg;  /* borrowed */
	const char *queue;      /* borrowed from cfg */
	sluice_client *client;  /* borrowed */
	const wrk_sink_ops *ops;
	void *sink;             /* borrowed */
	int status_fd;
	uint32_t batch_max;
	uint32_t visibility_ms;

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* stop, keepalive quit */
	atomic_bool stopping;
	atomic_llong deadline_ms; /* monotonic: stop time + grace; 0 until stopping */
	bool keepalive_quit;    /* under mu */
	part *parts;            /* under mu; batch_max slots */
	size_t nparts;          /* under mu */

	/* the batch in hand (loop thread) */
	wrk_item *items;
	wrk_result *res;
	size_t nitems;
	uint64_t *ids;          /* settle scratch */
	const char **errs;
	uint16_t *codes;
	bool busy;              /* status byte last written: holding leases */

	wrk_breaker breaker;
	atomic_bool broker_down;
	window win[2];
	int cur;                /* window being filled */
	int64_t win_start_ms;
	hist *merged;           /* scratch for the p99 */
	summary sum;
};

static bool
stopping(const wrk_loop *l)
{
	return atomic_load(&l->stopping);
}

/* Sleeps up to ms on l->cv; returns early on stop when wake_on_stop. */
static void
nap(wrk_loop *l, int64_t ms, bool wake_on_stop)
{
	int64_t end = clk_mono_ms() + ms;
	pthread_mutex_lock(&l->mu);
	for (;;) {
		if (l->keepalive_quit || (wake_on_stop && stopping(l)))
			break;
		int64_t now = clk_mono_ms();
		if (now >= end)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t ns = ts.tv_nsec + (end - now) * 1000000;
		ts.tv_sec += ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	}
	pthread_mutex_unlock(&l->mu);
}

/* ---- status byte, health, summary ---- */

static void
status(wrk_loop *l, bool busy)
{
	if (l->status_fd < 0 || busy == l->busy)
		return;
	l->busy = busy;
	char c = busy ? 'B' : 'I';
	ssize_t w;
	do
		w = write(l->status_fd, &c, 1);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno != EAGAIN && errno != EPIPE) {
		log_warn("STATUS-FD", "cannot write the status byte: %s; no more status", strerror(errno));
		l->status_fd = -1;
	}
}

/* Moves to a fresh window every WINDOW_MS, so the last two cover 10-20 s. */
static void
rotate(wrk_loop *l, int64_t now)
{
	int64_t age = now - l->win_start_ms;
	if (age < WINDOW_MS)
		return;
	int turns = age >= 2 * WINDOW_MS ? 2 : 1;
	for (int i = 0; i < turns; i++) {
		l->cur ^= 1;
		hist_reset(l->win[l->cur].commit_us);
		l->win[l->cur].batches = l->win[l->cur].failures = 0;
	}
	l->win_start_ms = now;
}

static size_t
report(wrk_loop *l, sluice_field *f)
{
	rotate(l, clk_mono_ms());
	hist_reset(l->merged);
	hist_merge(l->merged, l->win[0].commit_us);
	hist_merge(l->merged, l->win[1].commit_us);
	f[0] = (sluice_field){"worker", (int64_t)getpid()};
	f[1] = (sluice_field){"sink_commit_p99_us", (int64_t)hist_quantile(l->merged, 0.99)};
	f[2] = (sluice_field){"sink_batches", l->win[0].batches + l->win[1].batches};
	f[3] = (sluice_field){"sink_failures", l->win[0].failures + l->win[1].failures};
	f[4] = (sluice_field){"sink_breaker", wrk_breaker_state_of(&l->breaker)};
	return NREPORT;
}

static void
summarize(wrk_loop *l, int64_t now, bool force)
{
	summary *s = &l->sum;
	int64_t took = now - s->since_ms;
	if (!force && took < l->cfg->report_interval_ms)
		return;
	double secs = took > 0 ? (double)took / 1000.0 : 1.0;
	log_info("SUMMARY", "%.1f msg/s: %lld acked, %lld failed, %lld handed back, %lld lost to "
	         "expired leases; %lld batches, %lld sink failures; breaker %s",
	         (double)(s->acked + s->failed) / secs, (long long)s->acked, (long long)s->failed,
	         (long long)s->released, (long long)s->lost, (long long)s->batches,
	         (long long)s->failures, wrk_breaker_name(wrk_breaker_state_of(&l->breaker)));
	memset(s, 0, sizeof(*s));
	s->since_ms = now;
}

/* ---- the broker ---- */

/* Failures that are worth trying again: the broker away, busy or stopping. */
static bool
transient(int rc)
{
	return rc == SLUICE_E_TIMEOUT || rc == SLUICE_E_TRANSPORT || rc == SLUICE_E_CONNECT ||
	       rc == PROTO_ERR_SHUTTING_DOWN || rc == PROTO_ERR_STORAGE || rc == PROTO_ERR_INTERNAL ||
	       rc == SLUICE_E_NOMEM;
}

static bool
unreachable(int rc)
{
	return rc == SLUICE_E_TIMEOUT || rc == SLUICE_E_TRANSPORT || rc == SLUICE_E_CONNECT ||
	       rc == PROTO_ERR_SHUTTING_DOWN;
}

/* A call failed with rc: log it, once per outage when the broker is away. */
static void
broker_trouble(wrk_loop *l, int rc, const char *what)
{
	if (unreachable(rc)) {
		if (!atomic_exchange(&l->broker_down, true))
			log_warn("BROKER-UNREACHABLE", "%s %s: %s; retrying", what, l->cfg->broker,
			         sluice_errmsg());
		return;
	}
	log_warn("BROKER-ERROR", "%s on '%s': %s (%s)", what, l->queue, sluice_errmsg(),
	         sluice_strerror(rc));
}

static void
broker_ok(wrk_loop *l)
{
	if (atomic_exchange(&l->broker_down, false))
		log_info("BROKER-BACK", "%s answers again", l->cfg->broker);
}

/* ---- keepalive ---- */

/* Touches every part held longer than a third of the visibility, so a
 * batch that takes long (a slow job, a locked database) keeps its leases. */
static void *
keepalive_main(void *arg)
{
	wrk_loop *l = arg;
	int64_t every = l->visibility_ms / 3 > 50 ? l->visibility_ms / 3 : 50;
	uint64_t *tokens = calloc(l->batch_max, sizeof(*tokens));
	uint64_t *ids = calloc(l->batch_max, sizeof(*ids));
	if (tokens == NULL || ids == NULL) {
		log_error("KEEPALIVE", "out of memory: long batches may lose their leases");
		free(tokens);
		free(ids);
		return NULL;
	}
	pthread_mutex_lock(&l->mu);
	while (!l->keepalive_quit) {
		pthread_mutex_unlock(&l->mu);
		nap(l, every / 2 < 1000 ? every / 2 : 1000, false);
		pthread_mutex_lock(&l->mu);
		int64_t now = clk_mono_ms();
		size_t nt = 0;
		for (size_t i = 0; i < l->nparts; i++)
			if (now - l->parts[i].touched_ms >= every)
				tokens[nt++] = l->parts[i].b->token;
		for (size_t t = 0; t < nt && !l->keepalive_quit; t++) {
			part *p = NULL;
			for (size_t i = 0; i < l->nparts && p == NULL; i++)
				if (l->parts[i].b->token == tokens[t])
					p = &l->parts[i];
			if (p == NULL)
				continue; /* settled meanwhile */
			size_t n = p->b->count;
			for (size_t i = 0; i < n; i++)
				ids[i] = p->b->msgs[i].id;
			int64_t at = clk_mono_ms();
			pthread_mutex_unlock(&l->mu);
			int rc = sluice_touch(l->client, l->queue, tokens[t], ids, n, l->visibility_ms, NULL);
			if (rc == 0)
				broker_ok(l);
			else
				broker_trouble(l, rc, "touch");
			log_debug("TOUCH", "%zu leases of token %llu: %s", n, (unsigned long long)tokens[t],
			          sluice_strerror(rc));
			pthread_mutex_lock(&l->mu);
			for (size_t i = 0; rc == 0 && i < l->nparts; i++)
				if (l->parts[i].b->token == tokens[t])
					l->parts[i].touched_ms = at;
		}
	}
	pthread_mutex_unlock(&l->mu);
	free(tokens);
	free(ids);
	return NULL;
}

/* ---- leasing ---- */

/* Leases up to max more messages into the batch. Returns 0 or the
 * client's code (already logged). */
static int
lease_part(wrk_loop *l, uint32_t max, uint32_t wait_ms)
{
	sluice_batch *b;
	int rc = sluice_lease(l->client, l->queue, max, l->visibility_ms, wait_ms, &b);
	if (rc != 0) {
		broker_trouble(l, rc, "lease from");
		return rc;
	}
	broker_ok(l);
	if (b->count == 0) {
		sluice_batch_free(b);
		return 0;
	}
	pthread_mutex_lock(&l->mu);
	l->parts[l->nparts++] = (part){.b = b, .first = l->nitems, .touched_ms = clk_mono_ms()};
	pthread_mutex_unlock(&l->mu);
	for (size_t i = 0; i < b->count; i++) {
		const sluice_msg *m = &b->msgs[i];
		l->items[l->nitems++] = (wrk_item){
			.id = m->id,
			.queue = l->queue,
			.attempt = m->attempt,
			.enqueued_ms = m->enqueued_ms,
			.payload = m->payload,
			.len = m->len,
		};
	}
	status(l, true);
	return 0;
}

/* Fills the batch: a long poll for the first message, then up to the
 * linger for the rest. Returns 0 (the batch may be empty) or a client
 * code. */
static int
gather(wrk_loop *l)
{
	int rc = lease_part(l, l->batch_max, IDLE_WAIT_MS);
	if (rc != 0 || l->nitems == 0)
		return rc;
	int64_t until = clk_mono_ms() + l->cfg->linger_ms;
	while (l->nitems < l->batch_max && !stopping(l)) {
		int64_t left = until - clk_mono_ms();
		if (left <= 0)
			break;
		if (lease_part(l, l->batch_max - (uint32_t)l->nitems, (uint32_t)left) != 0)
			break; /* deliver what is in hand */
	}
	return 0;
}

/* ---- settling ---- */

enum settle_kind { SETTLE_ACK, SETTLE_NACK, SETTLE_RELEASE };

/* One ACK, NACK or release of n ids of part p, tried again while the
 * broker is away until the lease is lost anyway or the grace is over. */
static void
settle_call(wrk_loop *l, const part *p, int kind, size_t n)
{
	static const char *const names[] = {"ack to", "nack to", "release to"};
	int64_t backoff = RETRY_MIN_MS;
	sluice_field rep[NREPORT];
	int rc;

	if (n == 0)
		return;
	for (;;) {
		switch (kind) {
		case SETTLE_ACK: {
			size_t nrep = report(l, rep);
			rc = sluice_ack(l->client, l->queue, p->b->token, l->ids, n, rep, nrep, l->codes);
			break;
		}
		case SETTLE_NACK:
			rc = sluice_nack(l->client, l->queue, p->b->token, l->ids, l->errs, n, SLUICE_BACKOFF,
			                 l->codes);
			break;
		default:
			rc = sluice_release(l->client, l->queue, p->b->token, l->ids, n, 0, l->codes);
			break;
		}
		if (rc == 0)
			break;
		broker_trouble(l, rc, names[kind]);
		int64_t now = clk_mono_ms();
		pthread_mutex_lock(&l->mu);
		int64_t expires = p->touched_ms + l->visibility_ms;
		pthread_mutex_unlock(&l->mu);
		bool grace_over = stopping(l) && now >= atomic_load(&l->deadline_ms);
		if (!transient(rc) || now >= expires || grace_over) {
			log_warn("SETTLE-ABANDONED", "%s of %zu messages (token %llu) not done: %s; they "
			         "will be delivered again when their lease expires",
			         kind == SETTLE_ACK ? "ack" : kind == SETTLE_NACK ? "nack" : "release", n,
			         (unsigned long long)p->b->token, sluice_errmsg());
			l->sum.lost += (int64_t)n;
			return;
		}
		nap(l, backoff, false);
		backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
	}
	broker_ok(l);
	for (size_t i = 0; i < n; i++) {
		if (l->codes[i] == 0)
			continue;
		l->sum.lost++;
		log_debug("LEASE-LOST", "message %llu: %s", (unsigned long long)l->ids[i],
		          sluice_strerror(l->codes[i]));
	}
}

/* Settles every part of the batch by its results, then lets it go. */
static void
settle(wrk_loop *l)
{
	static const int order[] = {WRK_ITEM_OK, WRK_ITEM_FAILED, WRK_ITEM_UNTRIED};
	for (size_t k = 0; k < l->nparts; k++) {
		const part *p = &l->parts[k]; /* only this thread removes parts */
		for (size_t o = 0; o < 3; o++) {
			size_t n = 0;
			for (size_t i = 0; i < p->b->count; i++) {
				const wrk_result *r = &l->res[p->first + i];
				if (r->state != order[o])
					continue;
				l->ids[n] = p->b->msgs[i].id;
				l->errs[n] = r->error;
				n++;
			}
			if (order[o] == WRK_ITEM_OK)
				l->sum.acked += (int64_t)n;
			else if (order[o] == WRK_ITEM_FAILED)
				l->sum.failed += (int64_t)n;
			else
				l->sum.released += (int64_t)n;
			settle_call(l, p, o == 0 ? SETTLE_ACK : o == 1 ? SETTLE_NACK : SETTLE_RELEASE, n);
		}
	}
	pthread_mutex_lock(&l->mu);
	for (size_t k = 0; k < l->nparts; k++)
		sluice_batch_free(l->parts[k].b);
	l->nparts = 0;
	pthread_mutex_unlock(&l->mu);
	l->nitems = 0;
	status(l, false);
}

/* ---- the sink ---- */

/* Commits the batch in hand, feeds the breaker and the health windows,
 * then settles. */
static void
deliver(wrk_loop *l)
{
	char err[512] = "";

	for (size_t i = 0; i < l->nitems; i++) {
		l->res[i].state = WRK_ITEM_UNTRIED;
		l->res[i].error[0] = '\0';
	}
	int64_t t0 = clk_mono_ns();
	int rc = l->ops->commit(l->sink, l->items, l->nitems, &l->deadline_ms, l->res, err,
	                        sizeof(err));
	int64_t took_us = (clk_mono_ns() - t0) / 1000;
	int64_t now = clk_mono_ms();

	rotate(l, now);
	window *w = &l->win[l->cur];
	hist_record(w->commit_us, (uint64_t)(took_us > 0 ? took_us : 0));
	w->batches++;
	l->sum.batches++;
	if (rc == WRK_SINK_OK) {
		int was = wrk_breaker_success(&l->breaker);
		if (was != WRK_BREAKER_CLOSED)
			log_info("BREAKER-CLOSED", "the sink took a batch of %zu; leasing again", l->nitems);
	} else {
		w->failures++;
		l->sum.failures++;
		int was = wrk_breaker_failure(&l->breaker, now);
		int64_t wait = wrk_breaker_wait_ms(&l->breaker, now);
		if (was == WRK_BREAKER_CLOSED)
			log_warn("BREAKER-OPEN", "sink failure: %s; handing back %zu messages, next try "
			         "in %lld ms", err, l->nitems, (long long)wait);
		else
			log_warn("BREAKER-REOPEN", "trial batch failed: %s; next try in %lld ms", err,
			         (long long)wait);
	}
	log_debug("COMMIT", "%zu messages in %lld us: %s", l->nitems, (long long)took_us,
	          rc == WRK_SINK_OK ? "ok" : err);
	settle(l);
}

/* While the breaker is open: lease nothing, report once a second, and
 * wait for the trial (or a stop). */
static void
breaker_wait(wrk_loop *l)
{
	int64_t last = 0;
	for (;;) {
		int64_t now = clk_mono_ms();
		int64_t left = wrk_breaker_wait_ms(&l->breaker, now);
		if (left <= 0 || stopping(l))
			return;
		if (now - last >= REPORT_EVERY_MS) {
			sluice_field rep[NREPORT];
			size_t n = report(l, rep);
			int rc = sluice_report(l->client, l->queue, rep, n);
			if (rc == 0)
				broker_ok(l);
			else
				broker_trouble(l, rc, "report to");
			last = clk_mono_ms();
		}
		summarize(l, clk_mono_ms(), false);
		nap(l, left < REPORT_EVERY_MS ? left : REPORT_EVERY_MS, true);
	}
}

/* ---- the loop ---- */

int
wrk_loop_run(wrk_loop *l)
{
	pthread_t ka;
	int64_t backoff = RETRY_MIN_MS;

	if (pthread_create(&ka, NULL, keepalive_main, l) != 0)
		return WRK_E_THREAD;
	l->sum.since_ms = l->win_start_ms = clk_mono_ms();
	if (l->status_fd >= 0) {
		char c = 'I'; /* ready, holding nothing */
		ssize_t w = write(l->status_fd, &c, 1);
		(void)w;
	}
	while (!stopping(l)) {
		summarize(l, clk_mono_ms(), false);
		int before = wrk_breaker_state_of(&l->breaker);
		if (!wrk_breaker_allow(&l->breaker, clk_mono_ms())) {
			breaker_wait(l);
			continue;
		}
		if (before == WRK_BREAKER_OPEN)
			log_info("BREAKER-HALF-OPEN", "trying one batch");
		int rc = gather(l);
		if (l->nitems > 0) {
			deliver(l);
			backoff = RETRY_MIN_MS;
		} else if (rc != 0) {
			nap(l, backoff, true);
			backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
		}
	}
	pthread_mutex_lock(&l->mu);
	l->keepalive_quit = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(ka, NULL);
	summarize(l, clk_mono_ms(), true);
	return WRK_OK;
}

void
wrk_loop_stop(wrk_loop *l)
{
	pthread_mutex_lock(&l->mu);
	if (!stopping(l)) {
		int64_t end = clk_mono_ms() + l->cfg->shutdown_grace_ms;
		atomic_store(&l->deadline_ms, end > 0 ? end : 1);
		atomic_store(&l->stopping, true);
	}
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

int
wrk_loop_open(const wrk_loop_cfg *c, wrk_loop **out)
{
	wrk_loop *l = calloc(1, sizeof(*l));
	*out = NULL;
	if (l == NULL)
		return WRK_E_NOMEM;
	l->cfg = c->worker;
	l->queue = c->worker->queue;
	l->client = c->client;
	l->ops = c->ops;
	l->sink = c->sink;
	l->status_fd = c->status_fd;
	l->batch_max = c->worker->batch_size > 0 ? (uint32_t)c->worker->batch_size : 1;
	int64_t vis = c->worker->visibility_ms;
	l->visibility_ms = vis <= 0 ? 30000 : vis > UINT32_MAX ? UINT32_MAX : (uint32_t)vis;
	atomic_init(&l->stopping, false);
	atomic_init(&l->deadline_ms, 0);
	atomic_init(&l->broker_down, false);
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	wrk_breaker_init(&l->breaker, c->worker->breaker_base_ms, c->worker->breaker_max_ms,
	                 (uint64_t)clk_mono_ns() ^ ((uint64_t)getpid() << 32));
	l->parts = calloc(l->batch_max, sizeof(*l->parts));
	l->items = calloc(l->batch_max, sizeof(*l->items));
	l->res = calloc(l->batch_max, sizeof(*l->res));
	l->ids = calloc(l->batch_max, sizeof(*l->ids));
	l->errs = calloc(l->batch_max, sizeof(*l->errs));
	l->codes = calloc(l->batch_max, sizeof(*l->codes));
	l->win[0].commit_us = hist_alloc();
	l->win[1].commit_us = hist_alloc();
	l->merged = hist_alloc();
	if (l->parts == NULL || l->items == NULL || l->res == NULL || l->ids == NULL ||
	    l->errs == NULL || l->codes == NULL || l->win[0].commit_us == NULL ||
	    l->win[1].commit_us == NULL || l->merged == NULL) {
		wrk_loop_close(l);
		return WRK_E_NOMEM;
	}
	*out = l;
	return WRK_OK;
}

void
wrk_loop_close(wrk_loop *l)
{
	if (l == NULL)
		return;
	for (size_t k = 0; k < l->nparts; k++)
		sluice_batch_free(l->parts[k].b);
	free(l->parts);
	free(l->items);
	free(l->res);
	free(l->ids);
	free(l->errs);
	free(l->codes);
	hist_free(l->win[0].commit_us);
	hist_free(l->win[1].commit_us);
	hist_free(l->merged);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/*
 * http: the broker's HTTP API and Prometheus metrics, on httpd (our own
 * HTTP/1.1 server).
 *
 *   POST /v1/queues/{queue}/messages        one message (the body)
 *   POST /v1/queues/{queue}/messages:batch  one message per line, all or none
 *   GET  /v1/queues, /v1/queues/{queue}     JSON figures (KEDA's metrics-api)
 *   GET  /metrics                           Prometheus text format 0.0.4
 *   GET  /healthz, /readyz                  liveness, readiness
 *
 * One handler takes every path and method and routes by itself, so that an
 * unknown path or a wrong method is answered in JSON like any other error.
 *
 * A request's life: httpd calls on_head on its thread; we answer with
 * brk_hreq_respond, exactly once, and never block before that. An enqueue
 * checks its parameters and limits, has httpd read the body (on_body),
 * builds an ENQUEUE frame and submits it to the writer: it joins the same
 * group commit as NNG clients, and is answered from the writer thread
 * (done) after the commit. Figures are computed on the writer thread by an
 * exec request and answered from done as well.
 *
 * Ownership: a hreq belongs to this module from on_head until it answers;
 * between brk_writer_submit and done the writer borrows its brk_req. The
 * request's strings and body are httpd's and stay put until the answer.
 * Answered hreqs go back to a small pool. on_head and on_body run on
 * httpd's thread, exec and done on the writer's; the pool has a mutex, the
 * drain flag a rwlock that submitters hold shared. Request counts are kept
 * here and copied into the broker's counters on the writer thread, which
 * is the only one that reads them.
 */
#include "http.h"

#include "codec.h"
#include "hist.h"
#include "http_parse.h"
#include "httpd.h"
#include "jbuf.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISCARD_MAX (16u << 20)   /* an oversized body up to this is read and dropped */
#define POOL_MAX 256              /* idle hreqs kept for reuse */
#define REPLY_INLINE 640          /* reply frames up to this need no allocation */
#define RETRY_AFTER_DOWN_S 1      /* Retry-After while shutting down */
#define TOKEN_MAX 4096
#define MAX_STATUS 600

/* the routes this file serves beyond /healthz (http_parse.h) */
enum kind {
	K_ENQUEUE = BRK_HTTP_ENQUEUE,
	K_BATCH = BRK_HTTP_BATCH,
	K_QUEUES = BRK_HTTP_QUEUES,
	K_QUEUE = BRK_HTTP_QUEUE,
	K_METRICS = BRK_HTTP_METRICS,
	K_READY = BRK_HTTP_READY,
};

/* answer flags */
#define A_CLOSE 0x01      /* close the connection after the answer */
#define A_CHALLENGE 0x02  /* WWW-Authenticate: Bearer */
#define A_ALLOW_GET 0x04  /* Allow: GET, HEAD */
#define A_ALLOW_POST 0x08 /* Allow: POST */

static const char JSON[] = "application/json";
static const char TEXT[] = "text/plain; charset=utf-8";
static const char PROM[] = "text/plain; version=0.0.4; charset=utf-8";

typedef struct hreq hreq;

struct brk_http {
	brk_writer *w;               /* borrowed; closed after brk_http_drain */
	brk_counters *counters;      /* borrowed from w: touched on the writer thread only,
	                              * since requests still arrive after w is freed */
	uint64_t requests, errors;   /* atomics: HTTP requests, answers >= 400 */
	brk_httpd *srv;
	char *token;                 /* owned, NUL-terminated; NULL = no authentication */
	size_t token_len;
	size_t max_message;          /* bytes of one payload */
	size_t frame_limit;          /* bytes of one ENQUEUE frame */

	/* submitters hold it shared; brk_http_drain exclusively, so that once
	 * it returns nothing more reaches the writer */
	pthread_rwlock_t drain_lock;
	bool draining;               /* written under drain_lock; read atomically */

	pthread_mutex_t pool_mu;
	hreq *pool;                  /* guarded by pool_mu: idle hreqs */
	size_t npool;
	size_t live;                 /* guarded by pool_mu: hreqs out of the pool */

	uint64_t status_counts[MAX_STATUS]; /* answers by status; atomics */
};

struct hreq {
	brk_http *h;
	hreq *next_idle;
	brk_hreq *req;          /* borrowed: httpd's, answered exactly once */
	int kind;               /* enum kind */

	char queue[PROTO_MAX_QUEUE_LEN + 1]; /* decoded, NUL-terminated */
	size_t qlen;
	char key[PROTO_MAX_KEY_LEN + 1];     /* Idempotency-Key, NUL-terminated */
	size_t klen;
	uint32_t delay_ms;
	int32_t priority;
	size_t want;            /* Content-Length */
	uint8_t *frame;         /* owned: the ENQUEUE frame r.f borrows */

	uint8_t *reply;         /* the reply frame: small or big */
	uint8_t small[REPLY_INLINE];
	uint8_t *big;           /* owned */
	size_t bigcap;

	jbuf out;               /* exec: the response body */
	uint16_t status;        /* exec: the response status */
	bool ran;               /* exec ran (not when the writer was stopping) */
	brk_req r;
};

/* ---- the pool ---- */

static uint8_t *reply_buf(brk_req *r, size_t size);
static void writer_done(brk_req *r);
static void exec_cb(brk_req *r, const brk_view *v);

static hreq *
hreq_get(brk_http *h)
{
	hreq *x;
	pthread_mutex_lock(&h->pool_mu);
	if ((x = h->pool) != NULL) {
		h->pool = x->next_idle;
		h->npool--;
	}
	h->live++;
	pthread_mutex_unlock(&h->pool_mu);
	if (x == NULL) {
		if ((x = calloc(1, sizeof(*x))) == NULL) {
			pthread_mutex_lock(&h->pool_mu);
			h->live--;
			pthread_mutex_unlock(&h->pool_mu);
			return NULL;
		}
		x->h = h;
		jbuf_init(&x->out);
	}
	x->next_idle = NULL;
	x->qlen = x->klen = 0;
	x->queue[0] = x->key[0] = '\0';
	x->delay_ms = 0;
	x->priority = 0;
	x->want = 0;
	x->status = 0;
	x->ran = false;
	x->reply = NULL;
	memset(&x->r, 0, sizeof(x->r));
	x->r.arg = x;
	x->r.reply_buf = reply_buf;
	x->r.done = writer_done;
	return x;
}

/* Frees what the request held and keeps x for the next one. */
static void
hreq_put(hreq *x)
{
	brk_http *h = x->h;
	free(x->frame);
	x->frame = NULL;
	if (x->bigcap > REPLY_INLINE * 4) { /* keep a small one around */
		free(x->big);
		x->big = NULL;
		x->bigcap = 0;
	}
	if (x->out.cap > 64 * 1024)
		jbuf_fini(&x->out);
	x->out.len = 0;
	x->out.oom = false;
	pthread_mutex_lock(&h->pool_mu);
	h->live--;
	if (h->npool < POOL_MAX) {
		x->next_idle = h->pool;
		h->pool = x;
		h->npool++;
		x = NULL;
	}
	pthread_mutex_unlock(&h->pool_mu);
	if (x != NULL) {
		free(x->big);
		jbuf_fini(&x->out);
		free(x);
	}
}

/* ---- answers ---- */

static void
count_status(brk_http *h, uint16_t status)
{
	if (status < MAX_STATUS)
		__atomic_add_fetch(&h->status_counts[status], 1, __ATOMIC_RELAXED);
	if (status >= 400)
		__atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
}

/* Copies our counts into the writer's counters (brk_broker_view reads
 * them); on the writer thread, so the writer is alive. */
static void
publish_counts(brk_http *h)
{
	h->counters->http_requests = __atomic_load_n(&h->requests, __ATOMIC_RELAXED);
	h->counters->http_errors = __atomic_load_n(&h->errors, __ATOMIC_RELAXED);
}

/* Answers rq; the body is copied. */
static void
respond(brk_http *h, brk_hreq *rq, uint16_t status, const char *type, const void *body,
        size_t len, unsigned flags, uint32_t retry_after_s)
{
	char hdrs[256];
	int n = 0;

	count_status(h, status);
	hdrs[0] = '\0';
	if (retry_after_s > 0)
		n += snprintf(hdrs + n, sizeof(hdrs) - (size_t)n, "Retry-After: %u\r\n", retry_after_s);
	if (flags & A_ALLOW_GET)
		n += snprintf(hdrs + n, sizeof(hdrs) - (size_t)n, "Allow: GET, HEAD\r\n");
	if (flags & A_ALLOW_POST)
		n += snprintf(hdrs + n, sizeof(hdrs) - (size_t)n, "Allow: POST\r\n");
	if (flags & A_CHALLENGE)
		n += snprintf(hdrs + n, sizeof(hdrs) - (size_t)n,
		              "WWW-Authenticate: Bearer realm=\"sluice\"\r\n");
	brk_hreq_respond(rq, status, type, hdrs, body, len, (flags & A_CLOSE) != 0);
}

static void respond_error(brk_http *h, brk_hreq *rq, uint16_t status, unsigned flags,
                          uint32_t retry_after_s, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* A {"error":"..."} answer. */
static void
respond_error(brk_http *h, brk_hreq *rq, uint16_t status, unsigned flags,
              uint32_t retry_after_s, const char *fmt, ...)
{
	char msg[512];
	jbuf b;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jbuf_init(&b);
	jbuf_put(&b, "{\"error\":", 9);
	jbuf_json_str(&b, msg, strlen(msg));
	jbuf_put(&b, "}\n", 2);
	if (b.oom)
		respond(h, rq, 500, TEXT, "out of memory\n", 14, flags | A_CLOSE, 0);
	else
		respond(h, rq, status, JSON, b.p, b.len, flags, retry_after_s);
	jbuf_fini(&b);
}

/* The hreq is done with: back to the pool, then the error answer. */
static void
finish_error(hreq *x, uint16_t status, unsigned flags, uint32_t retry_after_s, const char *msg)
{
	brk_hreq *rq = x->req;
	brk_http *h = x->h;
	char copy[512];
	snprintf(copy, sizeof(copy), "%s", msg); /* msg may be x's */
	hreq_put(x);
	respond_error(h, rq, status, flags, retry_after_s, "%s", copy);
}

/* The answer is x's out; then x is done with. */
static void
finish(hreq *x, uint16_t status, const char *type, uint32_t retry_after_s)
{
	respond(x->h, x->req, status, type, x->out.p, x->out.len, 0, retry_after_s);
	hreq_put(x);
}

/* ---- the writer side ---- */

static uint8_t *
reply_buf(brk_req *r, size_t size)
{
	hreq *x = r->arg;
	if (size <= sizeof(x->small))
		return x->reply = x->small;
	if (size > x->bigcap) {
		uint8_t *p = realloc(x->big, size);
		if (p == NULL)
			return x->reply = NULL;
		x->big = p;
		x->bigcap = size;
	}
	return x->reply = x->big;
}

static uint16_t
status_of(int code)
{
	switch (code) {
	case PROTO_ERR_BAD_REQUEST: return 400;
	case PROTO_ERR_UNKNOWN_QUEUE: return 404;
	case PROTO_ERR_TOO_LARGE: return 413;
	case PROTO_ERR_QUEUE_FULL: return 429;
	case PROTO_ERR_STORAGE:
	case PROTO_ERR_SHUTTING_DOWN: return 503;
	default: return 500;
	}
}

/* Turns the writer's reply to an ENQUEUE into the HTTP answer. */
static void
enqueue_done(hreq *x)
{
	proto_frame f;
	jbuf *b = &x->out;
	uint16_t status = 201;

	if (x->reply == NULL || x->r.reply_len == 0 ||
	    proto_frame_decode(x->reply, x->r.reply_len, &f) != PROTO_OK) {
		finish_error(x, 500, 0, 0, "internal error: the writer gave no reply (out of memory?)");
		return;
	}
	if (f.h.type == PROTO_T_ERROR) {
		uint16_t st = status_of(f.u.error.code);
		uint32_t ra = 0;
		char msg[512];
		if (st == 429 || st == 503)
			ra = f.u.error.retry_after_ms ? (f.u.error.retry_after_ms + 999) / 1000 : 1;
		snprintf(msg, sizeof(msg), "%.*s", (int)f.u.error.message.len,
		         (const char *)f.u.error.message.ptr);
		finish_error(x, st, 0, ra, msg);
		return;
	}
	if (f.h.type != PROTO_T_IDS) {
		finish_error(x, 500, 0, 0, "internal error: unexpected reply from the writer");
		return;
	}
	proto_iter it = f.u.id_list.ids;
	uint32_t n = proto_iter_left(&it), dups = 0;
	uint64_t id;
	bool dup;
	b->len = 0;
	if (x->kind == K_ENQUEUE) {
		proto_idflag_next(&it, &id, &dup);
		jbuf_printf(b, "{\"id\":%llu%s}\n", (unsigned long long)id, dup ? ",\"duplicate\":true" : "");
		status = dup ? 200 : 201;
	} else {
		jbuf_put(b, "{\"ids\":[", 8);
		for (uint32_t i = 0; proto_idflag_next(&it, &id, &dup); i++) {
			jbuf_printf(b, "%s%llu", i ? "," : "", (unsigned long long)id);
			dups += dup;
		}
		jbuf_put(b, "]", 1);
		if (dups > 0)
			jbuf_printf(b, ",\"duplicates\":%u", dups);
		jbuf_put(b, "}\n", 2);
		status = n > 0 && dups == n ? 200 : 201;
	}
	if (b->oom) {
		finish_error(x, 500, 0, 0, "out of memory");
		return;
	}
	finish(x, status, JSON, 0);
}

/* Called once on the writer thread: the reply is in, or exec has run. */
static void
writer_done(brk_req *r)
{
	hreq *x = r->arg;

	publish_counts(x->h);
	if (x->kind == K_ENQUEUE || x->kind == K_BATCH) {
		enqueue_done(x);
		return;
	}
	if (!x->ran) {
		finish_error(x, 503, 0, RETRY_AFTER_DOWN_S, "the broker is shutting down");
		return;
	}
	if (x->out.oom) {
		finish_error(x, 500, 0, 0, "out of memory");
		return;
	}
	if (x->status >= 400 && x->kind != K_READY) {
		finish_error(x, x->status, 0, 0, x->out.p); /* out holds the message */
		return;
	}
	finish(x, x->status, x->kind == K_METRICS ? PROM : x->kind == K_READY ? TEXT : JSON,
	       x->status == 503 ? RETRY_AFTER_DOWN_S : 0);
}

/* ---- figures (on the writer thread) ---- */

static void
json_field(void *arg, const char *key, int64_t value)
{
	jbuf_printf(arg, ",\"%s\":%lld", key, (long long)value);
}

/* A queue's figures as STATS names them, plus the age in seconds (for
 * KEDA and people) and whether it is a dead-letter queue. */
static void
queue_json(jbuf *b, const brk_queue_view *q)
{
	jbuf_put(b, "{\"name\":", 8);
	jbuf_json_str(b, q->name, strlen(q->name));
	brk_queue_view_each(q, json_field, b);
	jbuf_printf(b, ",\"oldest_ready_age_seconds\":%.3f,\"dead_letter_queue\":%s}",
	            (double)q->oldest_ready_age_ms / 1000.0, q->is_dead ? "true" : "false");
}

static void
family(jbuf *b, const char *name, const char *type, const char *help)
{
	jbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void
label_value(jbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			jbuf_put(b, "\\\\", 2);
		else if (*s == '"')
			jbuf_put(b, "\\\"", 2);
		else if (*s == '\n')
			jbuf_put(b, "\\n", 2);
		else
			jbuf_put(b, s, 1);
	}
}

static void
queue_sample(jbuf *b, const char *name, const char *queue, bool fraction, double value)
{
	jbuf_printf(b, "%s{queue=\"", name);
	label_value(b, queue);
	jbuf_put(b, "\"} ", 3);
	jbuf_printf(b, fraction ? "%.6f\n" : "%.0f\n", value);
}

/* One histogram family from h, whose unit is 1/scale of the exposed one. */
static void
histogram(jbuf *b, const char *name, const char *help, const struct hist *h, const double *le,
          size_t n, double scale)
{
	family(b, name, "histogram", help);
	for (size_t i = 0; i < n; i++)
		jbuf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, le[i],
		            (unsigned long long)hist_count_le(h, (uint64_t)(le[i] * scale + 0.5)));
	jbuf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)hist_count(h));
	jbuf_printf(b, "%s_sum %.9g\n", name, (double)hist_sum(h) / scale);
	jbuf_printf(b, "%s_count %llu\n", name, (unsigned long long)hist_count(h));
}

/* The queue figures, in the order of the table below. */
enum qfig {
	Q_DEPTH, Q_IN_FLIGHT, Q_DELAYED, Q_DEAD, Q_BACKLOG, Q_AGE, Q_MAX_DEPTH,
	Q_ENQ, Q_ACK, Q_NACK, Q_EXP, Q_DLQ,
	Q_DESIRED, Q_CURRENT, Q_RESTARTS, Q_GUARD, Q_SINK_WORKERS, Q_SINK_P99, Q_SINK_BATCHES,
	Q_SINK_FAILURES, Q_SINK_BREAKER,
	Q_NFIG
};

/* A figure of q; false when nothing was reported. */
static bool
queue_fig(const brk_queue_view *q, int which, double *out)
{
	int64_t v;
	switch (which) {
	case Q_DEPTH: v = (int64_t)q->depth; break;
	case Q_IN_FLIGHT: v = (int64_t)q->in_flight; break;
	case Q_DELAYED: v = (int64_t)q->delayed; break;
	case Q_DEAD: v = (int64_t)q->dead; break;
	case Q_BACKLOG: v = (int64_t)q->backlog; break;
	case Q_AGE: *out = (double)q->oldest_ready_age_ms / 1000.0; return true;
	case Q_MAX_DEPTH: v = q->max_depth; break;
	case Q_ENQ: v = (int64_t)q->enqueued_total; break;
	case Q_ACK: v = (int64_t)q->acked_total; break;
	case Q_NACK: v = (int64_t)q->nacked_total; break;
	case Q_EXP: v = (int64_t)q->expired_total; break;
	case Q_DLQ: v = (int64_t)q->dead_lettered_total; break;
	case Q_DESIRED: v = q->desired_workers; break;
	case Q_CURRENT: v = q->current_workers; break;
	case Q_RESTARTS: v = q->worker_restarts; break;
	case Q_GUARD: v = q->guard_holds; break;
	case Q_SINK_WORKERS: v = q->sink_workers; break;
	case Q_SINK_P99:
		if (q->sink_commit_p99_us < 0)
			return false;
		*out = (double)q->sink_commit_p99_us / 1e6;
		return true;
	case Q_SINK_BATCHES: v = q->sink_batches; break;
	case Q_SINK_FAILURES: v = q->sink_failures; break;
	case Q_SINK_BREAKER: v = q->sink_breaker_open; break;
	default: return false;
	}
	if (v < 0)
		return false;
	*out = (double)v;
	return true;
}

static void
metrics(brk_http *h, jbuf *b, const brk_view *v)
{
	static const struct {
		int which;
		const char *name, *type, *help;
	} qf[] = {
		{Q_DEPTH, "sluice_queue_depth", "gauge", "Messages ready to be leased."},
		{Q_IN_FLIGHT, "sluice_queue_in_flight", "gauge", "Messages leased and not yet acknowledged."},
		{Q_DELAYED, "sluice_queue_delayed", "gauge", "Messages waiting for their delay or retry backoff."},
		{Q_DEAD, "sluice_queue_dead", "gauge", "Messages in the queue's dead-letter queue."},
		{Q_BACKLOG, "sluice_queue_backlog", "gauge", "Ready plus in-flight messages."},
		{Q_AGE, "sluice_queue_oldest_ready_age_seconds", "gauge", "Age of the oldest ready message."},
		{Q_MAX_DEPTH, "sluice_queue_max_depth", "gauge", "The queue's limit (0 = none)."},
		{Q_ENQ, "sluice_queue_enqueued_total", "counter", "Messages stored since the broker started."},
		{Q_ACK, "sluice_queue_acked_total", "counter", "Messages acknowledged since the broker started."},
		{Q_NACK, "sluice_queue_nacked_total", "counter", "Deliveries handed back (NACK) since the broker started."},
		{Q_EXP, "sluice_queue_expired_total", "counter", "Leases that expired since the broker started."},
		{Q_DLQ, "sluice_queue_dead_lettered_total", "counter", "Messages moved to the dead-letter queue since the broker started."},
		{Q_DESIRED, "sluice_workers_desired", "gauge", "Workers the supervisor wants (last report)."},
		{Q_CURRENT, "sluice_workers_current", "gauge", "Workers the supervisor runs (last report)."},
		{Q_RESTARTS, "sluice_workers_restarts", "gauge", "Worker restarts, as the supervisor last reported them."},
		{Q_GUARD, "sluice_guard_holds", "gauge", "Scale-downs held by the supervisor's guard (last report)."},
		{Q_SINK_WORKERS, "sluice_sink_workers", "gauge", "Workers that reported in the last 30 seconds."},
		{Q_SINK_P99, "sluice_sink_commit_p99_seconds", "gauge", "Highest sink commit p99 over the reporting workers."},
		{Q_SINK_BATCHES, "sluice_sink_batches", "gauge", "Sink batches over the workers' last report window."},
		{Q_SINK_FAILURES, "sluice_sink_failures", "gauge", "Sink failures over the workers' last report window."},
		{Q_SINK_BREAKER, "sluice_sink_breaker_open", "gauge", "Workers whose sink circuit breaker is not closed."},
	};
	static const double ack_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
	                                10, 30, 60, 300, 900, 3600};
	static const double commit_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	                                   0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
	static const double batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
	size_t nq = brk_view_nqueues(v);
	brk_queue_view *qs = nq ? calloc(nq, sizeof(*qs)) : NULL;
	brk_broker_view bv;
	double val;

	if (nq > 0 && qs == NULL) {
		b->oom = true;
		return;
	}
	for (size_t i = 0; i < nq; i++)
		brk_view_queue(v, i, &qs[i]);
	brk_view_broker(v, &bv);

	for (size_t f = 0; f < sizeof(qf) / sizeof(qf[0]); f++) {
		bool any = false;
		for (size_t i = 0; i < nq && !any; i++)
			any = queue_fig(&qs[i], qf[f].which, &val);
		if (!any && qf[f].which >= Q_DESIRED)
			continue; /* reported figures: only once someone reports */
		family(b, qf[f].name, qf[f].type, qf[f].help);
		for (size_t i = 0; i < nq; i++)
			if (queue_fig(&qs[i], qf[f].which, &val))
				queue_sample(b, qf[f].name, qs[i].name,
				             qf[f].which == Q_AGE || qf[f].which == Q_SINK_P99, val);
	}
	free(qs);

	histogram(b, "sluice_ack_latency_seconds", "Time from enqueue to acknowledgement.",
	          bv.ack_latency_ms, ack_le, sizeof(ack_le) / sizeof(ack_le[0]), 1e3);
	histogram(b, "sluice_commit_duration_seconds", "Duration of a group commit (COMMIT and fsync).",
	          bv.commit_us, commit_le, sizeof(commit_le) / sizeof(commit_le[0]), 1e6);
	histogram(b, "sluice_commit_batch_requests", "Requests per group commit.", bv.batch_requests,
	          batch_le, sizeof(batch_le) / sizeof(batch_le[0]), 1);

	const struct {
		const char *name, *type, *help;
		double value;
	} bf[] = {
		{"sluice_commits_total", "counter", "Write transactions committed.", (double)bv.commits},
		{"sluice_fsyncs_total", "counter", "Commits made durable with fsync.", (double)bv.fsyncs},
		{"sluice_bad_frames_total", "counter", "NNG requests that could not be decoded.", (double)bv.bad_frames},
		{"sluice_http_requests_total", "counter", "HTTP requests received.", (double)bv.http_requests},
		{"sluice_http_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status.",
		 (double)h->counters->http_errors},
		{"sluice_connections", "gauge", "Open NNG connections.", (double)bv.connections},
		{"sluice_database_bytes", "gauge", "Size of the database file.", (double)bv.db_bytes},
		{"sluice_database_free_bytes", "gauge", "Unused pages in the database file.", (double)bv.db_free_bytes},
		{"sluice_messages", "gauge", "Messages stored, in every queue.", (double)bv.messages},
		{"sluice_uptime_seconds", "gauge", "Seconds since the broker started.", (double)bv.uptime_ms / 1000.0},
		{"sluice_writable", "gauge", "1 when the last commit succeeded.", bv.writable ? 1.0 : 0.0},
	};
	for (size_t i = 0; i < sizeof(bf) / sizeof(bf[0]); i++) {
		family(b, bf[i].name, bf[i].type, bf[i].help);
		jbuf_printf(b, "%s %.17g\n", bf[i].name, bf[i].value);
	}
	family(b, "sluice_http_responses_total", "counter", "HTTP answers by status code.");
	for (int s = 100; s < MAX_STATUS; s++) {
		uint64_t n = __atomic_load_n(&h->status_counts[s], __ATOMIC_RELAXED);
		if (n > 0)
			jbuf_printf(b, "sluice_http_responses_total{code=\"%d\"} %llu\n", s,
			            (unsigned long long)n);
	}
}

static void
exec_cb(brk_req *r, const brk_view *v)
{
	hreq *x = r->arg;
	jbuf *b = &x->out;
	brk_queue_view q;

	publish_counts(x->h);
	x->ran = true;
	b->len = 0;
	x->status = 200;
	switch (x->kind) {
	case K_QUEUES: {
		size_t n = brk_view_nqueues(v);
		jbuf_put(b, "{\"queues\":[", 11);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				jbuf_put(b, ",", 1);
			brk_view_queue(v, i, &q);
			queue_json(b, &q);
		}
		jbuf_put(b, "]}\n", 3);
		break;
	}
	case K_QUEUE: {
		long i = brk_view_find(v, x->queue, x->qlen);
		if (i < 0) {
			x->status = 404;
			jbuf_printf(b, "no queue named '%s'", x->queue);
			break;
		}
		brk_view_queue(v, (size_t)i, &q);
		queue_json(b, &q);
		jbuf_put(b, "\n", 1);
		break;
	}
	case K_METRICS: metrics(x->h, b, v); break;
	case K_READY: {
		brk_broker_view bv;
		brk_view_broker(v, &bv);
		if (bv.writable) {
			jbuf_put(b, "ok\n", 3);
		} else {
			x->status = 503;
			jbuf_put(b, "not ready: the last commit failed\n", 34);
		}
		break;
	}
	}
}

/* ---- submitting ---- */

/* Hands x to the writer, unless the broker is draining. */
static void
submit(hreq *x)
{
	brk_http *h = x->h;
	pthread_rwlock_rdlock(&h->drain_lock);
	if (h->draining) {
		pthread_rwlock_unlock(&h->drain_lock);
		finish_error(x, 503, 0, RETRY_AFTER_DOWN_S, "the broker is shutting down");
		return;
	}
	/* not stopping (it closes after the drain), so done never runs in here */
	brk_writer_submit(h->w, &x->r);
	pthread_rwlock_unlock(&h->drain_lock);
}

/* Builds x's ENQUEUE frame from its body; returns 0, or an HTTP status
 * with why filled. A batch with an Idempotency-Key gives its i-th message
 * (from 0) the key KEY/i, so that resending the batch stores it once. */
static uint16_t
build_enqueue(hreq *x, char *why, size_t whylen)
{
	brk_http *h = x->h;
	const uint8_t *body = x->want > 0 ? brk_hreq_body(x->req) : (const uint8_t *)"";
	const uint8_t *end = body + x->want;
	size_t n = 1, size = PROTO_ENQUEUE_BASE(x->qlen), items, bad, bad_len;
	char key[PROTO_MAX_KEY_LEN + 1];
	proto_buf b;

	if (x->kind == K_ENQUEUE) {
		size += proto_enq_item_size(x->klen, x->want);
	} else {
		switch (brk_http_batch_scan(body, x->want, h->max_message, x->klen, &n, &items, &bad,
		                            &bad_len)) {
		case BRK_HTTP_OK:
			size += items;
			break;
		case BRK_HTTP_E_TOO_LARGE:
			snprintf(why, whylen,
			         "message %zu is %zu bytes; the limit is %zu (broker.max_message_bytes); "
			         "nothing was stored", bad + 1, bad_len, h->max_message);
			return 413;
		case BRK_HTTP_E_KEY:
			snprintf(why, whylen, "Idempotency-Key too long for a batch of this size (keys are "
			         "KEY/i, at most %d bytes)", PROTO_MAX_KEY_LEN);
			return 400;
		default:
			snprintf(why, whylen, "the body holds no messages (one per line)");
			return 400;
		}
	}
	if (size > h->frame_limit) {
		snprintf(why, whylen, "the batch needs %zu bytes; the limit is %zu: send smaller batches",
		         size, h->frame_limit);
		return 413;
	}
	if ((x->frame = malloc(size)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return 503;
	}
	proto_buf_init(&b, x->frame, size);
	proto_enc_enqueue(&b, 1, x->queue, x->qlen);
	proto_enq_item m = {.delay_ms = x->delay_ms, .priority = x->priority};
	if (x->kind == K_ENQUEUE) {
		m.key = (proto_span){(const uint8_t *)x->key, x->klen};
		m.payload = (proto_span){body, x->want};
		proto_enc_enq_item(&b, &m);
	} else {
		const uint8_t *pos = body, *msg;
		size_t len;
		for (size_t i = 0; brk_http_batch_next(&pos, end, &msg, &len); i++) {
			m.payload = (proto_span){msg, len};
			m.key.ptr = (const uint8_t *)key;
			m.key.len = x->klen ? (size_t)snprintf(key, sizeof(key), "%s/%zu", x->key, i) : 0;
			proto_enc_enq_item(&b, &m);
		}
	}
	if (proto_end(&b) != PROTO_OK || proto_frame_decode(x->frame, b.len, &x->r.f) != PROTO_OK) {
		snprintf(why, whylen, "internal error: the request did not encode");
		return 500;
	}
	return 0;
}

static void
enqueue_ready(hreq *x)
{
	char why[256];
	uint16_t st = build_enqueue(x, why, sizeof(why));
	if (st != 0) {
		finish_error(x, st, 0, st == 503 ? RETRY_AFTER_DOWN_S : 0, why);
		return;
	}
	submit(x);
}

/* Answers 413 for a body over the limit. */
static void
too_large(hreq *x, unsigned flags)
{
	brk_http *h = x->h;
	char why[200];
	snprintf(why, sizeof(why), "the body is %zu bytes; the limit is %zu (%s)", x->want,
	         x->kind == K_BATCH ? h->frame_limit : h->max_message,
	         x->kind == K_BATCH ? "a batch's frame limit" : "broker.max_message_bytes");
	finish_error(x, 413, flags, 0, why);
}

/* httpd has read the body, or lost the client before it was all in. */
static void
on_body(void *arg, brk_hreq *rq)
{
	brk_http *h = arg;
	hreq *x = brk_hreq_data(rq);

	if (brk_hreq_body(rq) == NULL) {
		/* the client went away or stalled: the answer goes nowhere */
		log_debug("HTTP-BODY-FAILED", "the client left before sending the whole body");
		__atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
		hreq_put(x);
		brk_hreq_respond(rq, 400, TEXT, NULL, NULL, 0, true);
		return;
	}
	enqueue_ready(x);
}

/* ---- routing ---- */

/* Starts an enqueue: parameters, limits, then the body. */
static void
start_enqueue(brk_http *h, brk_hreq *rq, hreq *x, const char *query, size_t qlen, size_t want,
              unsigned unread)
{
	char why[256];
	const char *key = brk_hreq_header(rq, "Idempotency-Key");
	bool cont = brk_http_expects_continue(brk_hreq_header(rq, "Expect"));
	size_t limit = x->kind == K_BATCH ? h->frame_limit : h->max_message;
	brk_http_params params = {0};

	if (brk_http_query(query, qlen, &params, why, sizeof(why)) != 0) {
		finish_error(x, 400, unread, 0, why);
		return;
	}
	x->delay_ms = params.delay_ms;
	x->priority = params.priority;
	if (key != NULL) {
		if (!brk_http_key_ok(key)) {
			finish_error(x, 400, unread, 0, "Idempotency-Key must be 1 to 255 bytes");
			return;
		}
		x->klen = strlen(key);
		memcpy(x->key, key, x->klen + 1);
	}
	x->want = want;
	if (want > limit) {
		/* without a 100 Continue the client sends the body anyway:
		 * httpd reads and drops it (up to a point) so that the
		 * connection goes on */
		too_large(x, cont || want > DISCARD_MAX ? A_CLOSE : 0);
		return;
	}
	if (__atomic_load_n(&h->draining, __ATOMIC_RELAXED)) { /* submit checks again */
		finish_error(x, 503, unread, RETRY_AFTER_DOWN_S, "the broker is shutting down");
		return;
	}
	if (want == 0) {
		enqueue_ready(x);
		return;
	}
	brk_hreq_read_body(rq);
}

/* The handler: every path, every method. Runs on httpd's thread. */
static void
on_head(void *arg, brk_hreq *rq)
{
	brk_http *h = arg;
	const char *method = brk_hreq_method(rq);
	const char *uri = brk_hreq_target(rq);
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	size_t plen = strcspn(uri, "?");
	const char *query = uri[plen] == '?' ? uri + plen + 1 : "";
	size_t want = brk_hreq_content_length(rq);
	unsigned unread;
	int kind;

	__atomic_add_fetch(&h->requests, 1, __ATOMIC_RELAXED);

	/* a body we cannot frame must not be taken for the next request */
	if (brk_hreq_header(rq, "Transfer-Encoding") != NULL) {
		respond_error(h, rq, 411, A_CLOSE, 0, "send the body with a Content-Length");
		return;
	}
	if (!brk_hreq_framed(rq)) {
		respond_error(h, rq, 400, A_CLOSE, 0, "bad Content-Length");
		return;
	}
	unread = want > 0 ? A_CLOSE : 0;

	const char *qname;
	size_t qnlen;
	kind = brk_http_route(uri, plen, &qname, &qnlen);
	if (kind == BRK_HTTP_HEALTH) {
		if (!get)
			respond_error(h, rq, 405, A_ALLOW_GET | unread, 0, "use GET");
		else
			respond(h, rq, 200, TEXT, "ok\n", 3, unread, 0);
		return;
	}
	if (h->token != NULL &&
	    !brk_http_bearer_ok(h->token, h->token_len, brk_hreq_header(rq, "Authorization"))) {
		respond_error(h, rq, 401, A_CHALLENGE | unread, 0,
		              "this endpoint needs 'Authorization: Bearer TOKEN' (broker.http_token)");
		return;
	}

	if (kind == BRK_HTTP_NONE) {
		respond_error(h, rq, 404, unread, 0, "no such endpoint: %s %.*s", method,
		              (int)(plen > 200 ? 200 : plen), uri);
		return;
	}
	bool writes = kind == K_ENQUEUE || kind == K_BATCH;
	if (writes ? !post : !get) {
		respond_error(h, rq, 405, (writes ? A_ALLOW_POST : A_ALLOW_GET) | unread, 0, "use %s",
		              writes ? "POST" : "GET");
		return;
	}

	hreq *x = hreq_get(h);
	if (x == NULL) {
		respond_error(h, rq, 503, A_CLOSE, RETRY_AFTER_DOWN_S, "out of memory");
		return;
	}
	x->req = rq;
	x->kind = kind;
	brk_hreq_set_data(rq, x);
	if (qname != NULL) {
		int rc = brk_http_queue_name(qname, qnlen, x->queue, sizeof(x->queue), &x->qlen);
		if (rc != BRK_HTTP_OK) {
			char why[256];
			if (rc == BRK_HTTP_E_NAME)
				snprintf(why, sizeof(why), "bad queue name '%s': use 1-128 of A-Z a-z 0-9 . _ -",
				         x->queue);
			else
				snprintf(why, sizeof(why), "bad queue name '%.*s': not URL-encoded or too long",
				         (int)(qnlen > 128 ? 128 : qnlen), qname);
			finish_error(x, 400, unread, 0, why);
			return;
		}
	}
	if (writes) {
		start_enqueue(h, rq, x, query, strlen(query), want, unread);
		return;
	}
	if (kind == K_READY) {
		if (__atomic_load_n(&h->draining, __ATOMIC_RELAXED)) {
			hreq_put(x);
			respond(h, rq, 503, TEXT, "not ready: shutting down\n", 25, unread, RETRY_AFTER_DOWN_S);
			return;
		}
	}
	if (unread) { /* a GET with a body: answered, then the connection closes */
		finish_error(x, 400, A_CLOSE, 0, "this endpoint takes no body");
		return;
	}
	x->r.exec = exec_cb;
	submit(x);
}

/* ---- life cycle ---- */

/* The token from broker.http_token or broker.http_token_file (trailing
 * newline stripped). 0, or -1 with err filled (never with the token). */
static int
load_token(brk_http *h, const cfg *c, char *err, size_t errlen)
{
	if (c->broker.http_token != NULL) {
		h->token = strdup(c->broker.http_token);
	} else if (c->broker.http_token_file != NULL) {
		FILE *f = fopen(c->broker.http_token_file, "r");
		if (f == NULL) {
			snprintf(err, errlen, "broker.http_token_file %s: %s", c->broker.http_token_file,
			         strerror(errno));
			return -1;
		}
		char *buf = calloc(1, TOKEN_MAX + 1);
		size_t n = buf ? fread(buf, 1, TOKEN_MAX + 1, f) : 0;
		fclose(f);
		if (buf == NULL || n > TOKEN_MAX) {
			free(buf);
			snprintf(err, errlen, "broker.http_token_file %s: %s", c->broker.http_token_file,
			         buf == NULL ? "out of memory" : "longer than 4096 bytes");
			return -1;
		}
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			buf[--n] = '\0';
		if (n == 0 || memchr(buf, '\0', n) != NULL) {
			free(buf);
			snprintf(err, errlen, "broker.http_token_file %s: %s", c->broker.http_token_file,
			         n == 0 ? "empty" : "holds a NUL byte");
			return -1;
		}
		h->token = buf;
	} else {
		return 0;
	}
	if (h->token == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->token_len = strlen(h->token);
	return 0;
}

int
brk_http_open(const cfg *c, brk_writer *w, brk_http **out, char *err, size_t errlen)
{
	brk_http *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_rwlock_init(&h->drain_lock, NULL);
	pthread_mutex_init(&h->pool_mu, NULL);
	h->w = w;
	h->counters = brk_writer_counters(w);
	h->max_message = (size_t)c->broker.max_message_bytes;
	h->frame_limit = brk_writer_frame_limit(w);
	brk_httpd_handler hd = {.head = on_head, .body = on_body, .arg = h};
	char why[256];
	if (load_token(h, c, err, errlen) != 0) {
		brk_http_close(h);
		return -1;
	}
	if (brk_httpd_open(c->broker.http, &hd, &h->srv, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "broker.http: %s", why);
		brk_http_close(h);
		return -1;
	}
	log_info("HTTP-LISTENING", "http://%s%s", brk_httpd_addr(h->srv),
	         h->token ? " (bearer token required)" : "");
	*out = h;
	return 0;
}

void
brk_http_drain(brk_http *h)
{
	if (h == NULL)
		return;
	pthread_rwlock_wrlock(&h->drain_lock);
	__atomic_store_n(&h->draining, true, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&h->drain_lock);
}

void
brk_http_close(brk_http *h)
{
	if (h == NULL)
		return;
	brk_httpd_close(h->srv); /* closes every connection */
	if (h->live > 0)
		log_warn("HTTP-LEAK", "%zu HTTP requests still held at close", h->live);
	for (hreq *x = h->pool, *next; x != NULL; x = next) {
		next = x->next_idle;
		free(x->big);
		jbuf_fini(&x->out);
		free(x);
	}
	if (h->token != NULL) {
		explicit_bzero(h->token, h->token_len);
		free(h->token);
	}
	pthread_mutex_destroy(&h->pool_mu);
	pthread_rwlock_destroy(&h->drain_lock);
	free(h);
}

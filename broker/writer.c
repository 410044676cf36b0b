/*
 * writer: group commit over the store and the in-memory index.
 *
 * DESIGN: one thread owns the SQLite connection (store.c) and the index
 * (queue.c); nothing else touches either, so neither locks. Submitters
 * append to a pending list under a mutex and return at once. The thread
 * loops:
 *   1. take everything pending;
 *   2. in one write transaction: expire due leases, run every ENQUEUE,
 *      ACK, NACK, REQUEUE and PURGE of the batch; COMMIT (one fsync for
 *      all of them); only then complete them. A failed COMMIT rolls back,
 *      reloads the index from the database (keeping live leases) and
 *      answers every write of the batch with STORAGE: none of it happened;
 *   3. in one read transaction: serve LEASE, TOUCH, STATS, PEEK and REPORT,
 *      then the parked long-poll leases whose queue now has messages (so a
 *      waiting worker is answered right after the commit that fed it).
 * The next batch starts as soon as this one is done, with whatever arrived
 * meanwhile: under load batches grow; idle, a lone request commits alone.
 * The index is changed as requests run, before COMMIT; that is safe because
 * nothing outside this thread sees it and a failed COMMIT rebuilds it.
 */
#include "writer.h"

#include "clock.h"
#include "hist.h"
#include "log.h"
#include "queue.h"
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define FRAME_SLACK (64 * 1024)
#define MAX_VISIBILITY_MS (12LL * 3600 * 1000)
#define MAX_WAIT_MS (10 * 60 * 1000)
#define PEEK_MAX 1000
#define PRUNE_EVERY_MS 1000
#define PRUNE_ROWS 20000
#define REPORT_SLOTS 64
#define REPORT_FRESH_MS 30000
#define QUEUE_FULL_RETRY_MS 1000
#define ID_RESERVE 100000 /* ids reserved per write of meta.next_id */
#define TXN_BUDGET 4096   /* ids of ACKs and NACKs one transaction takes on */

/* The latest health report of one worker. */
typedef struct wreport {
	int64_t pid;
	int64_t at_ms; /* monotonic */
	int64_t commit_p99_us, batches, failures, breaker;
} wreport;

/* The writer's own per-queue state (in the queue's user slot). */
typedef struct wqueue {
	wreport workers[REPORT_SLOTS];
	int64_t sup_at_ms; /* monotonic; 0 = never */
	int64_t desired, current, restarts, guard_holds;
} wqueue;

enum total_field { T_ENQUEUED, T_ACKED, T_NACKED, T_EXPIRED, T_DEAD };

typedef struct delta {
	brk_queue *q;
	int field;
	uint64_t n;
} delta;

struct brk_writer {
	const cfg *cfg; /* borrowed; outlives the writer */
	brk_store *store;
	brk_index *index;
	pthread_t thread;
	bool started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	brk_req *pending_head; /* guarded by mu */
	brk_req *pending_tail;
	bool stopping;         /* guarded by mu */
	bool sleeping;         /* guarded by mu: the thread waits on cv */

	/* Completions: the writer hands answered requests to a thread of their
	 * own, which calls done (sends the replies), so sending overlaps with
	 * the next group commit instead of delaying it. */
	pthread_t completer;
	bool completer_started;
	pthread_mutex_t done_mu;
	pthread_cond_t done_cv;
	brk_req *done_head;    /* guarded by done_mu */
	brk_req *done_tail;
	bool done_sleeping;    /* guarded by done_mu */
	bool done_stop;        /* guarded by done_mu */
	brk_req *out_head;     /* the writer's: answered in this loop, not handed over yet */
	brk_req *out_tail;
	bool reading;          /* a read transaction is open */

	/* the writer thread's own */
	brk_req *waiters_head; /* parked LEASEs, in arrival order */
	brk_req *waiters_tail;
	uint64_t next_id;
	uint64_t stored_next_id;
	uint64_t boot;
	uint64_t token_seq;
	uint64_t rng;
	int64_t next_prune_ms;
	bool in_txn;
	bool txn_dirty;
	bool writable;
	brk_queue **new_queues; /* created in the open transaction */
	size_t nnew, capnew;
	delta *deltas;          /* counters to add once the transaction commits */
	size_t ndeltas, capdeltas;
	brk_msg **scratch;      /* messages picked for one lease */
	size_t capscratch;

	/* figures */
	int64_t start_mono_ms;
	uint32_t frame_limit;
	hist *commit_us;
	hist *batch_requests;
	hist *ack_latency_ms;
	uint64_t commits, fsyncs;
	int64_t db_bytes, db_free;
	int64_t db_size_at_ms;
	brk_counters *counters; /* borrowed from main */
};

struct brk_view {
	brk_writer *w;
	int64_t now_ms;
};

/* ---- small helpers ---- */

static uint64_t
rand64(brk_writer *w)
{
	/* xorshift64*: jitter only, no need for more */
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static bool
span_eq(proto_span s, const char *text)
{
	return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

/* Retry delay after `attempts` deliveries: base * 2^(attempts-1), capped at
 * max, then "equal jitter" (half fixed, half random) so retries of a burst
 * spread out instead of returning together. */
static int64_t
backoff_ms(brk_writer *w, const cfg_queue *s, uint32_t attempts)
{
	int64_t d = s->retry_base_ms;
	for (uint32_t i = 1; i < attempts && d < s->retry_max_ms; i++)
		d *= 2;
	if (d > s->retry_max_ms)
		d = s->retry_max_ms;
	if (d <= 1)
		return d;
	return d / 2 + (int64_t)(rand64(w) % (uint64_t)(d / 2 + 1));
}

static bool
reply_start(brk_req *r, size_t size, proto_buf *b)
{
	uint8_t *mem = r->reply_buf(r, size);
	if (mem == NULL) {
		r->reply_len = 0;
		return false;
	}
	proto_buf_init(b, mem, size);
	return true;
}

static void
reply_end(brk_req *r, proto_buf *b)
{
	if (proto_end(b) != PROTO_OK) {
		/* a sizing bug: say so rather than send a torn frame */
		log_error("REPLY-ENCODE", "reply to %s did not fit: %s", proto_type_name(r->f.h.type),
		          proto_strerror(b->err));
		char msg[] = "internal error: reply did not encode";
		if (reply_start(r, PROTO_HEADER_SIZE + 8 + sizeof(msg), b)) {
			proto_enc_error(b, r->f.h.request_id, PROTO_ERR_INTERNAL, 0, msg);
			proto_end(b);
		}
	}
	r->reply_len = b->len;
}

static void reply_error(brk_req *r, int code, uint32_t retry_after_ms, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
reply_error(brk_req *r, int code, uint32_t retry_after_ms, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	proto_buf b;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!reply_start(r, PROTO_HEADER_SIZE + 8 + strlen(msg), &b))
		return;
	proto_enc_error(&b, r->f.h.request_id, (uint16_t)code, retry_after_ms, msg);
	reply_end(r, &b);
}

static bool
is_write(const brk_req *r)
{
	if (r->exec != NULL)
		return false;
	switch (r->f.h.type) {
	case PROTO_T_ENQUEUE:
	case PROTO_T_ACK:
	case PROTO_T_NACK:
	case PROTO_T_REQUEUE:
	case PROTO_T_PURGE:
	case PROTO_T_REPORT: /* may create its queue */
		return true;
	default:
		return false;
	}
}

static bool
is_enqueue(const brk_req *r)
{
	return r->f.h.type == PROTO_T_ENQUEUE;
}

/* Splits list into the requests pick chooses and the others, each in
 * its order. */
static void
split_requests(brk_req *list, bool (*pick)(const brk_req *), brk_req **picked, brk_req **others)
{
	brk_req **pt = picked, **ot = others;
	for (brk_req *r = list, *next; r != NULL; r = next) {
		next = r->next;
		r->next = NULL;
		brk_req ***tail = pick(r) ? &pt : &ot;
		**tail = r;
		*tail = &r->next;
	}
	*pt = *ot = NULL;
}

static void
count_delta(brk_writer *w, brk_queue *q, int field, uint64_t n)
{
	if (n == 0)
		return;
	if (w->ndeltas == w->capdeltas) {
		size_t cap = w->capdeltas ? w->capdeltas * 2 : 64;
		delta *d = realloc(w->deltas, cap * sizeof(*d));
		if (d == NULL)
			return; /* a lost statistic, not a lost message */
		w->deltas = d;
		w->capdeltas = cap;
	}
	w->deltas[w->ndeltas++] = (delta){q, field, n};
}

static void
apply_deltas(brk_writer *w)
{
	for (size_t i = 0; i < w->ndeltas; i++) {
		brk_queue_totals *t = brk_queue_totals_of(w->deltas[i].q);
		uint64_t n = w->deltas[i].n;
		switch (w->deltas[i].field) {
		case T_ENQUEUED: t->enqueued += n; break;
		case T_ACKED: t->acked += n; break;
		case T_NACKED: t->nacked += n; break;
		case T_EXPIRED: t->expired += n; break;
		case T_DEAD: t->dead_lettered += n; break;
		}
	}
	w->ndeltas = 0;
}

/* ---- transactions ---- */

static int
txn_open(brk_writer *w)
{
	if (w->in_txn)
		return 0;
	int rc = brk_store_begin(w->store);
	if (rc == 0)
		w->in_txn = true;
	return rc;
}

static void
mark_dirty(brk_writer *w)
{
	w->txn_dirty = true;
}

static wqueue *
wq_of(brk_queue *q)
{
	void **slot = brk_queue_user(q);
	if (*slot == NULL)
		*slot = calloc(1, sizeof(wqueue)); /* NULL: reports are dropped */
	return *slot;
}

/* Finds a queue; with create, makes it (and its row) if missing. Returns 0
 * or a store code; *q is NULL when missing and not created, or when there
 * are already max_queues. */
static int
get_queue(brk_writer *w, const char *name, size_t len, bool create, brk_queue **out)
{
	brk_queue *q = brk_index_queue(w->index, name, len);
	*out = NULL;
	if (q == NULL) {
		if (!create || brk_index_nqueues(w->index) >= (size_t)w->cfg->broker.max_queues)
			return 0;
		char base[160];
		size_t blen = len;
		bool dead = len > 5 && memcmp(name + len - 5, ".dead", 5) == 0;
		if (dead)
			blen -= 5;
		snprintf(base, sizeof(base), "%.*s", (int)blen, name);
		cfg_queue settings = *cfg_queue_for(w->cfg, base);
		if (dead)
			settings.max_depth = 0; /* dead letters are never refused */
		q = brk_index_queue_add(w->index, name, len, 0, &settings);
		if (q == NULL)
			return BRK_STORE_E_OTHER;
	}
	if (brk_queue_db_id(q) == 0) {
		int64_t id;
		char nul[160];
		snprintf(nul, sizeof(nul), "%.*s", (int)len, name);
		int rc = txn_open(w);
		if (rc == 0)
			rc = brk_store_queue_add(w->store, nul, clk_wall_ms(), &id);
		if (rc != 0)
			return rc;
		mark_dirty(w);
		brk_queue_set_db_id(q, id);
		if (w->nnew == w->capnew) {
			size_t cap = w->capnew ? w->capnew * 2 : 8;
			brk_queue **v = realloc(w->new_queues, cap * sizeof(*v));
			if (v == NULL)
				return BRK_STORE_E_OTHER;
			w->new_queues = v;
			w->capnew = cap;
		}
		w->new_queues[w->nnew++] = q;
		log_info("QUEUE-CREATED", "queue '%s'", nul);
	}
	*out = q;
	return 0;
}

static brk_queue *
dead_queue_of(brk_writer *w, brk_queue *q, int *rc)
{
	char name[160];
	int n = snprintf(name, sizeof(name), "%s.dead", brk_queue_name(q));
	brk_queue *d;
	*rc = get_queue(w, name, (size_t)n, true, &d);
	if (*rc == 0 && d == NULL)
		*rc = BRK_STORE_E_OTHER; /* max_queues reached: cannot dead-letter */
	return d;
}

/* Sends m back to its queue after a failed delivery (expired or nacked),
 * or to the dead-letter queue once it has had max_attempts deliveries. */
static int
retry_or_bury(brk_writer *w, brk_msg *m, int64_t delay_ms, const char *err, size_t errlen,
              int64_t now)
{
	brk_queue *q = m->q;
	const cfg_queue *s = brk_queue_settings(q);
	int rc;
	if (!brk_queue_is_dead(q) && s->max_attempts > 0 && m->attempts >= (uint32_t)s->max_attempts) {
		brk_queue *d = dead_queue_of(w, q, &rc);
		if (rc != 0)
			return rc;
		if ((rc = brk_store_msg_update(w->store, m->id, brk_queue_db_id(d), now, m->attempts, err,
		                               errlen)) != 0)
			return rc;
		mark_dirty(w);
		count_delta(w, q, T_DEAD, 1);
		log_info("DEAD-LETTERED", "message %llu of '%s' after %u attempts: %.*s",
		         (unsigned long long)m->id, brk_queue_name(q), m->attempts, (int)errlen,
		         err ? err : "");
		brk_index_release(w->index, m, d, now, now);
		return 0;
	}
	if (delay_ms < 0)
		delay_ms = backoff_ms(w, s, m->attempts);
	if ((rc = brk_store_msg_update(w->store, m->id, brk_queue_db_id(q), now + delay_ms,
	                               m->attempts, err, errlen)) != 0)
		return rc;
	mark_dirty(w);
	brk_index_release(w->index, m, NULL, now + delay_ms, now);
	return 0;
}

/* Delayed messages that are due become ready; leases that are due expire. */
static int
run_timers(brk_writer *w, int64_t now)
{
	brk_msg *m;
	int rc;
	static const char expired[] = "lease expired";
	while ((m = brk_index_next_due(w->index)) != NULL && m->due_ms <= now) {
		if (m->state == BRK_MSG_DELAYED) {
			brk_index_release(w->index, m, NULL, now, now);
			continue;
		}
		if ((rc = txn_open(w)) != 0)
			return rc;
		count_delta(w, m->q, T_EXPIRED, 1);
		log_debug("LEASE-EXPIRED", "message %llu of '%s', attempt %u", (unsigned long long)m->id,
		          brk_queue_name(m->q), m->attempts);
		if ((rc = retry_or_bury(w, m, -1, expired, sizeof(expired) - 1, now)) != 0)
			return rc;
	}
	return 0;
}

/* ---- write requests (inside the transaction) ---- */

/* Each returns 0, or a store code that fails the whole transaction. */

/* A REQUEST_KEY enqueue: a retry key on the first message, none after. */
static bool
request_key_valid(const brk_req *r)
{
	proto_iter it = r->f.u.enqueue.items;
	proto_enq_item m;
	for (uint32_t i = 0; proto_enq_next(&it, &m); i++) {
		if (i == 0 && (m.key.len == 0 || !(m.flags & PROTO_ITEM_RETRY_KEY)))
			return false;
		if (i > 0 && m.key.len > 0)
			return false;
	}
	return true;
}

static int
do_enqueue(brk_writer *w, brk_req *r, int64_t now)
{
	proto_span qn = r->f.u.enqueue.queue;
	proto_iter it = r->f.u.enqueue.items;
	uint32_t n = proto_iter_left(&it);
	proto_enq_item m;
	brk_queue *q;
	proto_buf b;
	int rc;

	if (!cfg_queue_name_valid((const char *)qn.ptr, qn.len)) {
		reply_error(r, PROTO_ERR_BAD_REQUEST, 0,
		            "bad queue name '%.*s': use 1-128 of A-Z a-z 0-9 . _ -", (int)qn.len,
		            (const char *)qn.ptr);
		return 0;
	}
	for (uint32_t i = 0; proto_enq_next(&it, &m); i++) {
		if ((int64_t)m.payload.len > w->cfg->broker.max_message_bytes) {
			reply_error(r, PROTO_ERR_TOO_LARGE, 0,
			            "message %u is %zu bytes; the limit is %lld (broker.max_message_bytes)",
			            i + 1, m.payload.len, (long long)w->cfg->broker.max_message_bytes);
			return 0;
		}
	}
	if ((rc = get_queue(w, (const char *)qn.ptr, qn.len, true, &q)) != 0)
		return rc;
	if (q == NULL) {
		reply_error(r, PROTO_ERR_BAD_REQUEST, 0, "too many queues (broker.max_queues is %d)",
		            w->cfg->broker.max_queues);
		return 0;
	}
	int64_t max_depth = brk_queue_settings(q)->max_depth;
	uint64_t size = brk_queue_size(q);
	if (max_depth > 0 && size + n > (uint64_t)max_depth) {
		reply_error(r, PROTO_ERR_QUEUE_FULL, QUEUE_FULL_RETRY_MS,
		            "queue '%s' is full (%llu of max_depth %lld messages); retry later",
		            brk_queue_name(q), (unsigned long long)size, (long long)max_depth);
		return 0;
	}
	bool request_key = (r->f.h.flags & PROTO_F_REQUEST_KEY) != 0;
	if (request_key && !request_key_valid(r)) {
		reply_error(r, PROTO_ERR_BAD_REQUEST, 0,
		            "REQUEST_KEY: the first message needs a retry key and no other a key");
		return 0;
	}
	if ((rc = txn_open(w)) != 0)
		return rc;
	if (!reply_start(r, PROTO_HEADER_SIZE + 4 + 9 * (size_t)n, &b))
		return 0;
	proto_enc_id_list(&b, r->f.h.request_id);
	uint64_t added = 0;
	it = r->f.u.enqueue.items;
	if (request_key) {
		/* one key for the whole request: a resend gets the same ids, which
		 * were consecutive (no message of such a request has its own key) */
		proto_enq_item first;
		uint64_t existing;
		proto_enq_next(&it, &first);
		rc = brk_store_key_claim(w->store, BRK_KEYS_RETRY, brk_queue_db_id(q), first.key.ptr,
		                         first.key.len, w->next_id, now,
		                         w->cfg->broker.retry_key_window_ms, &existing);
		if (rc == BRK_STORE_DUP) {
			for (uint32_t i = 0; i < n; i++)
				proto_enc_idflag(&b, existing + i, true);
			reply_end(r, &b);
			return 0;
		}
		if (rc != 0)
			return rc;
		it = r->f.u.enqueue.items; /* the first message itself is stored below */
	}
	while (proto_enq_next(&it, &m)) {
		uint64_t id = w->next_id;
		if (m.key.len > 0 && !request_key) {
			bool retry_key = (m.flags & PROTO_ITEM_RETRY_KEY) != 0;
			uint64_t existing;
			rc = brk_store_key_claim(w->store, retry_key ? BRK_KEYS_RETRY : BRK_KEYS_USER,
			                         brk_queue_db_id(q), m.key.ptr, m.key.len, id, now,
			                         retry_key ? w->cfg->broker.retry_key_window_ms
			                                   : w->cfg->broker.idempotency_window_ms,
			                         &existing);
			if (rc == BRK_STORE_DUP) {
				proto_enc_idflag(&b, existing, true);
				continue;
			}
			if (rc != 0)
				return rc;
		}
		brk_row row = {
			.id = id,
			.queue_id = brk_queue_db_id(q),
			.priority = m.priority,
			.enqueued_ms = now,
			.visible_ms = now + m.delay_ms,
			.attempts = 0,
			.payload = m.payload.ptr,
			.len = m.payload.len,
		};
		if ((rc = brk_store_msg_put(w->store, &row)) != 0)
			return rc;
		w->next_id++;
		brk_msg bm = {
			.id = id,
			.due_ms = row.visible_ms,
			.enqueued_ms = now,
			.priority = m.priority,
			.len = (uint32_t)m.payload.len,
		};
		if (brk_index_add(w->index, q, &bm, now) == NULL)
			return BRK_STORE_E_OTHER; /* out of memory: roll back */
		proto_enc_idflag(&b, id, false);
		added++;
	}
	mark_dirty(w);
	count_delta(w, q, T_ENQUEUED, added);
	reply_end(r, &b);
	return 0;
}

/* Is m the delivery this token names? Sets *code when it is not. */
static bool
lease_matches(const brk_msg *m, uint64_t token, uint16_t *code)
{
	if (m == NULL || token == 0) {
		*code = PROTO_ERR_NOT_LEASED;
		return false;
	}
	if (m->token != token) {
		*code = m->token != 0 ? PROTO_ERR_LEASE_EXPIRED : PROTO_ERR_NOT_LEASED;
		return false;
	}
	return true;
}

/* Keeps a worker's or the supervisor's report (fields of an ACK or a
 * REPORT) for STATS and /metrics. */
static void
take_report(brk_writer *w, brk_queue *q, proto_iter it)
{
	wqueue *wq;
	proto_field f;
	wreport rep = {.pid = -1, .commit_p99_us = -1, .batches = -1, .failures = -1, .breaker = -1};
	bool worker = false, supervisor = false;
	(void)w;
	if (proto_iter_left(&it) == 0 || (wq = wq_of(q)) == NULL)
		return;
	while (proto_field_next(&it, &f)) {
		if (span_eq(f.key, "desired_workers")) {
			wq->desired = f.value;
			supervisor = true;
		} else if (span_eq(f.key, "current_workers")) {
			wq->current = f.value;
			supervisor = true;
		} else if (span_eq(f.key, "restarts")) {
			wq->restarts = f.value;
		} else if (span_eq(f.key, "guard_holds")) {
			wq->guard_holds = f.value;
		} else if (span_eq(f.key, "worker")) {
			worker = true;
			rep.pid = f.value;
		} else if (span_eq(f.key, "sink_commit_p99_us"))
			rep.commit_p99_us = f.value;
		else if (span_eq(f.key, "sink_batches"))
			rep.batches = f.value;
		else if (span_eq(f.key, "sink_failures"))
			rep.failures = f.value;
		else if (span_eq(f.key, "sink_breaker"))
			rep.breaker = f.value;
	}
	if (supervisor)
		wq->sup_at_ms = clk_mono_ms();
	if (!worker)
		return;
	rep.at_ms = clk_mono_ms();
	/* the worker's slot, else the oldest */
	int slot = 0;
	for (int i = 0; i < REPORT_SLOTS; i++) {
		if (wq->workers[i].pid == rep.pid && wq->workers[i].at_ms != 0) {
			slot = i;
			break;
		}
		if (wq->workers[i].at_ms < wq->workers[slot].at_ms)
			slot = i;
	}
	wq->workers[slot] = rep;
}

/* ACK and NACK: one result per id. */
static int
do_ack_nack(brk_writer *w, brk_req *r, int64_t now)
{
	bool nack = r->f.h.type == PROTO_T_NACK;
	proto_iter it = r->f.u.ids.ids;
	uint32_t n = proto_iter_left(&it);
	uint64_t token = r->f.u.ids.token;
	proto_buf b;
	int rc;

	if (!reply_start(r, PROTO_HEADER_SIZE + 4 + 2 * (size_t)n, &b))
		return 0;
	proto_enc_results(&b, r->f.h.request_id);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id;
		proto_nack_item ni = {0};
		if (nack) {
			proto_nack_next(&it, &ni);
			id = ni.id;
		} else {
			proto_id_next(&it, &id);
		}
		brk_msg *m = brk_index_find(w->index, id);
		uint16_t code = PROTO_ERR_NONE;
		if (!lease_matches(m, token, &code)) {
			proto_enc_code(&b, code);
			continue;
		}
		if ((rc = txn_open(w)) != 0)
			return rc;
		brk_queue *q = m->q;
		if (nack) {
			if ((r->f.h.flags & PROTO_F_NO_ATTEMPT) && m->attempts > 0)
				m->attempts--; /* handed back untried: not an attempt */
			int64_t delay = r->f.u.ids.arg_ms == PROTO_DELAY_BACKOFF ? -1 : (int64_t)r->f.u.ids.arg_ms;
			rc = retry_or_bury(w, m, delay, (const char *)ni.error.ptr, ni.error.len, now);
			if (rc != 0)
				return rc;
			count_delta(w, q, T_NACKED, 1);
		} else {
			rc = brk_queue_settings(q)->archive ? brk_store_msg_archive(w->store, id, now)
			                                    : brk_store_msg_delete(w->store, id);
			if (rc != 0)
				return rc;
			mark_dirty(w);
			hist_record(w->ack_latency_ms, (uint64_t)(now > m->enqueued_ms ? now - m->enqueued_ms : 0));
			count_delta(w, q, T_ACKED, 1);
			brk_index_remove(w->index, m);
		}
		proto_enc_code(&b, PROTO_ERR_NONE);
	}
	if (!nack && proto_iter_left(&r->f.u.ids.report) > 0) {
		proto_span qn = r->f.u.ids.queue;
		brk_queue *q = brk_index_queue(w->index, (const char *)qn.ptr, qn.len);
		if (q != NULL)
			take_report(w, q, r->f.u.ids.report);
	}
	reply_end(r, &b);
	return 0;
}

/* Finds the queue a queue operation names; replies UNKNOWN_QUEUE if none. */
static brk_queue *
named_queue(brk_writer *w, brk_req *r)
{
	proto_span qn = r->f.u.queue_op.queue;
	brk_queue *q = brk_index_queue(w->index, (const char *)qn.ptr, qn.len);
	if (q == NULL)
		reply_error(r, PROTO_ERR_UNKNOWN_QUEUE, 0, "no queue named '%.*s'", (int)qn.len,
		            (const char *)qn.ptr);
	return q;
}

static void
reply_count(brk_req *r, uint64_t n)
{
	proto_buf b;
	if (!reply_start(r, PROTO_HEADER_SIZE + 8, &b))
		return;
	proto_enc_count(&b, r->f.h.request_id, n);
	reply_end(r, &b);
}

static int
do_requeue(brk_writer *w, brk_req *r, int64_t now)
{
	brk_queue *q = named_queue(w, r), *d;
	uint32_t max = r->f.u.queue_op.max_count;
	uint64_t moved = 0;
	brk_msg *m;
	int rc;
	if (q == NULL)
		return 0;
	char name[160];
	int n = snprintf(name, sizeof(name), "%s.dead", brk_queue_name(q));
	d = brk_index_queue(w->index, name, (size_t)n);
	while (d != NULL && (max == 0 || moved < max) && (m = brk_queue_top(d)) != NULL) {
		if ((rc = txn_open(w)) != 0 ||
		    (rc = brk_store_msg_update(w->store, m->id, brk_queue_db_id(q), now, 0, NULL, 0)) != 0)
			return rc;
		mark_dirty(w);
		m->attempts = 0;
		m->token = 0;
		brk_index_release(w->index, m, q, now, now);
		moved++;
	}
	if (moved > 0)
		log_info("REQUEUED", "%llu messages from '%s' back to '%s'", (unsigned long long)moved,
		         name, brk_queue_name(q));
	reply_count(r, moved);
	return 0;
}

static int
do_purge(brk_writer *w, brk_req *r, int64_t now)
{
	brk_queue *q = named_queue(w, r);
	uint64_t purged = 0;
	brk_msg *m;
	int rc;
	(void)now;
	if (q == NULL)
		return 0;
	/* ready ones from the heap, then delayed ones: release makes them ready */
	for (;;) {
		while ((m = brk_queue_top(q)) != NULL) {
			if ((rc = txn_open(w)) != 0 || (rc = brk_store_msg_delete(w->store, m->id)) != 0)
				return rc;
			mark_dirty(w);
			brk_index_remove(w->index, m);
			purged++;
		}
		if (brk_queue_count(q).delayed == 0)
			break;
		brk_msg *batch[256];
		size_t k = brk_index_delayed_of(w->index, q, batch, 256);
		for (size_t i = 0; i < k; i++)
			brk_index_release(w->index, batch[i], NULL, 0, 0);
	}
	log_info("PURGED", "%llu messages of '%s'", (unsigned long long)purged, brk_queue_name(q));
	reply_count(r, purged);
	return 0;
}

static int do_report(brk_writer *w, brk_req *r);

static int
run_write(brk_writer *w, brk_req *r, int64_t now)
{
	switch (r->f.h.type) {
	case PROTO_T_ENQUEUE: return do_enqueue(w, r, now);
	case PROTO_T_ACK:
	case PROTO_T_NACK: return do_ack_nack(w, r, now);
	case PROTO_T_REQUEUE: return do_requeue(w, r, now);
	case PROTO_T_PURGE: return do_purge(w, r, now);
	case PROTO_T_REPORT: return do_report(w, r);
	default: return 0;
	}
}

/* ---- read requests (after the commit) ---- */

static uint64_t
new_token(brk_writer *w)
{
	w->token_seq++;
	return (w->boot << 40) | (w->token_seq & ((1ull << 40) - 1));
}

static bool
grow_scratch(brk_writer *w, size_t n)
{
	if (n <= w->capscratch)
		return true;
	brk_msg **v = realloc(w->scratch, n * sizeof(*v));
	if (v == NULL)
		return false;
	w->scratch = v;
	w->capscratch = n;
	return true;
}

/* Encodes a MESSAGES reply of msgs, reading each payload. */
static int
reply_messages(brk_writer *w, brk_req *r, uint64_t token, brk_msg **msgs, size_t n)
{
	size_t size = PROTO_MESSAGES_BASE;
	proto_buf b;
	for (size_t i = 0; i < n; i++)
		size += proto_msg_size(msgs[i]->len);
	if (!reply_start(r, size, &b))
		return 0;
	proto_enc_messages(&b, r->f.h.request_id, token);
	for (size_t i = 0; i < n; i++) {
		proto_msg pm = {
			.id = msgs[i]->id,
			.attempt = msgs[i]->attempts,
			.priority = msgs[i]->priority,
			.enqueued_ms = msgs[i]->enqueued_ms,
		};
		const void *p;
		size_t len;
		/* one read transaction for every payload of this loop, opened only
		 * when a payload is read */
		if (!w->in_txn && !w->reading)
			w->reading = brk_store_begin_read(w->store) == 0;
		int rc = brk_store_msg_payload(w->store, msgs[i]->id, &p, &len);
		if (rc != 0)
			return rc;
		pm.payload.ptr = p;
		pm.payload.len = len;
		proto_enc_msg(&b, &pm);
	}
	reply_end(r, &b);
	return 0;
}

/* Tries to serve a LEASE now; false if the queue has nothing ready. */
static bool
serve_lease(brk_writer *w, brk_req *r, int64_t now)
{
	proto_span qn = r->f.u.lease.queue;
	brk_queue *q = brk_index_queue(w->index, (const char *)qn.ptr, qn.len);
	if (q == NULL || brk_queue_top(q) == NULL)
		return false;
	uint32_t max = r->f.u.lease.max_count;
	int64_t vis = r->f.u.lease.visibility_ms ? (int64_t)r->f.u.lease.visibility_ms
	                                         : brk_queue_settings(q)->visibility_ms;
	if (vis > MAX_VISIBILITY_MS)
		vis = MAX_VISIBILITY_MS;
	uint64_t token = new_token(w);
	size_t n = 0, size = PROTO_MESSAGES_BASE;
	brk_msg *top;
	if (!grow_scratch(w, max < 4096 ? max : 4096))
		return false;
	while (n < max && n < w->capscratch && (top = brk_queue_top(q)) != NULL) {
		size_t more = proto_msg_size(top->len);
		if (n > 0 && size + more > w->frame_limit)
			break; /* the reply must fit the frame limit */
		size += more;
		w->scratch[n++] = brk_index_lease_next(w->index, q, token, now + vis);
		if (w->scratch[n - 1] == NULL) {
			n--;
			break;
		}
	}
	if (n == 0)
		return false;
	int rc = reply_messages(w, r, token, w->scratch, n);
	if (rc != 0) {
		/* cannot read the payloads: give the messages back, unleased */
		for (size_t i = 0; i < n; i++) {
			w->scratch[i]->attempts--;
			brk_index_release(w->index, w->scratch[i], NULL, now, now);
		}
		reply_error(r, PROTO_ERR_STORAGE, 0, "cannot read messages: %s", brk_store_errmsg(w->store));
	}
	return true;
}

static void
reply_empty_lease(brk_req *r)
{
	proto_buf b;
	if (!reply_start(r, PROTO_MESSAGES_BASE, &b))
		return;
	proto_enc_messages(&b, r->f.h.request_id, 0);
	reply_end(r, &b);
}

static void
do_touch(brk_writer *w, brk_req *r, int64_t now)
{
	proto_iter it = r->f.u.ids.ids;
	uint32_t n = proto_iter_left(&it);
	int64_t vis = r->f.u.ids.arg_ms;
	proto_buf b;
	uint64_t id;
	if (vis > MAX_VISIBILITY_MS)
		vis = MAX_VISIBILITY_MS;
	if (!reply_start(r, PROTO_HEADER_SIZE + 4 + 2 * (size_t)n, &b))
		return;
	proto_enc_results(&b, r->f.h.request_id);
	while (proto_id_next(&it, &id)) {
		brk_msg *m = brk_index_find(w->index, id);
		uint16_t code = PROTO_ERR_NONE;
		if (lease_matches(m, r->f.u.ids.token, &code)) {
			if (m->state == BRK_MSG_LEASED)
				brk_index_extend(w->index, m, now + (vis ? vis : brk_queue_settings(m->q)->visibility_ms));
			else
				code = PROTO_ERR_LEASE_EXPIRED;
		}
		proto_enc_code(&b, code);
	}
	reply_end(r, &b);
}

static void
do_peek(brk_writer *w, brk_req *r)
{
	brk_queue *q = named_queue(w, r);
	if (q == NULL)
		return;
	uint32_t max = r->f.u.queue_op.max_count;
	if (max == 0 || max > PEEK_MAX)
		max = max == 0 ? 10 : PEEK_MAX;
	if (!grow_scratch(w, max)) {
		reply_error(r, PROTO_ERR_INTERNAL, 0, "out of memory");
		return;
	}
	size_t n = brk_queue_peek(q, w->scratch, max);
	size_t size = PROTO_MESSAGES_BASE;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && size + proto_msg_size(w->scratch[i]->len) > w->frame_limit) {
			n = i;
			break;
		}
		size += proto_msg_size(w->scratch[i]->len);
	}
	if (reply_messages(w, r, 0, w->scratch, n) != 0)
		reply_error(r, PROTO_ERR_STORAGE, 0, "cannot read messages: %s", brk_store_errmsg(w->store));
}

/* A report for a queue nobody has used yet creates it, so the supervisor's
 * figures show before the first message. */
static int
do_report(brk_writer *w, brk_req *r)
{
	proto_span qn = r->f.u.report.queue;
	brk_queue *q = NULL;
	proto_buf b;
	int rc;
	if (!cfg_queue_name_valid((const char *)qn.ptr, qn.len)) {
		reply_error(r, PROTO_ERR_BAD_REQUEST, 0, "bad queue name '%.*s'", (int)qn.len,
		            (const char *)qn.ptr);
		return 0;
	}
	if ((rc = get_queue(w, (const char *)qn.ptr, qn.len, true, &q)) != 0)
		return rc;
	if (q != NULL)
		take_report(w, q, r->f.u.report.fields);
	if (!reply_start(r, PROTO_HEADER_SIZE, &b))
		return 0;
	proto_enc_ok(&b, r->f.h.request_id);
	reply_end(r, &b);
	return 0;
}

/* ---- the view, shared by STATS and exec requests ---- */

size_t
brk_view_nqueues(const brk_view *v)
{
	return brk_index_nqueues(v->w->index);
}

long
brk_view_find(const brk_view *v, const char *name, size_t len)
{
	brk_queue *q = brk_index_queue(v->w->index, name, len);
	if (q == NULL)
		return -1;
	for (size_t i = 0; i < brk_index_nqueues(v->w->index); i++)
		if (brk_index_queue_at(v->w->index, i) == q)
			return (long)i;
	return -1;
}

void
brk_view_queue(const brk_view *v, size_t i, brk_queue_view *out)
{
	brk_queue *q = brk_index_queue_at(v->w->index, i);
	brk_queue_counts c = brk_queue_count(q);
	const brk_queue_totals *t = brk_queue_totals_of(q);
	brk_msg *top = brk_queue_top(q);
	char dname[160];
	int n = snprintf(dname, sizeof(dname), "%s.dead", brk_queue_name(q));
	brk_queue *d = brk_queue_is_dead(q) ? NULL : brk_index_queue(v->w->index, dname, (size_t)n);
	int64_t mono = clk_mono_ms();

	memset(out, 0, sizeof(*out));
	out->name = brk_queue_name(q);
	out->depth = c.ready;
	out->delayed = c.delayed;
	out->in_flight = c.leased;
	out->dead = d ? brk_queue_size(d) : 0;
	out->backlog = c.ready + c.leased;
	out->oldest_ready_age_ms = top && v->now_ms > top->enqueued_ms ? v->now_ms - top->enqueued_ms : 0;
	out->max_depth = brk_queue_settings(q)->max_depth;
	out->enqueued_total = t->enqueued;
	out->acked_total = t->acked;
	out->nacked_total = t->nacked;
	out->expired_total = t->expired;
	out->dead_lettered_total = t->dead_lettered;
	out->is_dead = brk_queue_is_dead(q);
	out->sink_commit_p99_us = out->sink_batches = out->sink_failures = -1;
	out->sink_breaker_open = out->sink_workers = -1;
	out->desired_workers = out->current_workers = out->worker_restarts = out->guard_holds = -1;
	wqueue *wq = *brk_queue_user(q);
	if (wq == NULL)
		return;
	for (int k = 0; k < REPORT_SLOTS; k++) {
		const wreport *rp = &wq->workers[k];
		if (rp->at_ms == 0 || mono - rp->at_ms > REPORT_FRESH_MS)
			continue;
		if (out->sink_workers < 0)
			out->sink_workers = out->sink_commit_p99_us = out->sink_batches = out->sink_failures =
				out->sink_breaker_open = 0;
		out->sink_workers++;
		if (rp->commit_p99_us > out->sink_commit_p99_us)
			out->sink_commit_p99_us = rp->commit_p99_us;
		if (rp->batches > 0)
			out->sink_batches += rp->batches;
		if (rp->failures > 0)
			out->sink_failures += rp->failures;
		if (rp->breaker > 0)
			out->sink_breaker_open++;
	}
	if (wq->sup_at_ms != 0) {
		out->desired_workers = wq->desired;
		out->current_workers = wq->current;
		out->worker_restarts = wq->restarts;
		out->guard_holds = wq->guard_holds;
	}
}

void
brk_view_broker(const brk_view *v, brk_broker_view *b)
{
	brk_writer *w = v->w;
	int64_t mono = clk_mono_ms();
	if (mono - w->db_size_at_ms > 5000) { /* PRAGMAs are cheap, but not free */
		brk_store_size(w->store, &w->db_bytes, &w->db_free);
		w->db_size_at_ms = mono;
	}
	memset(b, 0, sizeof(*b));
	b->uptime_ms = mono - w->start_mono_ms;
	b->commits = w->commits;
	b->fsyncs = w->fsyncs;
	b->bad_frames = w->counters->bad_frames;
	b->http_requests = w->counters->http_requests;
	b->connections = w->counters->connections;
	b->db_bytes = w->db_bytes;
	b->db_free_bytes = w->db_free;
	b->messages = brk_index_count(w->index);
	b->commit_us = w->commit_us;
	b->batch_requests = w->batch_requests;
	b->ack_latency_ms = w->ack_latency_ms;
	b->writable = w->writable;
}

void
brk_queue_view_each(const brk_queue_view *q, void (*fn)(void *, const char *, int64_t), void *arg)
{
	const struct {
		const char *key;
		int64_t value;
	} f[] = {
		{"depth", (int64_t)q->depth},
		{"delayed", (int64_t)q->delayed},
		{"in_flight", (int64_t)q->in_flight},
		{"dead", (int64_t)q->dead},
		{"backlog", (int64_t)q->backlog},
		{"oldest_ready_age_ms", q->oldest_ready_age_ms},
		{"max_depth", q->max_depth},
		{"enqueued_total", (int64_t)q->enqueued_total},
		{"acked_total", (int64_t)q->acked_total},
		{"nacked_total", (int64_t)q->nacked_total},
		{"expired_total", (int64_t)q->expired_total},
		{"dead_lettered_total", (int64_t)q->dead_lettered_total},
		{"sink_workers", q->sink_workers},
		{"sink_commit_p99_us", q->sink_commit_p99_us},
		{"sink_batches", q->sink_batches},
		{"sink_failures", q->sink_failures},
		{"sink_breaker_open", q->sink_breaker_open},
		{"workers_desired", q->desired_workers},
		{"workers_current", q->current_workers},
		{"workers_restarts", q->worker_restarts},
		{"guard_holds", q->guard_holds},
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (f[i].value >= 0) /* -1: nothing reported */
			fn(arg, f[i].key, f[i].value);
}

typedef struct field_sink {
	proto_buf *b;  /* NULL: only count the size */
	size_t size;
} field_sink;

static void
stats_field(void *arg, const char *key, int64_t value)
{
	field_sink *fs = arg;
	fs->size += 1 + strlen(key) + 8;
	if (fs->b != NULL)
		proto_enc_field(fs->b, key, value);
}

/* Encodes (b not NULL) or sizes the STATS fields of one queue. */
static size_t
stats_fields(const brk_queue_view *q, proto_buf *b)
{
	field_sink fs = {b, 0};
	brk_queue_view_each(q, stats_field, &fs);
	return fs.size;
}

static void
do_stats(brk_writer *w, brk_req *r, int64_t now)
{
	brk_view v = {w, now};
	brk_broker_view bv;
	brk_queue_view qv;
	proto_span qn = r->f.u.queue_op.queue;
	size_t first = 0, last = brk_view_nqueues(&v);
	proto_buf b;

	if (qn.len > 0) {
		long i = brk_view_find(&v, (const char *)qn.ptr, qn.len);
		first = i < 0 ? 0 : (size_t)i;
		last = i < 0 ? 0 : (size_t)i + 1;
	}
	brk_view_broker(&v, &bv);
	const struct {
		const char *key;
		int64_t value;
	} bf[] = {
		{"uptime_ms", bv.uptime_ms},
		{"connections", bv.connections},
		{"bad_frames", (int64_t)bv.bad_frames},
		{"commits_total", (int64_t)bv.commits},
		{"fsyncs_total", (int64_t)bv.fsyncs},
		{"messages", (int64_t)bv.messages},
	};
	size_t nbf = sizeof(bf) / sizeof(bf[0]);
	size_t size = PROTO_HEADER_SIZE + 8;
	for (size_t i = 0; i < nbf; i++)
		size += 1 + strlen(bf[i].key) + 8;
	for (size_t i = first; i < last; i++) {
		brk_view_queue(&v, i, &qv);
		size += 1 + strlen(qv.name) + 4 + stats_fields(&qv, NULL);
	}
	if (!reply_start(r, size, &b))
		return;
	proto_enc_stats(&b, r->f.h.request_id);
	for (size_t i = 0; i < nbf; i++)
		proto_enc_field(&b, bf[i].key, bf[i].value);
	for (size_t i = first; i < last; i++) {
		brk_view_queue(&v, i, &qv);
		proto_enc_stats_queue(&b, qv.name, strlen(qv.name));
		stats_fields(&qv, &b);
	}
	reply_end(r, &b);
}

/* ---- waiters ---- */

static void
park(brk_writer *w, brk_req *r)
{
	r->next = NULL;
	r->prev = w->waiters_tail;
	if (w->waiters_tail)
		w->waiters_tail->next = r;
	else
		w->waiters_head = r;
	w->waiters_tail = r;
}

static void
unpark(brk_writer *w, brk_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		w->waiters_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		w->waiters_tail = r->prev;
	r->next = r->prev = NULL;
}

/* ---- loading and rebuilding the index ---- */

typedef struct loader {
	brk_writer *w;
	brk_queue *last;
	int64_t now;
	uint64_t max_id;
	uint64_t orphans;
} loader;

static int
load_queue(void *arg, int64_t id, const char *name)
{
	loader *l = arg;
	brk_writer *w = l->w;
	size_t len = strlen(name);
	brk_queue *q = brk_index_queue(w->index, name, len);
	if (q != NULL) { /* a rebuild: queues survive it */
		brk_queue_set_db_id(q, id);
		return 0;
	}
	char base[160];
	bool dead = len > 5 && strcmp(name + len - 5, ".dead") == 0;
	snprintf(base, sizeof(base), "%.*s", (int)(dead ? len - 5 : len), name);
	cfg_queue s = *cfg_queue_for(w->cfg, base);
	if (dead)
		s.max_depth = 0;
	return brk_index_queue_add(w->index, name, len, id, &s) ? 0 : BRK_STORE_E_OTHER;
}

static int
load_msg(void *arg, const brk_row *row)
{
	loader *l = arg;
	if (l->last == NULL || brk_queue_db_id(l->last) != row->queue_id)
		l->last = brk_index_queue_by_db_id(l->w->index, row->queue_id);
	if (row->id > l->max_id)
		l->max_id = row->id;
	if (l->last == NULL) {
		l->orphans++;
		return 0;
	}
	brk_msg m = {
		.id = row->id,
		.due_ms = row->visible_ms,
		.enqueued_ms = row->enqueued_ms,
		.priority = row->priority,
		.attempts = row->attempts,
		.len = (uint32_t)row->len,
	};
	return brk_index_add(l->w->index, l->last, &m, l->now) ? 0 : BRK_STORE_E_OTHER;
}

static int
load_all(brk_writer *w, int64_t now)
{
	loader l = {.w = w, .now = now};
	int rc = brk_store_begin_read(w->store);
	if (rc == 0)
		rc = brk_store_queue_each(w->store, load_queue, &l);
	if (rc == 0)
		rc = brk_store_msg_each(w->store, load_msg, &l);
	brk_store_end_read(w->store);
	if (l.orphans > 0)
		log_warn("ORPHAN-MESSAGES", "%llu stored messages name no known queue; ignored",
		         (unsigned long long)l.orphans);
	if (l.max_id + 1 > w->next_id)
		w->next_id = l.max_id + 1;
	return rc;
}

/* After a failed COMMIT: the database is the truth. Drop every message from
 * the index and load them again, then re-apply the leases that were live
 * (their holders will still ack them). */
static void
rebuild(brk_writer *w, int64_t now)
{
	typedef struct { uint64_t id, token; int64_t due; uint32_t attempts; } live;
	live *leases = NULL;
	size_t nl = 0, cap = 0;
	brk_msg *m;

	/* the timer heap holds every leased message: collect them, then empty it */
	while ((m = brk_index_next_due(w->index)) != NULL) {
		if (m->state == BRK_MSG_LEASED) {
			if (nl == cap) {
				cap = cap ? cap * 2 : 256;
				live *v = realloc(leases, cap * sizeof(*v));
				if (v == NULL)
					break; /* those leases simply expire early */
				leases = v;
			}
			leases[nl++] = (live){m->id, m->token, m->due_ms, m->attempts};
		}
		brk_index_remove(w->index, m);
	}
	for (size_t i = 0; i < brk_index_nqueues(w->index); i++) {
		brk_queue *q = brk_index_queue_at(w->index, i);
		while ((m = brk_queue_top(q)) != NULL)
			brk_index_remove(w->index, m);
	}
	for (size_t i = 0; i < w->nnew; i++)
		brk_queue_set_db_id(w->new_queues[i], 0); /* its row was rolled back */
	if (load_all(w, now) != 0)
		log_error("REBUILD-FAILED", "cannot reload the index: %s", brk_store_errmsg(w->store));
	for (size_t i = 0; i < nl; i++) {
		m = brk_index_find(w->index, leases[i].id);
		if (m != NULL)
			brk_index_restore_lease(w->index, m, leases[i].token, leases[i].due,
			                        leases[i].attempts);
	}
	free(leases);
}

/* ---- the loop ---- */

static void
prune_keys(brk_writer *w, int64_t now)
{
	int deleted, rc;
	if (now < w->next_prune_ms)
		return;
	w->next_prune_ms = now + PRUNE_EVERY_MS;
	if ((rc = txn_open(w)) != 0)
		return;
	rc = brk_store_key_prune(w->store, BRK_KEYS_RETRY, now - w->cfg->broker.retry_key_window_ms,
	                         PRUNE_ROWS, &deleted);
	if (rc == 0 && deleted > 0)
		mark_dirty(w);
	if (deleted == PRUNE_ROWS)
		w->next_prune_ms = now; /* more are due */
	rc = brk_store_key_prune(w->store, BRK_KEYS_USER, now - w->cfg->broker.idempotency_window_ms,
	                         PRUNE_ROWS, &deleted);
	if (rc == 0 && deleted > 0)
		mark_dirty(w);
	if (deleted == PRUNE_ROWS)
		w->next_prune_ms = now;
}

/* Queues r's completion; flush_completions hands the queue over. */
static void
complete(brk_writer *w, brk_req *r)
{
	r->next = NULL;
	if (w->out_tail)
		w->out_tail->next = r;
	else
		w->out_head = r;
	w->out_tail = r;
}

static void
flush_completions(brk_writer *w)
{
	if (w->out_head == NULL)
		return;
	pthread_mutex_lock(&w->done_mu);
	if (w->done_tail)
		w->done_tail->next = w->out_head;
	else
		w->done_head = w->out_head;
	w->done_tail = w->out_tail;
	if (w->done_sleeping)
		pthread_cond_signal(&w->done_cv);
	pthread_mutex_unlock(&w->done_mu);
	w->out_head = w->out_tail = NULL;
}

static void *
completer_main(void *arg)
{
	brk_writer *w = arg;
	pthread_mutex_lock(&w->done_mu);
	for (;;) {
		while (w->done_head == NULL && !w->done_stop) {
			w->done_sleeping = true;
			pthread_cond_wait(&w->done_cv, &w->done_mu);
			w->done_sleeping = false;
		}
		brk_req *list = w->done_head;
		w->done_head = w->done_tail = NULL;
		if (list == NULL && w->done_stop)
			break;
		pthread_mutex_unlock(&w->done_mu);
		for (brk_req *r = list, *next; r != NULL; r = next) {
			next = r->next;
			r->done(r); /* may reuse r at once */
		}
		pthread_mutex_lock(&w->done_mu);
	}
	pthread_mutex_unlock(&w->done_mu);
	return NULL;
}

/* Ids an ACK or NACK touches. */
static size_t
request_weight(const brk_req *r)
{
	return proto_iter_left(&r->f.u.ids.ids);
}

/* Puts a list of requests back at the head of the pending list. */
static void
requeue_front(brk_writer *w, brk_req *list)
{
	brk_req *tail = list;
	while (tail->next != NULL)
		tail = tail->next;
	pthread_mutex_lock(&w->mu);
	tail->next = w->pending_head;
	w->pending_head = list;
	if (w->pending_tail == NULL)
		w->pending_tail = tail;
	pthread_mutex_unlock(&w->mu);
}

/* The writes of batch in one transaction, as many as the budget allows;
 * the rest go back to the pending list. Answers each request; on failure
 * every one run gets STORAGE and the index is rebuilt. Returns the
 * store's error code, 0 when the transaction committed. */
static int
write_txn(brk_writer *w, brk_req *batch, int64_t now)
{
	int rc = 0;
	size_t nwrites = 0;
	w->txn_dirty = false;
	w->nnew = 0;

	rc = run_timers(w, now);
	/* Enqueues and the other small writes go first; ACKs and NACKs, which
	 * can carry hundreds of ids each, fill the rest of a budget per
	 * transaction: a flood of acks from many consumers cannot make every
	 * producer wait behind a commit of tens of thousands of deletes. What
	 * is over the budget waits, first in line, for the next commit. */
	size_t work = 0;
	brk_req *small = NULL, **small_tail = &small, *acks = NULL, **acks_tail = &acks;
	for (brk_req *r = batch, *next; r != NULL; r = next) {
		next = r->next;
		r->next = NULL;
		if (r->f.h.type == PROTO_T_ACK || r->f.h.type == PROTO_T_NACK) {
			*acks_tail = r;
			acks_tail = &r->next;
		} else {
			*small_tail = r;
			small_tail = &r->next;
		}
	}
	*small_tail = acks; /* the small ones, then the acks */
	brk_req *done_list = NULL, **done_tail = &done_list, *over = NULL;
	for (brk_req *r = small, *next; r != NULL; r = next) {
		next = r->next;
		bool ids = r->f.h.type == PROTO_T_ACK || r->f.h.type == PROTO_T_NACK;
		if (rc == 0 && ids && work >= TXN_BUDGET) {
			over = r; /* this one and every ack after it */
			break;
		}
		if (rc == 0) {
			nwrites++;
			if (ids) /* only acks count: they must always get their share */
				work += request_weight(r);
			rc = run_write(w, r, now);
		}
		*done_tail = r; /* run, or to be answered STORAGE below */
		done_tail = &r->next;
	}
	*done_tail = NULL;
	batch = done_list;
	if (over != NULL)
		requeue_front(w, over);
	if (rc == 0)
		prune_keys(w, now);
	/* ids are reserved ahead in blocks, so most commits do not write the
	 * meta row: after a crash the next broker starts past the reservation
	 * (ids never come back; a gap is fine) */
	uint64_t reserve = 0;
	if (rc == 0 && w->next_id > w->stored_next_id) {
		reserve = w->next_id + ID_RESERVE;
		if ((rc = txn_open(w)) == 0)
			rc = brk_store_meta_set(w->store, "next_id", (int64_t)reserve);
	}
	if (w->in_txn) {
		int64_t t0 = clk_mono_ns();
		if (rc == 0)
			rc = brk_store_commit(w->store);
		else
			brk_store_rollback(w->store);
		w->in_txn = false;
		if (rc == 0) {
			if (w->txn_dirty) {
				w->commits++;
				hist_record(w->commit_us, (uint64_t)((clk_mono_ns() - t0) / 1000));
				if (w->cfg->broker.durability == CFG_DURABILITY_FULL)
					w->fsyncs++;
			}
		}
	}
	if (nwrites > 0)
		hist_record(w->batch_requests, nwrites);
	if (rc == 0) {
		if (reserve != 0)
			w->stored_next_id = reserve;
		apply_deltas(w);
	} else {
		w->ndeltas = 0;
		if (w->writable)
			log_error("STORAGE-FAILED", "commit failed, nothing of this batch was stored: %s",
			          brk_store_errmsg(w->store));
		w->writable = false;
		rebuild(w, now);
		for (brk_req *r = batch; r != NULL; r = r->next)
			reply_error(r, PROTO_ERR_STORAGE, QUEUE_FULL_RETRY_MS,
				            "the broker could not store this request (%s); nothing was stored, "
				            "retry later", brk_store_errmsg(w->store));
	}
	for (brk_req *r = batch, *next; r != NULL; r = next) {
		next = r->next;
		complete(w, r);
	}
	flush_completions(w);
	return rc;
}

/* Step 2 of the loop: the writes of the batch. While storage fails (a
 * full disk, most often) the requests that add nothing commit apart from
 * the enqueues, so the acks of a drain, which free the space, are not
 * refused with every enqueue that does not fit. */
static void
run_writes(brk_writer *w, brk_req *batch, int64_t now)
{
	int rc;
	if (w->writable) {
		rc = write_txn(w, batch, now);
	} else {
		brk_req *enq, *rest;
		split_requests(batch, is_enqueue, &enq, &rest);
		rc = write_txn(w, rest, now); /* even with none: it runs the timers */
		if (enq != NULL) {
			int rc_enq = write_txn(w, enq, now);
			if (rc == 0)
				rc = rc_enq;
		}
	}
	if (rc == 0 && !w->writable) {
		log_info("STORAGE-RECOVERED", "commits succeed again");
		w->writable = true;
	}
}

/* Step 3: the reads of the batch (all of batch), then the parked leases. */
static void
run_reads(brk_writer *w, brk_req *batch, int64_t now, bool stopping)
{
	int64_t mono = clk_mono_ms();
	brk_view v = {w, now};

	for (brk_req *r = batch, *next; r != NULL; r = next) {
		next = r->next;
		if (r->exec != NULL) {
			r->exec(r, &v);
			complete(w, r);
			continue;
		}
		switch (r->f.h.type) {
		case PROTO_T_LEASE: {
			proto_span qn = r->f.u.lease.queue;
			if (!cfg_queue_name_valid((const char *)qn.ptr, qn.len)) {
				reply_error(r, PROTO_ERR_BAD_REQUEST, 0, "bad queue name '%.*s'", (int)qn.len,
				            (const char *)qn.ptr);
				break;
			}
			if (serve_lease(w, r, now))
				break;
			uint32_t wait = r->f.u.lease.wait_ms;
			if (wait > 0 && !stopping) {
				r->deadline_ms = mono + (wait > MAX_WAIT_MS ? MAX_WAIT_MS : wait);
				park(w, r);
				continue; /* completed later */
			}
			reply_empty_lease(r);
			break;
		}
		case PROTO_T_TOUCH: do_touch(w, r, now); break;
		case PROTO_T_STATS: do_stats(w, r, now); break;
		case PROTO_T_PEEK: do_peek(w, r); break;
		default:
			reply_error(r, PROTO_ERR_BAD_FRAME, 0, "%s is not a request",
			            proto_type_name(r->f.h.type));
		}
		complete(w, r);
	}
	for (brk_req *r = w->waiters_head, *next; r != NULL; r = next) {
		next = r->next;
		if (serve_lease(w, r, now) || stopping || r->deadline_ms <= mono) {
			if (r->reply_len == 0)
				reply_empty_lease(r);
			unpark(w, r);
			complete(w, r);
		}
	}
	if (w->reading)
		brk_store_end_read(w->store);
	w->reading = false;
	flush_completions(w);
}

/* How long the loop may sleep: until the next due message or waiter. */
static int64_t
sleep_ms(brk_writer *w)
{
	int64_t d = 1000;
	brk_msg *m = brk_index_next_due(w->index);
	if (m != NULL) {
		int64_t until = m->due_ms - clk_wall_ms();
		if (until < d)
			d = until;
	}
	int64_t mono = clk_mono_ms();
	for (brk_req *r = w->waiters_head; r != NULL; r = r->next)
		if (r->deadline_ms - mono < d)
			d = r->deadline_ms - mono;
	return d < 0 ? 0 : d;
}

static void *
writer_main(void *arg)
{
	brk_writer *w = arg;
	for (;;) {
		int64_t wait = sleep_ms(w);
		pthread_mutex_lock(&w->mu);
		if (w->pending_head == NULL && !w->stopping && wait > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			w->sleeping = true;
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
			w->sleeping = false;
		}
		brk_req *batch = w->pending_head;
		w->pending_head = w->pending_tail = NULL;
		bool stopping = w->stopping;
		pthread_mutex_unlock(&w->mu);

		int64_t now = clk_wall_ms();
		brk_req *writes, *reads;
		split_requests(batch, is_write, &writes, &reads);
		run_writes(w, writes, now);
		run_reads(w, reads, now, stopping);
		if (stopping && w->waiters_head == NULL) {
			pthread_mutex_lock(&w->mu);
			bool empty = w->pending_head == NULL;
			pthread_mutex_unlock(&w->mu);
			if (empty)
				break;
		}
	}
	return NULL;
}

/* ---- life cycle ---- */

int
brk_writer_open(const cfg *c, brk_counters *counters, brk_writer **out, char *err, size_t errlen)
{
	brk_writer *w = calloc(1, sizeof(*w));
	int64_t v;
	int rc;

	*out = NULL;
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return BRK_STORE_E_OTHER;
	}
	w->cfg = c;
	w->counters = counters;
	w->writable = true;
	w->start_mono_ms = clk_mono_ms();
	w->frame_limit = (uint32_t)(c->broker.max_message_bytes + FRAME_SLACK);
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->done_mu, NULL);
	pthread_cond_init(&w->done_cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || w->rng == 0)
		w->rng = (uint64_t)clk_mono_ns() | 1;
	w->commit_us = hist_alloc();
	w->batch_requests = hist_alloc();
	w->ack_latency_ms = hist_alloc();
	w->index = brk_index_alloc();
	if (!w->commit_us || !w->batch_requests || !w->ack_latency_ms || !w->index) {
		snprintf(err, errlen, "out of memory");
		rc = BRK_STORE_E_OTHER;
		goto fail;
	}
	if ((rc = brk_store_open(c->broker.data, c->broker.durability == CFG_DURABILITY_FAST,
	                         &w->store, err, errlen)) != 0)
		goto fail;
	/* a boot counter makes lease tokens unique across restarts */
	if ((rc = brk_store_begin(w->store)) != 0 ||
	    (rc = brk_store_meta_get(w->store, "boot", &v)) != 0 ||
	    (rc = brk_store_meta_set(w->store, "boot", v + 1)) != 0 ||
	    (rc = brk_store_meta_get(w->store, "next_id", &v)) != 0 ||
	    (rc = brk_store_commit(w->store)) != 0) {
		brk_store_rollback(w->store);
		snprintf(err, errlen, "%s: %s", c->broker.data, brk_store_errmsg(w->store));
		goto fail;
	}
	w->next_id = v > 0 ? (uint64_t)v : 1;
	if ((rc = load_all(w, clk_wall_ms())) != 0) {
		snprintf(err, errlen, "%s: loading messages: %s", c->broker.data, brk_store_errmsg(w->store));
		goto fail;
	}
	w->stored_next_id = (uint64_t)v;
	{
		int64_t boot;
		brk_store_meta_get(w->store, "boot", &boot);
		w->boot = (uint64_t)boot & 0xFFFFFF;
	}
	if (pthread_create(&w->completer, NULL, completer_main, w) != 0) {
		snprintf(err, errlen, "cannot start the completion thread: %s", strerror(errno));
		rc = BRK_STORE_E_OTHER;
		goto fail;
	}
	w->completer_started = true;
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		snprintf(err, errlen, "cannot start the writer thread: %s", strerror(errno));
		rc = BRK_STORE_E_OTHER;
		goto fail;
	}
	w->started = true;
	log_info("STORE-OPEN", "%s: %llu messages in %zu queues, next id %llu", c->broker.data,
	         (unsigned long long)brk_index_count(w->index), brk_index_nqueues(w->index),
	         (unsigned long long)w->next_id);
	*out = w;
	return 0;
fail:
	brk_writer_close(w);
	return rc ? rc : BRK_STORE_E_OTHER;
}

void
brk_writer_close(brk_writer *w)
{
	if (w == NULL)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stopping = true;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	if (w->completer_started) { /* after the writer: it sends what is left */
		pthread_mutex_lock(&w->done_mu);
		w->done_stop = true;
		pthread_cond_signal(&w->done_cv);
		pthread_mutex_unlock(&w->done_mu);
		pthread_join(w->completer, NULL);
	}
	brk_store_close(w->store);
	if (w->index != NULL)
		for (size_t i = 0; i < brk_index_nqueues(w->index); i++)
			free(*brk_queue_user(brk_index_queue_at(w->index, i)));
	brk_index_free(w->index);
	hist_free(w->commit_us);
	hist_free(w->batch_requests);
	hist_free(w->ack_latency_ms);
	free(w->new_queues);
	free(w->deltas);
	free(w->scratch);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->done_cv);
	pthread_mutex_destroy(&w->done_mu);
	free(w);
}

void
brk_writer_submit(brk_writer *w, brk_req *r)
{
	r->next = r->prev = NULL;
	r->reply_len = 0;
	pthread_mutex_lock(&w->mu);
	if (w->stopping) {
		pthread_mutex_unlock(&w->mu);
		if (r->exec == NULL)
			reply_error(r, PROTO_ERR_SHUTTING_DOWN, 1000, "the broker is shutting down");
		r->done(r);
		return;
	}
	if (w->pending_tail)
		w->pending_tail->next = r;
	else
		w->pending_head = r;
	w->pending_tail = r;
	/* a busy writer takes the whole list when it is done: no wake-up needed */
	if (w->sleeping)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

brk_counters *
brk_writer_counters(brk_writer *w)
{
	return w->counters;
}

uint32_t
brk_writer_frame_limit(const brk_writer *w)
{
	return w->frame_limit;
}

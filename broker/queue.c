/*
 * queue: ready heaps per queue, one timer heap for delayed and leased
 * messages, and an id -> message hash. Each brk_msg sits in exactly one
 * heap (ready or timer); pos is its index there, so any message can be
 * removed or re-timed in O(log n).
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

/* ---- binary heap of brk_msg*, ordered by a comparison ---- */

typedef bool (*before_fn)(const brk_msg *a, const brk_msg *b);

typedef struct heap {
	brk_msg **v;
	uint32_t n;
	uint32_t cap;
	before_fn before;
} heap;

static bool
ready_before(const brk_msg *a, const brk_msg *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority; /* higher priority first */
	return a->id < b->id;                 /* then FIFO */
}

static bool
due_before(const brk_msg *a, const brk_msg *b)
{
	if (a->due_ms != b->due_ms)
		return a->due_ms < b->due_ms;
	return a->id < b->id;
}

static void
heap_set(heap *h, uint32_t i, brk_msg *m)
{
	h->v[i] = m;
	m->pos = i;
}

static void
sift_up(heap *h, uint32_t i)
{
	brk_msg *m = h->v[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!h->before(m, h->v[parent]))
			break;
		heap_set(h, i, h->v[parent]);
		i = parent;
	}
	heap_set(h, i, m);
}

static void
sift_down(heap *h, uint32_t i)
{
	brk_msg *m = h->v[i];
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, best = i;
		brk_msg *bm = m;
		if (l < h->n && h->before(h->v[l], bm)) {
			best = l;
			bm = h->v[l];
		}
		if (r < h->n && h->before(h->v[r], bm)) {
			best = r;
			bm = h->v[r];
		}
		if (best == i)
			break;
		heap_set(h, i, bm);
		i = best;
	}
	heap_set(h, i, m);
}

static bool
heap_push(heap *h, brk_msg *m)
{
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 64;
		brk_msg **v = realloc(h->v, cap * sizeof(*v));
		if (v == NULL)
			return false;
		h->v = v;
		h->cap = cap;
	}
	heap_set(h, h->n++, m);
	sift_up(h, h->n - 1);
	return true;
}

static void
heap_remove(heap *h, brk_msg *m)
{
	uint32_t i = m->pos;
	brk_msg *last = h->v[--h->n];
	if (i == h->n)
		return;
	heap_set(h, i, last);
	if (i > 0 && h->before(last, h->v[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

/* Re-positions m after its key changed. */
static void
heap_fix(heap *h, brk_msg *m)
{
	uint32_t i = m->pos;
	if (i > 0 && h->before(m, h->v[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

/* ---- the index ---- */

#define NAME_CAP 136 /* 128 bytes, ".dead", NUL */

struct brk_queue {
	char name[NAME_CAP];
	int64_t db_id;
	cfg_queue settings;
	heap ready;
	uint64_t delayed;
	uint64_t leased;
	brk_queue_totals totals;
	void *user;
	bool dead;
};

/* brk_msgs come from chunks and go back to a free list: one malloc per
 * CHUNK messages instead of one per message, and reuse without the
 * allocator under a steady flow. */
#define CHUNK 4096

typedef struct chunk {
	struct chunk *next;
	brk_msg m[CHUNK];
} chunk;

struct brk_index {
	chunk *chunks;
	brk_msg *free_msgs; /* linked through their q field */
	/* id -> message, open addressing with linear probing */
	brk_msg **slots;
	uint64_t mask;
	uint64_t count;
	heap timers;
	brk_queue **queues; /* creation order */
	size_t nqueues;
	size_t capqueues;
	brk_queue **by_name; /* open addressing by name hash */
	size_t name_mask;
};

static uint64_t
id_hash(uint64_t id)
{
	return id * 0x9E3779B97F4A7C15ull;
}

static uint64_t
name_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

brk_index *
brk_index_alloc(void)
{
	brk_index *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return NULL;
	x->mask = 1023;
	x->slots = calloc(x->mask + 1, sizeof(*x->slots));
	x->name_mask = 63;
	x->by_name = calloc(x->name_mask + 1, sizeof(*x->by_name));
	x->timers.before = due_before;
	if (x->slots == NULL || x->by_name == NULL) {
		brk_index_free(x);
		return NULL;
	}
	return x;
}

void
brk_index_free(brk_index *x)
{
	if (x == NULL)
		return;
	for (chunk *c = x->chunks, *next; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(x->slots);
	free(x->timers.v);
	for (size_t i = 0; i < x->nqueues; i++) {
		free(x->queues[i]->ready.v);
		free(x->queues[i]);
	}
	free(x->queues);
	free(x->by_name);
	free(x);
}

/* ---- queues ---- */

brk_queue *
brk_index_queue(const brk_index *x, const char *name, size_t len)
{
	for (size_t i = name_hash(name, len) & x->name_mask;; i = (i + 1) & x->name_mask) {
		brk_queue *q = x->by_name[i];
		if (q == NULL)
			return NULL;
		if (strlen(q->name) == len && memcmp(q->name, name, len) == 0)
			return q;
	}
}

static void
name_insert(brk_queue **table, size_t mask, brk_queue *q)
{
	size_t i = name_hash(q->name, strlen(q->name)) & mask;
	while (table[i] != NULL)
		i = (i + 1) & mask;
	table[i] = q;
}

brk_queue *
brk_index_queue_add(brk_index *x, const char *name, size_t len, int64_t db_id,
                    const cfg_queue *settings)
{
	if (len == 0 || len >= NAME_CAP)
		return NULL;
	if (x->nqueues == x->capqueues) {
		size_t cap = x->capqueues ? x->capqueues * 2 : 16;
		brk_queue **v = realloc(x->queues, cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		x->queues = v;
		x->capqueues = cap;
	}
	if ((x->nqueues + 1) * 2 > x->name_mask + 1) {
		size_t mask = x->name_mask * 2 + 1;
		brk_queue **t = calloc(mask + 1, sizeof(*t));
		if (t == NULL)
			return NULL;
		for (size_t i = 0; i < x->nqueues; i++)
			name_insert(t, mask, x->queues[i]);
		free(x->by_name);
		x->by_name = t;
		x->name_mask = mask;
	}
	brk_queue *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	memcpy(q->name, name, len);
	q->db_id = db_id;
	q->settings = *settings;
	q->ready.before = ready_before;
	q->dead = len > 5 && memcmp(name + len - 5, ".dead", 5) == 0;
	x->queues[x->nqueues++] = q;
	name_insert(x->by_name, x->name_mask, q);
	return q;
}

brk_queue *
brk_index_queue_by_db_id(const brk_index *x, int64_t db_id)
{
	for (size_t i = 0; i < x->nqueues; i++)
		if (x->queues[i]->db_id == db_id)
			return x->queues[i];
	return NULL;
}

size_t
brk_index_nqueues(const brk_index *x)
{
	return x->nqueues;
}

brk_queue *
brk_index_queue_at(const brk_index *x, size_t i)
{
	return i < x->nqueues ? x->queues[i] : NULL;
}

const char *
brk_queue_name(const brk_queue *q)
{
	return q->name;
}

int64_t
brk_queue_db_id(const brk_queue *q)
{
	return q->db_id;
}

void
brk_queue_set_db_id(brk_queue *q, int64_t db_id)
{
	q->db_id = db_id;
}

const cfg_queue *
brk_queue_settings(const brk_queue *q)
{
	return &q->settings;
}

void
brk_queue_set_settings(brk_queue *q, const cfg_queue *settings)
{
	q->settings = *settings;
}

brk_queue_counts
brk_queue_count(const brk_queue *q)
{
	brk_queue_counts c = {q->ready.n, q->delayed, q->leased};
	return c;
}

uint64_t
brk_queue_size(const brk_queue *q)
{
	return q->ready.n + q->delayed + q->leased;
}

brk_queue_totals *
brk_queue_totals_of(brk_queue *q)
{
	return &q->totals;
}

bool
brk_queue_is_dead(const brk_queue *q)
{
	return q->dead;
}

void **
brk_queue_user(brk_queue *q)
{
	return &q->user;
}

brk_msg *
brk_queue_top(const brk_queue *q)
{
	return q->ready.n ? q->ready.v[0] : NULL;
}

/* ---- messages ---- */

static bool
grow_slots(brk_index *x)
{
	uint64_t mask = x->mask * 2 + 1;
	brk_msg **t = calloc(mask + 1, sizeof(*t));
	if (t == NULL)
		return false;
	for (uint64_t i = 0; i <= x->mask; i++) {
		brk_msg *m = x->slots[i];
		if (m == NULL)
			continue;
		uint64_t j = id_hash(m->id) & mask;
		while (t[j] != NULL)
			j = (j + 1) & mask;
		t[j] = m;
	}
	free(x->slots);
	x->slots = t;
	x->mask = mask;
	return true;
}

brk_msg *
brk_index_find(const brk_index *x, uint64_t id)
{
	for (uint64_t i = id_hash(id) & x->mask;; i = (i + 1) & x->mask) {
		brk_msg *m = x->slots[i];
		if (m == NULL || m->id == id)
			return m;
	}
}

uint64_t
brk_index_count(const brk_index *x)
{
	return x->count;
}

/* Puts m in its queue's ready heap or the timer heap, by due time. */
static bool
place(brk_index *x, brk_msg *m, int64_t now_ms)
{
	if (m->due_ms <= now_ms) {
		m->state = BRK_MSG_READY;
		return heap_push(&m->q->ready, m);
	}
	m->state = BRK_MSG_DELAYED;
	if (!heap_push(&x->timers, m))
		return false;
	m->q->delayed++;
	return true;
}

/* Takes m out of whichever heap holds it. */
static void
unplace(brk_index *x, brk_msg *m)
{
	switch (m->state) {
	case BRK_MSG_READY:
		heap_remove(&m->q->ready, m);
		break;
	case BRK_MSG_DELAYED:
		heap_remove(&x->timers, m);
		m->q->delayed--;
		break;
	case BRK_MSG_LEASED:
		heap_remove(&x->timers, m);
		m->q->leased--;
		break;
	}
}

static brk_msg *
msg_alloc(brk_index *x)
{
	if (x->free_msgs == NULL) {
		chunk *c = malloc(sizeof(*c));
		if (c == NULL)
			return NULL;
		c->next = x->chunks;
		x->chunks = c;
		for (size_t i = CHUNK; i-- > 0;) {
			c->m[i].q = (brk_queue *)x->free_msgs;
			x->free_msgs = &c->m[i];
		}
	}
	brk_msg *m = x->free_msgs;
	x->free_msgs = (brk_msg *)m->q;
	return m;
}

static void
msg_free(brk_index *x, brk_msg *m)
{
	m->q = (brk_queue *)x->free_msgs;
	x->free_msgs = m;
}

brk_msg *
brk_index_add(brk_index *x, brk_queue *q, const brk_msg *tmpl, int64_t now_ms)
{
	if ((x->count + 1) * 2 > x->mask + 1 && !grow_slots(x))
		return NULL;
	brk_msg *m = msg_alloc(x);
	if (m == NULL)
		return NULL;
	*m = *tmpl;
	m->q = q;
	if (!place(x, m, now_ms)) {
		msg_free(x, m);
		return NULL;
	}
	uint64_t i = id_hash(m->id) & x->mask;
	while (x->slots[i] != NULL)
		i = (i + 1) & x->mask;
	x->slots[i] = m;
	x->count++;
	return m;
}

void
brk_index_remove(brk_index *x, brk_msg *m)
{
	unplace(x, m);
	/* delete from the hash with backward shift, so probes stay unbroken */
	uint64_t i = id_hash(m->id) & x->mask;
	while (x->slots[i] != m)
		i = (i + 1) & x->mask;
	for (uint64_t j = (i + 1) & x->mask; x->slots[j] != NULL; j = (j + 1) & x->mask) {
		uint64_t home = id_hash(x->slots[j]->id) & x->mask;
		/* can the entry at j move back to the hole at i? */
		if (((j - home) & x->mask) >= ((j - i) & x->mask)) {
			x->slots[i] = x->slots[j];
			i = j;
		}
	}
	x->slots[i] = NULL;
	x->count--;
	msg_free(x, m);
}

brk_msg *
brk_index_lease_next(brk_index *x, brk_queue *q, uint64_t token, int64_t deadline_ms)
{
	if (q->ready.n == 0)
		return NULL;
	brk_msg *m = q->ready.v[0];
	heap_remove(&q->ready, m);
	m->state = BRK_MSG_LEASED;
	m->token = token;
	m->due_ms = deadline_ms;
	m->attempts++;
	if (!heap_push(&x->timers, m)) {
		/* cannot track the lease: put it back, unleased */
		m->attempts--;
		m->state = BRK_MSG_READY;
		heap_push(&q->ready, m); /* space is there: we just removed it */
		return NULL;
	}
	q->leased++;
	return m;
}

void
brk_index_extend(brk_index *x, brk_msg *m, int64_t deadline_ms)
{
	m->due_ms = deadline_ms;
	heap_fix(&x->timers, m);
}

void
brk_index_release(brk_index *x, brk_msg *m, brk_queue *to, int64_t at_ms, int64_t now_ms)
{
	unplace(x, m);
	if (to != NULL)
		m->q = to;
	m->due_ms = at_ms;
	if (!place(x, m, now_ms)) {
		/* out of memory growing a heap: make it ready in the heap we just
		 * left room in, or the timer heap, whichever it came from */
		m->due_ms = now_ms;
		m->state = BRK_MSG_READY;
		heap_push(&m->q->ready, m);
	}
}

brk_msg *
brk_index_next_due(const brk_index *x)
{
	return x->timers.n ? x->timers.v[0] : NULL;
}

size_t
brk_index_delayed_of(const brk_index *x, const brk_queue *q, brk_msg **out, size_t max)
{
	size_t n = 0;
	for (uint32_t i = 0; i < x->timers.n && n < max; i++)
		if (x->timers.v[i]->q == q && x->timers.v[i]->state == BRK_MSG_DELAYED)
			out[n++] = x->timers.v[i];
	return n;
}

void
brk_index_restore_lease(brk_index *x, brk_msg *m, uint64_t token, int64_t deadline_ms,
                        uint32_t attempts)
{
	unplace(x, m);
	m->state = BRK_MSG_LEASED;
	m->token = token;
	m->due_ms = deadline_ms;
	m->attempts = attempts;
	if (heap_push(&x->timers, m)) {
		m->q->leased++;
	} else { /* no memory for the lease: the message is simply ready */
		m->state = BRK_MSG_READY;
		heap_push(&m->q->ready, m);
	}
}

size_t
brk_queue_peek(const brk_queue *q, brk_msg **out, size_t max)
{
	/* best-first walk of the heap: a small heap of candidate positions */
	size_t n = 0, nc = 0, cap = 2 * max + 1;
	if (max == 0 || q->ready.n == 0)
		return 0;
	uint32_t *cand = malloc(cap * sizeof(*cand));
	if (cand == NULL)
		return 0;
	const heap *h = &q->ready;
	cand[nc++] = 0;
	while (nc > 0 && n < max) {
		size_t best = 0;
		for (size_t i = 1; i < nc; i++) /* cand stays small (<= 2 max) */
			if (h->before(h->v[cand[i]], h->v[cand[best]]))
				best = i;
		uint32_t at = cand[best];
		cand[best] = cand[--nc];
		out[n++] = h->v[at];
		for (uint32_t c = 2 * at + 1; c <= 2 * at + 2 && c < h->n && nc < cap; c++)
			cand[nc++] = c;
	}
	free(cand);
	return n;
}

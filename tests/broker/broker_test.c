/* broker_test: the real broker, driven through the client library and raw
 * frames: every queue semantic a user relies on. */
#include "codec.h"
#include "fixture.h"
#include "harness.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define Q "jobs"

/* ---- helpers ---- */

static sluice_batch *
lease(sluice_client *c, uint32_t max, uint32_t vis_ms, uint32_t wait_ms)
{
	sluice_batch *b;
	int rc = sluice_lease(c, Q, max, vis_ms, wait_ms, &b);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "lease: %s", sluice_errmsg());
	return b;
}

static uint64_t
put1(sluice_client *c, const char *text, const char *key)
{
	sluice_msg_in m = {.payload = text, .len = strlen(text), .key = key, .keylen = key ? strlen(key) : 0};
	uint64_t id;
	int rc = sluice_enqueue(c, Q, &m, 1, &id, NULL);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "enqueue: %s", sluice_errmsg());
	return id;
}

/* Sends raw bytes on a fresh REQ socket and returns the reply (caller frees). */
static nng_msg *
raw_request(const void *bytes, size_t len)
{
	nng_socket s;
	nng_msg *m;
	CHECK(nng_req0_open(&s) == 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	CHECK(nng_dial(s, fx.url, NULL, 0) == 0);
	CHECK(nng_msg_alloc(&m, 0) == 0);
	CHECK(nng_msg_append(m, bytes, len) == 0);
	CHECK(nng_sendmsg(s, m, 0) == 0);
	nng_msg *rep = NULL;
	int rv = nng_recvmsg(s, &rep, 0);
	nng_close(s);
	if (rv != 0)
		th_fail(__FILE__, __LINE__, "no reply: %s", nng_strerror(rv));
	return rep;
}

/* ---- cases ---- */

typedef struct producer {
	int n;
	int index;
	long acked;
} producer;

static void *
produce(void *arg)
{
	producer *p = arg;
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 20000};
	if (sluice_open(&c, fx.url, &o) != 0)
		return NULL;
	for (int i = 0; i < p->n; i++) {
		char text[64];
		int len = snprintf(text, sizeof(text), "p%d-%d", p->index, i);
		sluice_msg_in m = {.payload = text, .len = (size_t)len};
		uint64_t id;
		if (sluice_enqueue(c, Q, &m, 1, &id, NULL) == 0)
			p->acked++;
	}
	sluice_close(c);
	return NULL;
}

static void
concurrent_producers_all_counted(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	enum { P = 64 };
	int each = (int)th_scaled(300);
	producer ps[P];
	pthread_t t[P];
	for (int i = 0; i < P; i++) {
		ps[i] = (producer){.n = each, .index = i};
		pthread_create(&t[i], NULL, produce, &ps[i]);
	}
	long acked = 0;
	for (int i = 0; i < P; i++) {
		pthread_join(t[i], NULL);
		acked += ps[i].acked;
	}
	CHECK_EQ(acked, (long)P * each);
	sluice_client *c = fx_client();
	CHECK_EQ(fx_stat(c, Q, "depth"), acked);
	CHECK_EQ(fx_stat(c, Q, "enqueued_total"), acked);
	/* group commit: far fewer commits than requests */
	sluice_stats *s;
	CHECK(sluice_stats_get(c, NULL, &s) == 0);
	int64_t commits = sluice_stat_value(s->broker, s->nbroker, "commits_total", -1);
	sluice_stats_free(s);
	printf("  %ld enqueues from %d producers in %lld commits\n", acked, P, (long long)commits);
	CHECK(commits > 0 && commits <= acked);
}

static void
idempotency_key_stores_once(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	uint64_t a = put1(c, "first", "order-17");
	sluice_msg_in m = {.payload = "second", .len = 6, .key = "order-17", .keylen = 8};
	uint64_t b;
	bool dup;
	CHECK(sluice_enqueue(c, Q, &m, 1, &b, &dup) == 0);
	CHECK_EQ(b, a);
	CHECK(dup);
	CHECK_EQ(fx_stat(c, Q, "depth"), 1);
	/* the same key on another queue is another message */
	uint64_t other;
	CHECK(sluice_enqueue(c, "other", &m, 1, &other, &dup) == 0);
	CHECK(!dup && other != a);
}

/* An ENQUEUE frame sent twice, as NNG's REQ resends it after a reconnect:
 * the generated (retry) key makes the second a duplicate. */
static void
resent_request_stores_once(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	uint8_t buf[256];
	proto_buf b;
	proto_enq_item it = {.flags = PROTO_ITEM_RETRY_KEY, .key = {(const uint8_t *)"0123456789abcdef", 16},
	                     .payload = {(const uint8_t *)"hello", 5}};
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_enqueue(&b, 1, Q, strlen(Q));
	proto_enc_enq_item(&b, &it);
	CHECK(proto_end(&b) == PROTO_OK);
	uint64_t ids[2];
	for (int i = 0; i < 2; i++) {
		nng_msg *rep = raw_request(buf, b.len);
		proto_frame f;
		CHECK(proto_frame_decode(nng_msg_body(rep), nng_msg_len(rep), &f) == PROTO_OK);
		CHECK_EQ(f.h.type, PROTO_T_IDS);
		bool dup;
		CHECK(proto_idflag_next(&f.u.id_list.ids, &ids[i], &dup));
		CHECK(dup == (i == 1));
		nng_msg_free(rep);
	}
	CHECK_EQ(ids[0], ids[1]);
	CHECK_EQ(fx_stat(fx_client(), Q, "depth"), 1);
}

/* A batch resent with one request key: the same ids, every one a
 * duplicate, nothing stored twice; a malformed one is refused. */
static void
resent_batch_with_a_request_key_stores_once(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	uint8_t buf[512];
	proto_buf b;
	proto_enq_item first = {.flags = PROTO_ITEM_RETRY_KEY, .key = {(const uint8_t *)"0123456789abcdef", 16},
	                        .payload = {(const uint8_t *)"m0", 2}};
	proto_enq_item rest = {.payload = {(const uint8_t *)"mN", 2}};
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_enqueue(&b, 1, Q, strlen(Q));
	proto_set_flags(&b, PROTO_F_REQUEST_KEY);
	proto_enc_enq_item(&b, &first);
	for (int i = 0; i < 4; i++)
		proto_enc_enq_item(&b, &rest);
	CHECK(proto_end(&b) == PROTO_OK);
	uint64_t ids[2][5];
	for (int k = 0; k < 2; k++) {
		nng_msg *rep = raw_request(buf, b.len);
		proto_frame f;
		CHECK(proto_frame_decode(nng_msg_body(rep), nng_msg_len(rep), &f) == PROTO_OK);
		CHECK_EQ(f.h.type, PROTO_T_IDS);
		for (int i = 0; i < 5; i++) {
			bool dup;
			CHECK(proto_idflag_next(&f.u.id_list.ids, &ids[k][i], &dup));
			CHECK(dup == (k == 1));
			if (i > 0)
				CHECK_EQ(ids[k][i], ids[k][i - 1] + 1);
		}
		nng_msg_free(rep);
	}
	CHECK(memcmp(ids[0], ids[1], sizeof(ids[0])) == 0);
	CHECK_EQ(fx_stat(fx_client(), Q, "depth"), 5);
	/* REQUEST_KEY with a key on a later message is refused */
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_enqueue(&b, 2, Q, strlen(Q));
	proto_set_flags(&b, PROTO_F_REQUEST_KEY);
	proto_enc_enq_item(&b, &first);
	proto_enc_enq_item(&b, &first);
	CHECK(proto_end(&b) == PROTO_OK);
	nng_msg *rep = raw_request(buf, b.len);
	proto_frame f;
	CHECK(proto_frame_decode(nng_msg_body(rep), nng_msg_len(rep), &f) == PROTO_OK);
	CHECK_EQ(f.h.type, PROTO_T_ERROR);
	CHECK_EQ(f.u.error.code, PROTO_ERR_BAD_REQUEST);
	nng_msg_free(rep);
}

static void
batch_is_all_or_nothing(void)
{
	fx_config(&(fx_cfg){.broker = "max_message_bytes: 1KiB"});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	static char big[2000];
	memset(big, 'x', sizeof(big));
	sluice_msg_in m[3] = {{.payload = "a", .len = 1}, {.payload = big, .len = sizeof(big)},
	                      {.payload = "c", .len = 1}};
	uint64_t ids[3];
	/* the client refuses it before sending... */
	CHECK_EQ(sluice_enqueue(c, Q, m, 3, ids, NULL), PROTO_ERR_TOO_LARGE);
	/* ...and the broker too, when a client does not check */
	sluice_opts o = {.max_message_bytes = 1 << 20};
	sluice_client *lax;
	CHECK(sluice_open(&lax, fx.url, &o) == 0);
	int rc = sluice_enqueue(lax, Q, m, 3, ids, NULL);
	CHECK_EQ(rc, PROTO_ERR_TOO_LARGE);
	CHECK_CONTAINS(sluice_errmsg(), "max_message_bytes");
	sluice_close(lax);
	CHECK_EQ(fx_stat(c, Q, "depth"), -1); /* the queue was never even created */
	m[1].len = 10;
	CHECK(sluice_enqueue(c, Q, m, 3, ids, NULL) == 0);
	CHECK(ids[0] < ids[1] && ids[1] < ids[2]);
	CHECK_EQ(fx_stat(c, Q, "depth"), 3);
}

static void
lease_expires_and_is_redelivered(void)
{
	fx_config(&(fx_cfg){.queue_defaults = "retry:\n  base: 50ms\n  max: 100ms"});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	uint64_t id = put1(c, "slow job", NULL);
	sluice_batch *b = lease(c, 10, 300, 0);
	CHECK_EQ(b->count, 1);
	CHECK_EQ(b->msgs[0].id, id);
	CHECK_EQ(b->msgs[0].attempt, 1);
	uint64_t first_token = b->token;
	sluice_batch_free(b);
	/* invisible while leased */
	b = lease(c, 10, 300, 0);
	CHECK_EQ(b->count, 0);
	sluice_batch_free(b);
	/* after the lease and the retry backoff it comes back, attempt 2 */
	b = lease(c, 10, 5000, 3000);
	CHECK_EQ(b->count, 1);
	CHECK_EQ(b->msgs[0].id, id);
	CHECK_EQ(b->msgs[0].attempt, 2);
	CHECK(b->token != first_token);
	CHECK_EQ(fx_stat(c, Q, "expired_total"), 1);
	/* the slow worker's late ack is refused: someone else has it now */
	uint16_t code;
	CHECK(sluice_ack(c, Q, first_token, &id, 1, NULL, 0, &code) == 0);
	CHECK_EQ(code, PROTO_ERR_LEASE_EXPIRED);
	CHECK(sluice_ack(c, Q, b->token, &id, 1, NULL, 0, &code) == 0);
	CHECK_EQ(code, PROTO_ERR_NONE);
	/* acking twice: no longer leased */
	CHECK(sluice_ack(c, Q, b->token, &id, 1, NULL, 0, &code) == 0);
	CHECK_EQ(code, PROTO_ERR_NOT_LEASED);
	sluice_batch_free(b);
	CHECK_EQ(fx_stat(c, Q, "backlog"), 0);
	CHECK_EQ(fx_stat(c, Q, "acked_total"), 1);
}

static void
touch_extends_a_lease(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	uint64_t id = put1(c, "long job", NULL);
	sluice_batch *b = lease(c, 1, 400, 0);
	for (int i = 0; i < 4; i++) {
		usleep(200000);
		uint16_t code;
		CHECK(sluice_touch(c, Q, b->token, &id, 1, 400, &code) == 0);
		CHECK_EQ(code, PROTO_ERR_NONE);
	}
	/* 800 ms past the first deadline, still ours */
	CHECK_EQ(fx_stat(c, Q, "in_flight"), 1);
	CHECK_EQ(fx_stat(c, Q, "expired_total"), 0);
	sluice_batch_free(b);
}

static void
nack_backoff_then_dead_letter(void)
{
	fx_config(&(fx_cfg){.queue_defaults = "max_attempts: 3\nretry:\n  base: 100ms\n  max: 1s"});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	uint64_t id = put1(c, "poison", NULL);
	int64_t last = th_now_ms();
	for (int attempt = 1; attempt <= 3; attempt++) {
		sluice_batch *b = lease(c, 1, 5000, 5000);
		CHECK_EQ(b->count, 1);
		CHECK_EQ(b->msgs[0].attempt, attempt);
		int64_t now = th_now_ms();
		if (attempt > 1) /* backoff: base * 2^(n-2), half of it at least */
			CHECK(now - last >= 100 * (1 << (attempt - 2)) / 2 - 10);
		last = now;
		const char *err = "cannot parse";
		uint16_t code;
		CHECK(sluice_nack(c, Q, b->token, &id, &err, 1, SLUICE_BACKOFF, &code) == 0);
		CHECK_EQ(code, PROTO_ERR_NONE);
		sluice_batch_free(b);
	}
	CHECK_EQ(fx_stat(c, Q, "dead"), 1);
	CHECK_EQ(fx_stat(c, Q, "dead_lettered_total"), 1);
	CHECK_EQ(fx_stat(c, Q, "backlog"), 0);
	sluice_batch *d;
	CHECK(sluice_peek(c, Q ".dead", 10, &d) == 0);
	CHECK_EQ(d->count, 1);
	CHECK_EQ(d->msgs[0].id, id);
	sluice_batch_free(d);
	/* requeue: back, attempts reset */
	uint64_t moved;
	CHECK(sluice_requeue(c, Q, 0, &moved) == 0);
	CHECK_EQ(moved, 1);
	sluice_batch *b = lease(c, 1, 5000, 0);
	CHECK_EQ(b->count, 1);
	CHECK_EQ(b->msgs[0].attempt, 1);
	sluice_batch_free(b);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
}

static void
release_does_not_count_an_attempt(void)
{
	fx_config(&(fx_cfg){.queue_defaults = "max_attempts: 1"});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	uint64_t id = put1(c, "x", NULL);
	for (int i = 0; i < 3; i++) {
		sluice_batch *b = lease(c, 1, 5000, 1000);
		CHECK_EQ(b->count, 1);
		CHECK_EQ(b->msgs[0].attempt, 1);
		uint16_t code;
		CHECK(sluice_release(c, Q, b->token, &id, 1, 0, &code) == 0);
		CHECK_EQ(code, 0);
		sluice_batch_free(b);
	}
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK_EQ(fx_stat(c, Q, "depth"), 1);
}

static void
queue_full_is_answered_at_once(void)
{
	fx_config(&(fx_cfg){.queue_defaults = "max_depth: 10"});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	CHECK_EQ(fx_put(c, Q, "m", 0, 10, 5), 10);
	sluice_msg_in m = {.payload = "one too many", .len = 12};
	uint64_t id;
	int64_t t0 = th_now_ms();
	int rc = sluice_enqueue(c, Q, &m, 1, &id, NULL);
	int64_t took = th_now_ms() - t0;
	CHECK_EQ(rc, PROTO_ERR_QUEUE_FULL);
	CHECK(sluice_retry_after_ms() > 0);
	CHECK_CONTAINS(sluice_errmsg(), "full");
	CHECK(took < 1000);
	CHECK_EQ(fx_stat(c, Q, "depth"), 10);
	/* room again once a message is acknowledged */
	sluice_batch *b = lease(c, 1, 5000, 0);
	CHECK(sluice_ack(c, Q, b->token, &b->msgs[0].id, 1, NULL, 0, NULL) == 0);
	sluice_batch_free(b);
	CHECK(sluice_enqueue(c, Q, &m, 1, &id, NULL) == 0);
}

static void
priority_then_fifo_and_delay(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	sluice_msg_in m[5] = {
		{.payload = "low-1", .len = 5, .priority = 0},
		{.payload = "high-1", .len = 6, .priority = 5},
		{.payload = "low-2", .len = 5, .priority = 0},
		{.payload = "high-2", .len = 6, .priority = 5},
		{.payload = "later", .len = 5, .priority = 9, .delay_ms = 600},
	};
	uint64_t ids[5];
	CHECK(sluice_enqueue(c, Q, m, 5, ids, NULL) == 0);
	CHECK_EQ(fx_stat(c, Q, "delayed"), 1);
	sluice_batch *b = lease(c, 10, 5000, 0);
	CHECK_EQ(b->count, 4);
	const char *want[] = {"high-1", "high-2", "low-1", "low-2"};
	for (int i = 0; i < 4; i++)
		CHECK(b->msgs[i].len == strlen(want[i]) && memcmp(b->msgs[i].payload, want[i], b->msgs[i].len) == 0);
	sluice_batch_free(b);
	/* the delayed one arrives by long poll when it is due, not before */
	int64_t t0 = th_now_ms();
	b = lease(c, 10, 5000, 3000);
	int64_t took = th_now_ms() - t0;
	CHECK_EQ(b->count, 1);
	CHECK(took >= 400 && took < 2000);
	sluice_batch_free(b);
}

typedef struct waiter {
	sluice_batch *b;
	int64_t took;
} waiter;

static void *
wait_lease(void *arg)
{
	waiter *w = arg;
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 10000};
	if (sluice_open(&c, fx.url, &o) != 0)
		return NULL;
	int64_t t0 = th_now_ms();
	sluice_lease(c, Q, 10, 5000, 5000, &w->b);
	w->took = th_now_ms() - t0;
	sluice_close(c);
	return NULL;
}

static void
long_poll_answers_on_commit(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	waiter w = {0};
	pthread_t t;
	pthread_create(&t, NULL, wait_lease, &w);
	usleep(1000000);
	put1(c, "wake up", NULL);
	pthread_join(t, NULL);
	CHECK(w.b != NULL);
	CHECK_EQ(w.b->count, 1);
	/* answered right after the commit, not at the end of the 5 s wait */
	CHECK(w.took < 3000);
	printf("  a lease waiting up to 5 s was answered after %lld ms (enqueue at 1000 ms)\n",
	       (long long)w.took);
	sluice_batch_free(w.b);
	/* and an empty answer after wait_ms when nothing comes */
	int64_t t0 = th_now_ms();
	sluice_batch *b = lease(c, 10, 5000, 300);
	CHECK_EQ(b->count, 0);
	CHECK(th_now_ms() - t0 >= 250);
	sluice_batch_free(b);
}

static void
purge_and_stats_fields(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	CHECK_EQ(fx_put(c, Q, "m", 0, 20, 10), 20);
	sluice_batch *b = lease(c, 5, 30000, 0);
	CHECK_EQ(fx_stat(c, Q, "depth"), 15);
	CHECK_EQ(fx_stat(c, Q, "in_flight"), 5);
	CHECK_EQ(fx_stat(c, Q, "backlog"), 20);
	CHECK(fx_stat(c, Q, "oldest_ready_age_ms") >= 0);
	uint64_t n;
	CHECK(sluice_purge(c, Q, &n) == 0);
	CHECK_EQ(n, 15);
	CHECK_EQ(fx_stat(c, Q, "depth"), 0);
	CHECK_EQ(fx_stat(c, Q, "in_flight"), 5); /* leased ones stay */
	CHECK_EQ(sluice_purge(c, "nosuchqueue", &n), PROTO_ERR_UNKNOWN_QUEUE);
	sluice_batch_free(b);
}

static void
bad_frames_are_answered_and_counted(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	static const uint8_t garbage[] = "GET / HTTP/1.1\r\n\r\n";
	static const uint8_t v9[16] = {'S', 'L', 9, 1, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0};
	static const uint8_t lying[16] = {'S', 'L', 1, 2, 0, 0, 0, 0, 0, 0, 0, 7, 0x7f, 0xff, 0xff, 0xff};
	const struct {
		const uint8_t *b;
		size_t n;
		int code;
	} cases[] = {
		{garbage, sizeof(garbage) - 1, PROTO_ERR_BAD_FRAME},
		{v9, sizeof(v9), PROTO_ERR_UNSUPPORTED_VERSION},
		{lying, sizeof(lying), PROTO_ERR_BAD_FRAME},
	};
	for (size_t i = 0; i < 3; i++) {
		nng_msg *rep = raw_request(cases[i].b, cases[i].n);
		proto_frame f;
		CHECK(proto_frame_decode(nng_msg_body(rep), nng_msg_len(rep), &f) == PROTO_OK);
		CHECK_EQ(f.h.type, PROTO_T_ERROR);
		CHECK_EQ(f.u.error.code, cases[i].code);
		if (cases[i].code == PROTO_ERR_UNSUPPORTED_VERSION)
			CHECK_EQ(f.h.request_id, 42);
		nng_msg_free(rep);
	}
	sluice_client *c = fx_client();
	sluice_stats *s;
	CHECK(sluice_stats_get(c, NULL, &s) == 0);
	CHECK_EQ(sluice_stat_value(s->broker, s->nbroker, "bad_frames", -1), 3);
	sluice_stats_free(s);
	put1(c, "still serving", NULL);
}

/* PROTOCOL.md's examples, sent by an independent client (nngcat). */
static void
nngcat_speaks_the_documented_protocol(void)
{
	if (th_sh(NULL, "command -v nngcat >/dev/null") != 0)
		th_fail(__FILE__, __LINE__, "nngcat is not installed (apt-get install nng-utils)");
	fx_config(NULL);
	fx_broker("broker.log");
	char *out;
	/* PING, as PROTOCOL.md spells it out: the reply is INFO (type 0x81) */
	CHECK(th_sh(&out, "printf '\\123\\114\\001\\001\\000\\000\\000\\000\\000\\000\\000\\001\\000\\000\\000\\000'"
	                  " > ping.bin && nngcat --req0 --dial %s --file ping.bin --raw | od -An -tx1 | tr -d ' \\n'",
	            fx.url) == 0);
	CHECK(strncmp(out, "534c0181", 8) == 0);
	CHECK_CONTAINS(out, "736c75696365"); /* "sluice" */
	/* the ENQUEUE example: the reply is IDS (0x82) with one id, 1 */
	CHECK(th_sh(&out, "printf '\\123\\114\\001\\002\\000\\000\\000\\000\\000\\000\\000\\003\\000\\000\\000\\026"
	                  "\\001\\161\\000\\000\\000\\001\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000"
	                  "\\000\\002\\150\\151' > put.bin && nngcat --req0 --dial %s --file put.bin --raw"
	                  " | od -An -tx1 | tr -d ' \\n'", fx.url) == 0);
	CHECK(strncmp(out, "534c0182", 8) == 0);
	CHECK_CONTAINS(out, "00000001000000000000000100"); /* count 1, id 1, not a duplicate */
	/* STATS of every queue: STATS_REPLY (0x85) naming queue "q" */
	CHECK(th_sh(&out, "printf '\\123\\114\\001\\007\\000\\000\\000\\000\\000\\000\\000\\002\\000\\000\\000\\005"
	                  "\\000\\000\\000\\000\\000' > stats.bin && nngcat --req0 --dial %s --file stats.bin --raw"
	                  " | od -An -tx1 | tr -d ' \\n'", fx.url) == 0);
	CHECK(strncmp(out, "534c0185", 8) == 0);
	CHECK_CONTAINS(out, "0171"); /* str8 "q" */
	CHECK_CONTAINS(out, "056465707468"); /* str8 "depth" */
}

/* A TCP connection to fx.url. */
static int
tcp_dial(void)
{
	int fd = th_dial_tcp(fx.url);
	CHECK(fd >= 0);
	return fd;
}

static bool
read_n(int fd, uint8_t *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = recv(fd, buf + got, n - got, 0);
		if (k <= 0)
			return false;
		got += (size_t)k;
	}
	return true;
}

/* Sends an SP message: the 64-bit length, the backtrace words, a PING. */
static void
send_ping(int fd, const uint32_t *bt, size_t nbt)
{
	static const uint8_t ping[16] = {'S', 'L', 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
	uint8_t msg[8 + 4 * 4 + sizeof(ping)];
	size_t n = 0;
	uint64_t len = 4 * nbt + sizeof(ping);
	for (int i = 7; i >= 0; i--)
		msg[n++] = (uint8_t)(len >> (8 * i));
	for (size_t w = 0; w < nbt; w++)
		for (int i = 3; i >= 0; i--)
			msg[n++] = (uint8_t)(bt[w] >> (8 * i));
	memcpy(msg + n, ping, sizeof(ping));
	n += sizeof(ping);
	CHECK(send(fd, msg, n, MSG_NOSIGNAL) == (ssize_t)n);
}

/* Reads one reply: its backtrace (nbt words) into bt; checks it is INFO. */
static void
read_info(int fd, uint32_t *bt, size_t nbt)
{
	uint8_t head[8], buf[512];
	CHECK(read_n(fd, head, sizeof(head)));
	uint64_t len = 0;
	for (int i = 0; i < 8; i++)
		len = len << 8 | head[i];
	CHECK(len > 4 * nbt + 16 && len < sizeof(buf));
	CHECK(read_n(fd, buf, (size_t)len));
	for (size_t w = 0; w < nbt; w++)
		bt[w] = (uint32_t)buf[4 * w] << 24 | (uint32_t)buf[4 * w + 1] << 16 |
		        (uint32_t)buf[4 * w + 2] << 8 | buf[4 * w + 3];
	CHECK(memcmp(buf + 4 * nbt, "SL\x01\x81", 4) == 0);
}

static void
sp_over_a_plain_socket_follows_the_documented_mapping(void)
{
	static const uint8_t hello_req[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};
	static const uint8_t hello_rep[8] = {0, 'S', 'P', 0, 0x00, 0x31, 0, 0};
	uint8_t got[8];
	uint32_t bt[2];
	fx_config(NULL);
	fx_broker("broker.log");

	/* the handshake, then a request through a device: two backtrace
	 * words, echoed; then two pipelined requests, both answered */
	int fd = tcp_dial();
	CHECK(send(fd, hello_req, sizeof(hello_req), MSG_NOSIGNAL) == 8);
	CHECK(read_n(fd, got, sizeof(got)));
	CHECK(memcmp(got, hello_rep, sizeof(got)) == 0);
	send_ping(fd, (const uint32_t[]){0x00000007, 0x80000009}, 2);
	read_info(fd, bt, 2);
	CHECK_EQ(bt[0], 0x00000007u);
	CHECK_EQ(bt[1], 0x80000009u);
	send_ping(fd, (const uint32_t[]){0x80000001}, 1);
	send_ping(fd, (const uint32_t[]){0x80000002}, 1);
	uint32_t a, b;
	read_info(fd, &a, 1);
	read_info(fd, &b, 1);
	CHECK((a == 0x80000001u && b == 0x80000002u) || (a == 0x80000002u && b == 0x80000001u));

	/* a length over the frame limit closes the connection */
	static const uint8_t huge[8] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0};
	CHECK(send(fd, huge, sizeof(huge), MSG_NOSIGNAL) == 8);
	CHECK(recv(fd, got, 1, 0) == 0);
	close(fd);

	/* a peer that is not a REQ socket (here PUB, 0x20) is closed */
	fd = tcp_dial();
	static const uint8_t hello_pub[8] = {0, 'S', 'P', 0, 0x00, 0x20, 0, 0};
	CHECK(send(fd, hello_pub, sizeof(hello_pub), MSG_NOSIGNAL) == 8);
	CHECK(read_n(fd, got, sizeof(got))); /* ours comes first */
	CHECK(recv(fd, got, 1, 0) == 0);
	close(fd);

	/* none of it hurt: the broker answers */
	sluice_client *c = fx_client();
	put1(c, "after", NULL);
}

static void
second_broker_on_the_same_data_refuses(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	char *out;
	int rc = th_sh(&out, "%s -c %s --listen tcp://127.0.0.1:%d 2>&1", th_bin("sluice-broker"),
	               fx.config, th_port());
	CHECK(rc != 0);
	CHECK_CONTAINS(out, "in use by another broker");
	struct stat st;
	CHECK(stat(fx.data, &st) == 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
}

static void
ids_are_never_reused_across_restarts(void)
{
	fx_config(NULL);
	pid_t b = fx_broker("broker.log");
	sluice_client *c = fx_client();
	uint64_t id = put1(c, "only", NULL);
	sluice_batch *l = lease(c, 1, 5000, 0);
	CHECK(sluice_ack(c, Q, l->token, &id, 1, NULL, 0, NULL) == 0);
	sluice_batch_free(l);
	CHECK(WIFEXITED(th_stop(b, SIGTERM, 10000)));
	fx_broker("broker2.log");
	sluice_client *c2 = fx_client();
	/* the queue is empty and the old id is gone: a new message still gets a
	 * new id, or an idempotent sink would drop it as a duplicate */
	CHECK(put1(c2, "next", NULL) > id);
}

static void
delayed_messages_survive_restart(void)
{
	fx_config(NULL);
	pid_t b = fx_broker("broker.log");
	sluice_client *c = fx_client();
	sluice_msg_in m = {.payload = "later", .len = 5, .delay_ms = 60000};
	uint64_t id;
	CHECK(sluice_enqueue(c, Q, &m, 1, &id, NULL) == 0);
	th_stop(b, SIGKILL, 5000);
	fx_broker("broker2.log");
	sluice_client *c2 = fx_client();
	CHECK_EQ(fx_stat(c2, Q, "delayed"), 1);
	CHECK_EQ(fx_stat(c2, Q, "depth"), 0);
}

static const th_case cases[] = {
	TH_CASE(concurrent_producers_all_counted),
	TH_CASE(idempotency_key_stores_once),
	TH_CASE(resent_request_stores_once),
	TH_CASE(resent_batch_with_a_request_key_stores_once),
	TH_CASE(batch_is_all_or_nothing),
	TH_CASE(lease_expires_and_is_redelivered),
	TH_CASE(touch_extends_a_lease),
	TH_CASE(nack_backoff_then_dead_letter),
	TH_CASE(release_does_not_count_an_attempt),
	TH_CASE(queue_full_is_answered_at_once),
	TH_CASE(priority_then_fifo_and_delay),
	TH_CASE(long_poll_answers_on_commit),
	TH_CASE(purge_and_stats_fields),
	TH_CASE(bad_frames_are_answered_and_counted),
	TH_CASE(nngcat_speaks_the_documented_protocol),
	TH_CASE(sp_over_a_plain_socket_follows_the_documented_mapping),
	TH_CASE(second_broker_on_the_same_data_refuses),
	TH_CASE(ids_are_never_reused_across_restarts),
	TH_CASE(delayed_messages_survive_restart),
	{NULL, NULL},
};

TH_MAIN(cases)

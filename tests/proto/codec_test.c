/* codec_test: every frame round-trips; every truncation and corruption is a
 * clean error. */
#include "codec.h"
#include "harness.h"

#include <stdlib.h>

static uint8_t buf[65536];
static proto_buf b;

static size_t
finish(void)
{
	CHECK_EQ(proto_end(&b), PROTO_OK);
	return b.len;
}

static bool
span_is(proto_span s, const char *text)
{
	return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

/* Every proper prefix of a valid frame must fail to decode, cleanly, and
 * the whole frame must decode. */
static void
check_truncations(size_t len)
{
	proto_frame f;
	for (size_t i = 0; i < len; i++) {
		/* a fresh heap copy of exactly i bytes, so ASan sees any overread */
		uint8_t *copy = malloc(i ? i : 1);
		memcpy(copy, buf, i);
		int rc = proto_frame_decode(copy, i, &f);
		free(copy);
		if (rc == PROTO_OK)
			th_fail(__FILE__, __LINE__, "prefix of %zu/%zu bytes decoded", i, len);
	}
	/* and one byte more is a length error */
	buf[len] = 0;
	CHECK_EQ(proto_frame_decode(buf, len + 1, &f), PROTO_E_LENGTH);
	CHECK_EQ(proto_frame_decode(buf, len, &f), PROTO_OK);
}

static void
ping_roundtrip(void)
{
	proto_frame f;
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_ping(&b, 0xdeadbeef);
	size_t n = finish();
	CHECK_EQ(n, PROTO_HEADER_SIZE);
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(f.h.type, PROTO_T_PING);
	CHECK_EQ(f.h.request_id, 0xdeadbeef);
	CHECK_EQ(f.h.version, PROTO_VERSION);
	check_truncations(n);
}

static void
header_bytes_are_network_order(void)
{
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_lease(&b, 0x01020304, "q", 1, 500, 30000, 1000);
	size_t n = finish();
	static const uint8_t want[16] = {'S', 'L', 1, PROTO_T_LEASE, 0, 0, 0, 0,
	                                 1, 2, 3, 4, 0, 0, 0, 14};
	CHECK_EQ(n, 16 + 14);
	CHECK(memcmp(buf, want, 16) == 0);
	/* queue: u8 length then bytes; then u32 max_count = 500 */
	CHECK_EQ(buf[16], 1);
	CHECK_EQ(buf[17], 'q');
	CHECK_EQ(buf[18], 0);
	CHECK_EQ(buf[20], 0x01);
	CHECK_EQ(buf[21], 0xF4);
}

static void
enqueue_roundtrip(void)
{
	proto_frame f;
	proto_enq_item in[3] = {
		{.key = {(const uint8_t *)"k1", 2}, .delay_ms = 0, .priority = 0,
		 .payload = {(const uint8_t *)"hello", 5}},
		{.key = {NULL, 0}, .delay_ms = 1500, .priority = -7,
		 .payload = {(const uint8_t *)"", 0}},
		{.flags = PROTO_ITEM_RETRY_KEY, .key = {(const uint8_t *)"k3", 2}, .delay_ms = 0xFFFFFFFF, .priority = 2147483647,
		 .payload = {(const uint8_t *)"x\0y", 3}},
	};
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_enqueue(&b, 7, "orders", 6);
	for (int i = 0; i < 3; i++)
		proto_enc_enq_item(&b, &in[i]);
	size_t n = finish();
	size_t expect = PROTO_ENQUEUE_BASE(6);
	for (int i = 0; i < 3; i++)
		expect += proto_enq_item_size(in[i].key.len, in[i].payload.len);
	CHECK_EQ(n, expect);
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(f.h.type, PROTO_T_ENQUEUE);
	CHECK(span_is(f.u.enqueue.queue, "orders"));
	CHECK_EQ(proto_iter_left(&f.u.enqueue.items), 3);
	proto_enq_item m;
	for (int i = 0; i < 3; i++) {
		CHECK(proto_enq_next(&f.u.enqueue.items, &m));
		CHECK_EQ(m.flags, in[i].flags);
		CHECK_EQ(m.key.len, in[i].key.len);
		CHECK_EQ(m.delay_ms, in[i].delay_ms);
		CHECK_EQ(m.priority, in[i].priority);
		CHECK_EQ(m.payload.len, in[i].payload.len);
		CHECK(m.payload.len == 0 || memcmp(m.payload.ptr, in[i].payload.ptr, m.payload.len) == 0);
	}
	CHECK(!proto_enq_next(&f.u.enqueue.items, &m));
	check_truncations(n);
}

static void
lease_roundtrip(void)
{
	proto_frame f;
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_lease(&b, 9, "q.x-1_", 6, 500, 30000, 5000);
	size_t n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK(span_is(f.u.lease.queue, "q.x-1_"));
	CHECK_EQ(f.u.lease.max_count, 500);
	CHECK_EQ(f.u.lease.visibility_ms, 30000);
	CHECK_EQ(f.u.lease.wait_ms, 5000);
	check_truncations(n);
}

static void
ack_touch_with_report_roundtrip(void)
{
	proto_frame f;
	uint64_t id;
	proto_field fl;
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_ids(&b, PROTO_T_ACK, PROTO_F_REPORT, 11, "q", 1, 0x1122334455667788ull, 0);
	proto_enc_id(&b, 1);
	proto_enc_id(&b, UINT64_MAX);
	proto_enc_report_begin(&b);
	proto_enc_field(&b, "commit_p99_us", 1234);
	proto_enc_field(&b, "breaker", -1);
	size_t n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(f.h.flags, PROTO_F_REPORT);
	CHECK(f.u.ids.token == 0x1122334455667788ull);
	CHECK(proto_id_next(&f.u.ids.ids, &id) && id == 1);
	CHECK(proto_id_next(&f.u.ids.ids, &id) && id == UINT64_MAX);
	CHECK(!proto_id_next(&f.u.ids.ids, &id));
	CHECK(proto_field_next(&f.u.ids.report, &fl) && span_is(fl.key, "commit_p99_us") && fl.value == 1234);
	CHECK(proto_field_next(&f.u.ids.report, &fl) && span_is(fl.key, "breaker") && fl.value == -1);
	CHECK(!proto_field_next(&f.u.ids.report, &fl));
	check_truncations(n);

	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_ids(&b, PROTO_T_TOUCH, 0, 12, "q", 1, 5, 60000);
	proto_enc_id(&b, 42);
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(f.h.type, PROTO_T_TOUCH);
	CHECK_EQ(f.u.ids.arg_ms, 60000);
	CHECK(proto_id_next(&f.u.ids.ids, &id) && id == 42);
	CHECK_EQ(proto_iter_left(&f.u.ids.report), 0);
	check_truncations(n);
}

static void
nack_roundtrip(void)
{
	proto_frame f;
	proto_nack_item it;
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_ids(&b, PROTO_T_NACK, 0, 13, "q", 1, 77, PROTO_DELAY_BACKOFF);
	proto_enc_nack_item(&b, 5, "disk full", 9);
	proto_enc_nack_item(&b, 6, "", 0);
	size_t n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(f.u.ids.arg_ms, PROTO_DELAY_BACKOFF);
	CHECK(proto_nack_next(&f.u.ids.ids, &it) && it.id == 5 && span_is(it.error, "disk full"));
	CHECK(proto_nack_next(&f.u.ids.ids, &it) && it.id == 6 && it.error.len == 0);
	CHECK(!proto_nack_next(&f.u.ids.ids, &it));
	check_truncations(n);
}

static void
queue_ops_roundtrip(void)
{
	static const uint8_t types[] = {PROTO_T_STATS, PROTO_T_PEEK, PROTO_T_REQUEUE, PROTO_T_PURGE};
	proto_frame f;
	for (size_t i = 0; i < sizeof(types); i++) {
		proto_buf_init(&b, buf, sizeof(buf));
		proto_enc_queue_op(&b, types[i], 20, "jobs", 4, 10);
		size_t n = finish();
		CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
		CHECK_EQ(f.h.type, types[i]);
		CHECK(span_is(f.u.queue_op.queue, "jobs"));
		CHECK_EQ(f.u.queue_op.max_count, 10);
		check_truncations(n);
	}
	/* STATS may name no queue (all of them); the others may not */
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_queue_op(&b, PROTO_T_STATS, 21, "", 0, 0);
	CHECK_EQ(proto_frame_decode(buf, finish(), &f), PROTO_OK);
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_queue_op(&b, PROTO_T_PEEK, 22, "", 0, 0);
	CHECK_EQ(proto_frame_decode(buf, finish(), &f), PROTO_E_FIELD);
}

static void
report_roundtrip(void)
{
	proto_frame f;
	proto_field fl;
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_report(&b, 30, "q", 1);
	proto_enc_field(&b, "desired_workers", 4);
	proto_enc_field(&b, "current_workers", 3);
	size_t n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK(proto_field_next(&f.u.report.fields, &fl) && fl.value == 4);
	CHECK(proto_field_next(&f.u.report.fields, &fl) && fl.value == 3);
	CHECK(!proto_field_next(&f.u.report.fields, &fl));
	check_truncations(n);
}

static void
replies_roundtrip(void)
{
	proto_frame f;
	size_t n;

	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_ok(&b, 1);
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(f.h.type, PROTO_T_OK);

	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_info(&b, 2, "sluice 0.1.0", 1048576, 1114112);
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK(span_is(f.u.info.server, "sluice 0.1.0"));
	CHECK_EQ(f.u.info.max_message_bytes, 1048576);
	CHECK_EQ(f.u.info.max_frame_bytes, 1114112);
	check_truncations(n);

	uint64_t id;
	bool dup;
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_id_list(&b, 3);
	proto_enc_idflag(&b, 100, false);
	proto_enc_idflag(&b, 50, true);
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK(proto_idflag_next(&f.u.id_list.ids, &id, &dup) && id == 100 && !dup);
	CHECK(proto_idflag_next(&f.u.id_list.ids, &id, &dup) && id == 50 && dup);
	CHECK(!proto_idflag_next(&f.u.id_list.ids, &id, &dup));
	check_truncations(n);

	proto_msg m = {.id = 9, .attempt = 2, .priority = -1, .enqueued_ms = 1700000000123,
	               .payload = {(const uint8_t *)"body", 4}};
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_messages(&b, 4, 0xabcdef);
	proto_enc_msg(&b, &m);
	proto_enc_msg(&b, &m);
	n = finish();
	CHECK_EQ(n, PROTO_MESSAGES_BASE + 2 * proto_msg_size(4));
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK(f.u.messages.token == 0xabcdef);
	proto_msg got;
	CHECK(proto_msg_next(&f.u.messages.msgs, &got));
	CHECK(got.id == 9 && got.attempt == 2 && got.priority == -1 &&
	      got.enqueued_ms == 1700000000123 && span_is(got.payload, "body"));
	CHECK(proto_msg_next(&f.u.messages.msgs, &got));
	CHECK(!proto_msg_next(&f.u.messages.msgs, &got));
	check_truncations(n);

	/* an empty MESSAGES (long poll timed out) is valid */
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_messages(&b, 5, 0);
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(proto_iter_left(&f.u.messages.msgs), 0);

	uint16_t code;
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_results(&b, 6);
	proto_enc_code(&b, PROTO_ERR_NONE);
	proto_enc_code(&b, PROTO_ERR_LEASE_EXPIRED);
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK(proto_code_next(&f.u.results.codes, &code) && code == 0);
	CHECK(proto_code_next(&f.u.results.codes, &code) && code == PROTO_ERR_LEASE_EXPIRED);
	check_truncations(n);

	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_count(&b, 7, 123456789012ull);
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK(f.u.count.count == 123456789012ull);
	check_truncations(n);

	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_error(&b, 8, PROTO_ERR_QUEUE_FULL, 250, "queue 'q' is full (1000 messages)");
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(f.h.request_id, 8);
	CHECK_EQ(f.u.error.code, PROTO_ERR_QUEUE_FULL);
	CHECK_EQ(f.u.error.retry_after_ms, 250);
	CHECK(span_is(f.u.error.message, "queue 'q' is full (1000 messages)"));
	check_truncations(n);
}

static void
stats_roundtrip(void)
{
	proto_frame f;
	proto_field fl;
	proto_queue_stats q;
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_stats(&b, 40);
	proto_enc_field(&b, "connections", 3);
	proto_enc_stats_queue(&b, "a", 1);
	proto_enc_field(&b, "depth", 10);
	proto_enc_field(&b, "in_flight", 2);
	proto_enc_stats_queue(&b, "a.dead", 6);
	proto_enc_stats_queue(&b, "b", 1);
	proto_enc_field(&b, "depth", 5);
	size_t n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK(proto_field_next(&f.u.stats.broker, &fl) && span_is(fl.key, "connections") && fl.value == 3);
	CHECK(!proto_field_next(&f.u.stats.broker, &fl));
	CHECK(proto_queue_stats_next(&f.u.stats.queues, &q) && span_is(q.name, "a"));
	CHECK(proto_field_next(&q.fields, &fl) && span_is(fl.key, "depth") && fl.value == 10);
	CHECK(proto_field_next(&q.fields, &fl) && span_is(fl.key, "in_flight") && fl.value == 2);
	CHECK(!proto_field_next(&q.fields, &fl));
	CHECK(proto_queue_stats_next(&f.u.stats.queues, &q) && span_is(q.name, "a.dead"));
	CHECK(!proto_field_next(&q.fields, &fl));
	CHECK(proto_queue_stats_next(&f.u.stats.queues, &q) && span_is(q.name, "b"));
	CHECK(proto_field_next(&q.fields, &fl) && fl.value == 5);
	CHECK(!proto_queue_stats_next(&f.u.stats.queues, &q));
	check_truncations(n);

	/* a broker with no queues */
	proto_buf_init(&b, buf, sizeof(buf));
	proto_enc_stats(&b, 41);
	n = finish();
	CHECK_EQ(proto_frame_decode(buf, n, &f), PROTO_OK);
	CHECK_EQ(proto_iter_left(&f.u.stats.queues), 0);
}

/* Hand-made bad frames: each must give its specific error. */
static void
bad_frames_corpus(void)
{
	static const struct {
		const char *what;
		uint8_t bytes[40];
		size_t len;
		int rc;
	} bad[] = {
		{"empty", {0}, 0, PROTO_E_SHORT},
		{"one byte", {'S'}, 1, PROTO_E_SHORT},
		{"wrong magic", {'H', 'T', 'T', 'P', '/', '1', '.', '1', 0, 0, 0, 0, 0, 0, 0, 0}, 16, PROTO_E_MAGIC},
		{"header cut", {'S', 'L', 1, 1, 0, 0, 0, 0, 0, 0, 0}, 11, PROTO_E_SHORT},
		{"version 2", {'S', 'L', 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}, 16, PROTO_E_VERSION},
		{"version 0", {'S', 'L', 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}, 16, PROTO_E_VERSION},
		{"type 0x7f", {'S', 'L', 1, 0x7f, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}, 16, PROTO_E_TYPE},
		{"reserved set", {'S', 'L', 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}, 16, PROTO_E_FIELD},
		{"claims 4 GiB body", {'S', 'L', 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, 16, PROTO_E_SHORT},
		{"ping with a body", {'S', 'L', 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'x'}, 17, PROTO_E_LENGTH},
		{"body shorter than claimed", {'S', 'L', 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 'x'}, 17, PROTO_E_SHORT},
		{"enqueue, empty queue name",
		 {'S', 'L', 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 1}, 21, PROTO_E_FIELD},
		{"enqueue, zero messages",
		 {'S', 'L', 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 6, 1, 'q', 0, 0, 0, 0}, 22, PROTO_E_FIELD},
		{"enqueue, count 2^32-1 with no items",
		 {'S', 'L', 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 6, 1, 'q', 0xff, 0xff, 0xff, 0xff}, 22, PROTO_E_SHORT},
		{"enqueue, payload length past the end",
		 {'S', 'L', 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 20, 1, 'q', 0, 0, 0, 1,
		  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 'a'}, 36, PROTO_E_SHORT},
		{"enqueue, unknown item flag",
		 {'S', 'L', 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 20, 1, 'q', 0, 0, 0, 1,
		  0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 36, PROTO_E_FIELD},
		{"lease, max_count 0",
		 {'S', 'L', 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 14, 1, 'q', 0, 0, 0, 0,
		  0, 0, 0, 0, 0, 0, 0, 0}, 30, PROTO_E_FIELD},
		{"lease, queue name of 200 bytes claimed",
		 {'S', 'L', 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 200}, 17, PROTO_E_SHORT},
		{"ack, no ids",
		 {'S', 'L', 1, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 18, 1, 'q', 0, 0, 0, 0, 0, 0, 0, 0,
		  0, 0, 0, 0, 0, 0, 0, 0}, 34, PROTO_E_FIELD},
		{"idflag not 0/1",
		 {'S', 'L', 1, 0x82, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 13, 0, 0, 0, 1,
		  0, 0, 0, 0, 0, 0, 0, 1, 7}, 29, PROTO_E_FIELD},
	};
	proto_frame f;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *copy = malloc(bad[i].len ? bad[i].len : 1);
		memcpy(copy, bad[i].bytes, bad[i].len);
		int rc = proto_frame_decode(copy, bad[i].len, &f);
		free(copy);
		if (rc != bad[i].rc)
			th_fail(__FILE__, __LINE__, "%s: got %d (%s), want %d (%s)", bad[i].what, rc,
			        proto_strerror(rc), bad[i].rc, proto_strerror(bad[i].rc));
	}
	/* a version error still tells the request id, so it can be answered */
	static const uint8_t v9[16] = {'S', 'L', 9, 1, 0, 0, 0, 0, 0, 0, 0x30, 0x39, 0, 0, 0, 0};
	CHECK_EQ(proto_frame_decode(v9, 16, &f), PROTO_E_VERSION);
	CHECK_EQ(f.h.request_id, 12345);
}

static void
random_bytes_never_crash(void)
{
	proto_frame f;
	uint32_t seed = 12345;
	for (int i = 0; i < 200000; i++) {
		uint8_t tmp[64];
		size_t len = (size_t)(seed % 64);
		for (size_t j = 0; j < len; j++) {
			seed = seed * 1103515245 + 12345;
			tmp[j] = (uint8_t)(seed >> 16);
		}
		if (len > 2) { /* mostly valid headers, to reach the bodies */
			tmp[0] = 'S';
			tmp[1] = 'L';
			tmp[2] = 1;
		}
		seed = seed * 1103515245 + 12345;
		(void)proto_frame_decode(tmp, len, &f);
	}
}

static void
encode_reports_no_space(void)
{
	uint8_t small[20];
	proto_buf_init(&b, small, sizeof(small));
	proto_enc_enqueue(&b, 1, "queue", 5);
	proto_enq_item m = {.payload = {(const uint8_t *)"0123456789", 10}};
	proto_enc_enq_item(&b, &m);
	CHECK_EQ(proto_end(&b), PROTO_E_NOSPACE);
	CHECK(b.len <= sizeof(small));
}

static void
names_are_human(void)
{
	CHECK_STR(proto_err_name(PROTO_ERR_QUEUE_FULL), "queue full");
	CHECK_STR(proto_err_name(PROTO_ERR_LEASE_EXPIRED), "lease expired");
	CHECK_STR(proto_type_name(PROTO_T_ENQUEUE), "ENQUEUE");
	CHECK(proto_type_name(0x42) == NULL);
	CHECK_STR(proto_strerror(PROTO_E_SHORT), "frame truncated");
}

static const th_case cases[] = {
	TH_CASE(ping_roundtrip),
	TH_CASE(header_bytes_are_network_order),
	TH_CASE(enqueue_roundtrip),
	TH_CASE(lease_roundtrip),
	TH_CASE(ack_touch_with_report_roundtrip),
	TH_CASE(nack_roundtrip),
	TH_CASE(queue_ops_roundtrip),
	TH_CASE(report_roundtrip),
	TH_CASE(replies_roundtrip),
	TH_CASE(stats_roundtrip),
	TH_CASE(bad_frames_corpus),
	TH_CASE(random_bytes_never_crash),
	TH_CASE(encode_reports_no_space),
	TH_CASE(names_are_human),
	{NULL, NULL},
};

TH_MAIN(cases)

/*
 * codec: encodes and decodes the frames of proto/PROTOCOL.md. Integers go
 * byte by byte in network order; no struct is ever copied to the wire. A
 * reader carries a sticky error so each decoder checks once at the end.
 */
#include "codec.h"

#include <string.h>

/* ---- reading ---- */

typedef struct reader {
	const uint8_t *p;
	const uint8_t *end;
	int err;
} reader;

static bool
need(reader *r, size_t n)
{
	if (r->err != PROTO_OK)
		return false;
	if ((size_t)(r->end - r->p) < n) {
		r->err = PROTO_E_SHORT;
		r->p = r->end;
		return false;
	}
	return true;
}

static uint8_t
get_u8(reader *r)
{
	if (!need(r, 1))
		return 0;
	return *r->p++;
}

static uint16_t
get_u16(reader *r)
{
	if (!need(r, 2))
		return 0;
	uint16_t v = (uint16_t)((r->p[0] << 8) | r->p[1]);
	r->p += 2;
	return v;
}

static uint32_t
get_u32(reader *r)
{
	if (!need(r, 4))
		return 0;
	uint32_t v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) |
	             ((uint32_t)r->p[2] << 8) | (uint32_t)r->p[3];
	r->p += 4;
	return v;
}

static uint64_t
get_u64(reader *r)
{
	uint64_t hi = get_u32(r);
	uint64_t lo = get_u32(r);
	return (hi << 32) | lo;
}

static proto_span
get_span(reader *r, size_t n)
{
	proto_span s = {NULL, 0};
	if (!need(r, n))
		return s;
	s.ptr = r->p;
	s.len = n;
	r->p += n;
	return s;
}

static proto_span
get_str8(reader *r)
{
	size_t n = get_u8(r);
	return get_span(r, n);
}

static proto_span
get_str16(reader *r)
{
	size_t n = get_u16(r);
	return get_span(r, n);
}

static proto_span
get_bytes32(reader *r)
{
	size_t n = get_u32(r);
	return get_span(r, n);
}

static void
field_error(reader *r)
{
	if (r->err == PROTO_OK)
		r->err = PROTO_E_FIELD;
}

static proto_span
get_queue(reader *r, bool may_be_empty)
{
	proto_span q = get_str8(r);
	if (r->err == PROTO_OK && (q.len > PROTO_MAX_QUEUE_LEN || (q.len == 0 && !may_be_empty)))
		field_error(r);
	return q;
}

/*
 * Item lists: a u32 count, then items. Validation walks every item with the
 * same parser the iterator uses, so a list that validated cannot fail later.
 */
typedef void (*item_fn)(reader *r, void *out);

static proto_iter
get_list(reader *r, item_fn item, void *scratch, bool may_be_empty)
{
	proto_iter it = {NULL, NULL, 0};
	uint32_t n = get_u32(r);
	if (r->err != PROTO_OK)
		return it;
	if (n == 0 && !may_be_empty) {
		field_error(r);
		return it;
	}
	it.p = r->p;
	it.left = n;
	for (uint32_t i = 0; i < n && r->err == PROTO_OK; i++)
		item(r, scratch);
	it.end = r->p;
	return it;
}

static void
read_enq_item(reader *r, void *out)
{
	proto_enq_item *m = out;
	m->flags = get_u8(r);
	if (m->flags & ~PROTO_ITEM_RETRY_KEY)
		field_error(r);
	m->key = get_str8(r);
	m->delay_ms = get_u32(r);
	m->priority = (int32_t)get_u32(r);
	m->payload = get_bytes32(r);
}

static void
read_id(reader *r, void *out)
{
	*(uint64_t *)out = get_u64(r);
}

static void
read_nack_item(reader *r, void *out)
{
	proto_nack_item *m = out;
	m->id = get_u64(r);
	m->error = get_str16(r);
}

static void
read_idflag(reader *r, void *out)
{
	uint64_t *v = out;
	v[0] = get_u64(r);
	v[1] = get_u8(r);
	if (v[1] > 1)
		field_error(r);
}

static void
read_msg(reader *r, void *out)
{
	proto_msg *m = out;
	m->id = get_u64(r);
	m->attempt = get_u32(r);
	m->priority = (int32_t)get_u32(r);
	m->enqueued_ms = (int64_t)get_u64(r);
	m->payload = get_bytes32(r);
}

static void
read_code(reader *r, void *out)
{
	*(uint16_t *)out = get_u16(r);
}

static void
read_field(reader *r, void *out)
{
	proto_field *f = out;
	f->key = get_str8(r);
	if (r->err == PROTO_OK && f->key.len == 0)
		field_error(r);
	f->value = (int64_t)get_u64(r);
}

static void
read_queue_stats(reader *r, void *out)
{
	proto_queue_stats *q = out;
	proto_field f;
	q->name = get_queue(r, false);
	q->fields = get_list(r, read_field, &f, true);
}

static bool
iter_next(proto_iter *it, item_fn item, void *out)
{
	if (it->left == 0)
		return false;
	reader r = {it->p, it->end, PROTO_OK};
	item(&r, out);
	if (r.err != PROTO_OK) { /* cannot happen on a validated list */
		it->left = 0;
		return false;
	}
	it->p = r.p;
	it->left--;
	return true;
}

bool
proto_enq_next(proto_iter *it, proto_enq_item *out)
{
	return iter_next(it, read_enq_item, out);
}

bool
proto_id_next(proto_iter *it, uint64_t *id)
{
	return iter_next(it, read_id, id);
}

bool
proto_nack_next(proto_iter *it, proto_nack_item *out)
{
	return iter_next(it, read_nack_item, out);
}

bool
proto_idflag_next(proto_iter *it, uint64_t *id, bool *duplicate)
{
	uint64_t v[2];
	if (!iter_next(it, read_idflag, v))
		return false;
	*id = v[0];
	*duplicate = v[1] != 0;
	return true;
}

bool
proto_msg_next(proto_iter *it, proto_msg *out)
{
	return iter_next(it, read_msg, out);
}

bool
proto_code_next(proto_iter *it, uint16_t *code)
{
	return iter_next(it, read_code, code);
}

bool
proto_field_next(proto_iter *it, proto_field *out)
{
	return iter_next(it, read_field, out);
}

bool
proto_queue_stats_next(proto_iter *it, proto_queue_stats *out)
{
	return iter_next(it, read_queue_stats, out);
}

static void
decode_body(reader *r, proto_frame *f)
{
	union {
		proto_enq_item enq;
		proto_nack_item nack;
		proto_msg msg;
		proto_field field;
		proto_queue_stats qs;
		uint64_t ids[2];
		uint16_t code;
	} s;

	switch (f->h.type) {
	case PROTO_T_PING:
	case PROTO_T_OK:
		break;
	case PROTO_T_ENQUEUE:
		f->u.enqueue.queue = get_queue(r, false);
		f->u.enqueue.items = get_list(r, read_enq_item, &s.enq, false);
		break;
	case PROTO_T_LEASE:
		f->u.lease.queue = get_queue(r, false);
		f->u.lease.max_count = get_u32(r);
		f->u.lease.visibility_ms = get_u32(r);
		f->u.lease.wait_ms = get_u32(r);
		if (r->err == PROTO_OK && f->u.lease.max_count == 0)
			field_error(r);
		break;
	case PROTO_T_ACK:
	case PROTO_T_TOUCH:
	case PROTO_T_NACK:
		f->u.ids.queue = get_queue(r, false);
		f->u.ids.token = get_u64(r);
		f->u.ids.arg_ms = get_u32(r);
		if (f->h.type == PROTO_T_NACK)
			f->u.ids.ids = get_list(r, read_nack_item, &s.nack, false);
		else
			f->u.ids.ids = get_list(r, read_id, &s.ids[0], false);
		memset(&f->u.ids.report, 0, sizeof(f->u.ids.report));
		if (f->h.type == PROTO_T_ACK && (f->h.flags & PROTO_F_REPORT))
			f->u.ids.report = get_list(r, read_field, &s.field, true);
		break;
	case PROTO_T_STATS:
	case PROTO_T_PEEK:
	case PROTO_T_REQUEUE:
	case PROTO_T_PURGE:
		f->u.queue_op.queue = get_queue(r, f->h.type == PROTO_T_STATS);
		f->u.queue_op.max_count = get_u32(r);
		break;
	case PROTO_T_REPORT:
		f->u.report.queue = get_queue(r, false);
		f->u.report.fields = get_list(r, read_field, &s.field, true);
		break;
	case PROTO_T_INFO:
		f->u.info.server = get_str8(r);
		f->u.info.max_message_bytes = get_u32(r);
		f->u.info.max_frame_bytes = get_u32(r);
		break;
	case PROTO_T_IDS:
		f->u.id_list.ids = get_list(r, read_idflag, s.ids, true);
		break;
	case PROTO_T_MESSAGES:
		f->u.messages.token = get_u64(r);
		f->u.messages.msgs = get_list(r, read_msg, &s.msg, true);
		break;
	case PROTO_T_RESULTS:
		f->u.results.codes = get_list(r, read_code, &s.code, true);
		break;
	case PROTO_T_STATS_REPLY:
		f->u.stats.broker = get_list(r, read_field, &s.field, true);
		f->u.stats.queues = get_list(r, read_queue_stats, &s.qs, true);
		break;
	case PROTO_T_COUNT:
		f->u.count.count = get_u64(r);
		break;
	case PROTO_T_ERROR:
		f->u.error.code = get_u16(r);
		f->u.error.retry_after_ms = get_u32(r);
		f->u.error.message = get_str16(r);
		break;
	default:
		r->err = PROTO_E_TYPE;
	}
}

const char *
proto_type_name(int type)
{
	switch (type) {
	case PROTO_T_PING: return "PING";
	case PROTO_T_ENQUEUE: return "ENQUEUE";
	case PROTO_T_LEASE: return "LEASE";
	case PROTO_T_ACK: return "ACK";
	case PROTO_T_NACK: return "NACK";
	case PROTO_T_TOUCH: return "TOUCH";
	case PROTO_T_STATS: return "STATS";
	case PROTO_T_PEEK: return "PEEK";
	case PROTO_T_REQUEUE: return "REQUEUE";
	case PROTO_T_PURGE: return "PURGE";
	case PROTO_T_REPORT: return "REPORT";
	case PROTO_T_OK: return "OK";
	case PROTO_T_INFO: return "INFO";
	case PROTO_T_IDS: return "IDS";
	case PROTO_T_MESSAGES: return "MESSAGES";
	case PROTO_T_RESULTS: return "RESULTS";
	case PROTO_T_STATS_REPLY: return "STATS_REPLY";
	case PROTO_T_COUNT: return "COUNT";
	case PROTO_T_ERROR: return "ERROR";
	default: return NULL;
	}
}

int
proto_frame_decode(const uint8_t *buf, size_t len, proto_frame *f)
{
	memset(f, 0, sizeof(*f));
	if (len < 2)
		return PROTO_E_SHORT;
	if (buf[0] != PROTO_MAGIC0 || buf[1] != PROTO_MAGIC1)
		return PROTO_E_MAGIC;
	if (len < PROTO_HEADER_SIZE)
		return PROTO_E_SHORT;
	reader r = {buf + 2, buf + len, PROTO_OK};
	f->h.version = get_u8(&r);
	f->h.type = get_u8(&r);
	f->h.flags = get_u16(&r);
	uint16_t reserved = get_u16(&r);
	f->h.request_id = get_u32(&r);
	f->h.body_len = get_u32(&r);
	if (f->h.version != PROTO_VERSION)
		return PROTO_E_VERSION;
	if (proto_type_name(f->h.type) == NULL)
		return PROTO_E_TYPE;
	if (reserved != 0)
		return PROTO_E_FIELD;
	if (f->h.body_len > len - PROTO_HEADER_SIZE)
		return PROTO_E_SHORT;
	if (f->h.body_len < len - PROTO_HEADER_SIZE)
		return PROTO_E_LENGTH;
	decode_body(&r, f);
	if (r.err != PROTO_OK)
		return r.err;
	if (r.p != r.end)
		return PROTO_E_LENGTH;
	return PROTO_OK;
}

/* ---- writing ---- */

void
proto_buf_init(proto_buf *b, uint8_t *mem, size_t cap)
{
	memset(b, 0, sizeof(*b));
	b->data = mem;
	b->cap = cap;
}

static uint8_t *
reserve(proto_buf *b, size_t n)
{
	if (b->err != PROTO_OK)
		return NULL;
	if (b->cap - b->len < n) {
		b->err = PROTO_E_NOSPACE;
		return NULL;
	}
	uint8_t *p = b->data + b->len;
	b->len += n;
	return p;
}

static void
set_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void
proto_put_u8(proto_buf *b, uint8_t v)
{
	uint8_t *p = reserve(b, 1);
	if (p != NULL)
		p[0] = v;
}

void
proto_put_u16(proto_buf *b, uint16_t v)
{
	uint8_t *p = reserve(b, 2);
	if (p != NULL) {
		p[0] = (uint8_t)(v >> 8);
		p[1] = (uint8_t)v;
	}
}

void
proto_put_u32(proto_buf *b, uint32_t v)
{
	uint8_t *p = reserve(b, 4);
	if (p != NULL)
		set_u32(p, v);
}

void
proto_put_u64(proto_buf *b, uint64_t v)
{
	proto_put_u32(b, (uint32_t)(v >> 32));
	proto_put_u32(b, (uint32_t)v);
}

static void
put_raw(proto_buf *b, const void *s, size_t len)
{
	uint8_t *p = reserve(b, len);
	if (p != NULL && len > 0)
		memcpy(p, s, len);
}

void
proto_put_str8(proto_buf *b, const void *s, size_t len)
{
	if (len > 255) {
		if (b->err == PROTO_OK)
			b->err = PROTO_E_FIELD;
		return;
	}
	proto_put_u8(b, (uint8_t)len);
	put_raw(b, s, len);
}

void
proto_put_str16(proto_buf *b, const void *s, size_t len)
{
	if (len > 0xFFFF)
		len = 0xFFFF;
	proto_put_u16(b, (uint16_t)len);
	put_raw(b, s, len);
}

void
proto_put_bytes32(proto_buf *b, const void *s, size_t len)
{
	if (len > 0xFFFFFFFFu) {
		if (b->err == PROTO_OK)
			b->err = PROTO_E_FIELD;
		return;
	}
	proto_put_u32(b, (uint32_t)len);
	put_raw(b, s, len);
}

/* Opens an item list: a u32 count patched when the list is closed. */
static void
list_open(proto_buf *b)
{
	if (b->depth >= 2) { /* a bug in the caller's sequence of calls */
		if (b->err == PROTO_OK)
			b->err = PROTO_E_FIELD;
		return;
	}
	b->count_off[b->depth] = b->len;
	b->count[b->depth] = 0;
	b->depth++;
	proto_put_u32(b, 0);
}

static void
list_close(proto_buf *b)
{
	if (b->depth == 0)
		return;
	b->depth--;
	if (b->err == PROTO_OK)
		set_u32(b->data + b->count_off[b->depth], b->count[b->depth]);
}

static void
list_item(proto_buf *b)
{
	if (b->depth > 0)
		b->count[b->depth - 1]++;
}

void
proto_begin(proto_buf *b, uint8_t type, uint16_t flags, uint32_t rid)
{
	b->len = 0;
	b->err = PROTO_OK;
	b->depth = 0;
	b->stats_no_queue = false;
	proto_put_u8(b, PROTO_MAGIC0);
	proto_put_u8(b, PROTO_MAGIC1);
	proto_put_u8(b, PROTO_VERSION);
	proto_put_u8(b, type);
	proto_put_u16(b, flags);
	proto_put_u16(b, 0);
	proto_put_u32(b, rid);
	proto_put_u32(b, 0); /* body length, patched by proto_end */
}

void
proto_set_flags(proto_buf *b, uint16_t flags)
{
	if (b->err == PROTO_OK && b->len >= PROTO_HEADER_SIZE) {
		b->data[4] = (uint8_t)(flags >> 8);
		b->data[5] = (uint8_t)flags;
	}
}

int
proto_end(proto_buf *b)
{
	if (b->stats_no_queue) { /* a STATS_REPLY with no queue: an empty list */
		list_close(b);
		proto_put_u32(b, 0);
		b->stats_no_queue = false;
	}
	while (b->depth > 0)
		list_close(b);
	if (b->err == PROTO_OK) {
		if (b->len < PROTO_HEADER_SIZE || b->len - PROTO_HEADER_SIZE > 0xFFFFFFFFu)
			b->err = PROTO_E_FIELD;
		else
			set_u32(b->data + 12, (uint32_t)(b->len - PROTO_HEADER_SIZE));
	}
	return b->err;
}

void
proto_enc_ping(proto_buf *b, uint32_t rid)
{
	proto_begin(b, PROTO_T_PING, 0, rid);
}

void
proto_enc_enqueue(proto_buf *b, uint32_t rid, const char *queue, size_t qlen)
{
	proto_begin(b, PROTO_T_ENQUEUE, 0, rid);
	proto_put_str8(b, queue, qlen);
	list_open(b);
}

void
proto_enc_enq_item(proto_buf *b, const proto_enq_item *m)
{
	list_item(b);
	proto_put_u8(b, m->flags);
	proto_put_str8(b, m->key.ptr, m->key.len);
	proto_put_u32(b, m->delay_ms);
	proto_put_u32(b, (uint32_t)m->priority);
	proto_put_bytes32(b, m->payload.ptr, m->payload.len);
}

size_t
proto_enq_item_size(size_t keylen, size_t payloadlen)
{
	return 1 + 1 + keylen + 4 + 4 + 4 + payloadlen;
}

void
proto_enc_lease(proto_buf *b, uint32_t rid, const char *queue, size_t qlen, uint32_t max_count,
                uint32_t visibility_ms, uint32_t wait_ms)
{
	proto_begin(b, PROTO_T_LEASE, 0, rid);
	proto_put_str8(b, queue, qlen);
	proto_put_u32(b, max_count);
	proto_put_u32(b, visibility_ms);
	proto_put_u32(b, wait_ms);
}

void
proto_enc_ids(proto_buf *b, uint8_t type, uint16_t flags, uint32_t rid, const char *queue,
              size_t qlen, uint64_t token, uint32_t arg_ms)
{
	proto_begin(b, type, flags, rid);
	proto_put_str8(b, queue, qlen);
	proto_put_u64(b, token);
	proto_put_u32(b, arg_ms);
	list_open(b);
}

void
proto_enc_id(proto_buf *b, uint64_t id)
{
	list_item(b);
	proto_put_u64(b, id);
}

void
proto_enc_nack_item(proto_buf *b, uint64_t id, const char *err, size_t errlen)
{
	list_item(b);
	proto_put_u64(b, id);
	proto_put_str16(b, err, errlen);
}

void
proto_enc_report_begin(proto_buf *b)
{
	list_close(b); /* the ids */
	list_open(b);
}

void
proto_enc_queue_op(proto_buf *b, uint8_t type, uint32_t rid, const char *queue, size_t qlen,
                   uint32_t max_count)
{
	proto_begin(b, type, 0, rid);
	proto_put_str8(b, queue, qlen);
	proto_put_u32(b, max_count);
}

void
proto_enc_report(proto_buf *b, uint32_t rid, const char *queue, size_t qlen)
{
	proto_begin(b, PROTO_T_REPORT, 0, rid);
	proto_put_str8(b, queue, qlen);
	list_open(b);
}

void
proto_enc_field(proto_buf *b, const char *key, int64_t value)
{
	list_item(b);
	proto_put_str8(b, key, strlen(key));
	proto_put_u64(b, (uint64_t)value);
}

void
proto_enc_ok(proto_buf *b, uint32_t rid)
{
	proto_begin(b, PROTO_T_OK, 0, rid);
}

void
proto_enc_info(proto_buf *b, uint32_t rid, const char *server, uint32_t max_message_bytes,
               uint32_t max_frame_bytes)
{
	proto_begin(b, PROTO_T_INFO, 0, rid);
	proto_put_str8(b, server, strlen(server));
	proto_put_u32(b, max_message_bytes);
	proto_put_u32(b, max_frame_bytes);
}

void
proto_enc_id_list(proto_buf *b, uint32_t rid)
{
	proto_begin(b, PROTO_T_IDS, 0, rid);
	list_open(b);
}

void
proto_enc_idflag(proto_buf *b, uint64_t id, bool duplicate)
{
	list_item(b);
	proto_put_u64(b, id);
	proto_put_u8(b, duplicate ? 1 : 0);
}

void
proto_enc_messages(proto_buf *b, uint32_t rid, uint64_t token)
{
	proto_begin(b, PROTO_T_MESSAGES, 0, rid);
	proto_put_u64(b, token);
	list_open(b);
}

void
proto_enc_msg(proto_buf *b, const proto_msg *m)
{
	list_item(b);
	proto_put_u64(b, m->id);
	proto_put_u32(b, m->attempt);
	proto_put_u32(b, (uint32_t)m->priority);
	proto_put_u64(b, (uint64_t)m->enqueued_ms);
	proto_put_bytes32(b, m->payload.ptr, m->payload.len);
}

size_t
proto_msg_size(size_t payloadlen)
{
	return 8 + 4 + 4 + 8 + 4 + payloadlen;
}

void
proto_enc_results(proto_buf *b, uint32_t rid)
{
	proto_begin(b, PROTO_T_RESULTS, 0, rid);
	list_open(b);
}

void
proto_enc_code(proto_buf *b, uint16_t code)
{
	list_item(b);
	proto_put_u16(b, code);
}

void
proto_enc_stats(proto_buf *b, uint32_t rid)
{
	proto_begin(b, PROTO_T_STATS_REPLY, 0, rid);
	list_open(b); /* the broker's fields */
	b->stats_no_queue = true;
}

void
proto_enc_stats_queue(proto_buf *b, const char *name, size_t nlen)
{
	if (b->stats_no_queue) { /* first queue: close the broker's fields, open the queues */
		b->stats_no_queue = false;
		list_close(b);
		list_open(b);
	} else {
		list_close(b); /* the previous queue's fields */
	}
	list_item(b);
	proto_put_str8(b, name, nlen);
	list_open(b);
}

void
proto_enc_count(proto_buf *b, uint32_t rid, uint64_t count)
{
	proto_begin(b, PROTO_T_COUNT, 0, rid);
	proto_put_u64(b, count);
}

void
proto_enc_error(proto_buf *b, uint32_t rid, uint16_t code, uint32_t retry_after_ms,
                const char *message)
{
	proto_begin(b, PROTO_T_ERROR, 0, rid);
	proto_put_u16(b, code);
	proto_put_u32(b, retry_after_ms);
	proto_put_str16(b, message, message ? strlen(message) : 0);
}

const char *
proto_err_name(int code)
{
	switch (code) {
	case PROTO_ERR_NONE: return "ok";
	case PROTO_ERR_BAD_FRAME: return "bad frame";
	case PROTO_ERR_UNSUPPORTED_VERSION: return "unsupported protocol version";
	case PROTO_ERR_UNKNOWN_QUEUE: return "unknown queue";
	case PROTO_ERR_TOO_LARGE: return "message too large";
	case PROTO_ERR_QUEUE_FULL: return "queue full";
	case PROTO_ERR_NOT_LEASED: return "not leased";
	case PROTO_ERR_LEASE_EXPIRED: return "lease expired";
	case PROTO_ERR_INTERNAL: return "internal error";
	case PROTO_ERR_BAD_REQUEST: return "bad request";
	case PROTO_ERR_STORAGE: return "storage error";
	case PROTO_ERR_SHUTTING_DOWN: return "shutting down";
	case PROTO_ERR_UNAUTHORIZED: return "unauthorized";
	default: return "unknown error";
	}
}

const char *
proto_strerror(int rc)
{
	switch (rc) {
	case PROTO_OK: return "ok";
	case PROTO_E_SHORT: return "frame truncated";
	case PROTO_E_MAGIC: return "not a Sluice frame (bad magic)";
	case PROTO_E_VERSION: return "unsupported protocol version";
	case PROTO_E_TYPE: return "unknown frame type";
	case PROTO_E_LENGTH: return "frame length does not match its body";
	case PROTO_E_FIELD: return "field out of range";
	case PROTO_E_NOSPACE: return "buffer too small";
	default: return "unknown codec error";
	}
}

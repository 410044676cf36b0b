/*
 * codec: Sluice's wire frames <-> C values. Pure: no I/O, no allocation.
 * Encoders write into a caller's buffer (proto_buf); decoders read a byte
 * span and check every length against it, so a short, long or corrupt frame
 * decodes to a PROTO_E_* code, never to an out-of-bounds read. The format is
 * specified in proto/PROTOCOL.md; keep the two in step.
 *
 * Decoded values borrow from the frame they came from (proto_span points
 * into it): keep the frame alive while you use them.
 *
 * Decoding a frame validates all of it, item lists included; the iterators
 * (proto_*_next) then walk items that are known to be well formed.
 */
#ifndef SLUICE_PROTO_CODEC_H
#define SLUICE_PROTO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC0 0x53 /* 'S' */
#define PROTO_MAGIC1 0x4C /* 'L' */
#define PROTO_VERSION 1
#define PROTO_HEADER_SIZE 16

/* Frame types. Requests have the high bit clear; replies set it. */
enum proto_type {
	PROTO_T_PING = 0x01,
	PROTO_T_ENQUEUE = 0x02,
	PROTO_T_LEASE = 0x03,
	PROTO_T_ACK = 0x04,
	PROTO_T_NACK = 0x05,
	PROTO_T_TOUCH = 0x06,
	PROTO_T_STATS = 0x07,
	PROTO_T_PEEK = 0x08,
	PROTO_T_REQUEUE = 0x09,
	PROTO_T_PURGE = 0x0A,
	PROTO_T_REPORT = 0x0B,

	PROTO_T_OK = 0x80,
	PROTO_T_INFO = 0x81,
	PROTO_T_IDS = 0x82,
	PROTO_T_MESSAGES = 0x83,
	PROTO_T_RESULTS = 0x84,
	PROTO_T_STATS_REPLY = 0x85,
	PROTO_T_COUNT = 0x86,
	PROTO_T_ERROR = 0xFF,
};

/* Header flags. */
#define PROTO_F_REPORT 0x0001     /* ACK: a report (fields) follows the ids */
#define PROTO_F_NO_ATTEMPT 0x0002 /* NACK: the delivery does not count as an attempt */
#define PROTO_F_REQUEST_KEY 0x0004 /* ENQUEUE: the first message's retry key stands for
                                    * the whole request; no other message has a key */

/* Codec results: 0 is success. */
#define PROTO_OK 0
#define PROTO_E_SHORT 1    /* the span ends before the frame does */
#define PROTO_E_MAGIC 2    /* not a Sluice frame */
#define PROTO_E_VERSION 3  /* a version this codec does not speak */
#define PROTO_E_TYPE 4     /* unknown frame type */
#define PROTO_E_LENGTH 5   /* body length disagrees with the span, or bytes left over */
#define PROTO_E_FIELD 6    /* a field out of range (empty queue name, zero count...) */
#define PROTO_E_NOSPACE 7  /* encode: the buffer is too small */

/* Error codes carried in ERROR replies and per-id RESULTS (0 = ok). */
enum proto_err {
	PROTO_ERR_NONE = 0,
	PROTO_ERR_BAD_FRAME = 1,
	PROTO_ERR_UNSUPPORTED_VERSION = 2,
	PROTO_ERR_UNKNOWN_QUEUE = 3,
	PROTO_ERR_TOO_LARGE = 4,
	PROTO_ERR_QUEUE_FULL = 5,
	PROTO_ERR_NOT_LEASED = 6,
	PROTO_ERR_LEASE_EXPIRED = 7,
	PROTO_ERR_INTERNAL = 8,
	PROTO_ERR_BAD_REQUEST = 9,
	PROTO_ERR_STORAGE = 10,
	PROTO_ERR_SHUTTING_DOWN = 11,
	PROTO_ERR_UNAUTHORIZED = 12,
};

#define PROTO_MAX_QUEUE_LEN 128
#define PROTO_MAX_KEY_LEN 255
#define PROTO_DELAY_BACKOFF 0xFFFFFFFFu /* NACK: use the queue's retry backoff */

typedef struct proto_span {
	const uint8_t *ptr;
	size_t len;
} proto_span;

typedef struct proto_header {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t request_id;
	uint32_t body_len;
} proto_header;

/* An iterator over a validated item list inside a decoded frame. */
typedef struct proto_iter {
	const uint8_t *p;
	const uint8_t *end;
	uint32_t left;
} proto_iter;

/* ENQUEUE item flags. */
#define PROTO_ITEM_RETRY_KEY 0x01 /* the key was generated for safe resends only */

/* One message of an ENQUEUE. */
typedef struct proto_enq_item {
	uint8_t flags;       /* PROTO_ITEM_* */
	proto_span key;      /* idempotency key; len 0 = none */
	uint32_t delay_ms;   /* not visible before now + delay */
	int32_t priority;    /* higher first */
	proto_span payload;
} proto_enq_item;

/* One message of a MESSAGES reply. */
typedef struct proto_msg {
	uint64_t id;
	uint32_t attempt;    /* 1 on the first delivery */
	int32_t priority;
	int64_t enqueued_ms; /* wall time, ms since the epoch */
	proto_span payload;
} proto_msg;

/* One id of a NACK, with its error text. */
typedef struct proto_nack_item {
	uint64_t id;
	proto_span error;
} proto_nack_item;

/* A named integer: stats fields and reports. */
typedef struct proto_field {
	proto_span key;
	int64_t value;
} proto_field;

/* One queue of a STATS reply; iterate its fields with proto_field_next. */
typedef struct proto_queue_stats {
	proto_span name;
	proto_iter fields;
} proto_queue_stats;

/* A decoded frame. Which member is valid depends on h.type. */
typedef struct proto_frame {
	proto_header h;
	union {
		struct { /* ENQUEUE */
			proto_span queue;
			proto_iter items; /* proto_enq_next */
		} enqueue;
		struct { /* LEASE */
			proto_span queue;
			uint32_t max_count;
			uint32_t visibility_ms; /* 0 = the queue's default */
			uint32_t wait_ms;       /* long poll: wait this long for a message */
		} lease;
		struct { /* ACK, TOUCH, NACK */
			proto_span queue;
			uint64_t token;         /* the lease token from MESSAGES */
			uint32_t arg_ms;        /* TOUCH: visibility; NACK: delay */
			proto_iter ids;         /* proto_id_next (ACK, TOUCH) or proto_nack_next */
			proto_iter report;      /* ACK with PROTO_F_REPORT: proto_field_next */
		} ids;
		struct { /* STATS, PEEK, REQUEUE, PURGE */
			proto_span queue;       /* STATS: empty = every queue */
			uint32_t max_count;     /* PEEK, REQUEUE (0 = all) */
		} queue_op;
		struct { /* REPORT */
			proto_span queue;
			proto_iter fields;
		} report;
		struct { /* INFO */
			proto_span server;      /* e.g. "sluice 0.1.0" */
			uint32_t max_message_bytes;
			uint32_t max_frame_bytes;
		} info;
		struct { /* IDS */
			proto_iter ids;         /* proto_idflag_next */
		} id_list;
		struct { /* MESSAGES */
			uint64_t token;
			proto_iter msgs;        /* proto_msg_next */
		} messages;
		struct { /* RESULTS */
			proto_iter codes;       /* proto_code_next */
		} results;
		struct { /* STATS_REPLY */
			proto_iter broker;      /* proto_field_next */
			proto_iter queues;      /* proto_queue_stats_next */
		} stats;
		struct { /* COUNT */
			uint64_t count;
		} count;
		struct { /* ERROR */
			uint16_t code;          /* enum proto_err */
			uint32_t retry_after_ms;
			proto_span message;
		} error;
	} u;
} proto_frame;

/* Decodes and validates a whole frame. On PROTO_E_VERSION (and any later
 * error) f->h holds what the header said, so a server can still answer
 * with the request id. */
int proto_frame_decode(const uint8_t *buf, size_t len, proto_frame *f);

/* Item iterators: return false when the list is done. */
bool proto_enq_next(proto_iter *it, proto_enq_item *out);
bool proto_id_next(proto_iter *it, uint64_t *id);
bool proto_nack_next(proto_iter *it, proto_nack_item *out);
bool proto_idflag_next(proto_iter *it, uint64_t *id, bool *duplicate);
bool proto_msg_next(proto_iter *it, proto_msg *out);
bool proto_code_next(proto_iter *it, uint16_t *code);
bool proto_field_next(proto_iter *it, proto_field *out);
bool proto_queue_stats_next(proto_iter *it, proto_queue_stats *out);
static inline uint32_t proto_iter_left(const proto_iter *it) { return it->left; }

/*
 * Encoding. proto_begin writes a header; the put functions append body
 * fields; proto_end patches the body length (and a pending item count) and
 * returns PROTO_OK or PROTO_E_NOSPACE if anything did not fit. Errors are
 * sticky, so a sequence of puts needs one check at the end.
 */
typedef struct proto_buf {
	uint8_t *data;     /* borrowed */
	size_t cap;
	size_t len;
	int err;
	/* private: open item lists (u32 counts to patch), innermost last */
	int depth;
	size_t count_off[2];
	uint32_t count[2];
	bool stats_no_queue;   /* STATS_REPLY still without its queue list */
} proto_buf;

void proto_buf_init(proto_buf *b, uint8_t *mem, size_t cap);
void proto_begin(proto_buf *b, uint8_t type, uint16_t flags, uint32_t request_id);
/* Sets the header's flags of the frame being encoded (e.g. after
 * proto_enc_enqueue, PROTO_F_REQUEST_KEY). */
void proto_set_flags(proto_buf *b, uint16_t flags);
int proto_end(proto_buf *b);

void proto_put_u8(proto_buf *b, uint8_t v);
void proto_put_u16(proto_buf *b, uint16_t v);
void proto_put_u32(proto_buf *b, uint32_t v);
void proto_put_u64(proto_buf *b, uint64_t v);
void proto_put_str8(proto_buf *b, const void *s, size_t len);   /* len <= 255 */
void proto_put_str16(proto_buf *b, const void *s, size_t len);  /* longer is cut */
void proto_put_bytes32(proto_buf *b, const void *s, size_t len);

/* Whole frames and their items, in PROTOCOL.md's order. */
void proto_enc_ping(proto_buf *b, uint32_t rid);
void proto_enc_enqueue(proto_buf *b, uint32_t rid, const char *queue, size_t qlen);
void proto_enc_enq_item(proto_buf *b, const proto_enq_item *m);
void proto_enc_lease(proto_buf *b, uint32_t rid, const char *queue, size_t qlen,
                     uint32_t max_count, uint32_t visibility_ms, uint32_t wait_ms);
/* ACK and TOUCH: then proto_enc_id per id. An ACK with PROTO_F_REPORT then
 * calls proto_enc_report_begin and proto_enc_field per field. NACK: then
 * proto_enc_nack_item per id. */
void proto_enc_ids(proto_buf *b, uint8_t type, uint16_t flags, uint32_t rid,
                   const char *queue, size_t qlen, uint64_t token, uint32_t arg_ms);
void proto_enc_id(proto_buf *b, uint64_t id);
void proto_enc_nack_item(proto_buf *b, uint64_t id, const char *err, size_t errlen);
void proto_enc_queue_op(proto_buf *b, uint8_t type, uint32_t rid, const char *queue,
                        size_t qlen, uint32_t max_count);
void proto_enc_report_begin(proto_buf *b);
/* REPORT: then proto_enc_field per field. */
void proto_enc_report(proto_buf *b, uint32_t rid, const char *queue, size_t qlen);
void proto_enc_field(proto_buf *b, const char *key, int64_t value);

/* Replies. */
void proto_enc_ok(proto_buf *b, uint32_t rid);
void proto_enc_info(proto_buf *b, uint32_t rid, const char *server,
                    uint32_t max_message_bytes, uint32_t max_frame_bytes);
void proto_enc_id_list(proto_buf *b, uint32_t rid);
void proto_enc_idflag(proto_buf *b, uint64_t id, bool duplicate);
void proto_enc_messages(proto_buf *b, uint32_t rid, uint64_t token);
void proto_enc_msg(proto_buf *b, const proto_msg *m);
void proto_enc_results(proto_buf *b, uint32_t rid);
void proto_enc_code(proto_buf *b, uint16_t code);
/* STATS_REPLY: proto_enc_stats, then proto_enc_field for the broker's own
 * fields, then for each queue proto_enc_stats_queue followed by its fields. */
void proto_enc_stats(proto_buf *b, uint32_t rid);
void proto_enc_stats_queue(proto_buf *b, const char *name, size_t nlen);
void proto_enc_count(proto_buf *b, uint32_t rid, uint64_t count);
void proto_enc_error(proto_buf *b, uint32_t rid, uint16_t code, uint32_t retry_after_ms,
                     const char *message);

/* Encoded sizes, to size a buffer exactly. */
size_t proto_enq_item_size(size_t keylen, size_t payloadlen);
size_t proto_msg_size(size_t payloadlen);
#define PROTO_ENQUEUE_BASE(qlen) (PROTO_HEADER_SIZE + 1 + (qlen) + 4)
#define PROTO_MESSAGES_BASE (PROTO_HEADER_SIZE + 8 + 4)

/* Human names, for logs and error messages. */
const char *proto_err_name(int code);    /* enum proto_err: "queue full" */
const char *proto_strerror(int rc);      /* PROTO_E_*: "frame truncated" */
const char *proto_type_name(int type);   /* "ENQUEUE"; NULL if unknown */

#endif

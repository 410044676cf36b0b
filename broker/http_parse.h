/*
 * http_parse: the pure parsing behind the broker's HTTP API: the route of
 * a path, queue names in it, the query parameters of an enqueue, the
 * headers the API interprets (Content-Length, Authorization,
 * Idempotency-Key, Expect) and the batch body splitter. No I/O and no NNG:
 * http.c calls these, and tests/fuzz/fuzz_http.c calls them without a
 * server. Every input is untrusted and bounded by the length given;
 * strings are NUL-terminated where the contract says so.
 */
#ifndef SLUICE_BRK_HTTP_PARSE_H
#define SLUICE_BRK_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Routes; BRK_HTTP_NONE for any other path. */
enum brk_http_route {
	BRK_HTTP_NONE = -1,
	BRK_HTTP_HEALTH,   /* /healthz */
	BRK_HTTP_READY,    /* /readyz */
	BRK_HTTP_METRICS,  /* /metrics */
	BRK_HTTP_QUEUES,   /* /v1/queues and /v1/queues/ */
	BRK_HTTP_QUEUE,    /* /v1/queues/{queue} */
	BRK_HTTP_ENQUEUE,  /* /v1/queues/{queue}/messages */
	BRK_HTTP_BATCH,    /* /v1/queues/{queue}/messages:batch */
};

/* Results of the functions below that fail in more than one way. */
#define BRK_HTTP_OK 0
#define BRK_HTTP_E_ENCODING 1 /* a malformed %-escape, or longer than the buffer */
#define BRK_HTTP_E_NAME 2     /* not 1-128 of A-Z a-z 0-9 . _ - */
#define BRK_HTTP_E_TOO_LARGE 3
#define BRK_HTTP_E_KEY 4      /* a batch key KEY/i would be over 255 bytes */
#define BRK_HTTP_E_EMPTY 5    /* a batch with no message */

/* The route of path[0..len) (the URI up to its '?'). For the per-queue
 * routes, *qname and *qlen give the queue name as it is in the path (still
 * %-encoded), pointing into path; otherwise *qname is NULL. */
int brk_http_route(const char *path, size_t len, const char **qname, size_t *qlen);

/* Percent-decodes s[0..len) into out (cap bytes, NUL-terminated); in a
 * query '+' is a space. Returns the decoded length, or -1 if an escape is
 * malformed or the result (and its NUL) does not fit. */
long brk_http_url_decode(const char *s, size_t len, bool query, char *out, size_t cap);

/* Decodes a queue name from a path into out (cap >= 129, NUL-terminated;
 * *outlen its length) and checks it. BRK_HTTP_OK, BRK_HTTP_E_ENCODING or
 * BRK_HTTP_E_NAME (out then holds the decoded name, for the message). */
int brk_http_queue_name(const char *raw, size_t len, char *out, size_t cap, size_t *outlen);

/* A Content-Length header (NUL-terminated): digits only, at most
 * SIZE_MAX / 2. false if malformed. */
bool brk_http_content_length(const char *s, size_t *out);

/* The enqueue parameters of a query string (q[0..len), without the '?'):
 * delay (a duration) and priority (an int32). Parameters not given leave
 * their field alone. 0, or -1 with a reason for the client in why. */
typedef struct brk_http_params {
	uint32_t delay_ms;
	int32_t priority;
} brk_http_params;
int brk_http_query(const char *q, size_t len, brk_http_params *p, char *why, size_t whylen);

/* Is the Authorization header (NUL-terminated, or NULL) "Bearer TOKEN"
 * with token[0..token_len)? Takes time that depends on the lengths only. */
bool brk_http_bearer_ok(const char *token, size_t token_len, const char *authorization);

/* An Idempotency-Key header (NUL-terminated): 1 to 255 bytes. */
bool brk_http_key_ok(const char *key);

/* Does an Expect header (NUL-terminated, or NULL) ask for 100 Continue? */
bool brk_http_expects_continue(const char *expect);

/* The batch splitter: one message per line. Each call gives the next
 * message at *pos (before end) in *msg and *len and moves *pos past its
 * '\n'; false at the end. A last line without '\n' is a message; a final
 * '\n' does not start an empty one, but an empty line is an empty message. */
bool brk_http_batch_next(const uint8_t **pos, const uint8_t *end, const uint8_t **msg,
                         size_t *len);

/* Checks a batch body before it is encoded: *count messages, whose ENQUEUE
 * items take *item_bytes, each keyed KEY/i (i from 0) when keylen > 0.
 * BRK_HTTP_OK; BRK_HTTP_E_TOO_LARGE when message *index (from 0) is
 * *msg_len bytes, over max_message; BRK_HTTP_E_KEY when message *index's
 * key would be over 255 bytes; BRK_HTTP_E_EMPTY when there is none. */
int brk_http_batch_scan(const uint8_t *body, size_t len, size_t max_message, size_t keylen,
                        size_t *count, size_t *item_bytes, size_t *index, size_t *msg_len);

/* ---- the head of a request (request line and header fields) ---- */

#define BRK_HTTP_HEAD_MAX 16384   /* bytes of a request line and its headers */
#define BRK_HTTP_HEADERS_MAX 64

typedef struct brk_http_head {
	const char *method;        /* NUL-terminated, inside the parsed buffer */
	const char *target;        /* the request target (path and query) */
	int minor;                 /* HTTP/1.minor */
	size_t nheaders;
	struct {
		const char *name, *value; /* value without surrounding blanks */
	} h[BRK_HTTP_HEADERS_MAX];
} brk_http_head;

/* Parses the head of a request at the start of buf[0..len), in place: it
 * writes NULs into buf once the head is whole. *scanned (0 for a new
 * request) remembers how far a previous call looked, so that a head
 * arriving a byte at a time costs linear time. Returns the head's length,
 * blank line included; 0 when more bytes are needed; or the negated HTTP
 * status for a request that cannot be served: -400 malformed, -431 a head
 * over BRK_HTTP_HEAD_MAX bytes or BRK_HTTP_HEADERS_MAX fields, -505 not
 * HTTP/1.x. Blank lines before the request line are skipped (counted in
 * the length); a line may end in CRLF or LF. */
long brk_http_head_parse(char *buf, size_t len, size_t *scanned, brk_http_head *h);

/* The value of the first field named name (case-insensitive), or NULL;
 * *count, if not NULL, how many fields have that name. */
const char *brk_http_head_get(const brk_http_head *h, const char *name, size_t *count);

/* The reason phrase of a status ("Created"), "Unknown" for others. */
const char *brk_http_reason(unsigned status);

#endif

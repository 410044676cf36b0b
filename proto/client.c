/*
 * client: blocking calls over an NNG REQ socket, one context per call so
 * threads can share a client. Every request is encoded into an nng_msg of
 * exactly the right size; every reply is decoded and validated by the codec
 * before a field of it is used.
 */
#include "client.h"

#include "codec.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define FRAME_SLACK (64 * 1024)
/* Replies can be as large as the broker's frame limit, which follows its
 * max_message_bytes (at most 64 MiB): accept that much. */
#define RECV_LIMIT (64 * 1024 * 1024 + FRAME_SLACK)

/* A context and its aio, kept for reuse: opening both per call costs more
 * than the call itself on a fast broker. */
typedef struct slot {
	struct slot *next;
	nng_ctx ctx;
	nng_aio *aio;
} slot;

struct sluice_client {
	nng_socket sock;
	pthread_mutex_t mu;
	slot *free_slots;      /* guarded by mu */
	nng_dialer dialer;
	int64_t timeout_ms;
	int64_t max_message_bytes;
	char url[256];
	atomic_uint next_rid;
	uint8_t key_nonce[8];  /* random per client; generated keys are nonce + counter */
	atomic_ulong key_seq;
};

static _Thread_local char errbuf[512];
static _Thread_local uint32_t retry_after;

static int
fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return rc;
}

const char *
sluice_errmsg(void)
{
	return errbuf;
}

uint32_t
sluice_retry_after_ms(void)
{
	return retry_after;
}

const char *
sluice_strerror(int rc)
{
	switch (rc) {
	case SLUICE_OK: return "ok";
	case SLUICE_E_TIMEOUT: return "timed out";
	case SLUICE_E_CONNECT: return "cannot connect";
	case SLUICE_E_TRANSPORT: return "transport error";
	case SLUICE_E_PROTOCOL: return "protocol error";
	case SLUICE_E_NOMEM: return "out of memory";
	case SLUICE_E_INVALID: return "invalid argument";
	default: return proto_err_name(rc);
	}
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
set_tls(sluice_client *c, const sluice_opts *o)
{
	nng_tls_config *tls = NULL;
	int rv = nng_tls_config_alloc(&tls, NNG_TLS_MODE_CLIENT);
	if (rv == 0 && o->tls_ca != NULL)
		rv = nng_tls_config_ca_file(tls, o->tls_ca);
	if (rv == 0)
		rv = nng_tls_config_auth_mode(tls, o->tls_ca != NULL ? NNG_TLS_AUTH_MODE_REQUIRED
		                                                     : NNG_TLS_AUTH_MODE_NONE);
	if (rv == 0 && o->tls_cert_key != NULL)
		rv = nng_tls_config_cert_key_file(tls, o->tls_cert_key, NULL);
	if (rv == 0 && o->tls_server_name != NULL)
		rv = nng_tls_config_server_name(tls, o->tls_server_name);
	if (rv == 0)
		rv = nng_dialer_set_ptr(c->dialer, NNG_OPT_TLS_CONFIG, tls);
	if (tls != NULL)
		nng_tls_config_free(tls); /* the dialer holds its own reference */
	return rv;
}

int
sluice_open(sluice_client **out, const char *url, const sluice_opts *opts)
{
	static const sluice_opts defaults = {0};
	const sluice_opts *o = opts ? opts : &defaults;
	sluice_client *c;
	int rv;

	*out = NULL;
	if (url == NULL || strlen(url) >= sizeof(c->url))
		return fail(SLUICE_E_INVALID, "broker URL missing or too long");
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return fail(SLUICE_E_NOMEM, "out of memory");
	snprintf(c->url, sizeof(c->url), "%s", url);
	pthread_mutex_init(&c->mu, NULL);
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
	c->max_message_bytes = o->max_message_bytes > 0 ? o->max_message_bytes : 1024 * 1024;
	uint32_t seed;
	if (getrandom(c->key_nonce, sizeof(c->key_nonce), 0) != sizeof(c->key_nonce) ||
	    getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
		free(c);
		return fail(SLUICE_E_TRANSPORT, "no randomness for idempotency keys");
	}
	atomic_init(&c->next_rid, seed);
	atomic_init(&c->key_seq, 0);

	if ((rv = nng_req0_open(&c->sock)) != 0) {
		free(c);
		return fail(SLUICE_E_TRANSPORT, "cannot open socket: %s", nng_strerror(rv));
	}
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, RECV_LIMIT);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 1000);
	if ((rv = nng_dialer_create(&c->dialer, c->sock, url)) != 0) {
		nng_close(c->sock);
		free(c);
		return fail(rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? SLUICE_E_INVALID : SLUICE_E_CONNECT,
		            "bad broker URL '%s': %s", url, nng_strerror(rv));
	}
	if (strncmp(url, "tls+tcp://", 10) == 0 && (rv = set_tls(c, o)) != 0) {
		nng_close(c->sock);
		free(c);
		return fail(SLUICE_E_CONNECT, "TLS setup for %s: %s", url, nng_strerror(rv));
	}
	rv = nng_dialer_start(c->dialer, o->connect_now ? 0 : NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		nng_close(c->sock);
		free(c);
		return fail(SLUICE_E_CONNECT, "cannot connect to %s: %s", url, nng_strerror(rv));
	}
	*out = c;
	return SLUICE_OK;
}

void
sluice_close(sluice_client *c)
{
	if (c == NULL)
		return;
	nng_close(c->sock);
	for (slot *s = c->free_slots, *next; s != NULL; s = next) {
		next = s->next;
		nng_aio_free(s->aio);
		free(s);
	}
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static slot *
slot_get(sluice_client *c, int *rv)
{
	pthread_mutex_lock(&c->mu);
	slot *s = c->free_slots;
	if (s != NULL)
		c->free_slots = s->next;
	pthread_mutex_unlock(&c->mu);
	if (s != NULL)
		return s;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		*rv = NNG_ENOMEM;
		return NULL;
	}
	if ((*rv = nng_ctx_open(&s->ctx, c->sock)) != 0) {
		free(s);
		return NULL;
	}
	if ((*rv = nng_aio_alloc(&s->aio, NULL, NULL)) != 0) {
		nng_ctx_close(s->ctx);
		free(s);
		return NULL;
	}
	return s;
}

/* A context whose call failed may still hold a request: it is closed, not
 * reused. */
static void
slot_put(sluice_client *c, slot *s, bool reuse)
{
	if (!reuse) {
		nng_ctx_close(s->ctx);
		nng_aio_free(s->aio);
		free(s);
		return;
	}
	pthread_mutex_lock(&c->mu);
	s->next = c->free_slots;
	c->free_slots = s;
	pthread_mutex_unlock(&c->mu);
}

/* ---- one request, one reply ---- */

typedef struct call {
	nng_msg *req;     /* owned until sent */
	nng_msg *rep;     /* owned by the caller after a success */
	proto_frame f;    /* decoded reply, borrowing rep */
	uint8_t want;     /* expected reply type */
} call;

static int
alloc_req(call *k, size_t size)
{
	memset(k, 0, sizeof(*k));
	if (nng_msg_alloc(&k->req, size) != 0)
		return fail(SLUICE_E_NOMEM, "out of memory");
	return SLUICE_OK;
}

static void
call_fini(call *k)
{
	if (k->req != NULL)
		nng_msg_free(k->req);
	if (k->rep != NULL)
		nng_msg_free(k->rep);
	k->req = k->rep = NULL;
}

static uint32_t
next_rid(sluice_client *c)
{
	return atomic_fetch_add(&c->next_rid, 1);
}

/* One send+receive on a context of the pool, within timeout_ms. */
static int
attempt(sluice_client *c, call *k, int64_t timeout_ms, nng_msg **rep)
{
	nng_msg *copy = NULL;
	int rv;
	slot *s;

	*rep = NULL;
	if ((s = slot_get(c, &rv)) == NULL)
		return rv;
	/* No timer resend inside one call: a resent LEASE would lease twice.
	 * NNG still resends at once after a reconnect, which is what we want. */
	nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, (nng_duration)(timeout_ms + 60000));
	if ((rv = nng_msg_dup(&copy, k->req)) != 0)
		goto out;
	nng_aio_set_timeout(s->aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(s->aio, copy);
	nng_ctx_send(s->ctx, s->aio);
	nng_aio_wait(s->aio);
	if ((rv = nng_aio_result(s->aio)) != 0) {
		nng_msg_free(copy);
		goto out;
	}
	nng_aio_set_timeout(s->aio, (nng_duration)timeout_ms);
	nng_ctx_recv(s->ctx, s->aio);
	nng_aio_wait(s->aio);
	if ((rv = nng_aio_result(s->aio)) == 0)
		*rep = nng_aio_get_msg(s->aio);
out:
	slot_put(c, s, rv == 0);
	return rv;
}

/* Sends k->req and decodes the reply into k->f. Requests that are safe to
 * repeat are retried with backoff until the deadline. */
static int
roundtrip(sluice_client *c, call *k, int64_t extra_ms, bool safe)
{
	int64_t deadline = now_ms() + c->timeout_ms + extra_ms;
	int64_t backoff = 50;
	const char *what = proto_type_name(((uint8_t *)nng_msg_body(k->req))[3]);
	int rv;

	retry_after = 0;
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return fail(SLUICE_E_TIMEOUT, "%s to %s: no answer within %lld ms", what, c->url,
			            (long long)(c->timeout_ms + extra_ms));
		/* a safe request gets several tries; each at least 2 s (or what is left) */
		int64_t slice = safe ? (c->timeout_ms + extra_ms) / 3 : left;
		if (slice < 2000 + extra_ms)
			slice = 2000 + extra_ms;
		if (slice > left)
			slice = left;
		nng_msg *rep;
		rv = attempt(c, k, slice, &rep);
		if (rv == 0) {
			k->rep = rep;
			break;
		}
		if (rv == NNG_ENOMEM)
			return fail(SLUICE_E_NOMEM, "out of memory");
		if (rv == NNG_ECLOSED)
			return fail(SLUICE_E_TRANSPORT, "%s to %s: client closed", what, c->url);
		if (rv != NNG_ETIMEDOUT || !safe) {
			if (rv == NNG_ETIMEDOUT)
				return fail(SLUICE_E_TIMEOUT, "%s to %s: no answer within %lld ms", what, c->url,
				            (long long)slice);
			if (!safe)
				return fail(SLUICE_E_TRANSPORT, "%s to %s: %s", what, c->url, nng_strerror(rv));
		}
		if (deadline - now_ms() <= backoff)
			continue; /* the loop reports the timeout */
		nng_msleep((nng_duration)backoff);
		backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
	}

	int prc = proto_frame_decode(nng_msg_body(k->rep), nng_msg_len(k->rep), &k->f);
	if (prc != PROTO_OK)
		return fail(SLUICE_E_PROTOCOL, "bad reply from %s: %s", c->url, proto_strerror(prc));
	if (k->f.h.type == PROTO_T_ERROR) {
		retry_after = k->f.u.error.retry_after_ms;
		int code = k->f.u.error.code;
		if (code <= 0 || code >= 100)
			code = PROTO_ERR_INTERNAL;
		return fail(code, "%.*s", (int)k->f.u.error.message.len,
		            (const char *)k->f.u.error.message.ptr);
	}
	if (k->f.h.type != k->want)
		return fail(SLUICE_E_PROTOCOL, "%s to %s: unexpected reply %s", what, c->url,
		            proto_type_name(k->f.h.type));
	return SLUICE_OK;
}

static int
check_queue(const char *queue, bool may_be_empty)
{
	size_t n = queue ? strlen(queue) : 0;
	if ((n == 0 && !may_be_empty) || n > PROTO_MAX_QUEUE_LEN)
		return fail(SLUICE_E_INVALID, "queue name must be 1-128 characters");
	return SLUICE_OK;
}

/* Encodes with build() into a message of exactly size bytes. */
static int
finish_req(call *k, proto_buf *b)
{
	if (proto_end(b) != PROTO_OK)
		return fail(SLUICE_E_INVALID, "request does not encode: %s", proto_strerror(b->err));
	nng_msg_realloc(k->req, b->len); /* shrinks: never fails */
	return SLUICE_OK;
}

static void
buf_for(call *k, proto_buf *b)
{
	proto_buf_init(b, nng_msg_body(k->req), nng_msg_len(k->req));
}

int
sluice_ping(sluice_client *c, sluice_info *info)
{
	call k;
	proto_buf b;
	int rc;
	if ((rc = alloc_req(&k, PROTO_HEADER_SIZE)) != 0)
		return rc;
	k.want = PROTO_T_INFO;
	buf_for(&k, &b);
	proto_enc_ping(&b, next_rid(c));
	if ((rc = finish_req(&k, &b)) == 0 && (rc = roundtrip(c, &k, 0, true)) == 0 && info) {
		snprintf(info->server, sizeof(info->server), "%.*s", (int)k.f.u.info.server.len,
		         (const char *)k.f.u.info.server.ptr);
		info->max_message_bytes = k.f.u.info.max_message_bytes;
		info->max_frame_bytes = k.f.u.info.max_frame_bytes;
	}
	call_fini(&k);
	return rc;
}

int
sluice_enqueue(sluice_client *c, const char *queue, const sluice_msg_in *msgs, size_t n,
               uint64_t *ids, bool *dup)
{
	call k;
	proto_buf b;
	int rc;
	size_t qlen = queue ? strlen(queue) : 0;
	size_t size = PROTO_ENQUEUE_BASE(qlen);

	if ((rc = check_queue(queue, false)) != 0)
		return rc;
	if (n == 0)
		return fail(SLUICE_E_INVALID, "nothing to enqueue");
	/* without any key of the caller's, one generated key covers the whole
	 * request (REQUEST_KEY), so a batch costs the broker one key, not n */
	bool request_key = n > 1;
	for (size_t i = 0; i < n; i++)
		if (msgs[i].key != NULL)
			request_key = false;
	for (size_t i = 0; i < n; i++) {
		if ((int64_t)msgs[i].len > c->max_message_bytes)
			return fail(PROTO_ERR_TOO_LARGE, "message %zu is %zu bytes, over the limit of %lld",
			            i + 1, msgs[i].len, (long long)c->max_message_bytes);
		if (msgs[i].key != NULL && msgs[i].keylen > PROTO_MAX_KEY_LEN)
			return fail(SLUICE_E_INVALID, "idempotency key of message %zu is over 255 bytes", i + 1);
		size_t keylen = msgs[i].key ? msgs[i].keylen : (request_key && i > 0) ? 0 : 16;
		size += proto_enq_item_size(keylen, msgs[i].len);
	}
	if ((int64_t)size > c->max_message_bytes + FRAME_SLACK)
		return fail(PROTO_ERR_TOO_LARGE, "batch of %zu messages is %zu bytes, over the frame "
		            "limit of %lld: send it in smaller batches", n, size,
		            (long long)(c->max_message_bytes + FRAME_SLACK));
	if ((rc = alloc_req(&k, size)) != 0)
		return rc;
	k.want = PROTO_T_IDS;
	buf_for(&k, &b);
	proto_enc_enqueue(&b, next_rid(c), queue, qlen);
	if (request_key)
		proto_set_flags(&b, PROTO_F_REQUEST_KEY);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (size_t i = 0; i < n; i++) {
		uint8_t gen[16];
		proto_enq_item it = {
			.key = {msgs[i].key, msgs[i].keylen},
			.delay_ms = msgs[i].delay_ms,
			.priority = msgs[i].priority,
			.payload = {msgs[i].payload, msgs[i].len},
		};
		if (msgs[i].key == NULL && !(request_key && i > 0)) {
			/* time-ordered so the broker's key index grows at one end:
			 * 6 bytes wall ms, 6 bytes of this client's nonce, 4 of a counter */
			uint64_t ms = (uint64_t)wall_ms;
			uint32_t seq = (uint32_t)atomic_fetch_add(&c->key_seq, 1);
			for (int j = 0; j < 6; j++)
				gen[j] = (uint8_t)(ms >> (40 - 8 * j));
			memcpy(gen + 6, c->key_nonce, 6);
			for (int j = 0; j < 4; j++)
				gen[12 + j] = (uint8_t)(seq >> (24 - 8 * j));
			it.key.ptr = gen;
			it.key.len = sizeof(gen);
			it.flags = PROTO_ITEM_RETRY_KEY;
		}
		proto_enc_enq_item(&b, &it);
	}
	if ((rc = finish_req(&k, &b)) == 0 && (rc = roundtrip(c, &k, 0, true)) == 0) {
		if (proto_iter_left(&k.f.u.id_list.ids) != n) {
			rc = fail(SLUICE_E_PROTOCOL, "broker returned %u ids for %zu messages",
			          proto_iter_left(&k.f.u.id_list.ids), n);
		} else {
			for (size_t i = 0; i < n; i++) {
				bool d;
				proto_idflag_next(&k.f.u.id_list.ids, &ids[i], &d);
				if (dup != NULL)
					dup[i] = d;
			}
		}
	}
	call_fini(&k);
	return rc;
}

/* Turns a MESSAGES reply into a batch that keeps the reply alive. */
static int
make_batch(call *k, sluice_batch **out)
{
	uint32_t n = proto_iter_left(&k->f.u.messages.msgs);
	sluice_batch *bt = calloc(1, sizeof(*bt));
	if (bt == NULL || (n > 0 && (bt->msgs = calloc(n, sizeof(*bt->msgs))) == NULL)) {
		free(bt);
		return fail(SLUICE_E_NOMEM, "out of memory");
	}
	bt->token = k->f.u.messages.token;
	proto_msg m;
	while (proto_msg_next(&k->f.u.messages.msgs, &m)) {
		sluice_msg *d = &bt->msgs[bt->count++];
		d->id = m.id;
		d->attempt = m.attempt;
		d->priority = m.priority;
		d->enqueued_ms = m.enqueued_ms;
		d->payload = m.payload.ptr;
		d->len = m.payload.len;
	}
	bt->priv = k->rep;
	k->rep = NULL;
	*out = bt;
	return SLUICE_OK;
}

void
sluice_batch_free(sluice_batch *b)
{
	if (b == NULL)
		return;
	if (b->priv != NULL)
		nng_msg_free(b->priv);
	free(b->msgs);
	free(b);
}

int
sluice_lease(sluice_client *c, const char *queue, uint32_t max, uint32_t visibility_ms,
             uint32_t wait_ms, sluice_batch **out)
{
	call k;
	proto_buf b;
	int rc;
	size_t qlen = queue ? strlen(queue) : 0;

	*out = NULL;
	if ((rc = check_queue(queue, false)) != 0)
		return rc;
	if (max == 0)
		return fail(SLUICE_E_INVALID, "lease of 0 messages");
	if ((rc = alloc_req(&k, PROTO_HEADER_SIZE + 1 + qlen + 12)) != 0)
		return rc;
	k.want = PROTO_T_MESSAGES;
	buf_for(&k, &b);
	proto_enc_lease(&b, next_rid(c), queue, qlen, max, visibility_ms, wait_ms);
	if ((rc = finish_req(&k, &b)) == 0 && (rc = roundtrip(c, &k, wait_ms, false)) == 0)
		rc = make_batch(&k, out);
	call_fini(&k);
	return rc;
}

int
sluice_peek(sluice_client *c, const char *queue, uint32_t max, sluice_batch **out)
{
	call k;
	proto_buf b;
	int rc;
	size_t qlen = queue ? strlen(queue) : 0;

	*out = NULL;
	if ((rc = check_queue(queue, false)) != 0)
		return rc;
	if ((rc = alloc_req(&k, PROTO_HEADER_SIZE + 1 + qlen + 4)) != 0)
		return rc;
	k.want = PROTO_T_MESSAGES;
	buf_for(&k, &b);
	proto_enc_queue_op(&b, PROTO_T_PEEK, next_rid(c), queue, qlen, max);
	if ((rc = finish_req(&k, &b)) == 0 && (rc = roundtrip(c, &k, 0, true)) == 0)
		rc = make_batch(&k, out);
	call_fini(&k);
	return rc;
}

static int
take_codes(call *k, size_t n, uint16_t *codes)
{
	if (proto_iter_left(&k->f.u.results.codes) != n)
		return fail(SLUICE_E_PROTOCOL, "broker returned %u results for %zu ids",
		            proto_iter_left(&k->f.u.results.codes), n);
	uint16_t code;
	for (size_t i = 0; proto_code_next(&k->f.u.results.codes, &code); i++)
		if (codes != NULL)
			codes[i] = code;
	return SLUICE_OK;
}

/* ACK and TOUCH share a layout. */
static int
ids_call(sluice_client *c, uint8_t type, const char *queue, uint64_t token, const uint64_t *ids,
         size_t n, uint32_t arg_ms, const sluice_field *report, size_t nreport, uint16_t *codes)
{
	call k;
	proto_buf b;
	int rc;
	size_t qlen = queue ? strlen(queue) : 0;
	size_t size = PROTO_HEADER_SIZE + 1 + qlen + 8 + 4 + 4 + 8 * n + 4;

	if ((rc = check_queue(queue, false)) != 0)
		return rc;
	if (n == 0)
		return fail(SLUICE_E_INVALID, "no ids");
	for (size_t i = 0; i < nreport; i++)
		size += 1 + strlen(report[i].key) + 8;
	if ((rc = alloc_req(&k, size)) != 0)
		return rc;
	k.want = PROTO_T_RESULTS;
	buf_for(&k, &b);
	proto_enc_ids(&b, type, nreport > 0 ? PROTO_F_REPORT : 0, next_rid(c), queue, qlen, token,
	              arg_ms);
	for (size_t i = 0; i < n; i++)
		proto_enc_id(&b, ids[i]);
	if (nreport > 0) {
		proto_enc_report_begin(&b);
		for (size_t i = 0; i < nreport; i++)
			proto_enc_field(&b, report[i].key, report[i].value);
	}
	if ((rc = finish_req(&k, &b)) == 0 && (rc = roundtrip(c, &k, 0, true)) == 0)
		rc = take_codes(&k, n, codes);
	call_fini(&k);
	return rc;
}

int
sluice_ack(sluice_client *c, const char *queue, uint64_t token, const uint64_t *ids, size_t n,
           const sluice_field *report, size_t nreport, uint16_t *codes)
{
	return ids_call(c, PROTO_T_ACK, queue, token, ids, n, 0, report, nreport, codes);
}

int
sluice_touch(sluice_client *c, const char *queue, uint64_t token, const uint64_t *ids, size_t n,
             uint32_t visibility_ms, uint16_t *codes)
{
	return ids_call(c, PROTO_T_TOUCH, queue, token, ids, n, visibility_ms, NULL, 0, codes);
}

static int
nack_call(sluice_client *c, uint16_t flags, const char *queue, uint64_t token, const uint64_t *ids,
          const char *const *errors, size_t n, uint32_t delay_ms, uint16_t *codes)
{
	call k;
	proto_buf b;
	int rc;
	size_t qlen = queue ? strlen(queue) : 0;
	size_t size = PROTO_HEADER_SIZE + 1 + qlen + 8 + 4 + 4;

	if ((rc = check_queue(queue, false)) != 0)
		return rc;
	if (n == 0)
		return fail(SLUICE_E_INVALID, "no ids");
	for (size_t i = 0; i < n; i++) {
		size_t el = errors && errors[i] ? strlen(errors[i]) : 0;
		size += 8 + 2 + (el > 1024 ? 1024 : el);
	}
	if ((rc = alloc_req(&k, size)) != 0)
		return rc;
	k.want = PROTO_T_RESULTS;
	buf_for(&k, &b);
	proto_enc_ids(&b, PROTO_T_NACK, flags, next_rid(c), queue, qlen, token, delay_ms);
	for (size_t i = 0; i < n; i++) {
		const char *e = errors && errors[i] ? errors[i] : "";
		size_t el = strlen(e);
		proto_enc_nack_item(&b, ids[i], e, el > 1024 ? 1024 : el); /* errors are cut at 1 KiB */
	}
	if ((rc = finish_req(&k, &b)) == 0 && (rc = roundtrip(c, &k, 0, true)) == 0)
		rc = take_codes(&k, n, codes);
	call_fini(&k);
	return rc;
}

int
sluice_nack(sluice_client *c, const char *queue, uint64_t token, const uint64_t *ids,
            const char *const *errors, size_t n, uint32_t delay_ms, uint16_t *codes)
{
	return nack_call(c, 0, queue, token, ids, errors, n, delay_ms, codes);
}

int
sluice_release(sluice_client *c, const char *queue, uint64_t token, const uint64_t *ids,
               size_t n, uint32_t delay_ms, uint16_t *codes)
{
	return nack_call(c, PROTO_F_NO_ATTEMPT, queue, token, ids, NULL, n, delay_ms, codes);
}

static int
copy_fields(proto_iter *it, sluice_stat **out, size_t *nout)
{
	uint32_t n = proto_iter_left(it);
	proto_field f;
	*nout = 0;
	*out = n ? calloc(n, sizeof(**out)) : NULL;
	if (n && *out == NULL)
		return fail(SLUICE_E_NOMEM, "out of memory");
	while (proto_field_next(it, &f)) {
		sluice_stat *s = &(*out)[(*nout)++];
		snprintf(s->key, sizeof(s->key), "%.*s", (int)f.key.len, (const char *)f.key.ptr);
		s->value = f.value;
	}
	return SLUICE_OK;
}

void
sluice_stats_free(sluice_stats *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nqueues; i++)
		free(s->queues[i].fields);
	free(s->queues);
	free(s->broker);
	free(s);
}

int
sluice_stats_get(sluice_client *c, const char *queue, sluice_stats **out)
{
	call k;
	proto_buf b;
	int rc;
	size_t qlen = queue ? strlen(queue) : 0;

	*out = NULL;
	if ((rc = check_queue(queue, true)) != 0)
		return rc;
	if ((rc = alloc_req(&k, PROTO_HEADER_SIZE + 1 + qlen + 4)) != 0)
		return rc;
	k.want = PROTO_T_STATS_REPLY;
	buf_for(&k, &b);
	proto_enc_queue_op(&b, PROTO_T_STATS, next_rid(c), queue ? queue : "", qlen, 0);
	if ((rc = finish_req(&k, &b)) != 0 || (rc = roundtrip(c, &k, 0, true)) != 0)
		goto done;
	sluice_stats *s = calloc(1, sizeof(*s));
	uint32_t nq = proto_iter_left(&k.f.u.stats.queues);
	if (s == NULL || (nq > 0 && (s->queues = calloc(nq, sizeof(*s->queues))) == NULL)) {
		free(s);
		rc = fail(SLUICE_E_NOMEM, "out of memory");
		goto done;
	}
	rc = copy_fields(&k.f.u.stats.broker, &s->broker, &s->nbroker);
	proto_queue_stats q;
	while (rc == 0 && proto_queue_stats_next(&k.f.u.stats.queues, &q)) {
		sluice_queue_stats *d = &s->queues[s->nqueues++];
		snprintf(d->name, sizeof(d->name), "%.*s", (int)q.name.len, (const char *)q.name.ptr);
		rc = copy_fields(&q.fields, &d->fields, &d->nfields);
	}
	if (rc != 0)
		sluice_stats_free(s);
	else
		*out = s;
done:
	call_fini(&k);
	return rc;
}

int64_t
sluice_stat_value(const sluice_stat *fields, size_t n, const char *key, int64_t dflt)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fields[i].key, key) == 0)
			return fields[i].value;
	return dflt;
}

const sluice_queue_stats *
sluice_stats_queue(const sluice_stats *s, const char *name)
{
	for (size_t i = 0; i < s->nqueues; i++)
		if (strcmp(s->queues[i].name, name) == 0)
			return &s->queues[i];
	return NULL;
}

static int
count_call(sluice_client *c, uint8_t type, const char *queue, uint32_t max, uint64_t *count)
{
	call k;
	proto_buf b;
	int rc;
	size_t qlen = queue ? strlen(queue) : 0;

	if ((rc = check_queue(queue, false)) != 0)
		return rc;
	if ((rc = alloc_req(&k, PROTO_HEADER_SIZE + 1 + qlen + 4)) != 0)
		return rc;
	k.want = PROTO_T_COUNT;
	buf_for(&k, &b);
	proto_enc_queue_op(&b, type, next_rid(c), queue, qlen, max);
	if ((rc = finish_req(&k, &b)) == 0 && (rc = roundtrip(c, &k, 0, false)) == 0 && count)
		*count = k.f.u.count.count;
	call_fini(&k);
	return rc;
}

int
sluice_requeue(sluice_client *c, const char *queue, uint32_t max, uint64_t *moved)
{
	return count_call(c, PROTO_T_REQUEUE, queue, max, moved);
}

int
sluice_purge(sluice_client *c, const char *queue, uint64_t *purged)
{
	return count_call(c, PROTO_T_PURGE, queue, 0, purged);
}

int
sluice_report(sluice_client *c, const char *queue, const sluice_field *fields, size_t n)
{
	call k;
	proto_buf b;
	int rc;
	size_t qlen = queue ? strlen(queue) : 0;
	size_t size = PROTO_HEADER_SIZE + 1 + qlen + 4;

	if ((rc = check_queue(queue, false)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		size += 1 + strlen(fields[i].key) + 8;
	if ((rc = alloc_req(&k, size)) != 0)
		return rc;
	k.want = PROTO_T_OK;
	buf_for(&k, &b);
	proto_enc_report(&b, next_rid(c), queue, qlen);
	for (size_t i = 0; i < n; i++)
		proto_enc_field(&b, fields[i].key, fields[i].value);
	if ((rc = finish_req(&k, &b)) == 0)
		rc = roundtrip(c, &k, 0, true);
	call_fini(&k);
	return rc;
}

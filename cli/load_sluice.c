/*
 * load_sluice: the `sluice` target. Each VU owns one NNG REQ context and
 * one aio on one of a few REQ sockets (one per 256 VUs unless told), and
 * cycles SEND -> RECV -> (THINK) -> SEND entirely in the aio's callback:
 * nothing here blocks on a thread per VU.
 *
 * A VU is "running" from the moment it is started until it decides, at the
 * end of a request, that it is over the VU target (or the run is stopping)
 * and goes idle. The running flag is claimed with a compare-and-swap, so
 * the controller starting a VU and the VU going idle cannot both win.
 * After a VU stores running=false it touches only atomics and fields that
 * never change, so a controller restarting it at once is safe.
 */
#include "load.h"

#include "clock.h"
#include "codec.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define VUS_PER_SOCKET 256
#define KEY_LEN 16
#define FRAME_SLACK (64 * 1024)

enum { S_SEND, S_RECV, S_THINK };

typedef struct sdrv sdrv;

typedef struct svu {
	sdrv *d;               /* borrowed */
	int index;
	nng_ctx ctx;
	nng_aio *aio;          /* owned */
	int state;             /* S_*; only the VU's own callback chain uses it */
	int64_t start_ns;      /* when the request was built */
	int64_t deadline_ns;
	atomic_bool running;
} svu;

struct sdrv {
	load_run *run;         /* borrowed */
	nng_socket *socks;     /* owned, nsocks */
	int nsocks;
	svu *vus;              /* owned, nvus */
	int nvus;
	atomic_int inflight;   /* running VUs */
	atomic_bool closing;
	atomic_uint rid;
	uint8_t nonce[6];      /* keys: wall ms, this nonce, a counter (like the client) */
	size_t qlen;
	size_t frame_max;      /* the biggest request we build */
	char *pad;             /* owned: payload_len '.'s, encoded then overwritten */
};

static void vu_cb(void *arg);

static bool
should_run(const svu *v)
{
	load_run *run = v->d->run;
	return !atomic_load(&run->stopping) && v->index < atomic_load(&run->vus) &&
	       !atomic_load(&v->d->closing);
}

static bool
claim(svu *v)
{
	bool idle = false;
	if (!atomic_compare_exchange_strong(&v->running, &idle, true))
		return false;
	atomic_fetch_add(&v->d->inflight, 1);
	return true;
}

/* Builds one ENQUEUE of batch messages into a new message; NULL on OOM. */
static nng_msg *
build(sdrv *d)
{
	const load_opts *o = d->run->o;
	nng_msg *m;
	proto_buf b;
	if (nng_msg_alloc(&m, d->frame_max) != 0)
		return NULL;
	proto_buf_init(&b, nng_msg_body(m), nng_msg_len(m));
	proto_enc_enqueue(&b, atomic_fetch_add(&d->rid, 1), o->queue, d->qlen);
	uint64_t seq = atomic_fetch_add(&d->run->seq, (uint64_t)o->batch);
	uint64_t ms = (uint64_t)clk_wall_ms();
	for (int i = 0; i < o->batch; i++, seq++) {
		char head[LOAD_HEAD_MAX];
		size_t hlen = load_payload_head(d->run, seq, head);
		size_t plen = hlen > o->size ? hlen : o->size;
		uint8_t key[KEY_LEN];
		proto_enq_item it = {.payload = {(const uint8_t *)d->pad, plen}};
		if (!o->no_keys) {
			for (int j = 0; j < 6; j++)
				key[j] = (uint8_t)(ms >> (40 - 8 * j));
			memcpy(key + 6, d->nonce, 6);
			for (int j = 0; j < 4; j++)
				key[12 + j] = (uint8_t)(seq >> (24 - 8 * j));
			it.key.ptr = key;
			it.key.len = KEY_LEN;
			it.flags = PROTO_ITEM_RETRY_KEY;
		}
		proto_enc_enq_item(&b, &it);
		/* the payload is last in the item: put the unique head over the pad */
		if (b.err == PROTO_OK)
			memcpy(b.data + b.len - plen, head, hlen);
	}
	if (proto_end(&b) != PROTO_OK) { /* frame_max is an upper bound: cannot happen */
		nng_msg_free(m);
		return NULL;
	}
	nng_msg_realloc(m, b.len); /* shrinks: never fails */
	return m;
}

static void
send_request(svu *v)
{
	sdrv *d = v->d;
	nng_msg *m = build(d);
	v->start_ns = clk_mono_ns();
	v->deadline_ns = v->start_ns + d->run->o->timeout_ms * 1000000;
	if (m == NULL) {
		/* record it and try again a little later, rather than spin */
		load_rec_add(d->run->rec, LOAD_KIND_TRANSPORT, 0, "out of memory");
		v->state = S_THINK;
		nng_sleep_aio(10, v->aio);
		return;
	}
	v->state = S_SEND;
	nng_aio_set_msg(v->aio, m);
	nng_aio_set_timeout(v->aio, (nng_duration)d->run->o->timeout_ms);
	nng_ctx_send(v->ctx, v->aio);
}

/* The request ended: go on, think, or go idle. */
static void
next(svu *v)
{
	sdrv *d = v->d;
	if (should_run(v)) {
		if (d->run->o->think_ms > 0) {
			v->state = S_THINK;
			nng_sleep_aio((nng_duration)d->run->o->think_ms, v->aio);
		} else {
			send_request(v);
		}
		return;
	}
	atomic_store(&v->running, false);
	atomic_fetch_sub(&d->inflight, 1);
	/* the target may have risen between the test and the store */
	if (should_run(v) && claim(v))
		send_request(v);
}

static int
nng_kind(int rv)
{
	return rv == NNG_ETIMEDOUT ? LOAD_KIND_TIMEOUT : LOAD_KIND_TRANSPORT;
}

static void
done(svu *v, int kind, const char *detail)
{
	load_rec_add(v->d->run->rec, kind, clk_mono_ns() - v->start_ns, detail);
	next(v);
}

/* Classifies a reply. */
static int
reply_kind(sdrv *d, nng_msg *m, char *detail, size_t len)
{
	proto_frame f;
	int prc = proto_frame_decode(nng_msg_body(m), nng_msg_len(m), &f);
	if (prc != PROTO_OK) {
		snprintf(detail, len, "undecodable reply: %s", proto_strerror(prc));
		return LOAD_KIND_BROKER;
	}
	if (f.h.type == PROTO_T_IDS) {
		uint32_t n = proto_iter_left(&f.u.id_list.ids);
		if (n == (uint32_t)d->run->o->batch)
			return LOAD_KIND_OK;
		snprintf(detail, len, "the broker returned %u ids for %d messages", n, d->run->o->batch);
		return LOAD_KIND_BROKER;
	}
	if (f.h.type == PROTO_T_ERROR) {
		snprintf(detail, len, "%s: %.*s", proto_err_name(f.u.error.code),
		         (int)f.u.error.message.len, (const char *)f.u.error.message.ptr);
		return f.u.error.code == PROTO_ERR_QUEUE_FULL ? LOAD_KIND_BUSY : LOAD_KIND_BROKER;
	}
	const char *t = proto_type_name(f.h.type);
	snprintf(detail, len, "unexpected reply %s", t ? t : "?");
	return LOAD_KIND_BROKER;
}

static void
vu_cb(void *arg)
{
	svu *v = arg;
	sdrv *d = v->d;
	int rv = nng_aio_result(v->aio);
	char detail[160];

	if (atomic_load(&d->closing)) {
		/* abandoned at close: after the drain's deadline, not a measurement */
		if (v->state == S_SEND && rv != 0)
			nng_msg_free(nng_aio_get_msg(v->aio));
		else if (v->state == S_RECV && rv == 0)
			nng_msg_free(nng_aio_get_msg(v->aio));
		nng_aio_set_msg(v->aio, NULL);
		atomic_store(&v->running, false);
		atomic_fetch_sub(&d->inflight, 1);
		return;
	}
	switch (v->state) {
	case S_SEND:
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(v->aio));
			nng_aio_set_msg(v->aio, NULL);
			snprintf(detail, sizeof(detail), "send: %s", nng_strerror(rv));
			done(v, nng_kind(rv), detail);
			return;
		}
		v->state = S_RECV;
		int64_t left_ms = (v->deadline_ns - clk_mono_ns()) / 1000000;
		nng_aio_set_timeout(v->aio, (nng_duration)(left_ms > 0 ? left_ms : 1));
		nng_ctx_recv(v->ctx, v->aio);
		return;
	case S_RECV:
		if (rv != 0) {
			if (rv == NNG_ETIMEDOUT)
				snprintf(detail, sizeof(detail), "no reply within %lld ms",
				         (long long)d->run->o->timeout_ms);
			else
				snprintf(detail, sizeof(detail), "receive: %s", nng_strerror(rv));
			done(v, nng_kind(rv), detail);
			return;
		}
		nng_msg *m = nng_aio_get_msg(v->aio);
		nng_aio_set_msg(v->aio, NULL);
		detail[0] = '\0';
		int kind = reply_kind(d, m, detail, sizeof(detail));
		nng_msg_free(m);
		done(v, kind, detail);
		return;
	case S_THINK:
	default:
		if (should_run(v))
			send_request(v);
		else
			next(v); /* goes idle */
		return;
	}
}

/* ---- setup: dial, PING, size check ---- */

static int
ping(sdrv *d, nng_socket s, int64_t timeout_ms, uint32_t *frame_limit, char *err, size_t errlen)
{
	nng_ctx ctx;
	nng_aio *aio = NULL;
	nng_msg *m = NULL;
	proto_buf b;
	int rv;
	if ((rv = nng_ctx_open(&ctx, s)) != 0) {
		snprintf(err, errlen, "cannot open a context: %s", nng_strerror(rv));
		return -1;
	}
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0 ||
	    (rv = nng_msg_alloc(&m, PROTO_HEADER_SIZE)) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	proto_buf_init(&b, nng_msg_body(m), nng_msg_len(m));
	proto_enc_ping(&b, atomic_fetch_add(&d->rid, 1));
	proto_end(&b);
	nng_aio_set_timeout(aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		nng_msg_free(m);
		m = NULL;
		snprintf(err, errlen, "cannot reach the broker at %s: PING: %s", d->run->o->broker,
		         nng_strerror(rv));
		goto fail;
	}
	m = NULL;
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		snprintf(err, errlen, "the broker at %s does not answer PING: %s", d->run->o->broker,
		         nng_strerror(rv));
		goto fail;
	}
	m = nng_aio_get_msg(aio);
	proto_frame f;
	if (proto_frame_decode(nng_msg_body(m), nng_msg_len(m), &f) != PROTO_OK ||
	    f.h.type != PROTO_T_INFO) {
		snprintf(err, errlen, "%s answers PING with something that is not a Sluice INFO",
		         d->run->o->broker);
		goto fail;
	}
	*frame_limit = f.u.info.max_frame_bytes;
	nng_msg_free(m);
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return 0;
fail:
	if (m != NULL)
		nng_msg_free(m);
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return -1;
}

static void sluice_close(void *arg);

static int
sluice_open(load_run *run, int max_vus, void **out, char *err, size_t errlen)
{
	const load_opts *o = run->o;
	sdrv *d = calloc(1, sizeof(*d));
	int rv;
	*out = NULL;
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->run = run;
	atomic_init(&d->inflight, 0);
	atomic_init(&d->closing, false);
	uint32_t seed = 0;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed) ||
	    getrandom(d->nonce, sizeof(d->nonce), 0) != sizeof(d->nonce)) {
		snprintf(err, errlen, "no randomness for request ids and keys");
		free(d);
		return -1;
	}
	atomic_init(&d->rid, seed);
	d->qlen = strlen(o->queue);
	size_t item_max = proto_enq_item_size(o->no_keys ? 0 : KEY_LEN, run->payload_len);
	d->frame_max = PROTO_ENQUEUE_BASE(d->qlen) + (size_t)o->batch * item_max;
	d->nsocks = o->connections > 0 ? o->connections
	                               : (max_vus + VUS_PER_SOCKET - 1) / VUS_PER_SOCKET;
	if (d->nsocks < 1)
		d->nsocks = 1;
	if (max_vus > 0 && d->nsocks > max_vus)
		d->nsocks = max_vus;
	d->socks = calloc((size_t)d->nsocks, sizeof(*d->socks));
	d->vus = calloc((size_t)(max_vus > 0 ? max_vus : 1), sizeof(*d->vus));
	d->pad = malloc(run->payload_len);
	if (d->socks == NULL || d->vus == NULL || d->pad == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memset(d->pad, '.', run->payload_len); /* zeroed sockets have id 0: not open */

	/* IDS replies hold 9 bytes per message: the request's size is plenty */
	size_t recv_max = d->frame_max + FRAME_SLACK;
	if (recv_max < (1 << 20))
		recv_max = 1 << 20;
	for (int i = 0; i < d->nsocks; i++) {
		if ((rv = nng_req0_open(&d->socks[i])) != 0) {
			snprintf(err, errlen, "cannot open a REQ socket: %s", nng_strerror(rv));
			goto fail;
		}
		nng_socket_set_size(d->socks[i], NNG_OPT_RECVMAXSZ, recv_max);
		nng_socket_set_ms(d->socks[i], NNG_OPT_RECONNMINT, 50);
		nng_socket_set_ms(d->socks[i], NNG_OPT_RECONNMAXT, 1000);
		/* a synchronous dial: an unreachable broker fails here, not as
		 * thousands of timeouts */
		if ((rv = nng_dial(d->socks[i], o->broker, NULL, 0)) != 0) {
			snprintf(err, errlen,
			         "cannot reach the broker at %s: %s (is sluice-broker running? -b URL or "
			         "-c FILE picks another)",
			         o->broker, nng_strerror(rv));
			goto fail;
		}
	}
	uint32_t frame_limit = 0;
	if (ping(d, d->socks[0], o->timeout_ms < 5000 ? o->timeout_ms : 5000, &frame_limit, err,
	         errlen) != 0)
		goto fail;
	if (frame_limit > 0 && d->frame_max > frame_limit) {
		snprintf(err, errlen,
		         "a request of %d messages of %zu bytes is %zu bytes, over the broker's frame "
		         "limit of %u: use a smaller --batch or --size",
		         o->batch, run->payload_len, d->frame_max, frame_limit);
		goto fail;
	}
	for (int i = 0; i < max_vus; i++) {
		svu *v = &d->vus[i];
		v->d = d;
		v->index = i;
		atomic_init(&v->running, false);
		if ((rv = nng_ctx_open(&v->ctx, d->socks[i % d->nsocks])) != 0 ||
		    (rv = nng_aio_alloc(&v->aio, vu_cb, v)) != 0) {
			snprintf(err, errlen, "cannot prepare %d VUs: %s", max_vus, nng_strerror(rv));
			goto fail;
		}
		/* no timer resends: a request has its own timeout; NNG still
		 * resends at once after a reconnect, which the keys make safe */
		nng_ctx_set_ms(v->ctx, NNG_OPT_REQ_RESENDTIME,
		               (nng_duration)(o->timeout_ms + 60000));
		d->nvus = i + 1;
	}
	*out = d;
	return 0;
fail:
	sluice_close(d);
	return -1;
}

static void
sluice_set_vus(void *arg, int vus)
{
	sdrv *d = arg;
	for (int i = 0; i < vus && i < d->nvus; i++) {
		svu *v = &d->vus[i];
		if (!atomic_load(&v->running) && should_run(v) && claim(v))
			send_request(v);
	}
}

static void
sluice_tick(void *arg, int64_t now_ns)
{
	(void)arg;
	(void)now_ns;
}

static void
sluice_stop(void *arg)
{
	(void)arg; /* VUs see run->stopping at the end of their request or think */
}

static int
sluice_inflight(void *arg)
{
	sdrv *d = arg;
	return atomic_load(&d->inflight);
}

static void
sluice_close(void *arg)
{
	sdrv *d = arg;
	if (d == NULL)
		return;
	atomic_store(&d->closing, true);
	for (int i = 0; i < d->nvus; i++)
		nng_aio_stop(d->vus[i].aio); /* cancels, waits for the callback */
	for (int i = 0; d->socks != NULL && i < d->nsocks; i++)
		if (nng_socket_id(d->socks[i]) > 0)
			nng_close(d->socks[i]); /* closes the contexts too */
	for (int i = 0; i < d->nvus; i++)
		nng_aio_free(d->vus[i].aio);
	free(d->vus);
	free(d->socks);
	free(d->pad);
	free(d);
}

const load_driver load_sluice_driver = {
	.name = "sluice",
	.open = sluice_open,
	.set_vus = sluice_set_vus,
	.tick = sluice_tick,
	.stop = sluice_stop,
	.inflight = sluice_inflight,
	.close = sluice_close,
};

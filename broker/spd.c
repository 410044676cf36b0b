/*
 * spd: SP's TCP mapping for the broker's REP side, on a reactor; see
 * spd.h.
 *
 * Each request is copied out of the input into an sreq, which lives until
 * its reply is written (or dropped with the connection): the limits below
 * count sreqs, so they bound the memory requests and replies take, as
 * NNG's contexts did: 1024 in all, plus one for each connection that has
 * none (so that clients flooding us cannot starve the others). A
 * connection over its limit, or while all are taken, stops being read;
 * its bytes wait in the socket and it is kicked when a reply is written.
 *
 * Why not NNG's REP socket for tcp://: each request crossed NNG's poll
 * thread, a task thread, the writer and the completion thread, and on two
 * cores those hand-offs, not the disk, bound unbatched enqueues.
 */
#include "spd.h"

#include "log.h"
#include "reactor.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEER_INFLIGHT_MAX 256  /* requests in hand per connection */
#define INFLIGHT_MAX      1024 /* requests in hand over all connections */
#define WRITE_STALL_MS    1000 /* a peer that leaves a reply unread this long is dropped */

typedef struct spconn spconn;

typedef struct sreq {
	brk_rx_out o;
	spconn *sc;
	brk_req r;
	uint8_t *rep;   /* owned: length, backtrace, reply frame */
	size_t repcap;
	uint32_t btlen; /* bytes of backtrace */
	uint8_t bt[4 * BRK_SP_MAX_HOPS];
	uint8_t frame[]; /* the request frame, which r.f borrows */
} sreq;

struct spconn {
	brk_spd *d;
	brk_rx_conn *c;
	bool hello;   /* the peer's handshake is in */
	bool starved; /* on d->starved, waiting for room */
	spconn *next_starved;
	int inflight;
	int refs; /* the connection, our handshake, each sreq */
	brk_rx_out hello_out;
};

struct brk_spd {
	brk_rx *rx;
	uint32_t frame_limit;
	brk_spd_serve_fn *serve;
	void *arg;
	volatile int64_t *connections;
	int inflight; /* the reactor thread's, like what follows */
	spconn *starved;
};

static void
sc_unref(spconn *sc)
{
	if (--sc->refs == 0)
		free(sc);
}

/* Kicks the connections waiting for room, now that there is some. */
static void
unstarve(brk_spd *d)
{
	spconn **link = &d->starved;
	while (*link != NULL && d->inflight < INFLIGHT_MAX) {
		spconn *sc = *link;
		if (sc->inflight >= PEER_INFLIGHT_MAX) {
			link = &sc->next_starved;
			continue;
		}
		*link = sc->next_starved;
		sc->starved = false;
		brk_rx_busy(sc->c, false);
		brk_rx_kick(sc->c);
	}
}

static void
unlist(spconn *sc)
{
	for (spconn **link = &sc->d->starved; *link != NULL; link = &(*link)->next_starved)
		if (*link == sc) {
			*link = sc->next_starved;
			break;
		}
	sc->starved = false;
}

/* ---- a request's reply ---- */

static uint8_t *
reply_buf(brk_req *r, size_t size)
{
	sreq *q = r->arg;
	size_t need = 8 + q->btlen + size;
	if (need > q->repcap) {
		uint8_t *p = realloc(q->rep, need);
		if (p == NULL)
			return NULL;
		q->rep = p;
		q->repcap = need;
	}
	return q->rep + 8 + q->btlen;
}

/* Any thread: the reply is built (or could not be: nothing is sent, and
 * the client's timeout and retry take over, as with NNG). */
static void
done(brk_req *r)
{
	sreq *q = r->arg;
	q->o.data = NULL;
	q->o.len = 0;
	if (q->rep != NULL && r->reply_len > 0) {
		uint64_t n = q->btlen + r->reply_len;
		brk_sp_put_length(q->rep, n);
		memcpy(q->rep + 8, q->bt, q->btlen);
		q->o.data = q->rep;
		q->o.len = 8 + (size_t)n;
	}
	brk_rx_post(q->sc->c, &q->o);
}

static void
sreq_release(brk_rx_out *o)
{
	sreq *q = (sreq *)(void *)o;
	spconn *sc = q->sc;
	brk_spd *d = sc->d;
	free(q->rep);
	free(q);
	sc->inflight--;
	d->inflight--;
	if (d->starved != NULL)
		unstarve(d);
	sc_unref(sc);
}

static void
hello_release(brk_rx_out *o)
{
	sc_unref((spconn *)((char *)o - offsetof(spconn, hello_out)));
}

/* ---- the protocol ---- */

/* The request in msg (need bytes, a backtrace of bt): hand it over. false
 * when out of memory (the connection is dropped). */
static bool
take(spconn *sc, const uint8_t *msg, size_t need, size_t bt)
{
	brk_spd *d = sc->d;
	size_t flen = need - 8 - bt;
	sreq *q = calloc(1, sizeof(*q) + flen); /* one allocation, the frame included */
	if (q == NULL)
		return false;
	memcpy(q->frame, msg + 8 + bt, flen);
	memcpy(q->bt, msg + 8, bt);
	q->btlen = (uint32_t)bt;
	q->sc = sc;
	q->o.release = sreq_release;
	q->r.arg = q;
	q->r.reply_buf = reply_buf;
	q->r.done = done;
	sc->inflight++;
	sc->refs++;
	d->inflight++;
	brk_rx_hold(sc->c);
	d->serve(d->arg, &q->r, q->frame, flen);
	return true;
}

static void
on_input(void *arg, brk_rx_conn *c)
{
	brk_spd *d = arg;
	spconn *sc = brk_rx_data(c);
	size_t len, need, bt;
	uint8_t *in = brk_rx_input(c, &len);

	if (!sc->hello) {
		if (len < BRK_SP_HELLO_LEN) {
			brk_rx_want(c, BRK_SP_HELLO_LEN);
			return;
		}
		if (!brk_sp_hello_from_req(in)) {
			log_debug("SP-BAD-HANDSHAKE", "a peer that is not an SP REQ socket");
			brk_rx_drop(c);
			return;
		}
		brk_rx_consume(c, BRK_SP_HELLO_LEN);
		sc->hello = true;
		__atomic_add_fetch(d->connections, 1, __ATOMIC_RELAXED);
	}
	for (;;) {
		in = brk_rx_input(c, &len);
		switch (brk_sp_request(in, len, (uint64_t)d->frame_limit + 4 * BRK_SP_MAX_HOPS,
		                       &need, &bt)) {
		case BRK_SP_MORE: brk_rx_want(c, need); return;
		case BRK_SP_TOO_LARGE:
			/* as NNG does: drop a connection announcing more than we
			 * take, before it costs memory */
			log_debug("SP-TOO-LARGE",
			          "a message over the frame limit announced; closing");
			brk_rx_drop(c);
			return;
		case BRK_SP_NO_ID:
			/* not a REQ request; NNG drops those too */
			log_debug("SP-NO-REQUEST-ID", "a message of %zu bytes without a request id",
			          need);
			brk_rx_consume(c, need);
			continue;
		}
		/* a connection with nothing in hand always gets one request in,
		 * so that clients flooding us cannot starve the others */
		if (sc->inflight >= PEER_INFLIGHT_MAX ||
		    (d->inflight >= INFLIGHT_MAX && sc->inflight > 0)) {
			if (!sc->starved) {
				sc->starved = true;
				sc->next_starved = d->starved;
				d->starved = sc;
			}
			brk_rx_busy(c, true); /* waiting on us, not a stall */
			return;
		}
		if (!take(sc, in, need, bt)) {
			brk_rx_drop(c);
			return;
		}
		brk_rx_consume(c, need);
		brk_rx_want(c, 0);
	}
}

static bool
on_open(void *arg, brk_rx_conn *c)
{
	spconn *sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return false;
	sc->d = arg;
	sc->c = c;
	sc->refs = 2; /* the connection, our handshake */
	sc->hello_out.data = brk_sp_hello_rep;
	sc->hello_out.len = BRK_SP_HELLO_LEN;
	sc->hello_out.release = hello_release;
	brk_rx_set_data(c, sc);
	brk_rx_send(c, &sc->hello_out);
	return true;
}

static void
on_closed(void *arg, brk_rx_conn *c)
{
	brk_spd *d = arg;
	spconn *sc = brk_rx_data(c);
	if (sc->starved)
		unlist(sc);
	if (sc->hello)
		__atomic_sub_fetch(d->connections, 1, __ATOMIC_RELAXED);
	sc_unref(sc);
}

static void
on_stalled(void *arg, brk_rx_conn *c, const char *why)
{
	(void)arg;
	(void)c;
	if (strcmp(why, BRK_RX_STALL_WRITE) == 0)
		log_warn("PEER-NOT-READING",
		         "a tcp:// connection left a reply unread for %d ms: "
		         "closing it",
		         WRITE_STALL_MS);
	else
		log_debug("CONN-CLOSED", "a tcp:// connection: %s", why);
}

/* ---- life cycle ---- */

int
brk_spd_open(const char *url, uint32_t frame_limit, brk_spd_serve_fn *serve, void *arg,
             volatile int64_t *connections, brk_spd **out, char *err, size_t errlen)
{
	brk_spd *d = calloc(1, sizeof(*d));
	*out = NULL;
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->frame_limit = frame_limit;
	d->serve = serve;
	d->arg = arg;
	d->connections = connections;
	brk_rx_proto p = {
	        .open = on_open,
	        .input = on_input,
	        .closed = on_closed,
	        .stalled = on_stalled,
	        .arg = d,
	        .idle_ms = 0,
	        .write_stall_ms = WRITE_STALL_MS,
	        .name = "sp",
	};
	if (brk_rx_open(url, &p, &d->rx, err, errlen) != 0) {
		free(d);
		return -1;
	}
	*out = d;
	return 0;
}

void
brk_spd_stop_accepting(brk_spd *d)
{
	if (d != NULL)
		brk_rx_stop_accepting(d->rx);
}

void
brk_spd_close(brk_spd *d)
{
	if (d == NULL)
		return;
	brk_rx_close(d->rx);
	free(d);
}

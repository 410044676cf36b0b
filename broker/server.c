/*
 * server: the broker's SP side in front of the writer. tcp:// listeners
 * are served by spd (our own reactor); ipc:// and tls+tcp:// by NNG's REP
 * socket with contexts, below. Both hand each request frame to serve().
 *
 * Each context cycles RECV -> (WRITER) -> SEND -> RECV. The request message
 * stays alive until its reply is sent, because the decoded frame borrows
 * its bytes. Replies are built by the writer straight into an nng_msg
 * (reply_buf) and sent from the writer thread with an asynchronous send.
 * Use cooked REP with one context per request: the raw socket drops replies
 * under load in NNG 1.5.
 */
#include "server.h"

#include "codec.h"
#include "log.h"
#include "spd.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NCTX 1024
#define SERVER_NAME "sluice 0.1.0"
/* A peer that does not read its replies: NNG's REP queues each further
 * reply to it in a context, so such clients could hold every context and
 * starve the others. A reply waits behind the one being written only while
 * the peer's socket is full, so a connection is closed when one of its
 * replies has waited PEER_SEND_TIMEOUT_MS, or when more than
 * PEER_PENDING_MAX wait (a quarter of the contexts; our clients run at
 * most 256 requests at once per connection). */
#define PEER_PENDING_MAX (NCTX / 4)
#define PEER_SEND_TIMEOUT_MS 1000
#define PEND_SLOTS (4 * NCTX) /* every pending reply is a context: never full */

typedef struct sctx sctx;

/* Replies being sent to one connection (a pipe id), in PEND_SLOTS. */
typedef struct pend {
	uint32_t pipe; /* 0: a free slot */
	uint32_t n;
	bool dropped;  /* drop_peer closed it */
} pend;

/* One listener and what is needed to make it again. */
typedef struct lst {
	nng_listener l;
	const char *url; /* borrowed from the configuration */
	bool ipc;
} lst;

struct brk_server {
	nng_socket sock;
	const cfg *cfg;
	brk_writer *w;
	brk_counters *counters;
	lst *listeners;
	size_t nlisteners;
	brk_spd **spds;      /* the tcp:// listeners */
	size_t nspds;
	pthread_t guard;     /* the IPC listener guard, see below */
	bool guard_running;
	bool guard_stop;     /* guarded by mu */
	pthread_cond_t guard_cv;
	sctx *ctxs;
	size_t nctx;
	pthread_mutex_t mu;
	bool draining; /* guarded by mu */
	uint32_t max_message_bytes;
	uint32_t frame_limit;
	bool opened;
	pthread_mutex_t pend_mu;
	pend *pend;          /* guarded by pend_mu: open addressing, linear probing */
};

enum { S_RECV, S_WRITER, S_SEND };

struct sctx {
	brk_server *s;
	nng_ctx ctx;
	nng_aio *aio;
	int state;
	nng_msg *req; /* owned until the reply is sent */
	nng_msg *rep; /* owned until handed to the send */
	uint32_t pipe; /* S_SEND: the connection the reply goes to, counted in pend */
	brk_req r;
};

/* ---- replies pending per connection ---- */

static size_t
pend_home(uint32_t pipe)
{
	return (size_t)((pipe * 2654435761u) % PEND_SLOTS);
}

/* One more reply pending for pipe; returns how many now. */
static uint32_t
pend_add(brk_server *s, uint32_t pipe)
{
	pthread_mutex_lock(&s->pend_mu);
	size_t i = pend_home(pipe);
	while (s->pend[i].pipe != 0 && s->pend[i].pipe != pipe)
		i = (i + 1) % PEND_SLOTS;
	s->pend[i].pipe = pipe;
	uint32_t n = ++s->pend[i].n;
	pthread_mutex_unlock(&s->pend_mu);
	return n;
}

/* One reply less pending for pipe; the slot is freed at zero, moving back
 * the entries after it that would no longer be found. */
static void
pend_remove(brk_server *s, uint32_t pipe)
{
	pthread_mutex_lock(&s->pend_mu);
	size_t i = pend_home(pipe);
	while (s->pend[i].pipe != 0 && s->pend[i].pipe != pipe)
		i = (i + 1) % PEND_SLOTS;
	if (s->pend[i].pipe == pipe && --s->pend[i].n == 0) {
		s->pend[i].pipe = 0;
		s->pend[i].dropped = false;
		for (size_t j = (i + 1) % PEND_SLOTS; s->pend[j].pipe != 0; j = (j + 1) % PEND_SLOTS) {
			size_t k = pend_home(s->pend[j].pipe);
			bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
			if (stays)
				continue;
			s->pend[i] = s->pend[j];
			s->pend[j] = (pend){0};
			i = j;
		}
	}
	pthread_mutex_unlock(&s->pend_mu);
}

/* Closes the connection x's reply goes to (x->pipe, pending): a peer that
 * does not read. Its queued replies complete (as sent) and free their
 * contexts. Logged once per connection. */
static void
drop_peer(sctx *x, const char *why)
{
	brk_server *s = x->s;
	bool first = false;
	pthread_mutex_lock(&s->pend_mu);
	size_t i = pend_home(x->pipe);
	while (s->pend[i].pipe != 0 && s->pend[i].pipe != x->pipe)
		i = (i + 1) % PEND_SLOTS;
	if (s->pend[i].pipe == x->pipe && !s->pend[i].dropped)
		first = s->pend[i].dropped = true;
	pthread_mutex_unlock(&s->pend_mu);
	if (first)
		log_warn("PEER-NOT-READING", "connection %u %s: closing it", (unsigned)x->pipe, why);
	nng_pipe_close(nng_msg_get_pipe(x->req));
}

static void
recv_next(sctx *x)
{
	x->state = S_RECV;
	nng_aio_set_timeout(x->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(x->ctx, x->aio);
}

static void
send_reply(sctx *x)
{
	if (x->rep == NULL || x->r.reply_len == 0) {
		/* no reply could be built (out of memory): drop the request; the
		 * client's timeout and retry take over */
		if (x->rep != NULL)
			nng_msg_free(x->rep);
		x->rep = NULL;
		nng_msg_free(x->req);
		x->req = NULL;
		recv_next(x);
		return;
	}
	nng_msg_realloc(x->rep, x->r.reply_len); /* trims: never fails */
	x->state = S_SEND;
	x->pipe = nng_pipe_id(nng_msg_get_pipe(x->req));
	uint32_t pending = pend_add(x->s, x->pipe);
	nng_aio_set_msg(x->aio, x->rep);
	nng_aio_set_timeout(x->aio, PEER_SEND_TIMEOUT_MS);
	x->rep = NULL;
	if (pending > PEER_PENDING_MAX)
		drop_peer(x, "has 256 replies waiting unread");
	nng_ctx_send(x->ctx, x->aio);
}

static uint8_t *
reply_buf(brk_req *r, size_t size)
{
	sctx *x = r->arg;
	int rv = x->rep ? nng_msg_realloc(x->rep, size) : nng_msg_alloc(&x->rep, size);
	return rv == 0 ? nng_msg_body(x->rep) : NULL;
}

/* Called on the writer thread when the reply is ready. */
static void
writer_done(brk_req *r)
{
	send_reply(r->arg);
}

/* Answers r at once with an ERROR frame. */
static void
answer_error(brk_req *r, uint32_t rid, int code, const char *msg)
{
	proto_buf b;
	size_t size = PROTO_HEADER_SIZE + 8 + strlen(msg);
	uint8_t *mem = r->reply_buf(r, size);
	r->reply_len = 0;
	if (mem != NULL) {
		proto_buf_init(&b, mem, size);
		proto_enc_error(&b, rid, (uint16_t)code, code == PROTO_ERR_SHUTTING_DOWN ? 1000 : 0, msg);
		if (proto_end(&b) == PROTO_OK)
			r->reply_len = b.len;
	}
	r->done(r);
}

/* One request frame, from either transport: PING and bad frames are
 * answered here, everything else goes to the writer. */
static void
serve(void *arg, brk_req *r, const uint8_t *frame, size_t len)
{
	brk_server *s = arg;
	proto_frame *f = &r->f;
	int rc = proto_frame_decode(frame, len, f);

	if (rc != PROTO_OK) {
		char msg[160];
		__atomic_add_fetch(&s->counters->bad_frames, 1, __ATOMIC_RELAXED);
		snprintf(msg, sizeof(msg), "bad frame: %s", proto_strerror(rc));
		log_debug("BAD-FRAME", "%zu bytes: %s", len, proto_strerror(rc));
		answer_error(r, rc == PROTO_E_MAGIC || rc == PROTO_E_SHORT ? 0 : f->h.request_id,
		             rc == PROTO_E_VERSION ? PROTO_ERR_UNSUPPORTED_VERSION : PROTO_ERR_BAD_FRAME,
		             rc == PROTO_E_VERSION ? "unsupported protocol version: this broker speaks 1"
		                                   : msg);
		return;
	}
	if (f->h.type & 0x80) {
		__atomic_add_fetch(&s->counters->bad_frames, 1, __ATOMIC_RELAXED);
		answer_error(r, f->h.request_id, PROTO_ERR_BAD_FRAME, "bad frame: a reply sent as a request");
		return;
	}
	if (f->h.type == PROTO_T_PING) {
		proto_buf b;
		size_t size = PROTO_HEADER_SIZE + 1 + strlen(SERVER_NAME) + 8;
		uint8_t *mem = r->reply_buf(r, size);
		r->reply_len = 0;
		if (mem != NULL) {
			proto_buf_init(&b, mem, size);
			proto_enc_info(&b, f->h.request_id, SERVER_NAME, s->max_message_bytes, s->frame_limit);
			if (proto_end(&b) == PROTO_OK)
				r->reply_len = b.len;
		}
		r->done(r);
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (s->draining) {
		pthread_mutex_unlock(&s->mu);
		answer_error(r, f->h.request_id, PROTO_ERR_SHUTTING_DOWN, "the broker is shutting down");
		return;
	}
	brk_writer_submit(s->w, r);
	pthread_mutex_unlock(&s->mu);
}

static void
on_request(sctx *x)
{
	x->state = S_WRITER; /* an answer given at once moves it on to S_SEND */
	serve(x->s, &x->r, nng_msg_body(x->req), nng_msg_len(x->req));
}

static void
ctx_cb(void *arg)
{
	sctx *x = arg;
	int rv = nng_aio_result(x->aio);

	switch (x->state) {
	case S_RECV:
		if (rv != 0) {
			if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
				recv_next(x);
			return;
		}
		x->req = nng_aio_get_msg(x->aio);
		nng_aio_set_msg(x->aio, NULL);
		on_request(x);
		break;
	case S_SEND:
		if (rv == NNG_ETIMEDOUT)
			drop_peer(x, "left a reply unread for a second");
		pend_remove(x->s, x->pipe);
		if (rv != 0) {
			/* the peer went away: the reply is ours to free */
			nng_msg *m = nng_aio_get_msg(x->aio);
			if (m != NULL)
				nng_msg_free(m);
			nng_aio_set_msg(x->aio, NULL);
		}
		nng_msg_free(x->req);
		x->req = NULL;
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			recv_next(x);
		break;
	default:
		break;
	}
}

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	brk_server *s = arg;
	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST)
		__atomic_add_fetch(&s->counters->connections, 1, __ATOMIC_RELAXED);
	else if (ev == NNG_PIPE_EV_REM_POST)
		__atomic_sub_fetch(&s->counters->connections, 1, __ATOMIC_RELAXED);
}

/* A whole PEM file, NUL-terminated, or NULL. */
static char *
read_pem(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		long n = ftell(f);
		if (n >= 0 && n < 1024 * 1024 && fseek(f, 0, SEEK_SET) == 0 &&
		    (buf = malloc((size_t)n + 1)) != NULL) {
			size_t got = fread(buf, 1, (size_t)n, f);
			buf[got] = '\0';
		}
	}
	fclose(f);
	return buf;
}

static int
set_tls(const cfg *c, nng_listener l, char *err, size_t errlen, const char *url)
{
	nng_tls_config *tls;
	int rv;
	if (c->broker.tls_cert == NULL || c->broker.tls_key == NULL) {
		snprintf(err, errlen, "%s: tls+tcp:// needs broker.tls.cert and broker.tls.key", url);
		return NNG_EINVAL;
	}
	if ((rv = nng_tls_config_alloc(&tls, NNG_TLS_MODE_SERVER)) != 0)
		goto fail;
	char *cert = read_pem(c->broker.tls_cert), *key = read_pem(c->broker.tls_key);
	rv = cert && key ? nng_tls_config_own_cert(tls, cert, key, NULL) : NNG_ENOENT;
	free(cert);
	free(key);
	if (rv != 0) {
		nng_tls_config_free(tls);
		snprintf(err, errlen, "%s: cannot load %s / %s: %s", url, c->broker.tls_cert,
		         c->broker.tls_key, nng_strerror(rv));
		return rv;
	}
	if (c->broker.tls_ca != NULL && (rv = nng_tls_config_ca_file(tls, c->broker.tls_ca)) != 0) {
		nng_tls_config_free(tls);
		snprintf(err, errlen, "%s: cannot load CA %s: %s", url, c->broker.tls_ca, nng_strerror(rv));
		return rv;
	}
	rv = nng_tls_config_auth_mode(tls, c->broker.tls_require_client_cert ? NNG_TLS_AUTH_MODE_REQUIRED
	                                                                      : NNG_TLS_AUTH_MODE_NONE);
	if (rv == 0)
		rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls);
	nng_tls_config_free(tls);
	if (rv == 0)
		return 0;
fail:
	snprintf(err, errlen, "%s: TLS setup: %s", url, nng_strerror(rv));
	return rv;
}

static int
start_listener(brk_server *s, lst *L, char *err, size_t errlen)
{
	int rv;
	if ((rv = nng_listener_create(&L->l, s->sock, L->url)) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", L->url, nng_strerror(rv));
		return rv;
	}
	nng_listener_set_size(L->l, NNG_OPT_RECVMAXSZ, s->frame_limit);
	if (strncmp(L->url, "tls+tcp://", 10) == 0 && (rv = set_tls(s->cfg, L->l, err, errlen, L->url)) != 0) {
		nng_listener_close(L->l);
		return rv;
	}
	if ((rv = nng_listener_start(L->l, 0)) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", L->url, nng_strerror(rv));
		nng_listener_close(L->l);
		return rv;
	}
	return 0;
}

/*
 * The IPC listener guard. In NNG 1.5.2 (Debian 12's), a client that
 * connects to an ipc:// listener and closes before the SP handshake makes
 * the listener stop accepting for good, and its poller thread spin
 * (upstream issue #1518, fixed in 1.6.0). So every two seconds the guard
 * connects to each ipc:// path, does the handshake, and if the broker does
 * not answer it within a second, makes the listener again.
 */
#define GUARD_EVERY_MS 2000
#define GUARD_TIMEOUT_MS 1000

/* Reads exactly n bytes, or fails. */
static bool
read_full(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = recv(fd, buf + got, n - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		got += (size_t)k;
	}
	return true;
}

/* Sends a PING as a REQ peer would, over the raw IPC framing (8-byte SP
 * header; then per message a 0x01 byte, a 64-bit length, the REQ request
 * id and the frame), and waits for the INFO reply. */
static bool
ipc_answers(const char *url)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};
	uint8_t msg[1 + 8 + 4 + PROTO_HEADER_SIZE] = {0x01, 0, 0, 0, 0, 0, 0, 0, 4 + PROTO_HEADER_SIZE,
	                                              0x80, 0, 0, 1};
	uint8_t head[8], frame[9];
	proto_buf b;
	bool ok = false;

	proto_buf_init(&b, msg + 13, PROTO_HEADER_SIZE);
	proto_enc_ping(&b, 0);
	proto_end(&b);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", url + 6);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true; /* cannot tell: leave the listener alone */
	struct timeval tv = {GUARD_TIMEOUT_MS / 1000, (GUARD_TIMEOUT_MS % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		ok = errno == EAGAIN; /* a full backlog is load, not a dead listener */
	} else if (send(fd, hello, sizeof(hello), MSG_NOSIGNAL) == (ssize_t)sizeof(hello) &&
	           read_full(fd, head, sizeof(head)) &&
	           send(fd, msg, sizeof(msg), MSG_NOSIGNAL) == (ssize_t)sizeof(msg)) {
		ok = read_full(fd, frame, sizeof(frame)) && frame[0] == 0x01;
	}
	close(fd);
	return ok;
}

static void *
guard_main(void *arg)
{
	brk_server *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!s->guard_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += GUARD_EVERY_MS / 1000;
		pthread_cond_timedwait(&s->guard_cv, &s->mu, &ts);
		if (s->guard_stop || s->draining)
			break;
		pthread_mutex_unlock(&s->mu);
		for (size_t i = 0; i < s->nlisteners; i++) {
			lst *L = &s->listeners[i];
			if (!L->ipc || ipc_answers(L->url))
				continue;
			char err[256];
			log_warn("IPC-LISTENER-RESTART", "%s stopped accepting (a client left during the "
			         "handshake); listening again", L->url);
			nng_listener_close(L->l);
			if (start_listener(s, L, err, sizeof(err)) != 0)
				log_error("IPC-LISTENER-FAILED", "%s", err);
		}
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
brk_server_open(const cfg *c, brk_writer *w, brk_server **out, char *err, size_t errlen)
{
	brk_server *s = calloc(1, sizeof(*s));
	int rv;

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NNG_ENOMEM;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->pend_mu, NULL);
	pthread_cond_init(&s->guard_cv, NULL);
	s->cfg = c;
	s->w = w;
	s->counters = brk_writer_counters(w);
	s->max_message_bytes = (uint32_t)c->broker.max_message_bytes;
	s->frame_limit = brk_writer_frame_limit(w);
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		snprintf(err, errlen, "cannot open socket: %s", nng_strerror(rv));
		free(s);
		return rv;
	}
	s->opened = true;
	/* a frame over the limit is dropped by NNG before it costs us memory */
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, s->frame_limit);
	nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, s);
	nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);

	s->ctxs = calloc(NCTX, sizeof(*s->ctxs));
	s->listeners = calloc(c->broker.nlisten, sizeof(*s->listeners));
	s->spds = calloc(c->broker.nlisten, sizeof(*s->spds));
	s->pend = calloc(PEND_SLOTS, sizeof(*s->pend));
	if (s->ctxs == NULL || s->listeners == NULL || s->spds == NULL || s->pend == NULL) {
		snprintf(err, errlen, "out of memory");
		rv = NNG_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < NCTX; i++) {
		sctx *x = &s->ctxs[i];
		x->s = s;
		x->r.arg = x;
		x->r.reply_buf = reply_buf;
		x->r.done = writer_done;
		if ((rv = nng_ctx_open(&x->ctx, s->sock)) != 0 ||
		    (rv = nng_aio_alloc(&x->aio, ctx_cb, x)) != 0) {
			snprintf(err, errlen, "cannot create contexts: %s", nng_strerror(rv));
			goto fail;
		}
		s->nctx++;
	}
	/* NNG's listeners first: their requests wait for the contexts below,
	 * while a tcp:// listener serves as soon as it is open */
	for (size_t i = 0; i < c->broker.nlisten; i++) {
		const char *url = c->broker.listen[i];
		if (strncmp(url, "tcp://", 6) == 0)
			continue;
		lst *L = &s->listeners[s->nlisteners];
		L->url = url;
		L->ipc = strncmp(L->url, "ipc://", 6) == 0;
		if ((rv = start_listener(s, L, err, errlen)) != 0)
			goto fail;
		s->nlisteners++;
		log_info("LISTENING", "%s", L->url);
	}
	for (size_t i = 0; i < c->broker.nlisten; i++) {
		const char *url = c->broker.listen[i];
		if (strncmp(url, "tcp://", 6) != 0)
			continue;
		if (brk_spd_open(url, s->frame_limit, serve, s, &s->counters->connections,
		                 &s->spds[s->nspds], err, errlen) != 0) {
			rv = NNG_EADDRINUSE;
			goto fail;
		}
		s->nspds++;
		log_info("LISTENING", "%s", url);
	}
	for (size_t i = 0; i < s->nctx; i++)
		recv_next(&s->ctxs[i]);
	for (size_t i = 0; i < s->nlisteners; i++)
		if (s->listeners[i].ipc && pthread_create(&s->guard, NULL, guard_main, s) == 0) {
			s->guard_running = true;
			break;
		}
	*out = s;
	return 0;
fail:
	brk_server_drain(s);
	brk_server_close(s);
	return rv;
}

void
brk_server_drain(brk_server *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->draining = true;
	s->guard_stop = true;
	pthread_cond_signal(&s->guard_cv);
	pthread_mutex_unlock(&s->mu);
	if (s->guard_running) {
		pthread_join(s->guard, NULL);
		s->guard_running = false;
	}
	for (size_t i = 0; i < s->nlisteners; i++)
		nng_listener_close(s->listeners[i].l);
	s->nlisteners = 0;
	for (size_t i = 0; i < s->nspds; i++)
		brk_spd_stop_accepting(s->spds[i]);
}

void
brk_server_close(brk_server *s)
{
	if (s == NULL)
		return;
	/* Stop every context's aio (cancels it and waits for its callback),
	 * then close the contexts, then the socket: closing the socket with
	 * operations still pending can hang in NNG 1.5. */
	for (size_t i = 0; i < s->nctx; i++)
		nng_aio_stop(s->ctxs[i].aio);
	for (size_t i = 0; i < s->nctx; i++)
		nng_ctx_close(s->ctxs[i].ctx);
	if (s->opened)
		nng_close(s->sock);
	for (size_t i = 0; i < s->nctx; i++) {
		sctx *x = &s->ctxs[i];
		nng_aio_free(x->aio);
		if (x->req != NULL)
			nng_msg_free(x->req);
		if (x->rep != NULL)
			nng_msg_free(x->rep);
	}
	for (size_t i = 0; i < s->nspds; i++)
		brk_spd_close(s->spds[i]);
	free(s->spds);
	free(s->ctxs);
	free(s->listeners);
	free(s->pend);
	pthread_cond_destroy(&s->guard_cv);
	pthread_mutex_destroy(&s->pend_mu);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

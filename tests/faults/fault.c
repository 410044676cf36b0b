/* fault: producers, the audit and the probes every fault scenario shares. */
#include "fault.h"

#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define NAME_MAX_LEN 64

bool
ft_full(void)
{
	const char *f = getenv("SLUICE_FAULT_FULL");
	return f != NULL && strcmp(f, "1") == 0;
}

long
ft_count(long ci, long full)
{
	return ft_full() ? full : th_scaled(ci);
}

/* ---- producers ---- */

typedef struct producer {
	struct ft_load *l;
	int index;
	pthread_t t;
	bool started;
	atomic_long acked; /* messages 0..acked-1 are acknowledged */
	long inhand;       /* messages of the request given up at the stop */
} producer;

struct ft_load {
	ft_load_opts o;
	producer p[FT_MAX_PRODUCERS];
	atomic_int stop;
	atomic_llong deadline_ms; /* th_now_ms() when the stop's grace ends */
	pthread_mutex_t mu;
	long refused[FT_MAX_CODES];
	int64_t refused_max_ms[FT_MAX_CODES];
	char text[FT_MAX_CODES][256];
	uint32_t retry_after_ms[FT_MAX_CODES];
	long retries;
};

/* The name of message k of producer p: "PREFIXp-k". */
static int
msg_name(const ft_load *l, int p, long k, char *out, size_t cap)
{
	return snprintf(out, cap, "%s%d-%ld", l->o.prefix, p, k);
}

static void
note_refusal(ft_load *l, int rc, int64_t took_ms)
{
	int code = rc >= 0 && rc < FT_MAX_CODES ? rc : FT_MAX_CODES - 1;
	pthread_mutex_lock(&l->mu);
	l->refused[code]++;
	if (took_ms > l->refused_max_ms[code])
		l->refused_max_ms[code] = took_ms;
	snprintf(l->text[code], sizeof(l->text[code]), "%s", sluice_errmsg());
	l->retry_after_ms[code] = sluice_retry_after_ms();
	l->retries++;
	pthread_mutex_unlock(&l->mu);
}

static void *
produce_main(void *arg)
{
	producer *p = arg;
	ft_load *l = p->l;
	int b = l->o.batch;
	size_t plen = (size_t)(l->o.payload_bytes > NAME_MAX_LEN ? l->o.payload_bytes : NAME_MAX_LEN);
	char (*names)[NAME_MAX_LEN] = calloc((size_t)b, NAME_MAX_LEN);
	char *payloads = calloc((size_t)b, plen + 1);
	sluice_msg_in *msgs = calloc((size_t)b, sizeof(*msgs));
	uint64_t *ids = calloc((size_t)b, sizeof(*ids));
	sluice_client *c = NULL;
	sluice_opts so = {.timeout_ms = l->o.timeout_ms, .tls_ca = l->o.tls_ca,
	                  .tls_cert_key = l->o.tls_cert_key, .tls_server_name = l->o.tls_server_name};
	long k = 0;

	if (names == NULL || payloads == NULL || msgs == NULL || ids == NULL ||
	    sluice_open(&c, l->o.url, &so) != 0)
		goto out;
	while (!atomic_load(&l->stop) && (l->o.max_per_producer == 0 || k < l->o.max_per_producer)) {
		long n = b;
		if (l->o.max_per_producer > 0 && l->o.max_per_producer - k < n)
			n = l->o.max_per_producer - k;
		for (long j = 0; j < n; j++) {
			char *pl = payloads + (size_t)j * (plen + 1);
			int len = msg_name(l, p->index, k + j, names[j], NAME_MAX_LEN);
			memcpy(pl, names[j], (size_t)len);
			size_t total = (size_t)len;
			if (l->o.payload_bytes > len + 1) {
				pl[len] = ':';
				memset(pl + len + 1, 'x', (size_t)l->o.payload_bytes - (size_t)len - 1);
				total = (size_t)l->o.payload_bytes;
			}
			msgs[j] = (sluice_msg_in){.payload = pl, .len = total, .key = names[j],
			                          .keylen = (size_t)len};
		}
		/* the same request, with the same keys, until it is acknowledged */
		for (;;) {
			int64_t t0 = th_now_ms();
			int rc = sluice_enqueue(c, l->o.queue, msgs, (size_t)n, ids, NULL);
			if (rc == 0) {
				k += n;
				atomic_store(&p->acked, k);
				break;
			}
			note_refusal(l, rc, th_now_ms() - t0);
			if (atomic_load(&l->stop) && th_now_ms() >= atomic_load(&l->deadline_ms)) {
				p->inhand = n;
				goto out;
			}
			usleep((useconds_t)l->o.retry_us);
		}
		if (l->o.pause_us > 0)
			usleep((useconds_t)l->o.pause_us);
	}
out:
	sluice_close(c);
	free(names);
	free(payloads);
	free(msgs);
	free(ids);
	return NULL;
}

static void
load_free(void *arg)
{
	ft_load *l = arg;
	ft_load_stop(l, 0);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

ft_load *
ft_load_start(const ft_load_opts *o)
{
	ft_load *l = calloc(1, sizeof(*l));
	CHECK(l != NULL);
	l->o = *o;
	if (l->o.url == NULL)
		l->o.url = fx.url;
	if (l->o.queue == NULL)
		l->o.queue = "default";
	if (l->o.prefix == NULL)
		l->o.prefix = "m";
	if (l->o.producers <= 0)
		l->o.producers = 4;
	if (l->o.producers > FT_MAX_PRODUCERS)
		l->o.producers = FT_MAX_PRODUCERS;
	if (l->o.batch <= 0)
		l->o.batch = 1;
	if (l->o.timeout_ms <= 0)
		l->o.timeout_ms = 3000;
	if (l->o.retry_us <= 0)
		l->o.retry_us = 20000;
	pthread_mutex_init(&l->mu, NULL);
	atomic_init(&l->stop, 0);
	atomic_init(&l->deadline_ms, 0);
	th_defer(load_free, l);
	for (int i = 0; i < l->o.producers; i++) {
		producer *p = &l->p[i];
		p->l = l;
		p->index = i;
		atomic_init(&p->acked, 0);
		CHECK(pthread_create(&p->t, NULL, produce_main, p) == 0);
		p->started = true;
	}
	return l;
}

void
ft_load_stop(ft_load *l, int64_t grace_ms)
{
	atomic_store(&l->deadline_ms, th_now_ms() + grace_ms);
	atomic_store(&l->stop, 1);
	for (int i = 0; i < l->o.producers; i++)
		if (l->p[i].started) {
			pthread_join(l->p[i].t, NULL);
			l->p[i].started = false;
		}
}

long
ft_load_acked(const ft_load *l)
{
	long n = 0;
	for (int i = 0; i < l->o.producers; i++)
		n += atomic_load(&l->p[i].acked);
	return n;
}

long
ft_load_refused(const ft_load *l, int code)
{
	return code >= 0 && code < FT_MAX_CODES ? l->refused[code] : 0;
}

int64_t
ft_load_refused_max_ms(const ft_load *l, int code)
{
	return code >= 0 && code < FT_MAX_CODES ? l->refused_max_ms[code] : 0;
}

uint32_t
ft_load_retry_after_ms(const ft_load *l, int code)
{
	return code >= 0 && code < FT_MAX_CODES ? l->retry_after_ms[code] : 0;
}

const char *
ft_load_refused_text(const ft_load *l, int code)
{
	return code >= 0 && code < FT_MAX_CODES ? l->text[code] : "";
}

long
ft_load_retries(const ft_load *l)
{
	return l->retries;
}

bool
ft_load_wait(const ft_load *l, long n, int timeout_ms)
{
	long want = ft_load_acked(l) + n;
	int64_t end = th_now_ms() + timeout_ms;
	while (ft_load_acked(l) < want) {
		if (th_now_ms() > end)
			return false;
		usleep(20000);
	}
	return true;
}

/* ---- the audit ---- */

/* Parses "PREFIXp-k" (optionally followed by ':' and padding) of load l:
 * true with *p and *k when the payload is one of l's names. */
static bool
parse_name(const ft_load *l, const char *s, size_t len, int *p, long *k)
{
	size_t plen = strlen(l->o.prefix);
	char buf[NAME_MAX_LEN];
	if (len <= plen || memcmp(s, l->o.prefix, plen) != 0 || !isdigit((unsigned char)s[plen]))
		return false;
	size_t n = len - plen;
	const char *colon = memchr(s + plen, ':', n);
	if (colon != NULL)
		n = (size_t)(colon - (s + plen));
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s + plen, n);
	buf[n] = '\0';
	char *dash = strchr(buf, '-'), *e1, *e2;
	if (dash == NULL)
		return false;
	*dash = '\0';
	long pi = strtol(buf, &e1, 10);
	long ki = strtol(dash + 1, &e2, 10);
	if (*e1 != '\0' || *e2 != '\0' || dash[1] == '\0' || pi < 0 || ki < 0)
		return false;
	*p = (int)pi;
	*k = ki;
	return true;
}

typedef struct tally {
	const ft_load *l;
	int *seen[FT_MAX_PRODUCERS]; /* runs or rows per message, up to sent */
	long sent[FT_MAX_PRODUCERS]; /* acked + in hand */
	long rows;
	long phantom;
} tally;

static void
tally_one(tally *t, const char *s, size_t len)
{
	int p;
	long k;
	if (!parse_name(t->l, s, len, &p, &k))
		return; /* another load's message */
	t->rows++;
	if (p >= t->l->o.producers || k >= t->sent[p]) {
		t->phantom++;
		return;
	}
	t->seen[p][k]++;
}

static void
read_sink(tally *t, const char *db, const char *table)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	char sql[256];
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		th_fail(__FILE__, __LINE__, "cannot open the sink %s", db);
	}
	sqlite3_busy_timeout(h, 10000);
	snprintf(sql, sizeof(sql), "SELECT payload FROM \"%s\"", table);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		th_fail(__FILE__, __LINE__, "cannot read the sink %s: %s", db, sqlite3_errmsg(h));
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		tally_one(t, (const char *)sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
}

bool
ft_sqlite_write_locked(const char *db)
{
	sqlite3 *h;
	bool locked = false;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(h, 0);
		locked = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_BUSY;
		if (!locked)
			sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_close(h);
	return locked;
}

static void
read_jobs(tally *t, const char *path)
{
	char *s = th_read(path);
	if (s == NULL)
		return;
	for (char *line = s; *line != '\0';) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len > 0)
			tally_one(t, line, len);
		line += len + (nl ? 1 : 0);
	}
}

bool
ft_broker_serves(void)
{
	sluice_client *c;
	sluice_opts so = {.timeout_ms = 5000};
	sluice_stats *s;
	sluice_batch *b = NULL;
	uint64_t id;
	uint16_t code = 1;
	bool ok = false;
	static const char q[] = "audit.canary";
	sluice_msg_in m = {.payload = "canary", .len = 6};

	if (sluice_open(&c, fx.url, &so) != 0)
		return false;
	if (sluice_ping(c, NULL) == 0 && sluice_stats_get(c, NULL, &s) == 0) {
		sluice_stats_free(s);
		if (sluice_enqueue(c, q, &m, 1, &id, NULL) == 0 &&
		    sluice_lease(c, q, 100, 30000, 2000, &b) == 0 && b->count > 0) {
			for (size_t i = 0; i < b->count; i++)
				if (sluice_ack(c, q, b->token, &b->msgs[i].id, 1, NULL, 0, &code) != 0)
					code = 1;
			ok = code == 0;
		}
	}
	if (!ok)
		fprintf(stderr, "  the broker does not serve: %s\n", sluice_errmsg());
	sluice_batch_free(b);
	sluice_close(c);
	return ok;
}

void
ft_audit(ft_load *l, const ft_audit_opts *o, ft_audit_result *out)
{
	static const ft_audit_opts none;
	ft_audit_result r = {0};
	tally t = {.l = l};
	long inhand = 0;

	if (o == NULL)
		o = &none;
	const char *queue = o->queue ? o->queue : "default";
	const char *table = o->table ? o->table : "events";
	const char *sink = o->jobs == NULL && o->sink == NULL ? fx.sink : o->sink;
	int drain_ms = o->drain_ms > 0 ? o->drain_ms : 120000;

	ft_load_stop(l, 30000);
	CHECK(ft_broker_serves());
	sluice_client *c = fx_client();
	if (!fx_drained(c, queue, drain_ms))
		th_fail(__FILE__, __LINE__, "queue '%s' did not drain in %d ms: backlog %lld, delayed %lld",
		        queue, drain_ms, (long long)fx_stat(c, queue, "backlog"),
		        (long long)fx_stat(c, queue, "delayed"));
	int64_t dead = fx_stat(c, queue, "dead");
	for (int i = 0; i < l->o.producers; i++) {
		t.sent[i] = atomic_load(&l->p[i].acked) + l->p[i].inhand;
		inhand += l->p[i].inhand;
		t.seen[i] = calloc((size_t)t.sent[i] + 1, sizeof(int));
		CHECK(t.seen[i] != NULL);
	}
	if (o->jobs != NULL)
		read_jobs(&t, o->jobs);
	else
		read_sink(&t, sink, table);
	for (int i = 0; i < l->o.producers; i++) {
		long acked = atomic_load(&l->p[i].acked);
		r.acked += acked;
		for (long k = 0; k < t.sent[i]; k++) {
			int n = t.seen[i][k];
			if (k >= acked) {
				r.unacked_stored += n > 0;
				continue;
			}
			if (n == 0)
				r.lost++;
			else if (n > 1)
				r.duplicated++;
		}
		free(t.seen[i]);
	}
	r.stored = t.rows;
	r.phantom = t.phantom;
	printf("  AUDIT acknowledged %ld, %s %ld, lost %ld, %s %ld, sent-unacknowledged stored %ld "
	       "(of %ld in hand), never sent %ld, dead-lettered %lld\n",
	       r.acked, o->jobs ? "runs" : "rows", r.stored, r.lost,
	       o->jobs ? "run more than once (allowed)" : "duplicated", r.duplicated, r.unacked_stored,
	       inhand, r.phantom, (long long)dead);
	if (out != NULL)
		*out = r;
	CHECK(r.acked > 0);
	CHECK_EQ(r.lost, 0);
	if (o->jobs == NULL)
		CHECK_EQ(r.duplicated, 0);
	CHECK_EQ(r.phantom, 0);
	CHECK(r.unacked_stored <= inhand);
	CHECK_EQ(dead, 0);
}

/* ---- processes ---- */

static long
status_kb(pid_t pid, const char *field)
{
	char path[64], *s;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((s = th_read(path)) == NULL)
		return -1;
	const char *f = strstr(s, field);
	return f ? atol(f + strlen(field)) : -1;
}

long
ft_rss_kb(pid_t pid)
{
	return status_kb(pid, "VmRSS:");
}

long
ft_hwm_kb(pid_t pid)
{
	return status_kb(pid, "VmHWM:");
}

pid_t
ft_broker_via(const char *log, const char *const *prefix)
{
	char *argv[32];
	int n = 0;
	for (int i = 0; prefix != NULL && prefix[i] != NULL && n < 28; i++)
		argv[n++] = (char *)prefix[i];
	argv[n++] = (char *)th_bin("sluice-broker");
	argv[n++] = "-c";
	argv[n++] = (char *)fx.config;
	argv[n] = NULL;
	pid_t pid = th_spawn(log, argv);
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 500};
	if (sluice_open(&c, fx.url, &o) != 0)
		th_fail(__FILE__, __LINE__, "client: %s", sluice_errmsg());
	int64_t end = th_now_ms() + 15000;
	while (sluice_ping(c, NULL) != 0) {
		if (th_now_ms() > end || th_wait(pid, 0) != -1) {
			sluice_close(c);
			th_fail(__FILE__, __LINE__, "broker did not start: see %s", th_path(log));
		}
		usleep(20000);
	}
	sluice_close(c);
	return pid;
}

bool
ft_alive(pid_t pid)
{
	char path[64], *s;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((s = th_read(path)) == NULL)
		return false;
	const char *rp = strrchr(s, ')');
	return rp != NULL && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

int
ft_children(pid_t parent, const char *name, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	while (d != NULL && n < max && (e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char path[300], *st, *cmd;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((st = th_read(path)) == NULL)
			continue;
		const char *rp = strrchr(st, ')');
		char state;
		long ppid;
		if (rp == NULL || sscanf(rp + 2, "%c %ld", &state, &ppid) != 2 || ppid != parent ||
		    state == 'Z')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		if ((cmd = th_read(path)) == NULL || strstr(cmd, name) == NULL)
			continue;
		out[n++] = (pid_t)atol(e->d_name);
	}
	if (d != NULL)
		closedir(d);
	return n;
}

int
ft_count_in(const char *path, const char *text)
{
	const char *s = th_read(path);
	int n = 0;
	size_t len = strlen(text);
	while (s != NULL && (s = strstr(s, text)) != NULL) {
		n++;
		s += len;
	}
	return n;
}

/* ---- raw connections ---- */

int
ft_dial(const char *url)
{
	if (strncmp(url, "tcp://", 6) == 0)
		return th_dial_tcp(url);
	if (strncmp(url, "ipc://", 6) != 0)
		return -1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", url + 6);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	th_sock_timeouts(fd, 5000);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool
write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

bool
ft_sp_hello(int fd)
{
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};
	uint8_t peer[8];
	size_t got = 0;
	if (!write_all(fd, hello, sizeof(hello)))
		return false;
	while (got < sizeof(peer)) {
		ssize_t k = recv(fd, peer + got, sizeof(peer) - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		got += (size_t)k;
	}
	return peer[1] == 'S' && peer[2] == 'P';
}

bool
ft_sp_send(int fd, bool ipc, uint32_t req_id, const void *body, size_t len)
{
	uint8_t head[13];
	size_t h = 0;
	uint64_t total = (uint64_t)len + 4;
	if (ipc)
		head[h++] = 0x01;
	for (int i = 7; i >= 0; i--)
		head[h++] = (uint8_t)(total >> (8 * i));
	req_id |= 0x80000000u;
	for (int i = 3; i >= 0; i--)
		head[h++] = (uint8_t)(req_id >> (8 * i));
	return write_all(fd, head, h) && (len == 0 || write_all(fd, body, len));
}

int
ft_http(const char *hostport, const char *method, const char *path, const char *token,
        const void *body, size_t blen, char **resp)
{
	int fd = th_dial_tcp(hostport);
	if (fd < 0)
		return 0;
	th_sock_timeouts(fd, 20000);
	const char *req = th_fmt("%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Length: %zu\r\n"
	                         "Connection: close\r\n\r\n",
	                         method, path, hostport, token ? "Authorization: Bearer " : "",
	                         token ? token : "", token ? "\r\n" : "", blen);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	if (buf == NULL || !write_all(fd, req, strlen(req)) || (blen > 0 && !write_all(fd, body, blen))) {
		free(buf);
		close(fd);
		return 0;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL)
				break;
			buf = nb;
			cap *= 2;
		}
		ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	buf[len] = '\0';
	int status = 0;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = 0;
	if (resp != NULL) {
		const char *b = strstr(buf, "\r\n\r\n");
		*resp = (char *)th_fmt("%s", b ? b + 4 : "");
	}
	free(buf);
	return status;
}

int
ft_http_get(const char *hostport, const char *path, const char *token, char **resp)
{
	return ft_http(hostport, "GET", path, token, NULL, 0, resp);
}

double
ft_metric(const char *metrics, const char *sample)
{
	size_t n = strlen(sample);
	for (const char *s = metrics; s != NULL && *s != '\0';) {
		if (strncmp(s, sample, n) == 0 && s[n] == ' ')
			return strtod(s + n + 1, NULL);
		s = strchr(s, '\n');
		if (s != NULL)
			s++;
	}
	return -1;
}

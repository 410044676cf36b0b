/* fixture: configuration, programs and audits shared by integration tests. */
#include "fixture.h"

#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

fx_env fx;

static void
close_client(void *c)
{
	sluice_close(c);
}

/* Appends text to out with every line indented by ind spaces. */
static void
indent(FILE *out, const char *text, int ind)
{
	if (text == NULL)
		return;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len > 0)
			fprintf(out, "%*s%.*s\n", ind, "", (int)len, p);
		p += len + (nl ? 1 : 0);
	}
}

const char *
fx_config(const fx_cfg *x)
{
	static const fx_cfg none;
	if (x == NULL)
		x = &none;
	fx.config = th_path("sluice.yaml");
	fx.url = th_fmt("tcp://127.0.0.1:%d", th_port());
	fx.ipc = th_ipc("broker.ipc");
	fx.http = th_fmt("127.0.0.1:%d", th_port());
	fx.data = th_path("broker.db");
	fx.sink = th_path("app.db");
	fx.state = th_path("supervisor-state.yaml");
	FILE *f = fopen(fx.config, "w");
	if (f == NULL)
		th_fail(__FILE__, __LINE__, "cannot write %s", fx.config);
	fprintf(f, "broker:\n  listen: [%s, %s]\n  http: \"%s\"\n  data: %s\n", fx.url, fx.ipc,
	        fx.http, fx.data);
	indent(f, x->broker, 2);
	fprintf(f, "queue_defaults:\n");
	indent(f, x->queue_defaults, 2);
	if (x->queues != NULL)
		fprintf(f, "queues:\n%s\n", x->queues);
	fprintf(f, "worker:\n  broker: %s\n", fx.url);
	indent(f, x->worker, 2);
	fprintf(f, "  sink:\n    path: %s\n", fx.sink);
	indent(f, x->sink, 4);
	fprintf(f, "supervisor:\n  state_file: %s\n", fx.state);
	indent(f, x->supervisor, 2);
	fclose(f);
	return fx.config;
}

sluice_client *
fx_client(void)
{
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 10000};
	if (sluice_open(&c, fx.url, &o) != 0)
		th_fail(__FILE__, __LINE__, "client: %s", sluice_errmsg());
	th_defer(close_client, c);
	return c;
}

static pid_t
spawn(const char *log, const char *prog, const char *const *extra)
{
	char *argv[32];
	int n = 0;
	argv[n++] = (char *)th_bin(prog);
	argv[n++] = "-c";
	argv[n++] = (char *)fx.config;
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	return th_spawn(log, argv);
}

pid_t
fx_broker(const char *log)
{
	pid_t pid = spawn(log, "sluice-broker", NULL);
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 500};
	if (sluice_open(&c, fx.url, &o) != 0)
		th_fail(__FILE__, __LINE__, "client: %s", sluice_errmsg());
	int64_t end = th_now_ms() + 10000;
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

pid_t
fx_worker(const char *log, const char *const *extra)
{
	return spawn(log, "sluice-worker", extra);
}

pid_t
fx_supervisor(const char *log, const char *const *extra)
{
	return spawn(log, "sluice-supervisor", extra);
}

long
fx_put(sluice_client *c, const char *queue, const char *prefix, long start, long n, int batch)
{
	sluice_msg_in *msgs = calloc((size_t)batch, sizeof(*msgs));
	char (*text)[64] = calloc((size_t)batch, 64);
	uint64_t *ids = calloc((size_t)batch, sizeof(*ids));
	long acked = 0;
	for (long i = 0; i < n; i += batch) {
		int k = (int)(n - i < batch ? n - i : batch);
		for (int j = 0; j < k; j++) {
			int len = snprintf(text[j], 64, "%s-%ld", prefix, start + i + j);
			msgs[j] = (sluice_msg_in){.payload = text[j], .len = (size_t)len};
		}
		if (sluice_enqueue(c, queue, msgs, (size_t)k, ids, NULL) == 0)
			acked += k;
	}
	free(msgs);
	free(text);
	free(ids);
	return acked;
}

typedef struct producer {
	sluice_client *c;
	const char *queue;
	const char *prefix;
	long start, n;
	int64_t spread_ms;
	long acked;
	pthread_t t;
	bool started;
} producer;

struct fx_producers {
	producer p[FX_PRODUCERS];
};

static void *
produce_main(void *arg)
{
	producer *p = arg;
	int64_t t0 = th_now_ms();
	for (long i = 0; i < p->n; i += 500) {
		long k = p->n - i < 500 ? p->n - i : 500;
		p->acked += fx_put(p->c, p->queue, p->prefix, p->start + i, k, 500);
		if (p->spread_ms > 0) {
			int64_t due = t0 + p->spread_ms * (i + k) / p->n;
			while (th_now_ms() < due)
				usleep(5000);
		}
	}
	return NULL;
}

fx_producers *
fx_produce(const char *queue, const char *prefix, long n, int64_t spread_ms)
{
	fx_producers *ps = calloc(1, sizeof(*ps));
	if (ps == NULL)
		th_fail(__FILE__, __LINE__, "out of memory");
	long per = (n + FX_PRODUCERS - 1) / FX_PRODUCERS;
	for (int i = 0; i < FX_PRODUCERS; i++) {
		producer *p = &ps->p[i];
		long start = i * per, k = n - start < per ? n - start : per;
		*p = (producer){.c = fx_client(), .queue = queue, .prefix = prefix, .start = start,
		                .n = k > 0 ? k : 0, .spread_ms = spread_ms};
		p->started = pthread_create(&p->t, NULL, produce_main, p) == 0;
		if (!p->started)
			th_fail(__FILE__, __LINE__, "cannot start a producer thread");
	}
	return ps;
}

long
fx_produce_wait(fx_producers *ps)
{
	long acked = 0;
	for (int i = 0; i < FX_PRODUCERS; i++) {
		if (ps->p[i].started)
			pthread_join(ps->p[i].t, NULL);
		acked += ps->p[i].acked;
	}
	free(ps);
	return acked;
}

/* The fields of queue, all from one STATS answer; -1 for any missing. */
static void
stat_values(sluice_client *c, const char *queue, const char *const *fields, int64_t *out, size_t n)
{
	sluice_stats *s;
	for (size_t i = 0; i < n; i++)
		out[i] = -1;
	if (sluice_stats_get(c, queue, &s) != 0)
		return;
	const sluice_queue_stats *q = sluice_stats_queue(s, queue);
	for (size_t i = 0; q != NULL && i < n; i++)
		out[i] = sluice_stat_value(q->fields, q->nfields, fields[i], -1);
	sluice_stats_free(s);
}

int64_t
fx_stat(sluice_client *c, const char *queue, const char *field)
{
	int64_t v;
	stat_values(c, queue, &field, &v, 1);
	return v;
}

bool
fx_drained(sluice_client *c, const char *queue, int timeout_ms)
{
	int64_t end = th_now_ms() + timeout_ms;
	do {
		/* both from one answer: a message can move from delayed to leased
		 * between two, and be counted in neither */
		static const char *const f[] = {"backlog", "delayed"};
		int64_t v[2];
		stat_values(c, queue, f, v, 2);
		if (v[0] == 0 && v[1] == 0)
			return true;
		usleep(50000);
	} while (th_now_ms() < end);
	return false;
}

void
fx_sink_count(const char *db, const char *table, long *rows, long *distinct)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	*rows = *distinct = -1;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		return;
	}
	sqlite3_busy_timeout(h, 5000);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*), count(DISTINCT id) FROM \"%s\"", table);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		*rows = sqlite3_column_int64(st, 0);
		*distinct = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
}

void
fx_sink_audit(const char *db, const char *table, const char *prefix, long start, long n,
              long *missing, long *duplicated)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	int *seen = calloc((size_t)n, sizeof(*seen));
	size_t plen = strlen(prefix);
	*missing = *duplicated = -1;
	if (seen == NULL || sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		free(seen);
		return;
	}
	sqlite3_busy_timeout(h, 5000);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT payload FROM \"%s\"", table);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *p = (const char *)sqlite3_column_blob(st, 0);
			int len = sqlite3_column_bytes(st, 0);
			if (p == NULL || (size_t)len <= plen + 1 || memcmp(p, prefix, plen) != 0 || p[plen] != '-')
				continue;
			char num[32];
			int k = len - (int)plen - 1 < 31 ? len - (int)plen - 1 : 31;
			memcpy(num, p + plen + 1, (size_t)k);
			num[k] = '\0';
			long i = atol(num) - start;
			if (i >= 0 && i < n)
				seen[i]++;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	*missing = *duplicated = 0;
	for (long i = 0; i < n; i++) {
		if (seen[i] == 0)
			(*missing)++;
		else if (seen[i] > 1)
			(*duplicated)++;
	}
	free(seen);
}

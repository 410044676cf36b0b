/*
 * load_direct: the `direct` target, the architecture without a buffer. Each
 * request is what a web endpoint writing straight to the database would do:
 * take a connection from the pool, INSERT one row (its own transaction,
 * WAL, synchronous=FULL), read it back, give the connection back. A busy or
 * locked database fails the request ("database"), as the endpoint would
 * answer 500; so does waiting longer than the timeout for a connection
 * ("timeout").
 *
 * The pool is --pool threads, each owning one connection. VUs are not
 * threads: a VU's request is an entry in the ready list (in the order the
 * requests were issued) that the next free pool thread takes; a thinking VU
 * sits in the sleeping list until its wake time. Both lists, the VU states
 * and the pool's bookkeeping are guarded by ddrv.mu. Rows get negative ids
 * below any already in the table, so they never collide with the broker's.
 *
 * With opts.dsn the database is PostgreSQL instead: each pool thread owns
 * one libpq connection, and a request is the same INSERT (autocommit, so
 * one transaction and, with synchronous_commit on, one WAL flush per row)
 * and SELECT, in the same table layout as the postgres sink's raw format.
 * A statement longer than the request timeout fails ("database"); a lost
 * connection is reset on the next request.
 *
 * This is the only file of the command that includes sqlite3.h, and with
 * demo.c's audit the only one that includes libpq-fe.h.
 */
#include "load.h"

#include "clock.h"

#include <endian.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STACK_BYTES (512 * 1024)
#define PASSWORD_MAX 1024

typedef struct dlink {
	struct dlink *prev, *next;
} dlink;

static void
list_init(dlink *h)
{
	h->prev = h->next = h;
}

static bool
list_empty(const dlink *h)
{
	return h->next == h;
}

static void
list_append(dlink *h, dlink *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static void
list_remove(dlink *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define VU_OF(l) ((dvu *)(void *)((char *)(l) - offsetof(dvu, link)))

enum { V_IDLE, V_READY, V_RUN, V_SLEEP };

typedef struct dvu {
	int index;
	int state;          /* V_* */
	int64_t issued_ns;  /* V_READY, V_RUN: when the request was made */
	int64_t wake_ns;    /* V_SLEEP */
	dlink link;         /* in ready or sleeping */
} dvu;

typedef struct ddrv ddrv;

typedef struct dworker {
	ddrv *d;            /* borrowed */
	sqlite3 *db;        /* owned */
	sqlite3_stmt *ins;  /* owned */
	sqlite3_stmt *sel;  /* owned */
	PGconn *pg;         /* owned; PostgreSQL instead of db */
	char *payload;      /* owned scratch, payload_len */
	pthread_t thread;
	bool started;
} dworker;

struct ddrv {
	load_run *run;      /* borrowed */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool quit;          /* guarded by mu */
	dvu *vus;           /* owned, nvus; states guarded by mu */
	int nvus;
	dlink ready;        /* issued requests waiting for a connection, oldest first */
	dlink sleeping;     /* thinking VUs, earliest wake first */
	atomic_int inflight; /* VUs not idle; changed under mu */
	dworker *w;         /* owned, nw */
	int nw;
	int64_t base_id;    /* row id of seq s is base_id - s */
	char *password;     /* owned: opts.password_file's first line, or NULL */
};

static bool
should_run(ddrv *d, const dvu *v)
{
	return !atomic_load(&d->run->stopping) && v->index < atomic_load(&d->run->vus) && !d->quit;
}

/* v's request ended at now: issue the next one, sleep, or idle. Under mu. */
static void
reschedule(ddrv *d, dvu *v, int64_t now)
{
	if (!should_run(d, v)) {
		v->state = V_IDLE;
		atomic_fetch_sub(&d->inflight, 1);
		return;
	}
	if (d->run->o->think_ms > 0) {
		v->state = V_SLEEP;
		v->wake_ns = now + d->run->o->think_ms * 1000000;
		list_append(&d->sleeping, &v->link);
	} else {
		v->state = V_READY;
		v->issued_ns = now;
		list_append(&d->ready, &v->link);
		pthread_cond_signal(&d->cv);
	}
}

/* Due sleepers issue their request; requests that waited longer than the
 * timeout for a connection fail. Under mu. */
static void
housekeep(ddrv *d, int64_t now)
{
	while (!list_empty(&d->sleeping)) {
		dvu *v = VU_OF(d->sleeping.next);
		if (v->wake_ns > now)
			break;
		list_remove(&v->link);
		if (!should_run(d, v)) {
			v->state = V_IDLE;
			atomic_fetch_sub(&d->inflight, 1);
			continue;
		}
		v->state = V_READY;
		v->issued_ns = v->wake_ns;
		list_append(&d->ready, &v->link);
		pthread_cond_signal(&d->cv);
	}
	int64_t timeout_ns = d->run->o->timeout_ms * 1000000;
	char detail[96];
	while (!list_empty(&d->ready)) {
		dvu *v = VU_OF(d->ready.next);
		if (now - v->issued_ns < timeout_ns)
			break;
		list_remove(&v->link);
		snprintf(detail, sizeof(detail), "no free connection within %lld ms",
		         (long long)d->run->o->timeout_ms);
		load_rec_add(d->run->rec, LOAD_KIND_TIMEOUT, now - v->issued_ns, detail);
		reschedule(d, v, now);
	}
}

static int pg_prepare(ddrv *d, dworker *w, char *err, size_t errlen);

/* The first line of a libpq message. */
static void
pg_detail(char *out, size_t len, const char *what, const char *msg)
{
	snprintf(out, len, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/* A request on PostgreSQL: INSERT one row, SELECT it back. */
static int
request_pg(dworker *w, char *detail, size_t len)
{
	ddrv *d = w->d;
	const load_opts *o = d->run->o;
	uint64_t seq = atomic_fetch_add(&d->run->seq, 1);
	uint64_t id_be = htobe64((uint64_t)(d->base_id - (int64_t)seq));
	size_t plen = load_payload(d->run, seq, w->payload);
	const char *values[3] = {(const char *)&id_be, o->queue, w->payload};
	int lengths[3] = {8, 0, (int)plen}, formats[3] = {1, 0, 1};
	char err[160];

	if (PQstatus(w->pg) != CONNECTION_OK) {
		PQreset(w->pg);
		if (PQstatus(w->pg) != CONNECTION_OK) {
			pg_detail(detail, len, "connect", PQerrorMessage(w->pg));
			return LOAD_KIND_DATABASE;
		}
		if (pg_prepare(d, w, err, sizeof(err)) != 0) {
			snprintf(detail, len, "%s", err);
			return LOAD_KIND_DATABASE;
		}
	}
	PGresult *r = PQexecPrepared(w->pg, "ins", 3, values, lengths, formats, 1);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		pg_detail(detail, len, "insert", PQresultErrorMessage(r));
		PQclear(r);
		return LOAD_KIND_DATABASE;
	}
	PQclear(r);
	r = PQexecPrepared(w->pg, "sel", 1, values, lengths, formats, 1);
	int kind = LOAD_KIND_OK;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_detail(detail, len, "read back", PQresultErrorMessage(r));
		kind = LOAD_KIND_DATABASE;
	} else if (PQntuples(r) != 1 || (size_t)PQgetlength(r, 0, 0) != plen) {
		snprintf(detail, len, "read back: the row read back differs");
		kind = LOAD_KIND_DATABASE;
	}
	PQclear(r);
	return kind;
}

/* The request itself: INSERT one row, SELECT it back. */
static int
request(dworker *w, char *detail, size_t len)
{
	ddrv *d = w->d;
	if (w->pg != NULL)
		return request_pg(w, detail, len);
	const load_opts *o = d->run->o;
	uint64_t seq = atomic_fetch_add(&d->run->seq, 1);
	sqlite3_int64 id = d->base_id - (sqlite3_int64)seq;
	size_t plen = load_payload(d->run, seq, w->payload);
	int64_t now = clk_wall_ms();
	const char *what = "insert";
	int rc;

	sqlite3_bind_int64(w->ins, 1, id);
	sqlite3_bind_text(w->ins, 2, o->queue, -1, SQLITE_STATIC);
	sqlite3_bind_blob(w->ins, 3, w->payload, (int)plen, SQLITE_STATIC);
	sqlite3_bind_int64(w->ins, 4, now);
	sqlite3_bind_int64(w->ins, 5, now);
	rc = sqlite3_step(w->ins);
	sqlite3_reset(w->ins);
	if (rc == SQLITE_DONE) {
		what = "read back";
		sqlite3_bind_int64(w->sel, 1, id);
		rc = sqlite3_step(w->sel);
		if (rc == SQLITE_ROW && (size_t)sqlite3_column_bytes(w->sel, 0) != plen)
			rc = SQLITE_CORRUPT;
		sqlite3_reset(w->sel);
		if (rc == SQLITE_ROW)
			return LOAD_KIND_OK;
	}
	snprintf(detail, len, "%s: %s", what,
	         rc == SQLITE_CORRUPT ? "the row read back differs" : sqlite3_errstr(rc));
	return LOAD_KIND_DATABASE;
}

static void *
worker(void *arg)
{
	dworker *w = arg;
	ddrv *d = w->d;
	char detail[160];
	pthread_mutex_lock(&d->mu);
	while (!d->quit) {
		int64_t now = clk_mono_ns();
		housekeep(d, now);
		if (!list_empty(&d->ready)) {
			dvu *v = VU_OF(d->ready.next);
			list_remove(&v->link);
			v->state = V_RUN;
			pthread_mutex_unlock(&d->mu);
			detail[0] = '\0';
			int kind = request(w, detail, sizeof(detail));
			int64_t end = clk_mono_ns();
			load_rec_add(d->run->rec, kind, end - v->issued_ns, detail);
			pthread_mutex_lock(&d->mu);
			reschedule(d, v, end);
			continue;
		}
		/* sleep until the next wake (or a signal); 100 ms at most */
		int64_t until = now + 100 * 1000000LL;
		if (!list_empty(&d->sleeping) && VU_OF(d->sleeping.next)->wake_ns < until)
			until = VU_OF(d->sleeping.next)->wake_ns;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t abs_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (until - now);
		ts.tv_sec = abs_ns / 1000000000;
		ts.tv_nsec = abs_ns % 1000000000;
		pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* ---- setup ---- */

static int
db_open(ddrv *d, dworker *w, bool first, char *err, size_t errlen)
{
	const load_opts *o = d->run->o;
	char *sql = NULL;
	/* each connection is used by one pool thread at a time: no mutex */
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	int rc = sqlite3_open_v2(o->db, &w->db, flags, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	int64_t busy = o->busy_timeout_ms > INT32_MAX ? INT32_MAX : o->busy_timeout_ms;
	sqlite3_busy_timeout(w->db, (int)busy);
	if (first) {
		sql = sqlite3_mprintf("PRAGMA journal_mode=WAL;"
		                      "CREATE TABLE IF NOT EXISTS \"%w\"(id INTEGER PRIMARY KEY,"
		                      " queue TEXT NOT NULL, payload BLOB NOT NULL,"
		                      " enqueued_at INTEGER NOT NULL, committed_at INTEGER NOT NULL);",
		                      o->table);
		if (sql == NULL || (rc = sqlite3_exec(w->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
			goto fail;
		sqlite3_free(sql);
		sql = sqlite3_mprintf("SELECT min(coalesce(min(id), 0), 0) FROM \"%w\"", o->table);
		sqlite3_stmt *st;
		if (sql == NULL || (rc = sqlite3_prepare_v2(w->db, sql, -1, &st, NULL)) != SQLITE_OK)
			goto fail;
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			d->base_id = sqlite3_column_int64(st, 0) - 1;
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW)
			goto fail;
		sqlite3_free(sql);
		sql = NULL;
	}
	if ((rc = sqlite3_exec(w->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL)) != SQLITE_OK)
		goto fail;
	sql = sqlite3_mprintf("INSERT INTO \"%w\"(id, queue, payload, enqueued_at, committed_at)"
	                      " VALUES (?, ?, ?, ?, ?)", o->table);
	if (sql == NULL || (rc = sqlite3_prepare_v2(w->db, sql, -1, &w->ins, NULL)) != SQLITE_OK)
		goto fail;
	sqlite3_free(sql);
	sql = sqlite3_mprintf("SELECT payload FROM \"%w\" WHERE id = ?", o->table);
	if (sql == NULL || (rc = sqlite3_prepare_v2(w->db, sql, -1, &w->sel, NULL)) != SQLITE_OK)
		goto fail;
	sqlite3_free(sql);
	return 0;
fail:
	snprintf(err, errlen, "cannot use the database %s (table %s): %s", o->db, o->table,
	         sql == NULL && rc == SQLITE_OK ? "out of memory"
	         : w->db != NULL                ? sqlite3_errmsg(w->db)
	                                        : sqlite3_errstr(rc));
	sqlite3_free(sql);
	return -1;
}

/* ---- setup: PostgreSQL ---- */

static void
pg_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg; /* CREATE TABLE IF NOT EXISTS says it skipped */
}

/* Runs sql; returns the result (to PQclear) or NULL with err filled. */
static PGresult *
pg_exec(dworker *w, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(w->pg, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	pg_detail(err, errlen, "PostgreSQL", r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(w->pg));
	PQclear(r);
	return NULL;
}

/* The session's statement timeout and the two prepared statements. */
static int
pg_prepare(ddrv *d, dworker *w, char *err, size_t errlen)
{
	const load_opts *o = d->run->o;
	static const Oid ins_types[3] = {20, 25, 17}; /* int8, text, bytea */
	char *t = PQescapeIdentifier(w->pg, o->table, strlen(o->table));
	char sql[512];
	PGresult *r;

	if (t == NULL) {
		pg_detail(err, errlen, "PostgreSQL", PQerrorMessage(w->pg));
		return -1;
	}
	snprintf(sql, sizeof(sql), "SET statement_timeout = %lld", (long long)o->timeout_ms);
	if ((r = pg_exec(w, sql, err, errlen)) == NULL)
		goto fail;
	PQclear(r);
	snprintf(sql, sizeof(sql), "INSERT INTO %s (id, queue, payload, enqueued_at, committed_at) "
	         "VALUES ($1, $2, $3, now(), now())", t);
	r = PQprepare(w->pg, "ins", sql, 3, ins_types);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		goto fail_result;
	PQclear(r);
	snprintf(sql, sizeof(sql), "SELECT payload FROM %s WHERE id = $1", t);
	r = PQprepare(w->pg, "sel", sql, 1, ins_types);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		goto fail_result;
	PQclear(r);
	PQfreemem(t);
	return 0;
fail_result:
	pg_detail(err, errlen, "PostgreSQL", r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(w->pg));
	PQclear(r);
fail:
	PQfreemem(t);
	return -1;
}

static int
pg_open(ddrv *d, dworker *w, bool first, char *err, size_t errlen)
{
	const load_opts *o = d->run->o;
	const char *kw[] = {"fallback_application_name", "dbname", "password", NULL};
	const char *val[] = {"sluice-load", o->dsn, d->password, NULL};
	char sql[512];
	PGresult *r;

	w->pg = PQconnectdbParams(kw, val, 1);
	if (w->pg == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (PQstatus(w->pg) != CONNECTION_OK) {
		pg_detail(err, errlen, "cannot connect to PostgreSQL", PQerrorMessage(w->pg));
		return -1;
	}
	PQsetNoticeProcessor(w->pg, pg_quiet, NULL);
	if (first) {
		char *t = PQescapeIdentifier(w->pg, o->table, strlen(o->table));
		if (t == NULL) {
			pg_detail(err, errlen, "PostgreSQL", PQerrorMessage(w->pg));
			return -1;
		}
		snprintf(sql, sizeof(sql), "CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY, "
		         "queue text NOT NULL, payload bytea NOT NULL, enqueued_at timestamptz NOT NULL, "
		         "committed_at timestamptz NOT NULL DEFAULT now())", t);
		r = pg_exec(w, sql, err, errlen);
		PQclear(r);
		if (r != NULL) {
			snprintf(sql, sizeof(sql), "SELECT least(coalesce(min(id), 0), 0) - 1 FROM %s", t);
			if ((r = pg_exec(w, sql, err, errlen)) != NULL) {
				d->base_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
				PQclear(r);
			}
		}
		PQfreemem(t);
		if (r == NULL)
			return -1;
	}
	return pg_prepare(d, w, err, errlen);
}

/* The first line of opts.password_file into d->password. */
static int
read_password(ddrv *d, const char *path, char *err, size_t errlen)
{
	char buf[PASSWORD_MAX + 2];
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	d->password = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (d->password == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void direct_close(void *arg);

static int
direct_open(load_run *run, int max_vus, void **out, char *err, size_t errlen)
{
	const load_opts *o = run->o;
	ddrv *d = calloc(1, sizeof(*d));
	*out = NULL;
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->run = run;
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&d->inflight, 0);
	list_init(&d->ready);
	list_init(&d->sleeping);
	d->nvus = max_vus;
	d->vus = calloc((size_t)(max_vus > 0 ? max_vus : 1), sizeof(*d->vus));
	d->w = calloc((size_t)o->pool, sizeof(*d->w));
	if (d->vus == NULL || d->w == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < max_vus; i++) {
		d->vus[i].index = i;
		list_init(&d->vus[i].link);
	}
	if (o->dsn != NULL && o->password_file != NULL &&
	    read_password(d, o->password_file, err, errlen) != 0)
		goto fail;
	for (int i = 0; i < o->pool; i++) {
		dworker *w = &d->w[i];
		w->d = d;
		d->nw = i + 1;
		if ((w->payload = malloc(run->payload_len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if ((o->dsn != NULL ? pg_open(d, w, i == 0, err, errlen) : db_open(d, w, i == 0, err, errlen)) != 0)
			goto fail;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, STACK_BYTES);
	for (int i = 0; i < d->nw; i++) {
		int rv = pthread_create(&d->w[i].thread, &attr, worker, &d->w[i]);
		if (rv != 0) {
			snprintf(err, errlen, "cannot start pool thread %d: %s", i + 1, strerror(rv));
			pthread_attr_destroy(&attr);
			goto fail;
		}
		d->w[i].started = true;
	}
	pthread_attr_destroy(&attr);
	*out = d;
	return 0;
fail:
	direct_close(d);
	return -1;
}

static void
direct_set_vus(void *arg, int vus)
{
	ddrv *d = arg;
	int64_t now = clk_mono_ns();
	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < vus && i < d->nvus; i++) {
		dvu *v = &d->vus[i];
		if (v->state != V_IDLE || !should_run(d, v))
			continue;
		v->state = V_READY;
		v->issued_ns = now;
		atomic_fetch_add(&d->inflight, 1);
		list_append(&d->ready, &v->link);
	}
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static void
direct_tick(void *arg, int64_t now_ns)
{
	ddrv *d = arg;
	pthread_mutex_lock(&d->mu);
	housekeep(d, now_ns);
	pthread_mutex_unlock(&d->mu);
}

static void
direct_stop(void *arg)
{
	ddrv *d = arg;
	pthread_mutex_lock(&d->mu);
	while (!list_empty(&d->sleeping)) { /* thinking VUs have nothing in flight */
		dvu *v = VU_OF(d->sleeping.next);
		list_remove(&v->link);
		v->state = V_IDLE;
		atomic_fetch_sub(&d->inflight, 1);
	}
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static int
direct_inflight(void *arg)
{
	ddrv *d = arg;
	return atomic_load(&d->inflight);
}

static void
direct_close(void *arg)
{
	ddrv *d = arg;
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->quit = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; d->w != NULL && i < d->nw; i++) {
		dworker *w = &d->w[i];
		if (w->started)
			pthread_join(w->thread, NULL);
		sqlite3_finalize(w->ins);
		sqlite3_finalize(w->sel);
		sqlite3_close(w->db);
		PQfinish(w->pg);
		free(w->payload);
	}
	if (d->password != NULL) {
		explicit_bzero(d->password, strlen(d->password));
		free(d->password);
	}
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d->w);
	free(d->vus);
	free(d);
}

const load_driver load_direct_driver = {
	.name = "direct",
	.open = direct_open,
	.set_vus = direct_set_vus,
	.tick = direct_tick,
	.stop = direct_stop,
	.inflight = direct_inflight,
	.close = direct_close,
};

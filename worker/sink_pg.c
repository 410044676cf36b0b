/*
 * sink_pg: commits each batch to a PostgreSQL table over one libpq
 * connection. A worker has one connection, so the pool of connections is
 * the pool of workers: that is how Sluice bounds the load on the database.
 * The only file that includes libpq-fe.h: libpq's statuses and SQLSTATEs
 * become WRK_SINK_* here.
 *
 * A batch is one prepared statement in its own (implicit) transaction: the
 * rows travel as binary arrays and are inserted by
 *   INSERT INTO t ... SELECT ... FROM unnest($1::int8[], ...) ON CONFLICT DO NOTHING
 * keyed by the broker's message id, so a batch delivered again (the worker
 * died between COMMIT and ACK, or its lease expired) adds nothing. That
 * strategy was measured against COPY (binary) into a temporary table
 * followed by INSERT ... SELECT ... ON CONFLICT DO NOTHING (BEGIN; COPY;
 * INSERT; COMMIT in two round trips) on PostgreSQL 15, synchronous_commit
 * on, a Unix socket, 200-byte payloads, 400 batches per figure, on a
 * 2-core machine with other work on it (two runs, median per batch):
 *   batch   unnest, one statement            COPY + INSERT ... SELECT
 *     500   2.95-3.74 ms, 122k-146k rows/s   4.34-4.66 ms,  97k-102k rows/s
 *      50   0.59-0.79 ms,  63k-84k rows/s    1.28-1.39 ms,  34k-36k rows/s
 *       1   0.29-0.31 ms,  2.9k-3.2k rows/s  1.02-1.05 ms,  0.9k rows/s
 * The COPY path writes every row twice (into the temporary table, then
 * the real one) and needs an explicit transaction and two round trips, so
 * unnest it is, faster at every batch size.
 *
 * Formats: raw stores (id, queue, payload, enqueued_at, committed_at) in a
 * table created if missing; json maps each payload, a JSON object, onto
 * the columns of an existing table with jsonb_populate_record. There the
 * key is the user's: the table must have a primary key or a unique
 * constraint (checked at setup), and a column named sluice_id, if there is
 * one, is filled with the message id. A column missing from the payload
 * gets its default, as with an INSERT that leaves it out.
 *
 * Errors, by SQLSTATE:
 *   - data errors (classes 21, 22, 23, 27, 2F, 38, 39, 44, 09 and P0, what
 *     a value, a constraint or a trigger refuses) belong to a row: the
 *     batch is bisected by running its halves again, each in its own
 *     transaction, so every good row commits and each bad one alone is
 *     FAILED with the server's message;
 *   - everything else is the sink's and transient: connection loss
 *     (PQstatus, class 08), admin shutdown (57P01-57P03), too many
 *     connections (53300), serialization failure (40001), deadlock (40P01),
 *     read-only transaction (25006), statement timeout (57014), a table or
 *     permission gone (class 42), an unknown code. The batch stays UNTRIED,
 *     commit returns WRK_SINK_EFAIL and the worker's breaker backs off.
 *     Unless the error leaves the session usable (40001, 40P01, 57014,
 *     55P03, class 53 but 53300), the connection is dropped, and the next
 *     commit connects again and redoes the setup (a dropped raw table is
 *     created again).
 *
 * At open, only a configuration that cannot work fails (WRK_SINK_EOPEN: a
 * malformed DSN, an unreadable password file, a bad table name, and, when
 * the server answers, a table it refuses). A server that cannot be reached
 * is transient: the worker starts, and its first commit tries again.
 *
 * The password (sink.password_file, else PGPASSWORD or PGPASSFILE, which
 * libpq reads itself) is never logged: the DSN is shown rebuilt from
 * libpq's parse of it, without any secret parameter.
 *
 * Threads: one thread at a time (sink.h). Every wait polls the socket for
 * at most WRK_DEADLINE_POLL_MS, so a shutdown deadline is seen in time.
 */
#include "sink.h"

#include "clock.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDENT_MAX 63             /* PostgreSQL's NAMEDATALEN - 1 */
#define TABLE_MAX (2 * IDENT_MAX + 1)
#define PASSWORD_MAX 1024
#define CONNECT_TIMEOUT_MS 10000 /* unless the DSN's connect_timeout says otherwise */
#define RESULT_SLACK_MS 10000    /* past statement_timeout, the server is not answering */
#define SHOWN_MAX 512
#define STMT_INSERT "sluice_insert"

/* Binary array element types, from PostgreSQL's pg_type.dat. */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25
#define OID_TIMESTAMPTZ 1184
#define OID_JSONB 3802
#define JSONB_VERSION 1
#define PG_EPOCH_MS 946684800000LL /* 2000-01-01T00:00:00Z in Unix ms */

/* What a statement came to. */
enum outcome {
	R_OK = 0,
	R_DATA,      /* a row's data was refused: the message is in msg */
	R_TRANSIENT, /* the sink failed: the message is in err */
	R_CONFIG,    /* setup only: the server refuses this configuration */
};

/* A growing buffer for the binary arrays of one batch. */
typedef struct abuf {
	char *p;    /* owned */
	size_t len;
	size_t cap;
	bool oom;
} abuf;

typedef struct pg_sink {
	const cfg_sink *conf; /* borrowed */
	PGconn *conn;         /* owned; NULL while disconnected */
	const char *kw[10];   /* connection parameters, NULL-terminated */
	const char *val[10];  /* borrowed from conf, password and the literals */
	size_t nkw;
	char *password;       /* owned: sink.password_file's first line, or NULL */
	char shown[SHOWN_MAX]; /* the DSN as logged: no secret in it */
	char table[TABLE_MAX + 8]; /* quoted, "schema"."name" */
	int64_t connect_timeout_ms;
	int nparams;          /* of the insert: 4 raw, 2 json */
	char state[6];        /* SQLSTATE of the last error; "" if it was not the server's */
	abuf buf;
	bool connected_once;
} pg_sink;

/* ---- small helpers ---- */

static bool
ident_valid(const char *s, size_t n)
{
	if (n == 0 || n > IDENT_MAX || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
	                                 s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/* "name" or "schema.name" into s->table, quoted as written (so the name
 * is used with its case: write it in lower case, as PostgreSQL folds
 * unquoted names). */
static bool
table_set(pg_sink *s, const char *t)
{
	const char *dot = strchr(t, '.');
	if (dot == NULL) {
		if (!ident_valid(t, strlen(t)))
			return false;
		snprintf(s->table, sizeof(s->table), "\"%s\"", t);
		return true;
	}
	if (!ident_valid(t, (size_t)(dot - t)) || !ident_valid(dot + 1, strlen(dot + 1)))
		return false;
	snprintf(s->table, sizeof(s->table), "\"%.*s\".\"%s\"", (int)(dot - t), t, dot + 1);
	return true;
}

/* Copies the first line of msg (libpq's messages end in newlines and go
 * on with hints). */
static void
first_line(char *out, size_t len, const char *msg)
{
	if (msg == NULL || *msg == '\0')
		msg = "unknown error";
	size_t n = strcspn(msg, "\n");
	snprintf(out, len, "%.*s", (int)n, msg);
}

static void
ab_need(abuf *b, size_t more)
{
	if (b->oom || b->len + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void
ab_put(abuf *b, const void *src, size_t n)
{
	ab_need(b, n);
	if (b->oom)
		return;
	if (n > 0)
		memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void
ab_u32(abuf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	ab_put(b, x, 4);
}

static void
ab_u64(abuf *b, uint64_t v)
{
	ab_u32(b, (uint32_t)(v >> 32));
	ab_u32(b, (uint32_t)v);
}

/* The header of a one-dimensional binary array of n elements without
 * NULLs (PostgreSQL's array_recv). */
static void
ab_array(abuf *b, uint32_t elem_oid, size_t n)
{
	ab_u32(b, 1);
	ab_u32(b, 0);
	ab_u32(b, elem_oid);
	ab_u32(b, (uint32_t)n);
	ab_u32(b, 1);
}

/* ---- the connection ---- */

static void
drop(pg_sink *s)
{
	PQfinish(s->conn);
	s->conn = NULL;
}

/* Notices (CREATE TABLE IF NOT EXISTS says it skipped) go to the debug
 * log, not to stderr as libpq's default does. */
static void
notice(void *arg, const char *msg)
{
	char line[WRK_ERROR_MAX];
	(void)arg;
	first_line(line, sizeof(line), msg);
	log_debug("SINK-NOTICE", "%s", line);
}

/* 1 if the caller's deadline (a shutdown) is past, 2 if our own is. */
static int
overdue(const atomic_llong *deadline_ms, int64_t give_up_ms)
{
	int64_t now = clk_mono_ms(), d = deadline_ms != NULL ? atomic_load(deadline_ms) : 0;
	if (d > 0 && now >= d)
		return 1;
	if (give_up_ms > 0 && now >= give_up_ms)
		return 2;
	return 0;
}

/* Waits until the connection's socket is ready for events, for at most
 * WRK_DEADLINE_POLL_MS. Returns -1 if the socket is gone. */
static int
wait_socket(PGconn *c, short events)
{
	struct pollfd p = {.fd = PQsocket(c), .events = events};
	if (p.fd < 0)
		return -1;
	int r = poll(&p, 1, WRK_DEADLINE_POLL_MS);
	return r < 0 && errno != EINTR ? -1 : 0;
}

/* Sessions that an error leaves usable: the transaction is gone, the
 * connection is fine. */
static bool
session_survives(const char *state)
{
	return strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	       strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0 ||
	       (strncmp(state, "53", 2) == 0 && strcmp(state, "53300") != 0);
}

/* Errors that a row's data caused: the server would refuse it again. */
static bool
data_error(const char *state)
{
	static const char *const classes[] = {"21", "22", "23", "27", "2F", "38", "39", "44", "09",
	                                      "P0"};
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strncmp(state, classes[i], 2) == 0)
			return true;
	return false;
}

/* Waits for the answer to what was just sent, and returns its outcome:
 * R_OK with the result in *out (to PQclear), or R_DATA / R_TRANSIENT with
 * the message in msg. A lost or abandoned connection is dropped. */
static int
await(pg_sink *s, const atomic_llong *deadline_ms, PGresult **out, char *msg, size_t msglen)
{
	PGconn *c = s->conn;
	int64_t timeout = s->conf->statement_timeout_ms;
	int64_t give_up = timeout > 0 ? clk_mono_ms() + timeout + RESULT_SLACK_MS : 0;
	PGresult *keep = NULL;
	int late = 0;

	*out = NULL;
	for (;;) { /* a large batch may not be all sent yet */
		int f = PQflush(c);
		if (f == 0)
			break;
		if (f < 0)
			goto lost;
		if ((late = overdue(deadline_ms, give_up)) != 0)
			goto abandon;
		if (wait_socket(c, POLLIN | POLLOUT) < 0 || PQconsumeInput(c) == 0)
			goto lost;
	}
	for (;;) {
		while (!PQisBusy(c)) {
			PGresult *r = PQgetResult(c);
			if (r == NULL)
				goto done;
			/* keep the first error, else the last result */
			ExecStatusType kst = keep != NULL ? PQresultStatus(keep) : PGRES_EMPTY_QUERY;
			if (kst == PGRES_FATAL_ERROR || kst == PGRES_BAD_RESPONSE) {
				PQclear(r);
				continue;
			}
			PQclear(keep);
			keep = r;
		}
		if ((late = overdue(deadline_ms, give_up)) != 0)
			goto abandon;
		if (wait_socket(c, POLLIN) < 0 || PQconsumeInput(c) == 0)
			goto lost;
	}
done:
	if (keep == NULL)
		goto lost;
	ExecStatusType st = PQresultStatus(keep);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		*out = keep;
		return R_OK;
	}
	const char *state = PQresultErrorField(keep, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(keep, PG_DIAG_MESSAGE_PRIMARY);
	snprintf(s->state, sizeof(s->state), "%s", state != NULL ? state : "");
	first_line(msg, msglen, primary != NULL ? primary : PQresultErrorMessage(keep));
	if (state != NULL && strlen(msg) + 20 < msglen)
		snprintf(msg + strlen(msg), msglen - strlen(msg), " (SQLSTATE %s)", state);
	int rc = R_TRANSIENT;
	if (PQstatus(c) == CONNECTION_OK && state != NULL && data_error(state))
		rc = R_DATA;
	else if (PQstatus(c) != CONNECTION_OK || state == NULL || !session_survives(state))
		drop(s);
	PQclear(keep);
	return rc;
lost:
	s->state[0] = '\0';
	first_line(msg, msglen, PQerrorMessage(c));
	PQclear(keep);
	drop(s);
	return R_TRANSIENT;
abandon:
	s->state[0] = '\0';
	if (late == 1) {
		/* a shutdown: ask the server to stop, then hang up; the items stay
		 * UNTRIED, and if the statement did commit their redelivery adds
		 * nothing */
		PGcancel *cc = PQgetCancel(c);
		char ebuf[256];
		if (cc != NULL) {
			PQcancel(cc, ebuf, sizeof(ebuf));
			PQfreeCancel(cc);
		}
		snprintf(msg, msglen, "abandoned at the shutdown deadline");
	} else {
		snprintf(msg, msglen, "no answer within statement_timeout + %d s: the server is not "
		         "answering", RESULT_SLACK_MS / 1000);
	}
	PQclear(keep);
	drop(s);
	return R_TRANSIENT;
}

/* Runs sql (several statements allowed when nparams is 0) and waits. */
static int
run(pg_sink *s, const atomic_llong *deadline_ms, const char *sql, int nparams,
    const char *const *values, PGresult **out, char *msg, size_t msglen)
{
	int sent = nparams == 0 ? PQsendQuery(s->conn, sql)
	                        : PQsendQueryParams(s->conn, sql, nparams, NULL, values, NULL, NULL, 0);
	if (!sent) {
		first_line(msg, msglen, PQerrorMessage(s->conn));
		drop(s);
		return R_TRANSIENT;
	}
	return await(s, deadline_ms, out, msg, msglen);
}

/* Like run, for statements without rows. */
static int
run_cmd(pg_sink *s, const atomic_llong *deadline_ms, const char *sql, char *msg, size_t msglen)
{
	PGresult *r;
	int rc = run(s, deadline_ms, sql, 0, NULL, &r, msg, msglen);
	if (rc == R_OK)
		PQclear(r);
	return rc;
}

/* A setup statement failed with rc: R_CONFIG if the server's error says
 * the configuration (table, columns, privileges, settings) cannot work,
 * else R_TRANSIENT (the server away, busy, restarting). */
static int
setup_failure(const pg_sink *s, int rc)
{
	static const char *const config[] = {"42", "0A", "3D", "3F", "28", "22"};
	if (rc != R_DATA && rc != R_TRANSIENT)
		return rc;
	for (size_t i = 0; i < sizeof(config) / sizeof(config[0]); i++)
		if (strncmp(s->state, config[i], 2) == 0)
			return R_CONFIG;
	return R_TRANSIENT;
}

/* The json insert: one expression per column of the table. */
static int
json_sql(pg_sink *s, const atomic_llong *deadline_ms, char **sql, char *msg, size_t msglen)
{
	const char *tname = s->table;
	const char *vals[1] = {tname};
	PGresult *r;
	int rc;

	*sql = NULL;
	rc = run(s, deadline_ms,
	         "SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM pg_index "
	         "WHERE indrelid = to_regclass($1) AND indisunique)",
	         1, vals, &r, msg, msglen);
	if (rc != R_OK)
		return setup_failure(s, rc);
	bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	bool keyed = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	PQclear(r);
	if (!exists) {
		snprintf(msg, msglen, "table %s does not exist (the json format writes into a table "
		         "you create)", s->conf->table);
		return R_CONFIG;
	}
	if (!keyed) {
		snprintf(msg, msglen, "table %s has no primary key or unique constraint: the json "
		         "format needs one (a redelivered batch would insert its rows twice); add one, "
		         "or a column sluice_id bigint UNIQUE that Sluice fills with the message id",
		         s->conf->table);
		return R_CONFIG;
	}
	rc = run(s, deadline_ms,
	         "SELECT a.attname, a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid), "
	         "CASE WHEN a.attidentity <> '' THEN pg_get_serial_sequence($1, a.attname) END "
	         "FROM pg_attribute a LEFT JOIN pg_attrdef d "
	         "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
	         "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
	         "ORDER BY a.attnum",
	         1, vals, &r, msg, msglen);
	if (rc != R_OK)
		return setup_failure(s, rc);

	char *cols = NULL, *exprs = NULL;
	size_t clen = 0, elen = 0;
	FILE *fc = open_memstream(&cols, &clen), *fe = open_memstream(&exprs, &elen);
	int n = 0;
	for (int i = 0; fc != NULL && fe != NULL && i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0), *ident = PQgetvalue(r, i, 1);
		const char *gen = PQgetvalue(r, i, 2);
		if (*gen != '\0' || *ident == 'a')
			continue; /* generated: the server fills it, and refuses a value */
		char *qn = PQescapeIdentifier(s->conn, name, strlen(name));
		char *ln = PQescapeLiteral(s->conn, name, strlen(name));
		if (qn == NULL || ln == NULL) {
			PQfreemem(qn);
			PQfreemem(ln);
			continue;
		}
		fprintf(fc, "%s%s", n ? ", " : "", qn);
		fprintf(fe, "%s", n ? ", " : "");
		if (strcmp(name, "sluice_id") == 0) {
			fprintf(fe, "u.id");
		} else if (!PQgetisnull(r, i, 4)) {
			const char *seq = PQgetvalue(r, i, 4);
			char *ls = PQescapeLiteral(s->conn, seq, strlen(seq));
			fprintf(fe, "CASE WHEN u.doc ? %s THEN r.%s ELSE nextval(%s::regclass) END", ln, qn,
			        ls ? ls : "NULL");
			PQfreemem(ls);
		} else if (!PQgetisnull(r, i, 3)) {
			fprintf(fe, "CASE WHEN u.doc ? %s THEN r.%s ELSE %s END", ln, qn, PQgetvalue(r, i, 3));
		} else {
			fprintf(fe, "r.%s", qn);
		}
		PQfreemem(qn);
		PQfreemem(ln);
		n++;
	}
	PQclear(r);
	bool ok = fc != NULL && fe != NULL;
	if (fc != NULL)
		ok = fclose(fc) == 0 && ok;
	if (fe != NULL)
		ok = fclose(fe) == 0 && ok;
	if (!ok || n == 0) {
		if (ok)
			snprintf(msg, msglen, "table %s has no column to insert into", s->conf->table);
		else
			snprintf(msg, msglen, "out of memory");
		free(cols);
		free(exprs);
		return ok ? R_CONFIG : R_TRANSIENT;
	}
	size_t len = strlen(cols) + strlen(exprs) + 2 * strlen(s->table) + 256;
	if ((*sql = malloc(len)) != NULL)
		snprintf(*sql, len,
		         "INSERT INTO %s (%s) SELECT %s FROM unnest($1::int8[], $2::jsonb[]) AS u(id, doc) "
		         "CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, u.doc) AS r "
		         "ON CONFLICT DO NOTHING",
		         s->table, cols, exprs, s->table);
	free(cols);
	free(exprs);
	if (*sql == NULL) {
		snprintf(msg, msglen, "out of memory");
		return R_TRANSIENT;
	}
	return R_OK;
}

/* After connecting: session settings, the table, the prepared insert. */
static int
setup(pg_sink *s, const atomic_llong *deadline_ms, char *msg, size_t msglen)
{
	char sql[1024];
	int rc;

	snprintf(sql, sizeof(sql), "SET statement_timeout = %lld; SET client_min_messages = warning",
	         (long long)s->conf->statement_timeout_ms);
	if ((rc = run_cmd(s, deadline_ms, sql, msg, msglen)) != R_OK)
		return setup_failure(s, rc);
	char *insert = NULL;
	if (s->conf->format == CFG_FORMAT_JSON) {
		if ((rc = json_sql(s, deadline_ms, &insert, msg, msglen)) != R_OK)
			return rc;
	} else {
		/* Workers creating it at once would collide on the catalog
		 * (23505 on pg_type): an advisory lock makes them take turns. On
		 * an error the session is left in the aborted transaction, but
		 * the caller drops it. */
		snprintf(sql, sizeof(sql),
		         "BEGIN; SELECT pg_advisory_xact_lock(hashtext('sluice %s')); "
		         "CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY, queue text NOT NULL, "
		         "payload bytea NOT NULL, enqueued_at timestamptz NOT NULL, "
		         "committed_at timestamptz NOT NULL DEFAULT now()); COMMIT",
		         s->table, s->table);
		rc = run_cmd(s, deadline_ms, sql, msg, msglen);
		if (rc != R_OK)
			return setup_failure(s, rc);
		size_t len = 2 * strlen(s->table) + 512;
		if ((insert = malloc(len)) == NULL) {
			snprintf(msg, msglen, "out of memory");
			return R_TRANSIENT;
		}
		snprintf(insert, len,
		         "INSERT INTO %s (id, queue, payload, enqueued_at, committed_at) "
		         "SELECT u.id, u.queue, u.payload, u.enqueued_at, now() FROM "
		         "unnest($1::int8[], $2::text[], $3::bytea[], $4::timestamptz[]) "
		         "AS u(id, queue, payload, enqueued_at) ON CONFLICT (id) DO NOTHING",
		         s->table);
	}
	PGresult *r;
	if (!PQsendPrepare(s->conn, STMT_INSERT, insert, 0, NULL)) {
		free(insert);
		first_line(msg, msglen, PQerrorMessage(s->conn));
		drop(s);
		return R_TRANSIENT;
	}
	free(insert);
	if ((rc = await(s, deadline_ms, &r, msg, msglen)) != R_OK)
		return setup_failure(s, rc);
	PQclear(r);
	/* Planned, not run: ON CONFLICT (id) finds its unique index only when
	 * planning, so a raw table without one is refused here, not later. */
	if (s->conf->format != CFG_FORMAT_JSON &&
	    (rc = run_cmd(s, deadline_ms, "EXPLAIN EXECUTE " STMT_INSERT "(NULL, NULL, NULL, NULL)",
	                  msg, msglen)) != R_OK)
		return setup_failure(s, rc);
	return R_OK;
}

/* Connects without blocking past the deadlines, then sets up. Returns an
 * outcome; msg says why not. */
static int
connect_db(pg_sink *s, const atomic_llong *deadline_ms, char *msg, size_t msglen)
{
	int64_t give_up = clk_mono_ms() + s->connect_timeout_ms;
	int late = 0;

	s->conn = PQconnectStartParams(s->kw, s->val, 1);
	if (s->conn == NULL) {
		snprintf(msg, msglen, "out of memory");
		return R_TRANSIENT;
	}
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (PQstatus(s->conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		if ((late = overdue(deadline_ms, give_up)) != 0) {
			snprintf(msg, msglen, late == 1 ? "abandoned at the shutdown deadline"
			                                : "timeout expired connecting");
			drop(s);
			return R_TRANSIENT;
		}
		if (wait_socket(s->conn, st == PGRES_POLLING_READING ? POLLIN : POLLOUT) < 0)
			break;
		st = PQconnectPoll(s->conn);
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		first_line(msg, msglen, PQerrorMessage(s->conn));
		drop(s);
		return R_TRANSIENT;
	}
	PQsetNoticeProcessor(s->conn, notice, NULL);
	int rc = setup(s, deadline_ms, msg, msglen);
	if (rc != R_OK && s->conn != NULL)
		drop(s);
	return rc;
}

/* ---- commit ---- */

/* Encodes items[0..n) as the insert's parameters into s->buf. */
static bool
encode(pg_sink *s, const wrk_item *items, size_t n, const char **values, int *lengths)
{
	abuf *b = &s->buf;
	size_t off[4];
	int np = 0;

	b->len = 0;
	b->oom = false;
	off[np++] = b->len;
	ab_array(b, OID_INT8, n);
	for (size_t i = 0; i < n; i++) {
		ab_u32(b, 8);
		ab_u64(b, items[i].id);
	}
	if (s->conf->format == CFG_FORMAT_JSON) {
		off[np++] = b->len;
		ab_array(b, OID_JSONB, n);
		for (size_t i = 0; i < n; i++) {
			uint8_t v = JSONB_VERSION;
			ab_u32(b, (uint32_t)(items[i].len + 1));
			ab_put(b, &v, 1);
			ab_put(b, items[i].payload, items[i].len);
		}
	} else {
		off[np++] = b->len;
		ab_array(b, OID_TEXT, n);
		for (size_t i = 0; i < n; i++) {
			size_t ql = strlen(items[i].queue);
			ab_u32(b, (uint32_t)ql);
			ab_put(b, items[i].queue, ql);
		}
		off[np++] = b->len;
		ab_array(b, OID_BYTEA, n);
		for (size_t i = 0; i < n; i++) {
			ab_u32(b, (uint32_t)items[i].len);
			ab_put(b, items[i].payload, items[i].len);
		}
		off[np++] = b->len;
		ab_array(b, OID_TIMESTAMPTZ, n);
		for (size_t i = 0; i < n; i++) {
			ab_u32(b, 8);
			ab_u64(b, (uint64_t)((items[i].enqueued_ms - PG_EPOCH_MS) * 1000));
		}
	}
	if (b->oom || b->len > INT32_MAX)
		return false;
	for (int i = 0; i < np; i++) {
		values[i] = b->p + off[i];
		lengths[i] = (int)((i + 1 < np ? off[i + 1] : b->len) - off[i]);
	}
	return true;
}

/* One statement for items[0..n). */
static int
insert(pg_sink *s, const wrk_item *items, size_t n, const atomic_llong *deadline_ms, char *msg,
       size_t msglen)
{
	static const int formats[4] = {1, 1, 1, 1};
	const char *values[4];
	int lengths[4];
	PGresult *r;

	if (!encode(s, items, n, values, lengths)) {
		snprintf(msg, msglen, "out of memory encoding a batch of %zu", n);
		return R_TRANSIENT;
	}
	if (!PQsendQueryPrepared(s->conn, STMT_INSERT, s->nparams, values, lengths, formats, 0)) {
		first_line(msg, msglen, PQerrorMessage(s->conn));
		drop(s);
		return R_TRANSIENT;
	}
	int rc = await(s, deadline_ms, &r, msg, msglen);
	if (rc == R_OK)
		PQclear(r);
	return rc;
}

/* Commits items[lo..hi). A data error splits the range in halves, each
 * tried again on its own, down to the one row that fails. Returns
 * WRK_SINK_OK, or WRK_SINK_EFAIL with err filled (what was committed
 * stays OK; the rest stays UNTRIED). */
static int
put_range(pg_sink *s, const wrk_item *items, size_t lo, size_t hi, const atomic_llong *deadline_ms,
          wrk_result *res, size_t *refused, char *err, size_t errlen)
{
	char msg[WRK_ERROR_MAX];

	if (s->conn == NULL) {
		snprintf(err, errlen, "postgres: the connection was lost");
		return WRK_SINK_EFAIL;
	}
	if (overdue(deadline_ms, 0) != 0) {
		snprintf(err, errlen, "postgres: abandoned at the shutdown deadline");
		return WRK_SINK_EFAIL;
	}
	int rc = insert(s, items + lo, hi - lo, deadline_ms, msg, sizeof(msg));
	if (rc == R_OK) {
		for (size_t i = lo; i < hi; i++)
			res[i].state = WRK_ITEM_OK;
		return WRK_SINK_OK;
	}
	if (rc != R_DATA) {
		snprintf(err, errlen, "postgres: %s", msg);
		return WRK_SINK_EFAIL;
	}
	if (hi - lo == 1) {
		res[lo].state = WRK_ITEM_FAILED;
		snprintf(res[lo].error, sizeof(res[lo].error), "postgres: %.240s", msg);
		(*refused)++;
		return WRK_SINK_OK;
	}
	size_t mid = lo + (hi - lo) / 2;
	rc = put_range(s, items, lo, mid, deadline_ms, res, refused, err, errlen);
	if (rc != WRK_SINK_OK)
		return rc;
	return put_range(s, items, mid, hi, deadline_ms, res, refused, err, errlen);
}

static int
pg_commit(void *arg, const wrk_item *items, size_t n, const atomic_llong *deadline_ms,
          wrk_result *res, char *err, size_t errlen)
{
	pg_sink *s = arg;
	char msg[WRK_ERROR_MAX];
	size_t refused = 0;

	if (n == 0)
		return WRK_SINK_OK;
	if (s->conn == NULL) {
		if (connect_db(s, deadline_ms, msg, sizeof(msg)) != R_OK) {
			snprintf(err, errlen, "postgres: %s", msg);
			return WRK_SINK_EFAIL;
		}
		log_info("SINK-CONNECTED", "postgres %s: connected%s", s->shown,
		         s->connected_once ? " again" : "");
		s->connected_once = true;
	}
	int rc = put_range(s, items, 0, n, deadline_ms, res, &refused, err, errlen);
	if (refused > 0) {
		size_t first = 0;
		while (first < n && res[first].state != WRK_ITEM_FAILED)
			first++;
		log_info("SINK-ROWS-REFUSED", "%zu of a batch of %zu refused by the server%s; message "
		         "%llu: %s", refused, n, refused < n ? ", the others committed" : "",
		         (unsigned long long)items[first].id, res[first].error);
	}
	return rc;
}

/* ---- open and close ---- */

static void
pg_close(void *arg)
{
	pg_sink *s = arg;
	if (s == NULL)
		return;
	drop(s);
	if (s->password != NULL) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->buf.p);
	free(s);
}

/* Reads the first line of sink.password_file. */
static int
read_password(pg_sink *s, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char buf[PASSWORD_MAX + 2];
	if (f == NULL) {
		snprintf(err, errlen, "cannot read sink.password_file %s: %s", path, strerror(errno));
		return WRK_SINK_EOPEN;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	bool bad = ferror(f) != 0;
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (bad || n > PASSWORD_MAX || buf[0] == '\0') {
		snprintf(err, errlen, "sink.password_file %s: %s", path,
		         bad ? "cannot be read" : buf[0] == '\0' ? "is empty" : "is too long");
		explicit_bzero(buf, sizeof(buf));
		return WRK_SINK_EOPEN;
	}
	s->password = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (s->password == NULL) {
		snprintf(err, errlen, "out of memory");
		return WRK_SINK_ENOMEM;
	}
	return WRK_SINK_OK;
}

/* A URI or a string of keyword=value pairs; else libpq takes the whole
 * thing as a database name. */
static bool
is_conninfo(const char *dsn)
{
	return strchr(dsn, '=') != NULL || strncmp(dsn, "postgresql://", 13) == 0 ||
	       strncmp(dsn, "postgres://", 11) == 0;
}

/* Checks the DSN and writes s->shown: every parameter it sets except the
 * secret ones (libpq marks them with dispchar '*'). */
static int
parse_dsn(pg_sink *s, const char *dsn, char *err, size_t errlen)
{
	char *perr = NULL;
	PQconninfoOption *opts;
	int rc;

	s->connect_timeout_ms = CONNECT_TIMEOUT_MS;
	if (!is_conninfo(dsn)) {
		snprintf(s->shown, sizeof(s->shown), "dbname=%s", dsn);
		return WRK_SINK_OK;
	}
	if ((opts = PQconninfoParse(dsn, &perr)) == NULL) {
		/* libpq quotes the part it choked on, which may be a password */
		bool secret = strstr(dsn, "password") != NULL || strchr(dsn, '@') != NULL;
		char why[256];
		first_line(why, sizeof(why), perr ? perr : "out of memory");
		snprintf(err, errlen, "sink.dsn is not a valid connection string or URI: %s",
		         secret ? "(the details would show a password)" : why);
		rc = perr == NULL ? WRK_SINK_ENOMEM : WRK_SINK_EOPEN;
		PQfreemem(perr);
		return rc;
	}
	size_t len = 0;
	s->shown[0] = '\0';
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0' || strchr(o->dispchar, '*') != NULL)
			continue;
		if (strcmp(o->keyword, "connect_timeout") == 0 && atoi(o->val) > 0)
			s->connect_timeout_ms = (int64_t)atoi(o->val) * 1000;
		bool quote = strpbrk(o->val, " '\\") != NULL;
		int w = snprintf(s->shown + len, sizeof(s->shown) - len, "%s%s=%s%s%s", len ? " " : "",
		                 o->keyword, quote ? "'" : "", o->val, quote ? "'" : "");
		if (w < 0 || (size_t)w >= sizeof(s->shown) - len)
			break;
		len += (size_t)w;
	}
	PQconninfoFree(opts);
	return WRK_SINK_OK;
}

/* Appends a connection parameter (both strings borrowed). */
static void
param(pg_sink *s, const char *kw, const char *val)
{
	assert(s->nkw + 1 < sizeof(s->kw) / sizeof(s->kw[0]));
	s->kw[s->nkw] = kw;
	s->val[s->nkw] = val;
	s->nkw++;
}

static int
pg_open(const cfg_sink *conf, void **out, char *err, size_t errlen)
{
	char msg[WRK_ERROR_MAX];
	pg_sink *s;
	int rc;

	*out = NULL;
	if (conf->dsn == NULL || conf->dsn[0] == '\0') {
		snprintf(err, errlen, "sink.dsn is empty");
		return WRK_SINK_EOPEN;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return WRK_SINK_ENOMEM;
	}
	s->conf = conf;
	s->nparams = conf->format == CFG_FORMAT_JSON ? 2 : 4;
	if (conf->table == NULL || !table_set(s, conf->table)) {
		snprintf(err, errlen, "sink.table '%s' is not a valid table name (letters, digits and _, "
		         "not starting with a digit, at most %d, optionally schema.table)",
		         conf->table ? conf->table : "", IDENT_MAX);
		rc = WRK_SINK_EOPEN;
		goto fail;
	}
	if ((rc = parse_dsn(s, conf->dsn, err, errlen)) != WRK_SINK_OK)
		goto fail;
	if (conf->password_file != NULL &&
	    (rc = read_password(s, conf->password_file, err, errlen)) != WRK_SINK_OK)
		goto fail;

	/* Parameters before dbname are defaults the DSN may override; those
	 * after it are ours: UTF-8 (JSON's encoding) and the password file. */
	param(s, "fallback_application_name", "sluice-worker");
	param(s, "keepalives_idle", "10");
	param(s, "keepalives_interval", "5");
	param(s, "keepalives_count", "3");
	param(s, "dbname", conf->dsn);
	param(s, "client_encoding", "UTF8");
	if (s->password != NULL)
		param(s, "password", s->password);

	rc = connect_db(s, NULL, msg, sizeof(msg));
	if (rc == R_CONFIG) {
		snprintf(err, errlen, "postgres %s, table %s: %s", s->shown, conf->table, msg);
		rc = WRK_SINK_EOPEN;
		goto fail;
	}
	if (rc != R_OK) {
		log_warn("SINK-UNREACHABLE", "postgres %s: %s; starting anyway, the first batch tries "
		         "again (behind the breaker)", s->shown, msg);
	} else {
		s->connected_once = true;
		log_info("SINK-CONNECTED", "postgres %s (server %d), table %s, format %s, "
		         "statement_timeout %lld ms", s->shown, PQserverVersion(s->conn), conf->table,
		         conf->format == CFG_FORMAT_JSON ? "json" : "raw",
		         (long long)conf->statement_timeout_ms);
	}
	*out = s;
	return WRK_SINK_OK;
fail:
	pg_close(s);
	return rc;
}

const wrk_sink_ops wrk_sink_pg = {
	.name = "postgres",
	.open = pg_open,
	.commit = pg_commit,
	.close = pg_close,
};

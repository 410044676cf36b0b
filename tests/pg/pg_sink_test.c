/* pg_sink_test: the real sluice-worker with its postgres sink, against the
 * real broker and a real, throwaway PostgreSQL cluster per case. Every
 * message lands exactly once while workers are killed with SIGKILL; the
 * server stopped mid-stream trips the breaker and loses nothing; a row the
 * server refuses is dead-lettered alone, with the server's message; json
 * payloads land in typed columns; the password is never logged; an
 * unreachable server at start is waited for; a configuration that cannot
 * work stops the worker at start; a statement timeout is a sink failure;
 * a shutdown abandons a blocked commit at the end of its grace. */
#include "fixture.h"
#include "harness.h"
#include "pgc.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define Q "default"
#define TABLE "sluice_events"

/* ---- helpers ------------------------------------------------------------- */

/* The sink section for a postgres sink on dsn, plus extra lines. */
static const char *
pg_sink(const char *dsn, const char *extra)
{
	return th_fmt("type: postgres\ndsn: \"%s\"\ntable: " TABLE "\n%s", dsn, extra ? extra : "");
}

/* Every "prefix-i", i in [0, n), is in the table exactly once, and
 * nothing else. */
static void
audit(const char *prefix, long n)
{
	long rows, distinct, missing, duplicated;
	pgc_audit(TABLE, prefix, n, &rows, &distinct, &missing, &duplicated);
	if (missing != 0 || duplicated != 0 || rows != n || distinct != n)
		th_fail(__FILE__, __LINE__, "sink audit: %ld missing, %ld duplicated, %ld rows, %ld "
		        "distinct ids, want %ld", missing, duplicated, rows, distinct, n);
}

static void
stop_worker(pid_t pid)
{
	int st = th_stop(pid, SIGTERM, 40000);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		th_fail(__FILE__, __LINE__, "worker %ld did not exit 0 on SIGTERM (status %d)", (long)pid,
		        st);
}

/* Starts a worker that must fail at start: returns its log once it exited 1. */
static const char *
worker_exits_1(const char *log)
{
	int st = th_wait(fx_worker(log, NULL), 20000);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 1)
		th_fail(__FILE__, __LINE__, "worker did not exit 1 (status %d): %s", st,
		        th_read(th_path(log)));
	return th_read(th_path(log));
}

/* Enqueues one message per payload. */
static void
put_each(sluice_client *c, const char *const *payloads, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sluice_msg_in m = {.payload = payloads[i], .len = strlen(payloads[i])};
		uint64_t id;
		CHECK(sluice_enqueue(c, Q, &m, 1, &id, NULL) == 0);
	}
}

static int
count_of(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* The last_error the broker stored for each message of queue (stopped
 * broker: its database is read directly), joined by newlines. */
static const char *
last_errors(const char *queue)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	const char *all = "";
	CHECK(sqlite3_open_v2(fx.data, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(db, "SELECT m.last_error FROM messages m JOIN queues q "
	                         "ON q.id = m.queue WHERE q.name = ?1", -1, &st, NULL) == SQLITE_OK);
	sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *e = (const char *)sqlite3_column_text(st, 0);
		all = th_fmt("%s%s\n", all, e ? e : "(none)");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return all;
}

/* A session holding the raw table (created if need be) locked against
 * writes until unlock_table. */
static PGconn *
lock_table(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);
	CHECK(PQstatus(c) == CONNECTION_OK);
	PGresult *r = PQexec(c, "CREATE TABLE IF NOT EXISTS " TABLE " (id bigint PRIMARY KEY, "
	                     "queue text NOT NULL, payload bytea NOT NULL, enqueued_at timestamptz "
	                     "NOT NULL, committed_at timestamptz NOT NULL DEFAULT now()); BEGIN; "
	                     "LOCK TABLE " TABLE " IN EXCLUSIVE MODE");
	CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
	PQclear(r);
	return c;
}

static void
unlock_table(PGconn *c)
{
	PQclear(PQexec(c, "ROLLBACK"));
	PQfinish(c);
}

/* ---- cases --------------------------------------------------------------- */

/* Producers and four workers, one of them killed with SIGKILL every second
 * and started again: leases expire and are delivered again, and the
 * table's key absorbs the replays. */
static void
exactly_once_under_sigkill_chaos(void)
{
	enum { N = 4 };
	pid_t w[N];
	int gen[N] = {0};
	long n = th_scaled(100000);
	const char *dsn = pgc_start(NULL);
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 50",
		.worker = "visibility_timeout: 3s",
		.sink = pg_sink(dsn, NULL),
	});
	fx_broker("broker.log");
	for (int i = 0; i < N; i++)
		w[i] = fx_worker(th_fmt("worker%d.%d.log", i, gen[i]), NULL);
	sluice_client *c = fx_client();
	fx_producers *ps = fx_produce(Q, "m", n, 10000);
	srand((unsigned)getpid());
	int64_t chaos_end = th_now_ms() + 10000, give_up = th_now_ms() + 120000;
	int kills = 0;
	while (th_now_ms() < give_up) {
		usleep(1000000);
		int k = rand() % N;
		kill(w[k], SIGKILL);
		CHECK(th_wait(w[k], 5000) != -1);
		kills++;
		gen[k]++;
		w[k] = fx_worker(th_fmt("worker%d.%d.log", k, gen[k]), NULL);
		if (th_now_ms() >= chaos_end && fx_stat(c, Q, "enqueued_total") == n &&
		    fx_stat(c, Q, "backlog") < n / 10)
			break;
	}
	CHECK_EQ(fx_produce_wait(ps), n);
	CHECK(kills >= 8);
	CHECK(fx_drained(c, Q, 90000));
	audit("m", n);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK(fx_stat(c, Q, "expired_total") > 0); /* the kills did cost leases */
	for (int i = 0; i < N; i++)
		stop_worker(w[i]);
	CHECK(th_wait_file(th_path("worker0.0.log"), "SINK-CONNECTED postgres", 0));
}

/* `pg_ctl stop -m fast` while messages flow: the worker's commits fail,
 * its breaker opens and it hands its batches back without counting an
 * attempt (max_attempts is 2: a counted attempt would dead-letter them),
 * it keeps running, and when the server is back it drains everything. */
static void
server_stop_trips_breaker_and_flow_resumes(void)
{
	long n = th_scaled(20000);
	const char *dsn = pgc_start(NULL);
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 2",
		.worker = "breaker:\n  base: 200ms\n  max: 1s",
		.sink = pg_sink(dsn, NULL),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	fx_producers *ps = fx_produce(Q, "m", n, 8000);
	int64_t end = th_now_ms() + 60000;
	while (fx_stat(c, Q, "acked_total") < n / 5 && th_now_ms() < end)
		usleep(20000);
	CHECK(fx_stat(c, Q, "acked_total") >= n / 5);
	pgc_stop("fast");
	CHECK(th_wait_file(th_path("worker.log"), "BREAKER-OPEN", 20000));
	usleep(1000000);
	int64_t acked = fx_stat(c, Q, "acked_total");
	usleep(3000000); /* several failed trials, more than max_attempts of them */
	CHECK_EQ(fx_stat(c, Q, "acked_total"), acked);
	CHECK(acked < n);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK(fx_stat(c, Q, "sink_failures") >= 1);
	CHECK(th_wait(w, 0) == -1); /* still running */
	pgc_restart();
	CHECK_EQ(fx_produce_wait(ps), n);
	CHECK(fx_drained(c, Q, 60000));
	audit("m", n);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK(th_wait_file(th_path("worker.log"), "BREAKER-CLOSED", 5000));
	stop_worker(w);
	char *log = th_read(th_path("worker.log"));
	CHECK_EQ(count_of(log, "BREAKER-OPEN "), 1);
	CHECK(count_of(log, "BREAKER-REOPEN") >= 1);
	CHECK_CONTAINS(log, "connected again");
	CHECK_EQ(count_of(log, "SINK-ROWS-REFUSED"), 0);
}

/* json into a user table with a CHECK constraint: in one batch of 300, one
 * row breaks the constraint, one payload is not JSON and one is not an
 * object. The other 297 commit at the first try; the three are retried
 * alone and dead-lettered, each with the server's message. */
static void
bad_json_rows_are_dead_lettered_alone(void)
{
	enum { N = 300 };
	const char *dsn = pgc_start(NULL);
	pgc_sql("CREATE TABLE orders (order_id int PRIMARY KEY, qty int NOT NULL CHECK (qty > 0), "
	        "note text)");
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 2\nretry:\n  base: 50ms\n  max: 100ms",
		.sink = th_fmt("type: postgres\ndsn: \"%s\"\ntable: orders\nformat: json", dsn),
	});
	pid_t broker = fx_broker("broker.log");
	sluice_client *c = fx_client();
	const char *payloads[N];
	for (int i = 0; i < N; i++)
		payloads[i] = th_fmt("{\"order_id\": %d, \"qty\": %d, \"note\": \"n-%d\"}", i,
		                     i == 137 ? -3 : 1 + i % 5, i);
	payloads[200] = "not json at all";
	payloads[250] = "[1, 2, 3]";
	put_each(c, payloads, N); /* all in hand before the worker leases: one batch */
	pid_t w = fx_worker("worker.log", NULL);
	CHECK(fx_drained(c, Q, 30000));
	CHECK_EQ(pgc_long("SELECT count(*) FROM orders"), N - 3);
	CHECK_EQ(pgc_long("SELECT count(*) FROM orders WHERE order_id IN (137, 200, 250)"), 0);
	CHECK_EQ(pgc_long("SELECT count(*) FROM orders WHERE note = 'n-' || order_id"), N - 3);
	CHECK_EQ(fx_stat(c, Q, "dead"), 3);
	CHECK_EQ(fx_stat(c, Q, "acked_total"), N - 3);

	sluice_batch *b;
	CHECK(sluice_peek(c, Q ".dead", 10, &b) == 0);
	CHECK_EQ(b->count, 3);
	int found = 0;
	for (size_t i = 0; i < b->count; i++) {
		const char *p = (const char *)b->msgs[i].payload;
		size_t len = b->msgs[i].len;
		if ((len == strlen(payloads[137]) && memcmp(p, payloads[137], len) == 0) ||
		    (len == strlen(payloads[200]) && memcmp(p, payloads[200], len) == 0) ||
		    (len == strlen(payloads[250]) && memcmp(p, payloads[250], len) == 0))
			found++;
	}
	sluice_batch_free(b);
	CHECK_EQ(found, 3);
	stop_worker(w);
	char *log = th_read(th_path("worker.log"));
	CHECK_CONTAINS(log, "SINK-ROWS-REFUSED 3 of a batch of 300 refused by the server, the "
	               "others committed");
	CHECK_EQ(count_of(log, "BREAKER-OPEN"), 0);
	/* the error stored with each dead message is the server's */
	CHECK(th_stop(broker, SIGTERM, 10000) != -1);
	CHECK_EQ(count_of(th_read(th_path("broker.log")), "DEAD-LETTERED"), 3);
	const char *errs = last_errors(Q ".dead");
	CHECK_CONTAINS(errs, "postgres: new row for relation \"orders\" violates check constraint "
	               "\"orders_qty_check\" (SQLSTATE 23514)");
	CHECK_CONTAINS(errs, "postgres: invalid input syntax for type json (SQLSTATE 22P02)");
	CHECK_CONTAINS(errs, "(SQLSTATE 22023)"); /* an array is not a row */
}

/* A trigger on a raw table refuses one payload: the rest of its batch
 * commits, that message alone is dead-lettered with the trigger's words. */
static void
trigger_refusal_in_raw_batch_fails_only_that_row(void)
{
	long n = 1000;
	const char *dsn = pgc_start(NULL);
	pgc_sql("CREATE TABLE " TABLE " (id bigint PRIMARY KEY, queue text NOT NULL, payload bytea "
	        "NOT NULL, enqueued_at timestamptz NOT NULL, committed_at timestamptz NOT NULL "
	        "DEFAULT now()); "
	        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
	        "IF convert_from(NEW.payload, 'UTF8') = 'm-13' THEN "
	        "RAISE EXCEPTION 'payload %% is not welcome', convert_from(NEW.payload, 'UTF8'); "
	        "END IF; RETURN NEW; END $$; "
	        "CREATE TRIGGER refuse BEFORE INSERT ON " TABLE " FOR EACH ROW EXECUTE FUNCTION refuse()");
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 2\nretry:\n  base: 50ms\n  max: 100ms",
		.sink = pg_sink(dsn, NULL),
	});
	pid_t b = fx_broker("broker.log");
	sluice_client *c = fx_client();
	CHECK_EQ(fx_put(c, Q, "m", 0, n, 500), n);
	pid_t w = fx_worker("worker.log", NULL);
	CHECK(fx_drained(c, Q, 30000));
	CHECK_EQ(fx_stat(c, Q, "dead"), 1);
	CHECK_EQ(fx_stat(c, Q, "acked_total"), n - 1);
	long rows, distinct, missing, duplicated;
	pgc_audit(TABLE, "m", n, &rows, &distinct, &missing, &duplicated);
	CHECK_EQ(rows, n - 1);
	CHECK_EQ(missing, 1);
	CHECK_EQ(duplicated, 0);
	CHECK_EQ(pgc_long("SELECT count(*) FROM " TABLE " WHERE payload = 'm-13'"), 0);
	sluice_batch *dead;
	CHECK(sluice_peek(c, Q ".dead", 10, &dead) == 0);
	CHECK_EQ(dead->count, 1);
	CHECK(dead->msgs[0].len == 4 && memcmp(dead->msgs[0].payload, "m-13", 4) == 0);
	sluice_batch_free(dead);
	stop_worker(w);
	CHECK(th_stop(b, SIGTERM, 10000) != -1);
	const char *errs = last_errors(Q ".dead");
	CHECK_CONTAINS(errs, "postgres: payload m-13 is not welcome (SQLSTATE P0001)");
	CHECK_CONTAINS(th_read(th_path("broker.log")), "payload m-13 is not welcome");
}

/* json payloads into typed columns: integers, a bigint, text with
 * non-ASCII letters, timestamps, a date, a float, a boolean, a jsonb
 * value; a default and an identity filled by the server; a generated
 * column left to it; sluice_id filled with the message id; keys that are
 * not columns ignored. */
static void
json_rows_land_with_their_types(void)
{
	enum { N = 50 };
	const char *dsn = pgc_start(NULL);
	pgc_sql("CREATE TABLE readings (sluice_id bigint UNIQUE, device int NOT NULL, "
	        "seq bigint NOT NULL, label text, taken_at timestamptz NOT NULL, "
	        "value double precision, ok boolean, tags jsonb, day date, "
	        "created_at timestamptz NOT NULL DEFAULT now(), "
	        "n bigint GENERATED ALWAYS AS IDENTITY, "
	        "twice int GENERATED ALWAYS AS (device * 2) STORED, "
	        "kind text NOT NULL DEFAULT 'plain')");
	fx_config(&(fx_cfg){
		.sink = th_fmt("type: postgres\ndsn: \"%s\"\ntable: readings\nformat: json", dsn),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	const char *payloads[N];
	for (int i = 0; i < N; i++)
		payloads[i] = th_fmt("{\"device\": %d, \"seq\": %lld, %s\"taken_at\": "
		                     "\"2026-01-02T03:04:05.678+00:00\", \"value\": 1.5, \"ok\": true, "
		                     "\"tags\": {\"a\": [1, 2]}, \"day\": \"2026-03-04\", "
		                     "\"not_a_column\": 1, \"sluice_id\": -1%s}",
		                     i, 9000000000LL + i, i == 7 ? "" : "\"label\": \"caf\\u00e9 \xc3\xbcn\", ",
		                     i == 9 ? ", \"kind\": \"special\"" : "");
	put_each(c, payloads, N);
	pid_t w = fx_worker("worker.log", NULL);
	CHECK(fx_drained(c, Q, 30000));
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK_EQ(pgc_long("SELECT count(*) FROM readings"), N);
	CHECK_EQ(pgc_long("SELECT count(*) FROM readings WHERE seq = 9000000000 + device "
	                  "AND twice = device * 2 AND taken_at = '2026-01-02T03:04:05.678Z' "
	                  "AND value = 1.5 AND ok AND tags -> 'a' ->> 1 = '2' AND day = '2026-03-04' "
	                  "AND created_at > now() - interval '10 minutes' AND n IS NOT NULL"), N);
	CHECK_EQ(pgc_long("SELECT count(*) FROM readings WHERE label = 'caf\xc3\xa9 \xc3\xbcn'"), N - 1);
	CHECK_EQ(pgc_long("SELECT count(*) FROM readings WHERE label IS NULL AND device = 7"), 1);
	CHECK_EQ(pgc_long("SELECT count(*) FROM readings WHERE kind = 'plain'"), N - 1);
	CHECK_EQ(pgc_long("SELECT device FROM readings WHERE kind = 'special'"), 9);
	/* sluice_id holds the message ids, in enqueue order, not the payload's -1 */
	CHECK_EQ(pgc_long("SELECT count(DISTINCT sluice_id) FROM readings WHERE sluice_id > 0"), N);
	CHECK_EQ(pgc_long("SELECT count(*) FROM (SELECT device, rank() OVER (ORDER BY sluice_id) r "
	                  "FROM readings) x WHERE r = device + 1"), N);
	CHECK_STR(pgc_sql("SELECT pg_typeof(taken_at)::text || ',' || pg_typeof(seq)::text || ',' "
	                  "|| pg_typeof(day)::text FROM readings LIMIT 1"),
	          "timestamp with time zone,bigint,date");
	stop_worker(w);
}

/* The password, from sink.password_file or inside the DSN, is never in
 * any log: not when connected, not when refused. */
static void
password_never_logged(void)
{
	const char *pw = "pw-S3cr3t-4e7a", *wrong = "wr0ng-Pa55-91c2";
	const char *dsn = pgc_start(pw);
	const char *pwfile = th_write("pgpass.txt", th_fmt("%s\n", pw));
	fx_config(&(fx_cfg){.sink = pg_sink(dsn, th_fmt("password_file: %s", pwfile))});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	CHECK_EQ(fx_put(c, Q, "m", 0, 200, 100), 200);
	CHECK(fx_drained(c, Q, 30000));
	stop_worker(w);
	audit("m", 200);
	CHECK_CONTAINS(th_read(th_path("worker.log")), "SINK-CONNECTED postgres");

	/* the password inside a URI */
	const char *text = th_read(fx.config), *line = th_fmt("dsn: \"%s\"", dsn);
	const char *at = strstr(text, line);
	CHECK(at != NULL);
	const char *host = strstr(dsn, "host=") + 5;
	const char *uri = th_fmt("postgresql://postgres:%s@/postgres?host=%.*s", pw,
	                         (int)strcspn(host, " "), host);
	/* the same configuration, with the URI and without password_file */
	const char *rest = strstr(at, "\n"), *pf = strstr(rest, "\n    password_file:");
	CHECK(pf != NULL);
	const char *uri_cfg[] = {"-c", th_write("uri.yaml", th_fmt("%.*sdsn: \"%s\"%.*s%s",
	                         (int)(at - text), text, uri, (int)(pf - rest), rest,
	                         strchr(pf + 1, '\n'))), NULL};
	w = fx_worker("worker2.log", uri_cfg);
	CHECK_EQ(fx_put(c, Q, "m", 200, 100, 100), 100);
	CHECK(fx_drained(c, Q, 30000));
	stop_worker(w);
	audit("m", 300);
	CHECK_CONTAINS(th_read(th_path("worker2.log")), "SINK-CONNECTED postgres");

	/* a wrong password: refused, the worker waits behind its breaker */
	th_write("pgpass.txt", th_fmt("%s\n", wrong));
	w = fx_worker("worker3.log", NULL);
	CHECK_EQ(fx_put(c, Q, "x", 0, 1, 1), 1);
	CHECK(th_wait_file(th_path("worker3.log"), "BREAKER-OPEN", 20000));
	CHECK(th_wait(w, 0) == -1);
	stop_worker(w);
	CHECK_CONTAINS(th_read(th_path("worker3.log")), "password authentication failed");

	/* nor in what sluice shows */
	char *out;
	CHECK(th_sh(&out, "'%s' -c '%s' stats 2>&1; '%s' --help 2>&1", th_bin("sluice"), fx.config,
	            th_bin("sluice-worker")) == 0);
	CHECK(strstr(out, pw) == NULL && strstr(out, wrong) == NULL);
	/* grep exits 1 when nothing matches */
	CHECK_EQ(th_sh(NULL, "grep -l -e '%s' -e '%s' *.log pg/*.log", pw, wrong), 1);
}

/* The server is down when the worker starts: it starts anyway, says so,
 * keeps its batches behind the breaker, and drains once the server is up. */
static void
unreachable_at_start_then_drains(void)
{
	const char *dsn = pgc_start(NULL);
	pgc_stop("fast");
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 1",
		.worker = "breaker:\n  base: 200ms\n  max: 1s",
		.sink = pg_sink(dsn, NULL),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	CHECK(th_wait_file(th_path("worker.log"), "SINK-UNREACHABLE", 20000));
	CHECK(th_wait_file(th_path("worker.log"), "WORKER-START", 5000));
	CHECK_EQ(fx_put(c, Q, "m", 0, 500, 100), 500);
	CHECK(th_wait_file(th_path("worker.log"), "BREAKER-OPEN", 10000));
	usleep(2000000);
	CHECK(th_wait(w, 0) == -1);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	pgc_restart();
	CHECK(fx_drained(c, Q, 30000));
	audit("m", 500);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK(th_wait_file(th_path("worker.log"), "SINK-CONNECTED postgres", 0));
	stop_worker(w);
}

/* What cannot work stops the worker at start, exit 1, saying why: a
 * malformed DSN (without echoing a password in it), an unreadable password
 * file, a bad table name, and, the server answering, a json table that is
 * missing or has no key, a raw table without the id key or the columns. */
static void
bad_configuration_exits_1(void)
{
	const char *dsn = pgc_start(NULL);
	fx_config(&(fx_cfg){.sink = "type: postgres\ndsn: \"host=/tmp port\""});
	CHECK_CONTAINS(worker_exits_1("w1.log"), "sink.dsn is not a valid connection string or URI");

	fx_config(&(fx_cfg){.sink = "type: postgres\ndsn: \"password=hunter2x port\""});
	const char *log = worker_exits_1("w2.log");
	CHECK_CONTAINS(log, "sink.dsn is not a valid");
	CHECK(strstr(log, "hunter2x") == NULL);

	fx_config(&(fx_cfg){.sink = pg_sink(dsn, "password_file: /nonexistent/pgpass")});
	CHECK_CONTAINS(worker_exits_1("w3.log"), "cannot read sink.password_file /nonexistent/pgpass");

	fx_config(&(fx_cfg){.sink = th_fmt("type: postgres\ndsn: \"%s\"\ntable: \"a;b\"", dsn)});
	CHECK_CONTAINS(worker_exits_1("w4.log"), "sink.table 'a;b' is not a valid table name");

	fx_config(&(fx_cfg){.sink = th_fmt("type: postgres\ndsn: \"%s\"\ntable: nosuch\nformat: json",
	                                   dsn)});
	CHECK_CONTAINS(worker_exits_1("w5.log"), "table nosuch does not exist");

	pgc_sql("CREATE TABLE loose (a int, b text)");
	fx_config(&(fx_cfg){.sink = th_fmt("type: postgres\ndsn: \"%s\"\ntable: loose\nformat: json",
	                                   dsn)});
	CHECK_CONTAINS(worker_exits_1("w6.log"), "table loose has no primary key or unique constraint");

	/* a raw table of the user's, without the id key or the columns */
	pgc_sql("CREATE TABLE nokey (id bigint, queue text, payload bytea, enqueued_at timestamptz, "
	        "committed_at timestamptz); CREATE TABLE fewcols (id bigint PRIMARY KEY, payload bytea)");
	fx_config(&(fx_cfg){.sink = th_fmt("type: postgres\ndsn: \"%s\"\ntable: nokey", dsn)});
	CHECK_CONTAINS(worker_exits_1("w7.log"), "no unique or exclusion constraint matching the ON "
	               "CONFLICT specification (SQLSTATE 42P10)");
	fx_config(&(fx_cfg){.sink = th_fmt("type: postgres\ndsn: \"%s\"\ntable: fewcols", dsn)});
	CHECK_CONTAINS(worker_exits_1("w8.log"), "column \"queue\" of relation \"fewcols\" does not exist");
}

/* Another session holds the table locked: with a short statement_timeout
 * each commit is cancelled (57014), a sink failure: the breaker opens and
 * nothing is dead-lettered (max_attempts is 1). Released, it drains. */
static void
locked_table_times_out_into_the_breaker(void)
{
	const char *dsn = pgc_start(NULL);
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 1",
		.worker = "breaker:\n  base: 200ms\n  max: 1s",
		.sink = pg_sink(dsn, "statement_timeout: 300ms"),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	CHECK(th_wait_file(th_path("worker.log"), "SINK-CONNECTED", 10000));
	PGconn *locker = lock_table(dsn);
	CHECK_EQ(fx_put(c, Q, "m", 0, 1000, 500), 1000);
	CHECK(th_wait_file(th_path("worker.log"), "BREAKER-OPEN", 10000));
	usleep(2000000);
	CHECK_EQ(fx_stat(c, Q, "acked_total"), 0);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	unlock_table(locker);
	CHECK(fx_drained(c, Q, 30000));
	audit("m", 1000);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	stop_worker(w);
	char *log = th_read(th_path("worker.log"));
	CHECK_CONTAINS(log, "canceling statement due to statement timeout (SQLSTATE 57014)");
	CHECK_CONTAINS(log, "BREAKER-CLOSED");
}

/* SIGTERM while a commit waits on a lock: at the end of the grace the
 * statement is cancelled, the batch handed back untried, and the worker
 * exits 0; nothing is lost. */
static void
shutdown_abandons_a_blocked_commit(void)
{
	const char *dsn = pgc_start(NULL);
	fx_config(&(fx_cfg){
		.worker = "shutdown_grace: 1s",
		.sink = pg_sink(dsn, "statement_timeout: 60s"),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	CHECK(th_wait_file(th_path("worker.log"), "SINK-CONNECTED", 10000));
	PGconn *locker = lock_table(dsn);
	CHECK_EQ(fx_put(c, Q, "m", 0, 10, 10), 10);
	int64_t end = th_now_ms() + 10000;
	while (fx_stat(c, Q, "in_flight") != 10 && th_now_ms() < end)
		usleep(20000);
	CHECK_EQ(fx_stat(c, Q, "in_flight"), 10);
	usleep(300000); /* in the commit, waiting for the lock */
	int64_t t0 = th_now_ms();
	stop_worker(w);
	CHECK(th_now_ms() - t0 >= 900);
	CHECK(th_now_ms() - t0 < 5000);
	CHECK_EQ(fx_stat(c, Q, "in_flight"), 0);
	CHECK_EQ(fx_stat(c, Q, "depth"), 10);
	sluice_batch *b;
	CHECK(sluice_peek(c, Q, 1, &b) == 0);
	CHECK_EQ(b->count, 1);
	CHECK_EQ(b->msgs[0].attempt, 0); /* handed back untried: never counted */
	sluice_batch_free(b);
	/* the server let go of the cancelled statement */
	CHECK_EQ(pgc_long("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
	                  "'sluice-worker'"), 0);
	unlock_table(locker);
	w = fx_worker("worker2.log", NULL);
	CHECK(fx_drained(c, Q, 30000));
	audit("m", 10);
	stop_worker(w);
}

static const th_case cases[] = {
	TH_CASE(exactly_once_under_sigkill_chaos),
	TH_CASE(server_stop_trips_breaker_and_flow_resumes),
	TH_CASE(bad_json_rows_are_dead_lettered_alone),
	TH_CASE(trigger_refusal_in_raw_batch_fails_only_that_row),
	TH_CASE(json_rows_land_with_their_types),
	TH_CASE(password_never_logged),
	TH_CASE(unreachable_at_start_then_drains),
	TH_CASE(bad_configuration_exits_1),
	TH_CASE(locked_table_times_out_into_the_breaker),
	TH_CASE(shutdown_abandons_a_blocked_commit),
	{NULL, NULL},
};

TH_MAIN(cases)

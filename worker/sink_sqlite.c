/*
 * sink_sqlite: the embedded default sink. Each batch is committed to one
 * SQLite table in one transaction (BEGIN IMMEDIATE ... COMMIT); rows are
 * keyed by the broker's message id and inserted with ON CONFLICT DO
 * NOTHING, so a batch delivered again (the worker died between COMMIT and
 * ACK, or its lease expired) adds nothing. The only worker file that
 * includes sqlite3.h: SQLite's codes become WRK_SINK_* here.
 */
#include "sink.h"

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TABLE_MAX 64
#define SETUP_RETRY_MS 20

typedef struct sqlite_sink {
	sqlite3 *db;
	sqlite3_stmt *begin;  /* BEGIN IMMEDIATE */
	sqlite3_stmt *commit; /* COMMIT */
	sqlite3_stmt *insert; /* one row */
	const char *path;     /* borrowed from the configuration */
	const cfg_sink *conf; /* borrowed; outlives the sink */
} sqlite_sink;

/* A table name we can put in SQL without quoting tricks. */
static bool
identifier_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > TABLE_MAX || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
	                                 s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return strncmp(s, "sqlite_", 7) != 0;
}

/* Errors that mean the database, not the row, is the problem. */
static bool
sink_wide(int rc)
{
	switch (rc & 0xFF) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_NOMEM:
	case SQLITE_PROTOCOL:
	case SQLITE_PERM:
	case SQLITE_ERROR: /* e.g. the table was dropped under us */
	case SQLITE_SCHEMA:
		return true;
	default:
		return false;
	}
}

/* Runs sql; returns SQLite's code, with err filled on failure. */
static int
exec_sql(sqlite_sink *s, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		snprintf(err, errlen, "cannot set up %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
	sqlite3_free(msg);
	return rc;
}

static bool
busy(int rc)
{
	return (rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED;
}

static int
prepare(sqlite_sink *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot prepare a statement on %s: %s", s->path,
		         sqlite3_errmsg(s->db));
		return WRK_SINK_EOPEN;
	}
	return WRK_SINK_OK;
}

/* Closes the connection (the sink stays, to connect again). */
static void
db_disconnect(sqlite_sink *s)
{
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	sqlite3_finalize(s->insert);
	sqlite3_close(s->db);
	s->begin = s->commit = s->insert = NULL;
	s->db = NULL;
}

static void
sqlite_close(void *arg)
{
	sqlite_sink *s = arg;
	if (s == NULL)
		return;
	db_disconnect(s);
	free(s);
}

/* Journal mode, synchronous and the table. Returns SQLITE_OK, SQLITE_BUSY
 * (worth another try; err is filled anyway) or another code, err filled. */
static int
setup(sqlite_sink *s, const cfg_sink *conf, char *err, size_t errlen)
{
	static const char *const sync_names[] = {"FULL", "NORMAL", "OFF"};
	char sql[512];
	sqlite3_stmt *st = NULL;
	int rc;

	/* journal_mode answers with a row: check that WAL took */
	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "cannot open %s: %s", conf->path, sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return busy(rc) ? SQLITE_BUSY : SQLITE_ERROR;
	}
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "cannot open %s: WAL mode refused (journal mode is %s)", conf->path,
		         mode ? mode : "unknown");
		sqlite3_finalize(st);
		return SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	int sync = conf->synchronous >= 0 && conf->synchronous <= 2 ? conf->synchronous : 0;
	snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync_names[sync]);
	if ((rc = exec_sql(s, sql, err, errlen)) != SQLITE_OK)
		return busy(rc) ? SQLITE_BUSY : SQLITE_ERROR;
	snprintf(sql, sizeof(sql),
	         "CREATE TABLE IF NOT EXISTS \"%s\" (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, "
	         "payload BLOB NOT NULL, enqueued_at INTEGER NOT NULL, committed_at INTEGER NOT NULL)",
	         conf->table);
	if ((rc = exec_sql(s, sql, err, errlen)) != SQLITE_OK)
		return busy(rc) ? SQLITE_BUSY : SQLITE_ERROR;
	return SQLITE_OK;
}

/* Opens the connection, sets it up and prepares the statements. */
static int
db_connect(sqlite_sink *s, const cfg_sink *conf, char *err, size_t errlen)
{
	char sql[512];
	int rc = sqlite3_open_v2(conf->path, &s->db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", conf->path,
		         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, conf->busy_timeout_ms > INT32_MAX ? INT32_MAX
	                                                             : (int)conf->busy_timeout_ms);
	/* Several workers may open a new database at once: switching it to
	 * WAL can answer SQLITE_BUSY without waiting in the busy handler, so
	 * the setup is tried again for up to busy_timeout. */
	int64_t give_up = clk_mono_ms() + (conf->busy_timeout_ms > 1000 ? conf->busy_timeout_ms : 1000);
	while ((rc = setup(s, conf, err, errlen)) == SQLITE_BUSY && clk_mono_ms() < give_up)
		clk_sleep_ms(SETUP_RETRY_MS);
	if (rc != SQLITE_OK)
		goto fail;
	snprintf(sql, sizeof(sql),
	         "INSERT INTO \"%s\" (id, queue, payload, enqueued_at, committed_at) "
	         "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO NOTHING",
	         conf->table);
	if (prepare(s, "BEGIN IMMEDIATE", &s->begin, err, errlen) != 0 ||
	    prepare(s, "COMMIT", &s->commit, err, errlen) != 0 ||
	    prepare(s, sql, &s->insert, err, errlen) != 0)
		goto fail;
	return WRK_SINK_OK;
fail:
	db_disconnect(s);
	return WRK_SINK_EOPEN;
}

static int
sqlite_open(const cfg_sink *conf, void **out, char *err, size_t errlen)
{
	sqlite_sink *s;

	*out = NULL;
	if (conf->path == NULL || conf->path[0] == '\0') {
		snprintf(err, errlen, "sink.path is empty");
		return WRK_SINK_EOPEN;
	}
	if (conf->table == NULL || !identifier_valid(conf->table)) {
		snprintf(err, errlen, "sink.table '%s' is not a valid table name (letters, digits and _, "
		         "not starting with a digit, at most %d)", conf->table ? conf->table : "", TABLE_MAX);
		return WRK_SINK_EOPEN;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return WRK_SINK_ENOMEM;
	}
	s->path = conf->path;
	s->conf = conf;
	/* Create the file ourselves so that it gets mode 0600 (SQLite gives
	 * its -wal and -shm files the database's mode). If this fails, SQLite
	 * below says why in its own words. */
	int fd = open(conf->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	if (db_connect(s, conf, err, errlen) != WRK_SINK_OK) {
		sqlite_close(s);
		return WRK_SINK_EOPEN;
	}
	*out = s;
	return WRK_SINK_OK;
}

/* Runs a statement without rows; returns SQLite's code. */
static int
step_once(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void
rollback(sqlite_sink *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int
sqlite_commit(void *arg, const wrk_item *items, size_t n, const atomic_llong *deadline_ms,
              wrk_result *res, char *err, size_t errlen)
{
	sqlite_sink *s = arg;
	int64_t now = clk_wall_ms();
	int rc;
	(void)deadline_ms; /* busy_timeout bounds every wait here */

	/* A database that was read-only when it was opened (its file or
	 * directory not writable then) stays read-only for that connection:
	 * open it again, so that the sink recovers once it is writable. */
	if (s->db == NULL || sqlite3_db_readonly(s->db, "main") != 0) {
		char why[256];
		db_disconnect(s);
		if (db_connect(s, s->conf, why, sizeof(why)) != WRK_SINK_OK) {
			snprintf(err, errlen, "%s", why);
			return WRK_SINK_EFAIL;
		}
	}
	if ((rc = step_once(s->begin)) != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot begin: %s", s->path, sqlite3_errmsg(s->db));
		rollback(s);
		return WRK_SINK_EFAIL;
	}
	for (size_t i = 0; i < n; i++) {
		const wrk_item *it = &items[i];
		sqlite3_bind_int64(s->insert, 1, (sqlite3_int64)it->id);
		sqlite3_bind_text(s->insert, 2, it->queue, -1, SQLITE_STATIC);
		/* the payload outlives the step: no copy */
		if (it->len == 0)
			sqlite3_bind_zeroblob(s->insert, 3, 0);
		else
			sqlite3_bind_blob64(s->insert, 3, it->payload, it->len, SQLITE_STATIC);
		sqlite3_bind_int64(s->insert, 4, it->enqueued_ms);
		sqlite3_bind_int64(s->insert, 5, now);
		rc = sqlite3_step(s->insert);
		const char *msg = rc == SQLITE_DONE ? NULL : sqlite3_errmsg(s->db);
		if (rc != SQLITE_DONE && sink_wide(rc)) {
			snprintf(err, errlen, "%s: %s", s->path, msg);
			sqlite3_reset(s->insert);
			sqlite3_clear_bindings(s->insert);
			rollback(s);
			for (size_t j = 0; j < i; j++)
				res[j].state = WRK_ITEM_UNTRIED;
			return WRK_SINK_EFAIL;
		}
		if (rc == SQLITE_DONE) {
			res[i].state = WRK_ITEM_OK;
		} else {
			/* this row alone (too big, a constraint): SQLite undid just it */
			res[i].state = WRK_ITEM_FAILED;
			snprintf(res[i].error, sizeof(res[i].error), "sqlite: %s", msg);
		}
		sqlite3_reset(s->insert);
	}
	sqlite3_clear_bindings(s->insert);
	if ((rc = step_once(s->commit)) != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot commit: %s", s->path, sqlite3_errmsg(s->db));
		rollback(s);
		for (size_t j = 0; j < n; j++)
			res[j].state = WRK_ITEM_UNTRIED;
		return WRK_SINK_EFAIL;
	}
	return WRK_SINK_OK;
}

const wrk_sink_ops wrk_sink_sqlite = {
	.name = "sqlite",
	.open = sqlite_open,
	.commit = sqlite_commit,
	.close = sqlite_close,
};

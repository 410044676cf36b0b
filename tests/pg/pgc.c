/* pgc: the case's PostgreSQL cluster (see pgc.h). */
#include "pgc.h"

#include "harness.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *pg_dir;   /* th_path("pg") while a cluster runs */
static const char *pg_dsn;
static const char *pg_password;

static void
stop_at_end(void *arg)
{
	(void)arg;
	if (pg_dir != NULL)
		th_sh(NULL, "'%s' stop '%s' immediate >/dev/null 2>&1", th_src("scripts/pg-cluster"),
		      pg_dir);
	pg_dir = pg_dsn = pg_password = NULL;
}

const char *
pgc_start(const char *password)
{
	char *out;
	/* the server runs as postgres: it must get through the scratch dir */
	if (chmod(th_dir(), 0755) != 0)
		th_fail(__FILE__, __LINE__, "cannot chmod %s", th_dir());
	const char *env = "";
	if (password != NULL)
		env = th_fmt("PG_PASSWORD_FILE='%s' ", th_write("pg-initdb-password", password));
	pg_dir = th_path("pg");
	th_defer(stop_at_end, NULL);
	int rc = th_sh(&out, "%s'%s' start '%s' 2>&1", env, th_src("scripts/pg-cluster"), pg_dir);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "cannot start a PostgreSQL cluster (scripts/pg-cluster "
		        "exit %d): %s", rc, out);
	out[strcspn(out, "\n")] = '\0';
	pg_dsn = out;
	pg_password = password;
	return pg_dsn;
}

void
pgc_stop(const char *mode)
{
	char *out;
	if (th_sh(&out, "'%s' stop '%s' %s 2>&1", th_src("scripts/pg-cluster"), pg_dir, mode) != 0)
		th_fail(__FILE__, __LINE__, "cannot stop the cluster: %s", out);
}

void
pgc_restart(void)
{
	char *out;
	if (th_sh(&out, "'%s' start '%s' 2>&1", th_src("scripts/pg-cluster"), pg_dir) != 0)
		th_fail(__FILE__, __LINE__, "cannot start the cluster again: %s", out);
}

static PGconn *
connect_su(void)
{
	const char *kw[] = {"dbname", "password", NULL};
	const char *val[] = {pg_dsn, pg_password, NULL};
	if (pg_dsn == NULL)
		th_fail(__FILE__, __LINE__, "no cluster: call pgc_start first");
	PGconn *c = PQconnectdbParams(kw, val, 1);
	if (PQstatus(c) != CONNECTION_OK) {
		const char *why = th_fmt("%s", PQerrorMessage(c));
		PQfinish(c);
		th_fail(__FILE__, __LINE__, "cannot connect to %s: %s", pg_dsn, why);
	}
	return c;
}

static const char *
vsql(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int len = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	char *sql = len < 0 ? NULL : malloc((size_t)len + 1);
	if (sql == NULL)
		th_fail(__FILE__, __LINE__, "out of memory");
	vsnprintf(sql, (size_t)len + 1, fmt, ap);
	PGconn *c = connect_su();
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		const char *why = th_fmt("%s: %s", sql, PQresultErrorMessage(r));
		free(sql);
		PQclear(r);
		PQfinish(c);
		th_fail(__FILE__, __LINE__, "%s", why);
	}
	const char *v = th_fmt("%s", st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0)
	                                                                       : "");
	free(sql);
	PQclear(r);
	PQfinish(c);
	return v;
}

const char *
pgc_sql(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *v = vsql(fmt, ap);
	va_end(ap);
	return v;
}

long
pgc_long(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *v = vsql(fmt, ap);
	va_end(ap);
	return atol(v);
}

void
pgc_audit(const char *table, const char *prefix, long n, long *rows, long *distinct,
          long *missing, long *duplicated)
{
	*rows = pgc_long("SELECT count(*) FROM %s", table);
	*distinct = pgc_long("SELECT count(DISTINCT id) FROM %s", table);
	int *seen = calloc((size_t)n, sizeof(*seen));
	if (seen == NULL)
		th_fail(__FILE__, __LINE__, "out of memory");
	PGconn *c = connect_su();
	PGresult *r = PQexec(c, th_fmt("SELECT convert_from(payload, 'UTF8') FROM %s", table));
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *why = th_fmt("%s", PQresultErrorMessage(r));
		PQclear(r);
		PQfinish(c);
		free(seen);
		th_fail(__FILE__, __LINE__, "audit of %s: %s", table, why);
	}
	size_t plen = strlen(prefix);
	for (int i = 0; i < PQntuples(r); i++) {
		const char *p = PQgetvalue(r, i, 0);
		if (strncmp(p, prefix, plen) != 0 || p[plen] != '-')
			continue;
		long k = atol(p + plen + 1);
		if (k >= 0 && k < n)
			seen[k]++;
	}
	PQclear(r);
	PQfinish(c);
	*missing = *duplicated = 0;
	for (long i = 0; i < n; i++) {
		if (seen[i] == 0)
			(*missing)++;
		else if (seen[i] > 1)
			(*duplicated)++;
	}
	free(seen);
}

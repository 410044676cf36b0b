/* pg_cli_test: `sluice load --target direct --db postgres` and `sluice demo
 * --db postgres` against real PostgreSQL: the direct path writes one row
 * per transaction and reads it back; the demo makes its own cluster, shows
 * every acknowledged message landed exactly once, and removes the cluster. */
#include "fixture.h"
#include "harness.h"
#include "pgc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The number after "key": in the "total" object of load's JSON. */
static double
total(const char *json, const char *key)
{
	const char *p = strstr(json, "\"total\":");
	CHECK(p != NULL);
	const char *k = th_fmt("\"%s\":", key);
	p = strstr(p, k);
	if (p == NULL)
		th_fail(__FILE__, __LINE__, "no %s in the JSON", k);
	return strtod(p + strlen(k), NULL);
}

/* direct to PostgreSQL: every acknowledged request is one row with its
 * payload, committed in a transaction of its own, and the report names
 * the database without its DSN. */
static void
load_direct_writes_rows(void)
{
	const char *dsn = pgc_start(NULL);
	fx_config(NULL);
	long before = pgc_long("SELECT xact_commit FROM pg_stat_database WHERE datname = "
	                       "current_database()");
	char *json;
	int rc = th_sh(&json, "'%s' -c '%s' load --target direct --db postgres --dsn '%s' "
	               "--table direct_events --prefix dr --size 100 --vus 10 --duration 1s "
	               "--pool 4 --quiet --json - 2>report.txt", th_bin("sluice"), fx.config, dsn);
	CHECK_EQ(rc, 0);
	long ok = (long)total(json, "ok");
	CHECK(ok > 0);
	CHECK_EQ((long)total(json, "failed"), 0);
	CHECK_CONTAINS(json, "\"target\":\"direct\",\"address\":\"postgres\"");
	CHECK_EQ(pgc_long("SELECT count(*) FROM direct_events"), ok);
	CHECK_EQ(pgc_long("SELECT count(*) FROM direct_events WHERE length(payload) = 100 AND "
	                  "convert_from(payload, 'UTF8') LIKE 'dr-%%' AND id < 0"), ok);
	long after = pgc_long("SELECT xact_commit FROM pg_stat_database WHERE datname = "
	                      "current_database()");
	CHECK(after - before >= ok);
	char *report = th_read(th_path("report.txt"));
	CHECK_CONTAINS(report, "sluice load: direct postgres, queue default, table direct_events");
	CHECK(strstr(report, dsn) == NULL);

	/* again: new rows below the first run's, none collide */
	rc = th_sh(&json, "'%s' -c '%s' load --target direct --dsn '%s' --table direct_events "
	           "--prefix dr2 --vus 4 --duration 500ms --pool 2 --quiet --json -",
	           th_bin("sluice"), fx.config, dsn);
	CHECK_EQ(rc, 0);
	CHECK_EQ(pgc_long("SELECT count(*) FROM direct_events"), ok + (long)total(json, "ok"));
}

/* A configuration whose sink is postgres, with a password file: load
 * direct goes there by default, with that password. Bad option mixes are
 * usage errors. */
static void
load_direct_defaults_to_the_sink(void)
{
	const char *dsn = pgc_start("load-pw-81f3");
	const char *pwfile = th_write("pgpass", "load-pw-81f3\n");
	fx_config(&(fx_cfg){.sink = th_fmt("type: postgres\ndsn: \"%s\"\npassword_file: %s\n"
	                                   "table: t_load", dsn, pwfile)});
	char *json;
	CHECK_EQ(th_sh(&json, "'%s' -c '%s' load --target direct --vus 2 --duration 500ms --pool 2 "
	               "--quiet --json -", th_bin("sluice"), fx.config), 0);
	long ok = (long)total(json, "ok");
	CHECK(ok > 0);
	CHECK_EQ(pgc_long("SELECT count(*) FROM t_load"), ok);
	char *err;
	CHECK_EQ(th_sh(&err, "'%s' -c '%s' load --target direct --db x.db --dsn '%s' 2>&1",
	               th_bin("sluice"), fx.config, dsn), 2);
	CHECK_CONTAINS(err, "--dsn goes with --db postgres");
	fx_config(NULL);
	CHECK_EQ(th_sh(&err, "'%s' -c '%s' load --target direct --db postgres 2>&1",
	               th_bin("sluice"), fx.config), 2);
	CHECK_CONTAINS(err, "--db postgres needs --dsn");
	/* unreachable: a setup failure, exit 1 */
	CHECK_EQ(th_sh(&err, "'%s' -c '%s' load --target direct --dsn 'host=%s/nowhere' --vus 1 "
	               "--duration 200ms 2>&1", th_bin("sluice"), fx.config, th_dir()), 1);
	CHECK_CONTAINS(err, "cannot connect to PostgreSQL");
}

/* The demo on PostgreSQL, as a new user runs it: its own cluster in its
 * directory, the same comparison, exactly once, nothing left behind. */
static void
quick_demo_on_postgres(void)
{
	char *out;
	CHECK(chmod(th_dir(), 0755) == 0); /* the postgres user works in the demo's directory */
	int rc = th_sh(&out, "'%s' demo --db postgres --quick --dir '%s' 2>&1", th_bin("sluice"),
	               th_path("run"));
	printf("%s", out);
	CHECK_EQ(rc, 0);
	CHECK_CONTAINS(out, th_fmt("a private PostgreSQL cluster in %s", th_path("run/pg")));
	CHECK_CONTAINS(out, "every acknowledged message exactly once");
	const char *row = strstr(out, "failed requests");
	long direct_failed, sluice_failed;
	CHECK(row != NULL && sscanf(row, "failed requests %ld %ld", &direct_failed,
	                            &sluice_failed) == 2);
	CHECK_EQ(sluice_failed, 0);
	row = strstr(out, "database commits/s");
	double direct_commits, sluice_commits;
	CHECK(row != NULL && sscanf(row, "database commits/s %lf %lf", &direct_commits,
	                            &sluice_commits) == 2);
	CHECK(sluice_commits < direct_commits);
	CHECK_CONTAINS(out, "a private cluster, now removed");
	CHECK(access(th_path("run/pg"), F_OK) != 0);
	CHECK_CONTAINS(th_read(th_path("run/report.html")), "one PostgreSQL application database");
	/* no server left running from it */
	char *ps;
	th_sh(&ps, "ps -eo args | grep -c '[p]ostgres -D %s' || true", th_path("run/pg"));
	CHECK_EQ(atoi(ps), 0);

	CHECK_EQ(th_sh(&out, "'%s' demo --dsn host=/nowhere 2>&1", th_bin("sluice")), 2);
	CHECK_CONTAINS(out, "--dsn goes with --db postgres");
}

static const th_case cases[] = {
	TH_CASE(load_direct_writes_rows),
	TH_CASE(load_direct_defaults_to_the_sink),
	TH_CASE(quick_demo_on_postgres),
	{NULL, NULL},
};

TH_MAIN(cases)

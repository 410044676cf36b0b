/*
 * pgc: a throwaway PostgreSQL cluster for one test case, and queries on
 * it. The cluster is made by scripts/pg-cluster (initdb + pg_ctl, as the
 * postgres user when the tests run as root) in th_path("pg"), listens only
 * on a Unix socket there, and is stopped with `pg_ctl stop -m immediate`
 * when the case ends. A machine without PostgreSQL fails the case, saying
 * what to install: these tests are never skipped.
 */
#ifndef SLUICE_TEST_PGC_H
#define SLUICE_TEST_PGC_H

#include <stdbool.h>

/* Starts the case's cluster and returns its DSN (lives until the case
 * ends). password: NULL for trust; else the postgres user's password,
 * required on every connection (scram-sha-256). */
const char *pgc_start(const char *password);
/* Stops it (mode "fast" or "immediate"), or starts it again. */
void pgc_stop(const char *mode);
void pgc_restart(void);

/* Runs sql (printf-style) as the superuser; fails the case on an error.
 * Returns the first column of the first row ("" if none), living until
 * the case ends. */
const char *pgc_sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, as a number. */
long pgc_long(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Audits a raw-format table: rows, distinct ids, and which payloads
 * "PREFIX-i" for i in [0, n) are missing or there more than once. */
void pgc_audit(const char *table, const char *prefix, long n, long *rows, long *distinct,
               long *missing, long *duplicated);

#endif

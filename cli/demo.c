/*
 * sluice demo: the doubled-servers failure, reproduced and cured, live.
 *
 * In a fresh state directory it writes a configuration (the embedded
 * defaults, with every port free and every file inside the directory),
 * starts sluice-broker and sluice-supervisor (which runs the workers), then
 * runs the same ramp of virtual users twice against one SQLite
 * "application database": first straight at it (`direct`, the architecture
 * without a buffer), then through Sluice. During the Sluice phase a monitor
 * thread samples the backlog, the worker count and the supervisor's scale
 * events. At the end it waits for the queue to drain and the pool to
 * shrink, audits the database (every acknowledged message exactly once),
 * prints both runs side by side, writes report.html, stops everything it
 * started and says where everything is.
 *
 * With --db postgres the application database is PostgreSQL instead: at
 * --dsn, or else a private cluster the demo makes in its state directory
 * (initdb and pg_ctl, as the postgres user when run as root; a Unix socket,
 * no TCP) and removes at the end. This file (its audit) and load_direct.c
 * are the command's only users of libpq.
 */
#include "chart.h"
#include "cli.h"
#include "clock.h"
#include "jbuf.h"
#include "load.h"
#include "port.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DEMO_QUEUE "default"
#define SINK_TABLE "events"
#define DIRECT_TABLE "direct_events"
#define MAX_SAMPLES 4096
#define MAX_EVENTS 256
#define PG_DIR_MAX 90 /* the cluster's directory: its socket path must fit in 108 bytes */

/* What the report calls the application database: "SQLite" or "PostgreSQL". */
static const char *app_db = "SQLite";

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: sluice demo [--quick] [--dir DIR] [--stages S] [--keep]\n"
	        "                   [--db sqlite|postgres [--dsn DSN]]\n"
	        "\n"
	        "Starts sluice-broker and sluice-supervisor (with its workers) in a fresh\n"
	        "directory, then runs the same ramp of virtual users twice against an\n"
	        "application database: first straight at the database, as when two app\n"
	        "servers share one database, then through Sluice. Shows the backlog, the\n"
	        "workers scaling and the database's commit rate live, checks that every\n"
	        "acknowledged message landed exactly once, prints both runs side by side\n"
	        "and writes report.html.\n"
	        "\n"
	        "  --quick        a short run (about 30 s) instead of about three minutes\n"
	        "  --dir DIR      state directory (default: sluice-demo/RUN-TIME, created)\n"
	        "  --stages S     the ramp, k6 style (default 5s:100,50s:2000,10s:2000,5s:0;\n"
	        "                 with --quick 2s:50,5s:400,1s:0)\n"
	        "  --keep         leave the broker and supervisor running at the end\n"
	        "  --db DB        the application database: sqlite (default, app.db in the\n"
	        "                 directory) or postgres\n"
	        "  --dsn DSN      postgres: a database to use (a connection string or URI);\n"
	        "                 without it the demo makes a private cluster in the directory\n"
	        "                 (initdb and pg_ctl from the postgresql package, run as the\n"
	        "                 postgres user when root), on a Unix socket, removed at the end\n"
	        "  -h, --help     this text\n");
}

/* ---- processes ---- */

typedef struct proc {
	pid_t pid;
	const char *name;
} proc;

/* The directory this program lives in, where its siblings are. */
static void
bin_dir(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);
	if (n <= 0) {
		snprintf(out, len, ".");
		return;
	}
	out[n] = '\0';
	char *slash = strrchr(out, '/');
	if (slash != NULL)
		*slash = '\0';
}

static pid_t
spawn(const char *prog, char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
	int rc = posix_spawn(&pid, prog, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		fprintf(stderr, "sluice demo: cannot start %s: %s\n", prog, strerror(rc));
		return -1;
	}
	return pid;
}

/* SIGTERM, then SIGKILL if it has not exited within timeout_ms. */
static void
stop(proc *p, int timeout_ms)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGTERM);
	int64_t end = clk_mono_ms() + timeout_ms;
	while (waitpid(p->pid, NULL, WNOHANG) == 0) {
		if (clk_mono_ms() > end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			break;
		}
		clk_sleep_ms(20);
	}
	p->pid = -1;
}

/* ---- the monitor: what the Sluice phase looks like from outside ---- */

typedef struct sample {
	double t;           /* seconds since the phase began */
	double backlog;
	double workers;
	double acked_rate;  /* messages acknowledged by workers per second */
} sample;

typedef struct scale_event {
	double t;
	int from, to;
} scale_event;

typedef struct monitor {
	const char *broker;
	const char *sup_log;
	int64_t start_ms;   /* wall time of the phase's start */
	pthread_t thread;
	pthread_mutex_t mu;
	volatile int stop;
	sample s[MAX_SAMPLES];
	size_t ns;
	scale_event ev[MAX_EVENTS];
	size_t nev;
	long sup_offset;     /* how much of the supervisor's log is read */
	int max_workers;
	bool scaled_down;    /* a scale-down was seen after a scale-up */
	/* the live line */
	double ingest_rate;
	int vus;
	uint64_t failed;
	bool tty;
} monitor;

/* Milliseconds since the epoch of a log line's timestamp, or -1. */
static int64_t
log_ms(const char *line)
{
	struct tm tm = {0};
	int ms = 0;
	if (sscanf(line, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	           &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Reads new SCALE lines of the supervisor's log; prints each one. */
static void
read_scale_events(monitor *m)
{
	FILE *f = fopen(m->sup_log, "r");
	char line[2048];
	if (f == NULL)
		return;
	if (fseek(f, m->sup_offset, SEEK_SET) != 0) {
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		if (len == 0 || line[len - 1] != '\n')
			break; /* a line still being written: read it next time */
		m->sup_offset += (long)len;
		const char *w = strstr(line, " SCALE ");
		const char *arrow = w ? strstr(w, "workers ") : NULL;
		int from, to;
		if (arrow == NULL || sscanf(arrow, "workers %d -> %d", &from, &to) != 2)
			continue;
		int64_t t = log_ms(line);
		const char *why = strstr(arrow, ": ");
		pthread_mutex_lock(&m->mu);
		if (m->nev < MAX_EVENTS)
			m->ev[m->nev++] = (scale_event){(double)(t - m->start_ms) / 1000.0, from, to};
		if (to > m->max_workers)
			m->max_workers = to;
		if (to < from && m->max_workers > 0)
			m->scaled_down = true;
		pthread_mutex_unlock(&m->mu);
		int wlen = why ? (int)strcspn(why + 2, "\n") : 0;
		fprintf(stderr, "%s  scale: %d -> %d workers%s%.*s%s\n", m->tty ? "\r\033[K" : "", from,
		        to, why ? " (" : "", wlen, why ? why + 2 : "", why ? ")" : "");
	}
	fclose(f);
}

static void *
monitor_main(void *arg)
{
	monitor *m = arg;
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 2000};
	uint64_t last_acked = 0;
	int64_t last_t = 0;
	if (sluice_open(&c, m->broker, &o) != 0)
		return NULL;
	while (!m->stop) {
		int64_t now = clk_wall_ms();
		sluice_stats *s;
		read_scale_events(m);
		if (sluice_stats_get(c, DEMO_QUEUE, &s) == 0) {
			const sluice_queue_stats *q = sluice_stats_queue(s, DEMO_QUEUE);
			double backlog = 0, workers = 0;
			uint64_t acked = 0;
			if (q != NULL) {
				backlog = (double)sluice_stat_value(q->fields, q->nfields, "backlog", 0);
				workers = (double)sluice_stat_value(q->fields, q->nfields, "workers_current", 0);
				acked = (uint64_t)sluice_stat_value(q->fields, q->nfields, "acked_total", 0);
			}
			sluice_stats_free(s);
			double rate = last_t ? (double)(acked - last_acked) * 1000.0 / (double)(now - last_t) : 0;
			last_acked = acked;
			last_t = now;
			pthread_mutex_lock(&m->mu);
			if (m->ns < MAX_SAMPLES)
				m->s[m->ns++] = (sample){(double)(now - m->start_ms) / 1000.0, backlog, workers, rate};
			double ingest = m->ingest_rate;
			int vus = m->vus;
			uint64_t failed = m->failed;
			pthread_mutex_unlock(&m->mu);
			fprintf(stderr, "%s  %5.1fs  VUs %5d  ingest %7.0f/s  backlog %7.0f  workers %2.0f  "
			                "db commits %7.0f rows/s  failed %llu%s",
			        m->tty ? "\r\033[K" : "", (double)(now - m->start_ms) / 1000.0, vus, ingest,
			        backlog, workers, rate, (unsigned long long)failed, m->tty ? "" : "\n");
		}
		clk_sleep_ms(1000);
	}
	read_scale_events(m);
	if (m->tty)
		fputc('\n', stderr);
	sluice_close(c);
	return NULL;
}

static void
sluice_progress(const load_progress *p, void *arg)
{
	monitor *m = arg;
	pthread_mutex_lock(&m->mu);
	m->ingest_rate = p->last ? (double)p->last->ok : 0;
	m->vus = p->vus;
	m->failed = p->failed;
	pthread_mutex_unlock(&m->mu);
}

static void
direct_progress(const load_progress *p, void *arg)
{
	bool tty = *(bool *)arg;
	uint64_t ok = p->last ? p->last->ok : 0;
	fprintf(stderr, "%s  %5.1fs  VUs %5d  ok %6llu/s  p99 %7.0f ms  failed %llu%s",
	        tty ? "\r\033[K" : "", p->elapsed_s, p->vus, (unsigned long long)ok,
	        p->last ? p->last->p99_ms : 0.0, (unsigned long long)p->failed, tty ? "" : "\n");
}

/* ---- the application database ---- */

typedef struct audit {
	long rows;        /* rows with this run's prefix */
	long distinct;    /* distinct payloads among them */
	long ids;         /* distinct ids among them */
	double commits_per_s; /* distinct commit times per second of activity */
	/* commits and rows per second, for the chart */
	double t[MAX_SAMPLES], commits[MAX_SAMPLES], rows_s[MAX_SAMPLES];
	size_t n;
} audit;

static int
audit_sink(const char *db, const char *prefix, int64_t start_ms, audit *a)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	char like[96];
	memset(a, 0, sizeof(*a));
	snprintf(like, sizeof(like), "%s-%%", prefix);
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		return -1;
	}
	sqlite3_busy_timeout(h, 10000);
	const char *q1 = "SELECT count(*), count(DISTINCT rtrim(CAST(payload AS TEXT), '.')), "
	                 "count(DISTINCT id) FROM " SINK_TABLE " WHERE CAST(payload AS TEXT) LIKE ?1";
	if (sqlite3_prepare_v2(h, q1, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, like, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			a->rows = sqlite3_column_int64(st, 0);
			a->distinct = sqlite3_column_int64(st, 1);
			a->ids = sqlite3_column_int64(st, 2);
		}
	}
	sqlite3_finalize(st);
	const char *q2 = "SELECT committed_at / 1000, count(DISTINCT committed_at), count(*) FROM "
	                 SINK_TABLE " WHERE CAST(payload AS TEXT) LIKE ?1 GROUP BY 1 ORDER BY 1";
	long seconds = 0, commits = 0;
	if (sqlite3_prepare_v2(h, q2, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, like, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW && a->n < MAX_SAMPLES) {
			a->t[a->n] = (double)(sqlite3_column_int64(st, 0) * 1000 - start_ms) / 1000.0 + 1;
			a->commits[a->n] = (double)sqlite3_column_int64(st, 1);
			a->rows_s[a->n] = (double)sqlite3_column_int64(st, 2);
			commits += sqlite3_column_int64(st, 1);
			seconds++;
			a->n++;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	a->commits_per_s = seconds ? (double)commits / (double)seconds : 0;
	return 0;
}

/* ---- the report ---- */

static void
table_row(FILE *f, const char *what, const char *a, const char *b)
{
	fprintf(f, "  %-28s %18s %18s\n", what, a, b);
}

static void
print_comparison(FILE *f, const load_result *d, const load_result *s, double direct_commits,
                 double sluice_commits)
{
	char a[64], b[64];
	fprintf(f, "\n  %-28s %18s %18s\n", "", "direct to the DB", "through Sluice");
#define ROW(label, fmt, x, y)                                                  \
	do {                                                                       \
		snprintf(a, sizeof(a), fmt, x);                                        \
		snprintf(b, sizeof(b), fmt, y);                                        \
		table_row(f, label, a, b);                                             \
	} while (0)
	ROW("requests", "%llu", (unsigned long long)d->total.requests,
	    (unsigned long long)s->total.requests);
	ROW("requests/s (ok)", "%.0f", d->total.ok_rps, s->total.ok_rps);
	ROW("p95 latency (ms)", "%.1f", d->total.latency.p95_ms, s->total.latency.p95_ms);
	ROW("p99 latency (ms)", "%.1f", d->total.latency.p99_ms, s->total.latency.p99_ms);
	ROW("max latency (ms)", "%.0f", d->total.latency.max_ms, s->total.latency.max_ms);
	ROW("failed requests", "%llu", (unsigned long long)d->total.failed,
	    (unsigned long long)s->total.failed);
	ROW("failure rate", "%.2f%%", d->total.error_rate * 100, s->total.error_rate * 100);
	ROW("database commits/s", "%.0f", direct_commits, sluice_commits);
#undef ROW
	fputc('\n', f);
}

static void
html_table(jbuf *h, const load_result *d, const load_result *s, double dc, double sc)
{
	jbuf_printf(h, "<table><tr><th></th><th>direct to the database</th><th>through Sluice</th></tr>");
	jbuf_printf(h, "<tr><td>requests</td><td>%llu</td><td>%llu</td></tr>",
	            (unsigned long long)d->total.requests, (unsigned long long)s->total.requests);
	jbuf_printf(h, "<tr><td>requests/s (ok)</td><td>%.0f</td><td>%.0f</td></tr>", d->total.ok_rps,
	            s->total.ok_rps);
	jbuf_printf(h, "<tr><td>p95 latency</td><td>%.1f ms</td><td>%.1f ms</td></tr>",
	            d->total.latency.p95_ms, s->total.latency.p95_ms);
	jbuf_printf(h, "<tr><td>p99 latency</td><td>%.1f ms</td><td>%.1f ms</td></tr>",
	            d->total.latency.p99_ms, s->total.latency.p99_ms);
	jbuf_printf(h, "<tr><td>max latency</td><td>%.0f ms</td><td>%.0f ms</td></tr>",
	            d->total.latency.max_ms, s->total.latency.max_ms);
	jbuf_printf(h, "<tr><td>failed requests</td><td class=\"%s\">%llu (%.2f%%)</td>"
	               "<td class=\"%s\">%llu (%.2f%%)</td></tr>",
	            d->total.failed ? "bad" : "good", (unsigned long long)d->total.failed,
	            d->total.error_rate * 100, s->total.failed ? "bad" : "good",
	            (unsigned long long)s->total.failed, s->total.error_rate * 100);
	jbuf_printf(h, "<tr><td>database commits/s</td><td>%.0f</td><td>%.0f</td></tr></table>", dc, sc);
}

/* Series of a load timeline: ok/s, p99 and failures per second. */
typedef struct tl {
	double t[MAX_SAMPLES], ok[MAX_SAMPLES], p99[MAX_SAMPLES], err[MAX_SAMPLES];
	size_t n;
} tl;

static void
timeline_of(const load_result *r, tl *out)
{
	out->n = 0;
	for (size_t i = 0; i < r->nseconds && out->n < MAX_SAMPLES; i++) {
		const load_second *s = &r->timeline[i];
		uint64_t failed = s->requests - s->ok;
		out->t[out->n] = s->t;
		out->ok[out->n] = (double)s->ok;
		out->p99[out->n] = s->p99_ms > 0 ? s->p99_ms : 0.1;
		out->err[out->n] = s->requests ? 100.0 * (double)failed / (double)s->requests : 0;
		out->n++;
	}
}

static int
write_report(const char *path, const char *dir, const char *stages, const load_result *d,
             const load_result *s, const monitor *m, const audit *da, const audit *sa,
             double dc, double sc, bool exact)
{
	static tl td, ts;
	timeline_of(d, &td);
	timeline_of(s, &ts);
	jbuf h;
	jbuf_init(&h);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	time_t now = time(NULL);
	char when[64];
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));

	jbuf_printf(&h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
	                "<title>Sluice demo report</title><style>"
	                "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
	                "h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em}"
	                "table{border-collapse:collapse;margin:1em 0}"
	                "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
	                "td:first-child{text-align:left}.good{color:#2a7d2a}.bad{color:#c0392b}"
	                ".charts{display:flex;flex-wrap:wrap;gap:10px}.note{color:#555;font-size:.9em}"
	                "</style></head><body>");
	jbuf_printf(&h, "<h1>Sluice: the same burst, with and without a buffer</h1>");
	jbuf_printf(&h, "<p>The same ramp of virtual users (stages <code>");
	jbuf_html(&h, stages);
	jbuf_printf(&h, "</code>), each sending one write and waiting for its answer, ran twice "
	                "against one %s application database: first straight at the database "
	                "through a pool of 50 connections (as two app servers sharing one database "
	                "do), then through Sluice, which acknowledges each write once it is durable "
	                "in its own log and lets a pool of workers write to the database in batches. "
	                "Run on %s, %ld cores, %s.</p>", app_db, host, cores, when);
	html_table(&h, d, s, dc, sc);
	jbuf_printf(&h, "<p class=\"%s\">Audit: %ld messages acknowledged through Sluice; the "
	                "application database holds %ld rows of this run, %ld distinct messages, "
	                "%ld distinct ids: %s.</p>",
	            exact ? "good" : "bad", (long)s->total.messages, sa->rows, sa->distinct, sa->ids,
	            exact ? "every acknowledged message exactly once" : "NOT exactly once");

	const char *red = "#c0392b", *blue = "#1f77b4", *green = "#2a7d2a", *grey = "#7f7f7f";
	cli_series thr[2] = {
		{"direct", red, td.t, td.ok, td.n, false, false},
		{"through Sluice", blue, ts.t, ts.ok, ts.n, false, false},
	};
	cli_series lat[2] = {
		{"direct", red, td.t, td.p99, td.n, false, false},
		{"through Sluice", blue, ts.t, ts.p99, ts.n, false, false},
	};
	cli_series err[2] = {
		{"direct", red, td.t, td.err, td.n, false, false},
		{"through Sluice", blue, ts.t, ts.err, ts.n, false, false},
	};
	jbuf_printf(&h, "<h2>Both runs</h2><div class=\"charts\">");
	cli_chart c1 = {"Acknowledged requests per second", "requests/s", "seconds", thr, 2, NULL, 0, 0, 0, false};
	cli_chart_svg(&h, &c1, 480, 260);
	cli_chart c2 = {"p99 latency per second (log scale)", "ms", "seconds", lat, 2, NULL, 0, 0, 0, true};
	cli_chart_svg(&h, &c2, 480, 260);
	double emax = 1; /* at least 1%, so a few failures still show */
	for (size_t i = 0; i < td.n; i++)
		emax = td.err[i] > emax ? td.err[i] : emax;
	for (size_t i = 0; i < ts.n; i++)
		emax = ts.err[i] > emax ? ts.err[i] : emax;
	cli_chart c3 = {"Failed requests per second", "% of requests", "seconds", err, 2, NULL, 0, 0,
	                emax, false};
	cli_chart_svg(&h, &c3, 480, 260);
	jbuf_printf(&h, "</div>");

	/* the Sluice phase from the inside */
	static double mt[MAX_SAMPLES], mb[MAX_SAMPLES], mw[MAX_SAMPLES], mr[MAX_SAMPLES];
	size_t n = m->ns < MAX_SAMPLES ? m->ns : MAX_SAMPLES;
	for (size_t i = 0; i < n; i++) {
		mt[i] = m->s[i].t;
		mb[i] = m->s[i].backlog;
		mw[i] = m->s[i].workers;
		mr[i] = m->s[i].acked_rate;
	}
	static cli_mark marks[MAX_EVENTS];
	static char labels[MAX_EVENTS][24];
	for (size_t i = 0; i < m->nev; i++) {
		snprintf(labels[i], sizeof(labels[i]), "%d\xe2\x86\x92%d", m->ev[i].from, m->ev[i].to);
		marks[i] = (cli_mark){m->ev[i].t, labels[i]};
	}
	cli_series back[1] = {{"backlog (ready + in flight)", blue, mt, mb, n, false, false}};
	cli_series work[1] = {{"workers", green, mt, mw, n, true, false}};
	cli_series sink[2] = {
		{"rows committed/s", green, mr, mr, 0, false, false},
		{"database commits/s", grey, sa->t, sa->commits, sa->n, false, false},
	};
	sink[0].x = sa->t;
	sink[0].y = sa->rows_s;
	sink[0].n = sa->n;
	jbuf_printf(&h, "<h2>Inside the Sluice run: backlog, workers and the database, with scale "
	                "events</h2><div class=\"charts\">");
	cli_chart c4 = {"Queue backlog", "messages", "seconds", back, 1, marks, m->nev, 0, 0, false};
	cli_chart_svg(&h, &c4, 480, 260);
	cli_chart c5 = {"Workers (scale events marked)", "workers", "seconds", work, 1, marks, m->nev, 0,
	                0, false};
	cli_chart_svg(&h, &c5, 480, 260);
	cli_chart c6 = {"Application database: rows and commits per second", "per second", "seconds",
	                sink, 2, marks, m->nev, 0, 0, true};
	cli_chart_svg(&h, &c6, 480, 260);
	jbuf_printf(&h, "</div><p class=\"note\">Direct run: %.0f database commits/s, one per request. "
	                "Through Sluice: %.0f commits/s, each of a batch of rows. Logs, configuration and "
	                "both databases are in <code>", dc, sc);
	jbuf_html(&h, dir);
	jbuf_printf(&h, "</code>.</p>");
	(void)da;
	jbuf_printf(&h, "</body></html>\n");
	int rc = -1;
	FILE *f = fopen(path, "w");
	if (f != NULL && !h.oom) {
		rc = fwrite(h.p, 1, h.len, f) == h.len ? 0 : -1;
		if (fclose(f) != 0)
			rc = -1;
	} else if (f != NULL) {
		fclose(f);
	}
	jbuf_fini(&h);
	return rc;
}

/* ---- PostgreSQL (--db postgres) ---- */

/* A private cluster the demo makes and removes. */
typedef struct pgpriv {
	char dir[PATH_MAX + 8];   /* data/, the socket and server.log */
	char bin[PATH_MAX];       /* where initdb and pg_ctl are */
	char dsn[PATH_MAX + 64];
	char log[PATH_MAX + 32];  /* initdb's and pg_ctl's output */
	bool started;
} pgpriv;

/* The newest /usr/lib/postgresql/VERSION/bin holding initdb and pg_ctl. */
static bool
pg_find_bin(char *out, size_t len)
{
	glob_t g;
	int best = -1;
	if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, NULL, &g) != 0)
		return false;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		int v = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
		char initdb[PATH_MAX];
		snprintf(initdb, sizeof(initdb), "%.*s/initdb",
		         (int)(strrchr(g.gl_pathv[i], '/') - g.gl_pathv[i]), g.gl_pathv[i]);
		if (v > best && access(initdb, X_OK) == 0) {
			best = v;
			snprintf(out, len, "%s", initdb);
			*strrchr(out, '/') = '\0';
		}
	}
	globfree(&g);
	return best >= 0;
}

/* Runs prog (from p->bin) with args, as the postgres user when we are
 * root; waits. Returns its exit status, or -1. */
static int
pg_run(pgpriv *p, const char *prog, const char *const *args)
{
	char path[PATH_MAX + 16];
	char *argv[24];
	int n = 0, st;
	snprintf(path, sizeof(path), "%s/%s", p->bin, prog);
	const char *runner = path;
	if (geteuid() == 0) {
		runner = access("/usr/sbin/runuser", X_OK) == 0 ? "/usr/sbin/runuser" : "/sbin/runuser";
		argv[n++] = "runuser";
		argv[n++] = "-u";
		argv[n++] = "postgres";
		argv[n++] = "--";
	}
	argv[n++] = path;
	for (size_t i = 0; args[i] != NULL && n < 23; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	pid_t pid = spawn(runner, argv, p->log);
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Can the postgres user get into path (every directory above it
 * searchable by others)? */
static bool
pg_reachable(const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *slash = strrchr(p, '/'); slash != NULL && slash != p; slash = strrchr(p, '/')) {
		*slash = '\0';
		struct stat st;
		if (stat(p, &st) != 0 || (st.st_mode & S_IXOTH) == 0)
			return false;
	}
	return true;
}

static void
remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char sub[PATH_MAX + 256];
			struct stat st;
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(sub);
			else
				unlink(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

/* Makes and starts a cluster in dir/pg (or, where the postgres user cannot
 * reach dir or its path is too long for a socket, in a new directory under
 * /tmp). Fills p->dsn. */
static int
pg_private_start(pgpriv *p, const char *dir, char *err, size_t errlen)
{
	struct passwd *pw = NULL;
	bool root = geteuid() == 0;

	if (!pg_find_bin(p->bin, sizeof(p->bin))) {
		snprintf(err, errlen, "PostgreSQL's initdb and pg_ctl not found in /usr/lib/postgresql: "
		         "install the postgresql package, or give --dsn");
		return -1;
	}
	if (root && (pw = getpwnam("postgres")) == NULL) {
		snprintf(err, errlen, "no postgres user to run the cluster as: give --dsn");
		return -1;
	}
	snprintf(p->log, sizeof(p->log), "%s/postgres.log", dir);
	snprintf(p->dir, sizeof(p->dir), "%s/pg", dir);
	bool plain = strlen(p->dir) <= PG_DIR_MAX && strpbrk(p->dir, " '\"\\") == NULL;
	if (!plain || (root && !pg_reachable(p->dir)) || mkdir(p->dir, 0700) != 0) {
		snprintf(p->dir, sizeof(p->dir), "/tmp/sluice-demo-pg-XXXXXX");
		if (mkdtemp(p->dir) == NULL) {
			snprintf(err, errlen, "cannot create %.400s: %s", p->dir, strerror(errno));
			return -1;
		}
	}
	if (root && chown(p->dir, pw->pw_uid, pw->pw_gid) != 0) {
		snprintf(err, errlen, "cannot give %.400s to postgres: %s", p->dir, strerror(errno));
		return -1;
	}
	char data[PATH_MAX + 16], opts[PATH_MAX + 64], slog[PATH_MAX + 24];
	snprintf(data, sizeof(data), "%s/data", p->dir);
	snprintf(opts, sizeof(opts), "-c listen_addresses='' -k %s", p->dir);
	snprintf(slog, sizeof(slog), "%s/server.log", p->dir);
	const char *initdb[] = {"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
	                        "--no-instructions", NULL};
	if (pg_run(p, "initdb", initdb) != 0) {
		snprintf(err, errlen, "initdb failed; see %.400s", p->log);
		return -1;
	}
	const char *start[] = {"-D", data, "-o", opts, "-l", slog, "-w", "-t", "60", "start", NULL};
	p->started = true; /* pg_ctl may fail after the server is up: stop it anyway */
	if (pg_run(p, "pg_ctl", start) != 0) {
		snprintf(err, errlen, "the PostgreSQL server did not start; see %.400s", slog);
		return -1;
	}
	snprintf(p->dsn, sizeof(p->dsn), "host=%s user=postgres dbname=postgres", p->dir);
	return 0;
}

/* Stops the private cluster and removes it. */
static void
pg_private_stop(pgpriv *p)
{
	char data[PATH_MAX + 16];
	if (p->dir[0] == '\0')
		return;
	snprintf(data, sizeof(data), "%s/data", p->dir);
	const char *stop_args[] = {"-D", data, "-m", "fast", "-w", "stop", NULL};
	if (p->started)
		pg_run(p, "pg_ctl", stop_args);
	remove_tree(p->dir);
	p->started = false;
	p->dir[0] = '\0';
}

/* audit_sink for PostgreSQL: the same figures from the same table layout
 * (committed_at is the transaction's now(), one value per commit). */
static int
audit_pg(const char *dsn, const char *prefix, int64_t start_ms, audit *a)
{
	const char *kw[] = {"dbname", "fallback_application_name", NULL};
	const char *val[] = {dsn, "sluice-demo", NULL};
	char like[96];
	const char *params[1] = {like};
	memset(a, 0, sizeof(*a));
	snprintf(like, sizeof(like), "%s-%%", prefix);
	PGconn *c = PQconnectdbParams(kw, val, 1);
	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return -1;
	}
	PGresult *r = PQexecParams(c, "SELECT count(*), count(DISTINCT rtrim(convert_from(payload, "
	                           "'UTF8'), '.')), count(DISTINCT id) FROM " SINK_TABLE " WHERE "
	                           "convert_from(payload, 'UTF8') LIKE $1", 1, NULL, params, NULL,
	                           NULL, 0);
	int rc = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		a->rows = atol(PQgetvalue(r, 0, 0));
		a->distinct = atol(PQgetvalue(r, 0, 1));
		a->ids = atol(PQgetvalue(r, 0, 2));
		rc = 0;
	}
	PQclear(r);
	r = PQexecParams(c, "SELECT floor(extract(epoch FROM committed_at))::bigint, "
	                 "count(DISTINCT committed_at), count(*) FROM " SINK_TABLE " WHERE "
	                 "convert_from(payload, 'UTF8') LIKE $1 GROUP BY 1 ORDER BY 1", 1, NULL,
	                 params, NULL, NULL, 0);
	long seconds = 0, commits = 0;
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r) && a->n < MAX_SAMPLES;
	     i++) {
		a->t[a->n] = (double)(atoll(PQgetvalue(r, i, 0)) * 1000 - start_ms) / 1000.0 + 1;
		a->commits[a->n] = atof(PQgetvalue(r, i, 1));
		a->rows_s[a->n] = atof(PQgetvalue(r, i, 2));
		commits += atol(PQgetvalue(r, i, 1));
		seconds++;
		a->n++;
	}
	PQclear(r);
	PQfinish(c);
	a->commits_per_s = seconds ? (double)commits / (double)seconds : 0;
	return rc;
}

/* ---- the run ---- */

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int
write_config(const char *path, const char *dir, int nng_port, int http_port, bool quick,
             const char *dsn)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fprintf(f,
	        "# Written by `sluice demo`: the built-in defaults, with every port free\n"
	        "# and every file in this directory; only the scaling is made quicker.\n"
	        "broker:\n"
	        "  listen: [tcp://127.0.0.1:%d]\n"
	        "  http: 127.0.0.1:%d\n"
	        "  data: %s/broker.db\n"
	        "worker:\n"
	        "  broker: tcp://127.0.0.1:%d\n"
	        "  sink:\n"
	        "    path: %s/app.db\n"
	        "    table: " SINK_TABLE "\n"
	        "%s%s%s"
	        "supervisor:\n"
	        "  broker: tcp://127.0.0.1:%d\n"
	        "  max_replicas: 4\n"
	        "  target_per_worker: 1000\n"
	        "  downscale_stabilization: %s\n"
	        "  cooldown_period: %s\n"
	        "  state_file: %s/supervisor-state.yaml\n",
	        nng_port, http_port, dir, nng_port, dir, dsn ? "    type: postgres\n    dsn: \"" : "",
	        dsn ? dsn : "", dsn ? "\"\n" : "", nng_port, quick ? "3s" : "10s", quick ? "3s" : "10s",
	        dir);
	return fclose(f);
}

/* Waits until the queue is drained and the pool has shrunk after growing. */
static void
wait_settled(monitor *m, const char *broker, int64_t timeout_ms)
{
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 2000};
	if (sluice_open(&c, broker, &o) != 0)
		return;
	int64_t end = clk_mono_ms() + timeout_ms;
	while (clk_mono_ms() < end && !interrupted) {
		int64_t backlog = -1;
		sluice_stats *s;
		if (sluice_stats_get(c, DEMO_QUEUE, &s) == 0) {
			const sluice_queue_stats *q = sluice_stats_queue(s, DEMO_QUEUE);
			backlog = q ? sluice_stat_value(q->fields, q->nfields, "backlog", 0) +
			                  sluice_stat_value(q->fields, q->nfields, "delayed", 0)
			            : 0;
			sluice_stats_free(s);
		}
		pthread_mutex_lock(&m->mu);
		bool down = m->scaled_down || m->max_workers == 0;
		pthread_mutex_unlock(&m->mu);
		if (backlog == 0 && down)
			break;
		clk_sleep_ms(250);
	}
	sluice_close(c);
}

int
cli_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{"quick", no_argument, NULL, 'Q'},
		{"dir", required_argument, NULL, 'D'},
		{"stages", required_argument, NULL, 'S'},
		{"keep", no_argument, NULL, 'K'},
		{"db", required_argument, NULL, 'B'},
		{"dsn", required_argument, NULL, 'N'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool quick = false, keep = false, pg = false;
	const char *dir_opt = NULL, *stages_text = NULL, *dsn = NULL;
	static pgpriv pgp;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'Q': quick = true; break;
		case 'D': dir_opt = optarg; break;
		case 'S': stages_text = optarg; break;
		case 'K': keep = true; break;
		case 'B':
			if (strcmp(optarg, "postgres") != 0 && strcmp(optarg, "sqlite") != 0) {
				cli_error("demo", "bad --db '%s' (sqlite or postgres)", optarg);
				return 2;
			}
			pg = strcmp(optarg, "postgres") == 0;
			break;
		case 'N': dsn = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		cli_error("demo", "unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (dsn != NULL && !pg) {
		cli_error("demo", "--dsn goes with --db postgres");
		return 2;
	}
	if (pg)
		app_db = "PostgreSQL";
	if (stages_text == NULL)
		stages_text = quick ? "2s:50,5s:400,1s:0" : "5s:100,50s:2000,10s:2000,5s:0";
	load_stage *stages;
	size_t nstages;
	char err[512];
	if (cli_load_stages_parse(stages_text, &stages, &nstages, err, sizeof(err)) != 0) {
		cli_error("demo", "bad --stages: %s", err);
		return 2;
	}

	/* a fresh state directory */
	char dir[PATH_MAX], path[PATH_MAX + 64], bins[PATH_MAX];
	time_t now = time(NULL);
	if (dir_opt != NULL) {
		snprintf(dir, sizeof(dir), "%s", dir_opt);
	} else {
		char stamp[32];
		strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", localtime(&now));
		mkdir("sluice-demo", 0755);
		snprintf(dir, sizeof(dir), "sluice-demo/%s", stamp);
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		cli_error("demo", "cannot create %s: %s", dir, strerror(errno));
		free(stages);
		return 1;
	}
	char abs[PATH_MAX];
	if (realpath(dir, abs) != NULL)
		snprintf(dir, sizeof(dir), "%s", abs);
	snprintf(path, sizeof(path), "%s/app.db", dir);
	struct stat sb;
	if (stat(path, &sb) == 0) {
		cli_error("demo", "%s already holds a run; give a new --dir", dir);
		free(stages);
		return 1;
	}
	int nng_port = port_free_loopback(), http_port = port_free_loopback();
	char config[PATH_MAX + 64], broker_url[64], prefix[48];
	snprintf(config, sizeof(config), "%s/sluice.yaml", dir);
	snprintf(broker_url, sizeof(broker_url), "tcp://127.0.0.1:%d", nng_port);
	snprintf(prefix, sizeof(prefix), "demo%ld", (long)now);
	if (pg && dsn == NULL) {
		if (pg_private_start(&pgp, dir, err, sizeof(err)) != 0) {
			cli_error("demo", "cannot make a PostgreSQL cluster: %s", err);
			pg_private_stop(&pgp);
			free(stages);
			return 1;
		}
		dsn = pgp.dsn;
	}
	if (nng_port < 0 || http_port < 0) {
		cli_error("demo", "no free TCP port on 127.0.0.1 for the broker");
		pg_private_stop(&pgp);
		free(stages);
		return 1;
	}
	if (write_config(config, dir, nng_port, http_port, quick, pg ? dsn : NULL) != 0) {
		cli_error("demo", "cannot write %s", config);
		pg_private_stop(&pgp);
		free(stages);
		return 1;
	}
	/* what the audit reads and the messages name */
	const char *where = pg ? "the PostgreSQL database" : path;
	bin_dir(bins, sizeof(bins));
	bool tty = isatty(STDERR_FILENO);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	setvbuf(stdout, NULL, _IOLBF, 0); /* interleave with the live lines on stderr */
	printf("Sluice demo: %s\n\n", quick ? "quick run" : "about three minutes");
	printf("State directory: %s\n", dir);
	if (pgp.started)
		printf("Application database: a private PostgreSQL cluster in %s (%s), removed at the "
		       "end\n", pgp.dir, dsn);
	else if (pg)
		printf("Application database: PostgreSQL at the --dsn given\n");

	proc broker = {-1, "sluice-broker"}, sup = {-1, "sluice-supervisor"};
	int status = 1;
	load_result dres = {0}, sres = {0};
	monitor *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		pg_private_stop(&pgp);
		free(stages);
		return 1;
	}
	pthread_mutex_init(&m->mu, NULL);
	m->tty = tty;

	char prog[PATH_MAX + 32], log[PATH_MAX + 32], suplog[PATH_MAX + 32];
	snprintf(prog, sizeof(prog), "%s/sluice-broker", bins);
	snprintf(log, sizeof(log), "%s/broker.log", dir);
	char *bargv[] = {prog, "-c", config, NULL};
	if ((broker.pid = spawn(prog, bargv, log)) < 0)
		goto out;
	sluice_client *c;
	sluice_opts co = {.timeout_ms = 500};
	if (sluice_open(&c, broker_url, &co) != 0)
		goto out;
	int64_t end = clk_mono_ms() + 15000;
	while (sluice_ping(c, NULL) != 0 && clk_mono_ms() < end && waitpid(broker.pid, NULL, WNOHANG) == 0)
		clk_sleep_ms(50);
	bool up = sluice_ping(c, NULL) == 0;
	sluice_close(c);
	if (!up) {
		cli_error("demo", "the broker did not start; see %s", log);
		goto out;
	}
	printf("Started sluice-broker (pid %ld) on %s, HTTP on 127.0.0.1:%d\n", (long)broker.pid,
	       broker_url, http_port);
	char sprog[PATH_MAX + 32];
	snprintf(sprog, sizeof(sprog), "%s/sluice-supervisor", bins);
	snprintf(suplog, sizeof(suplog), "%s/supervisor.log", dir);
	char *sargv[] = {sprog, "-c", config, NULL};
	if ((sup.pid = spawn(sprog, sargv, suplog)) < 0)
		goto out;
	printf("Started sluice-supervisor (pid %ld): 0-4 workers, one per 1000 messages of backlog\n\n",
	       (long)sup.pid);

	load_opts lo = {
		.stages = stages,
		.nstages = nstages,
		.timeout_ms = quick ? 5000 : 30000,
		.queue = DEMO_QUEUE,
		.batch = 1,
		.size = 200,
		.prefix = prefix,
		.broker = broker_url,
		.db = pg ? "postgres" : path,
		.dsn = pg ? dsn : NULL,
		.table = DIRECT_TABLE,
		.pool = 50,
		.busy_timeout_ms = quick ? 2000 : 5000,
		.cancel = &interrupted,
	};

	/* phase 1: straight at the database */
	printf("1. Straight at the database: %s VUs, one row per transaction plus a read,\n"
	       "   through a pool of 50 connections (requests wait up to %llds for one).\n",
	       stages_text, (long long)lo.timeout_ms / 1000);
	lo.target = LOAD_TARGET_DIRECT;
	lo.progress = direct_progress;
	lo.progress_arg = &tty;
	if (cli_load_run(&lo, &dres) != LOAD_OK) {
		cli_error("demo", "direct run: %s", dres.error);
		goto out;
	}
	if (tty)
		fputc('\n', stderr);
	printf("   %llu requests, %.0f ok/s, p99 %.0f ms, %llu failed (%.1f%%)\n\n",
	       (unsigned long long)dres.total.requests, dres.total.ok_rps, dres.total.latency.p99_ms,
	       (unsigned long long)dres.total.failed, dres.total.error_rate * 100);
	if (interrupted)
		goto out;

	/* phase 2: through Sluice */
	printf("2. Through Sluice: the same ramp, each request an enqueue acknowledged once\n"
	       "   durable; the workers write to the database in batches.\n");
	m->broker = broker_url;
	m->sup_log = suplog;
	m->start_ms = clk_wall_ms();
	struct stat ls;
	m->sup_offset = stat(suplog, &ls) == 0 ? (long)ls.st_size : 0;
	pthread_create(&m->thread, NULL, monitor_main, m);
	lo.target = LOAD_TARGET_SLUICE;
	lo.progress = sluice_progress;
	lo.progress_arg = m;
	int rc = cli_load_run(&lo, &sres);
	if (rc == LOAD_OK && !interrupted) {
		printf("%s   load done: %llu requests, %.0f ok/s, p99 %.1f ms, %llu failed; waiting for "
		       "the queue to drain and the workers to scale down...\n", tty ? "\n" : "",
		       (unsigned long long)sres.total.requests, sres.total.ok_rps,
		       sres.total.latency.p99_ms, (unsigned long long)sres.total.failed);
		wait_settled(m, broker_url, quick ? 20000 : 120000);
	}
	m->stop = 1;
	pthread_join(m->thread, NULL);
	if (rc != LOAD_OK) {
		cli_error("demo", "Sluice run: %s", sres.error);
		goto out;
	}
	if (interrupted)
		goto out;

	/* audit and report */
	audit *da = calloc(1, sizeof(*da)), *sau = calloc(1, sizeof(*sau));
	if (da == NULL || sau == NULL ||
	    (pg ? audit_pg(dsn, prefix, m->start_ms, sau) : audit_sink(path, prefix, m->start_ms, sau)) != 0) {
		cli_error("demo", "cannot read %s", where);
		free(da);
		free(sau);
		goto out;
	}
	double direct_commits = dres.total.ok_rps;
	bool exact = sau->rows == (long)sres.total.messages && sau->distinct == sau->rows &&
	             sau->ids == sau->rows;
	printf("\nAudit: %llu messages acknowledged through Sluice; %s holds %ld rows of this run,\n"
	       "%ld distinct messages, %ld distinct ids: %s.\n",
	       (unsigned long long)sres.total.messages, where, sau->rows, sau->distinct, sau->ids,
	       exact ? "every acknowledged message exactly once" : "NOT EXACTLY ONCE");
	pthread_mutex_lock(&m->mu);
	int max_workers = m->max_workers;
	bool scaled_down = m->scaled_down;
	pthread_mutex_unlock(&m->mu);
	printf("Workers: scaled up to %d and %s.\n", max_workers,
	       scaled_down ? "back down once the queue drained" : "not yet back down");
	print_comparison(stdout, &dres, &sres, direct_commits, sau->commits_per_s);
	char report[PATH_MAX + 32];
	snprintf(report, sizeof(report), "%s/report.html", dir);
	if (write_report(report, dir, stages_text, &dres, &sres, m, da, sau, direct_commits,
	                 sau->commits_per_s, exact) != 0)
		cli_error("demo", "cannot write %s", report);
	else
		printf("Report: %s\n", report);
	free(da);
	free(sau);
	status = exact && sres.total.failed == 0 ? 0 : 1;
	if (sres.total.failed != 0)
		cli_error("demo", "%llu requests failed through Sluice (first: %s)",
		          (unsigned long long)sres.total.failed,
		          sres.first_error[LOAD_KIND_BUSY][0] ? sres.first_error[LOAD_KIND_BUSY]
		                                              : sres.first_error[LOAD_KIND_TIMEOUT]);

out:
	if (!keep) {
		stop(&sup, 35000);
		stop(&broker, 10000);
		pg_private_stop(&pgp);
	}
	printf("\nEverything is in %s:\n"
	       "%s"
	       "  broker.db          the broker's queues\n"
	       "  sluice.yaml        the configuration used; *.log the programs' logs\n"
	       "Run the parts by hand:\n"
	       "  %s/sluice-broker -c %s &\n"
	       "  %s/sluice-supervisor -c %s &\n"
	       "  %s/sluice -c %s load --stages 5s:100,20s:1000,5s:0\n"
	       "  %s/sluice -c %s stats --watch\n",
	       dir,
	       pg ? "" : "  app.db             the application database (tables " SINK_TABLE " and "
	                 DIRECT_TABLE ")\n",
	       bins, config, bins, config, bins, config, bins, config);
	if (pg)
		printf("The application database was PostgreSQL (tables " SINK_TABLE " and " DIRECT_TABLE
		       ")%s\n", pgp.started ? ": a private cluster, still running (--keep)"
		                 : dsn == pgp.dsn ? ": a private cluster, now removed" : "");
	if (pgp.started)
		printf("Stop it: %s%s/pg_ctl -D %s/data stop; then remove %s\n",
		       geteuid() == 0 ? "runuser -u postgres -- " : "", pgp.bin, pgp.dir, pgp.dir);
	if (keep && broker.pid > 0)
		printf("Still running (--keep): sluice-broker pid %ld, sluice-supervisor pid %ld\n",
		       (long)broker.pid, (long)sup.pid);
	cli_load_result_fini(&dres);
	cli_load_result_fini(&sres);
	pthread_mutex_destroy(&m->mu);
	free(m);
	free(stages);
	return interrupted ? 130 : status;
}

/* worker_test: the real sluice-worker against the real broker. Every
 * message must end in the sink exactly once with 1, 4 and 8 workers, while
 * workers are killed with SIGKILL, and across a graceful SIGTERM; a locked
 * sink database trips the breaker without dead-lettering anything; exec
 * jobs that fail or hang are retried, then dead-lettered; bad sinks and
 * bad configurations stop the worker at start with the documented codes. */
#include "fixture.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define Q "default"
#define MAX_WORKERS 8

/* ---- helpers ------------------------------------------------------------- */

/* Every "prefix-i", i in [0, n), is in the sink exactly once, and nothing else. */
static void
audit(const char *prefix, long n)
{
	long missing, duplicated, rows, distinct;
	fx_sink_audit(fx.sink, "events", prefix, 0, n, &missing, &duplicated);
	fx_sink_count(fx.sink, "events", &rows, &distinct);
	if (missing != 0 || duplicated != 0 || rows != n || distinct != n)
		th_fail(__FILE__, __LINE__, "sink audit: %ld missing, %ld duplicated, %ld rows, %ld "
		        "distinct ids, want %ld", missing, duplicated, rows, distinct, n);
}

/* Stops a worker with SIGTERM and checks it exits 0. */
static void
stop_worker(pid_t pid)
{
	int st = th_stop(pid, SIGTERM, 40000);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		th_fail(__FILE__, __LINE__, "worker %ld did not exit 0 on SIGTERM (status %d)", (long)pid,
		        st);
}

static int
count_of(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void
drain_with(int nworkers)
{
	pid_t w[MAX_WORKERS];
	long n = th_scaled(100000);
	fx_config(&(fx_cfg){.worker = "visibility_timeout: 10s"});
	fx_broker("broker.log");
	for (int i = 0; i < nworkers; i++)
		w[i] = fx_worker(th_fmt("worker%d.log", i), NULL);
	fx_producers *ps = fx_produce(Q, "m", n, 0);
	CHECK_EQ(fx_produce_wait(ps), n);
	sluice_client *c = fx_client();
	CHECK(fx_drained(c, Q, 100000));
	audit("m", n);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK_EQ(fx_stat(c, Q, "acked_total"), n);
	/* the workers reported their sink with their acks */
	CHECK(fx_stat(c, Q, "sink_batches") > 0);
	CHECK(fx_stat(c, Q, "sink_commit_p99_us") > 0);
	CHECK(fx_stat(c, Q, "sink_workers") >= 1);
	for (int i = 0; i < nworkers; i++)
		stop_worker(w[i]);
	CHECK(th_wait_file(th_path("worker0.log"), "WORKER-START queue 'default', sink sqlite", 0));
	CHECK(th_wait_file(th_path("worker0.log"), "SUMMARY", 0));
}

/* ---- cases --------------------------------------------------------------- */

static void
exactly_once_one_worker(void)
{
	drain_with(1);
}

static void
exactly_once_four_workers(void)
{
	drain_with(4);
}

static void
exactly_once_eight_workers(void)
{
	drain_with(8);
}

/* Producers and four workers, one of them killed with SIGKILL every second
 * and started again: leases expire and are delivered again, the sink
 * absorbs the replays. */
static void
exactly_once_under_sigkill_chaos(void)
{
	enum { N = 4 };
	pid_t w[N];
	int gen[N] = {0};
	long n = th_scaled(100000);
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 50",
		.worker = "visibility_timeout: 3s",
	});
	fx_broker("broker.log");
	for (int i = 0; i < N; i++)
		w[i] = fx_worker(th_fmt("worker%d.%d.log", i, gen[i]), NULL);
	sluice_client *c = fx_client();
	fx_producers *ps = fx_produce(Q, "m", n, 10000);
	srand((unsigned)getpid());
	int64_t chaos_end = th_now_ms() + 10000, give_up = th_now_ms() + 90000;
	int kills = 0;
	/* chaos while the messages arrive (over 10 s), and until the backlog
	 * is nearly gone */
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
	CHECK(fx_drained(c, Q, 60000));
	audit("m", n);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK(fx_stat(c, Q, "expired_total") > 0); /* the kills did cost leases */
	for (int i = 0; i < N; i++)
		stop_worker(w[i]);
}

/* SIGTERM mid-stream: the worker finishes, acks and exits 0, holding
 * nothing (leases are long, so a leaked one would stall the drain). */
static void
sigterm_mid_stream_loses_nothing(void)
{
	long n = th_scaled(100000);
	fx_config(&(fx_cfg){.worker = "visibility_timeout: 120s\nbatch_size: 200"});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w0 = fx_worker("worker0.log", NULL);
	pid_t w1 = fx_worker("worker1.log", NULL);
	fx_producers *ps = fx_produce(Q, "m", n, 5000);
	int64_t end = th_now_ms() + 60000;
	while (fx_stat(c, Q, "acked_total") < n / 5 && th_now_ms() < end)
		usleep(20000);
	stop_worker(w0);
	CHECK(th_wait_file(th_path("worker0.log"), "SHUTDOWN SIGTERM", 0));
	CHECK(th_wait_file(th_path("worker0.log"), "WORKER-STOP", 0));
	while (fx_stat(c, Q, "acked_total") < n / 2 && th_now_ms() < end)
		usleep(20000);
	stop_worker(w1);
	/* both stopped mid-stream: nothing may be left leased */
	CHECK_EQ(fx_stat(c, Q, "in_flight"), 0);
	CHECK(fx_stat(c, Q, "acked_total") < n);
	CHECK_EQ(fx_produce_wait(ps), n);
	pid_t w2 = fx_worker("worker2.log", NULL);
	CHECK(fx_drained(c, Q, 60000));
	audit("m", n);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	stop_worker(w2);
}

/* Another connection holds the sink's write lock: the worker's commits
 * time out, the breaker opens once, the worker hands its batch back (no
 * attempt counted) and reports; released, it closes and drains. */
static void
locked_sink_trips_breaker(void)
{
	long n = th_scaled(20000);
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 2",
		.worker = "breaker:\n  base: 200ms\n  max: 1s",
		.sink = "busy_timeout: 200ms",
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	CHECK_EQ(fx_put(c, Q, "m", 0, 100, 100), 100);
	CHECK(fx_drained(c, Q, 20000));

	sqlite3 *db;
	CHECK(sqlite3_open(fx.sink, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
	CHECK_EQ(fx_put(c, Q, "m", 100, n - 100, 500), n - 100);
	CHECK(th_wait_file(th_path("worker.log"), "BREAKER-OPEN", 10000));
	/* while open it reports, with no acks to carry the report */
	int64_t end = th_now_ms() + 5000;
	while (fx_stat(c, Q, "sink_breaker_open") < 1 && th_now_ms() < end)
		usleep(50000);
	CHECK(fx_stat(c, Q, "sink_breaker_open") >= 1);
	CHECK(fx_stat(c, Q, "sink_failures") >= 1);
	usleep(3000000); /* several failed trials: more than max_attempts of them */
	CHECK(fx_stat(c, Q, "acked_total") == 100);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);

	CHECK(fx_drained(c, Q, 60000));
	audit("m", n);
	CHECK_EQ(fx_stat(c, Q, "dead"), 0);
	CHECK(th_wait_file(th_path("worker.log"), "BREAKER-CLOSED", 5000));
	stop_worker(w);
	char *log = th_read(th_path("worker.log"));
	CHECK_EQ(count_of(log, "BREAKER-OPEN "), 1);
	CHECK_CONTAINS(log, "database is locked");
	CHECK(count_of(log, "BREAKER-HALF-OPEN") >= 1);
}

/* An exec job that fails: retried with the queue's backoff, then
 * dead-lettered with the command's last stderr line; the rest of its
 * batches go through. */
static void
exec_failure_is_retried_then_dead_lettered(void)
{
	const char *done = th_path("done.txt");
	const char *job = th_write("job.sh", th_fmt(
		"p=$(cat)\n"
		"echo \"$SLUICE_QUEUE $SLUICE_MESSAGE_ID $SLUICE_ATTEMPT $p\" >> '%s'\n"
		"case \"$p\" in bad-*) echo 'some noise' >&2; echo \"cannot handle $p\" >&2; exit 3;; esac\n"
		"exit 0\n", done));
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 3\nretry:\n  base: 50ms\n  max: 200ms",
		.sink = th_fmt("type: exec\nconcurrency: 4\ncommand: [/bin/sh, %s]", job),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	CHECK_EQ(fx_put(c, Q, "good", 0, 40, 45), 40);
	CHECK_EQ(fx_put(c, Q, "bad", 0, 3, 3), 3);
	CHECK(fx_drained(c, Q, 60000));
	CHECK_EQ(fx_stat(c, Q, "dead"), 3);
	CHECK_EQ(fx_stat(c, Q, "acked_total"), 40);

	sluice_batch *b;
	CHECK(sluice_peek(c, Q ".dead", 10, &b) == 0);
	CHECK_EQ(b->count, 3);
	for (size_t i = 0; i < b->count; i++)
		CHECK(b->msgs[i].len >= 4 && memcmp(b->msgs[i].payload, "bad-", 4) == 0);
	sluice_batch_free(b);

	/* every good message ran once, every bad one max_attempts times */
	char *lines = th_read(done);
	CHECK(lines != NULL);
	CHECK_EQ(count_of(lines, " good-"), 40);
	CHECK_EQ(count_of(lines, " bad-"), 9);
	CHECK_CONTAINS(lines, "default ");
	CHECK_CONTAINS(lines, " 3 bad-2");
	/* the error stored with the message is the last stderr line */
	CHECK(th_wait_file(th_path("broker.log"), "cannot handle bad-1", 5000));
	CHECK(th_wait_file(th_path("broker.log"), "DEAD-LETTERED", 0));
	stop_worker(w);
}

/* A job that never ends is killed (with its process group) at sink.timeout. */
static void
exec_hang_is_killed_at_timeout(void)
{
	const char *pidfile = th_path("sleeper.pid");
	const char *job = th_write("job.sh", th_fmt(
		"p=$(cat)\n"
		"case \"$p\" in hang-*) sleep 600 & echo $! > '%s'; wait;; esac\n"
		"exit 0\n", pidfile));
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 2\nretry:\n  base: 50ms\n  max: 100ms",
		.sink = th_fmt("type: exec\ntimeout: 1s\ncommand: [/bin/sh, %s]", job),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	int64_t t0 = th_now_ms();
	CHECK_EQ(fx_put(c, Q, "hang", 0, 1, 1), 1);
	CHECK_EQ(fx_put(c, Q, "ok", 0, 5, 5), 5);
	CHECK(fx_drained(c, Q, 30000));
	int64_t took = th_now_ms() - t0;
	CHECK(took >= 2000 && took < 20000); /* two attempts of 1 s each */
	CHECK_EQ(fx_stat(c, Q, "dead"), 1);
	CHECK_EQ(fx_stat(c, Q, "acked_total"), 5);
	CHECK(th_wait_file(th_path("broker.log"), "timed out after 1s", 5000));
	/* the job's own child died with it */
	char *p = th_read(pidfile);
	CHECK(p != NULL);
	pid_t sleeper = (pid_t)atol(p);
	CHECK(sleeper > 0);
	int64_t end = th_now_ms() + 5000;
	while (kill(sleeper, 0) == 0 && th_now_ms() < end)
		usleep(20000);
	CHECK(kill(sleeper, 0) != 0);
	stop_worker(w);
}

/* A sink that cannot be opened stops the worker at start: exit 1, why. */
static void
bad_sink_exits_1(void)
{
	fx_config(NULL);
	CHECK(mkdir(fx.sink, 0700) == 0); /* a directory where the database should be */
	pid_t w = fx_worker("worker.log", NULL);
	int st = th_wait(w, 10000);
	CHECK(st != -1 && WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 1);
	char *log = th_read(th_path("worker.log"));
	CHECK_CONTAINS(log, th_fmt("sink: cannot open %s: unable to open database file", fx.sink));

	fx_config(&(fx_cfg){.sink = "table: \"drop table x\""});
	st = th_wait(fx_worker("worker2.log", NULL), 10000);
	CHECK(st != -1 && WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 1);
	CHECK_CONTAINS(th_read(th_path("worker2.log")), "sink.table 'drop table x' is not a valid");

	fx_config(&(fx_cfg){.sink = "type: exec\ncommand: [/nonexistent/job]"});
	st = th_wait(fx_worker("worker3.log", NULL), 10000);
	CHECK(st != -1 && WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 1);
	CHECK_CONTAINS(th_read(th_path("worker3.log")), "sink: cannot run /nonexistent/job");
}

/* A bad configuration or command line: exit 2 with the reason. */
static void
bad_config_exits_2(void)
{
	fx_config(&(fx_cfg){.worker = "batch_sise: 10"});
	int st = th_wait(fx_worker("worker.log", NULL), 10000);
	CHECK(st != -1 && WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 2);
	CHECK_CONTAINS(th_read(th_path("worker.log")), "worker.batch_sise");

	fx_config(NULL);
	const char *bogus[] = {"--bogus", NULL};
	st = th_wait(fx_worker("worker2.log", bogus), 10000);
	CHECK(st != -1 && WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 2);
	CHECK_CONTAINS(th_read(th_path("worker2.log")), "usage: sluice-worker");

	const char *help[] = {"--help", NULL};
	st = th_wait(fx_worker("worker3.log", help), 10000);
	CHECK(st != -1 && WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
	CHECK_CONTAINS(th_read(th_path("worker3.log")), "usage: sluice-worker");

	const char *badq[] = {"-q", "no/slashes", NULL};
	st = th_wait(fx_worker("worker4.log", badq), 10000);
	CHECK(st != -1 && WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 2);
}

/* -q and -b override the configuration; the worker starts before its
 * broker and keeps trying. */
static void
flags_override_and_broker_may_come_later(void)
{
	fx_config(&(fx_cfg){.worker = "queue: other"});
	/* the same configuration with a broker nobody listens on */
	const char *text = th_read(fx.config);
	const char *at = strstr(text, th_fmt("  broker: %s", fx.url));
	CHECK(at != NULL);
	const char *wrong = th_write("wrong.yaml", th_fmt("%.*s  broker: tcp://127.0.0.1:1%s",
	                                                   (int)(at - text), text,
	                                                   at + strlen(th_fmt("  broker: %s", fx.url))));
	const char *extra[] = {"-c", wrong, "-q", "jobs", "-b", fx.url, NULL};
	pid_t w = fx_worker("worker.log", extra);
	usleep(300000);
	CHECK(th_wait(w, 0) == -1); /* still running without a broker */
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	CHECK_EQ(fx_put(c, "jobs", "j", 0, 50, 50), 50);
	CHECK(fx_drained(c, "jobs", 30000));
	audit("j", 50);
	stop_worker(w);
	CHECK_CONTAINS(th_read(th_path("worker.log")), "WORKER-START queue 'jobs'");
}

/* SLUICE_STATUS_FD: 'I' at start, 'B' while holding leases, 'I' again. */
static void
status_fd_reports_busy_and_idle(void)
{
	int p[2];
	fx_config(NULL);
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	CHECK(pipe(p) == 0);
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	setenv("SLUICE_STATUS_FD", th_fmt("%d", p[1]), 1);
	pid_t w = fx_worker("worker.log", NULL);
	unsetenv("SLUICE_STATUS_FD");
	close(p[1]);
	CHECK_EQ(fx_put(c, Q, "m", 0, 20, 20), 20);
	CHECK(fx_drained(c, Q, 20000));
	stop_worker(w);
	char buf[4096];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(buf) && (r = read(p[0], buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)r;
	close(p[0]);
	CHECK(len >= 3);
	CHECK_EQ(buf[0], 'I');
	CHECK_EQ(buf[len - 1], 'I');
	CHECK(memchr(buf, 'B', len) != NULL);
	for (size_t i = 1; i < len; i++)
		CHECK(buf[i] != buf[i - 1]); /* only changes are written */
}

/* SLUICE_SUPERVISOR_PID: a worker whose supervisor is already gone exits at
 * once; one whose supervisor dies later gets SIGTERM and stops cleanly. */
static void
supervisor_death_stops_worker(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	setenv("SLUICE_SUPERVISOR_PID", "999999", 1);
	pid_t w = fx_worker("worker.log", NULL);
	unsetenv("SLUICE_SUPERVISOR_PID");
	int st = th_wait(w, 10000);
	CHECK(st != -1 && WIFEXITED(st));
	CHECK_CONTAINS(th_read(th_path("worker.log")), "SUPERVISOR-GONE");

	/* a shell plays the supervisor: it starts the worker and exits */
	CHECK(th_sh(NULL, "sh -c 'SLUICE_SUPERVISOR_PID=$$ \"$0\" -c \"$1\" > w2.log 2>&1 & sleep 1' "
	            "'%s' '%s'", th_bin("sluice-worker"), fx.config) == 0);
	CHECK(th_wait_file(th_path("w2.log"), "WORKER-STOP", 10000));
	CHECK_CONTAINS(th_read(th_path("w2.log")), "SHUTDOWN SIGTERM");
}

/* A job longer than the lease: the keepalive touches it, so it is neither
 * redelivered nor run twice. */
static void
long_job_keeps_its_lease(void)
{
	const char *done = th_path("done.txt");
	const char *job = th_write("job.sh", th_fmt("p=$(cat)\nsleep 2\n"
	                                            "echo \"$SLUICE_ATTEMPT $p\" >> '%s'\n", done));
	fx_config(&(fx_cfg){
		.worker = "visibility_timeout: 600ms",
		.sink = th_fmt("type: exec\nconcurrency: 2\ncommand: [/bin/sh, %s]", job),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	CHECK_EQ(fx_put(c, Q, "m", 0, 2, 2), 2);
	CHECK(fx_drained(c, Q, 20000));
	CHECK_EQ(fx_stat(c, Q, "expired_total"), 0);
	CHECK_EQ(fx_stat(c, Q, "acked_total"), 2);
	char *lines = th_read(done);
	CHECK(lines != NULL);
	CHECK_EQ(count_of(lines, "\n"), 2);
	CHECK_EQ(count_of(lines, "1 m-"), 2);
	stop_worker(w);
}

/* The broker goes away and comes back: the worker logs it once each way,
 * keeps running, and drains what arrives afterwards. */
static void
broker_restart_is_survived(void)
{
	fx_config(NULL);
	pid_t b = fx_broker("broker.log");
	pid_t w = fx_worker("worker.log", NULL);
	sluice_client *c = fx_client();
	CHECK_EQ(fx_put(c, Q, "m", 0, 100, 100), 100);
	CHECK(fx_drained(c, Q, 20000));
	th_stop(b, SIGKILL, 5000);
	CHECK(th_wait_file(th_path("worker.log"), "BROKER-UNREACHABLE", 20000));
	CHECK(th_wait(w, 0) == -1);
	fx_broker("broker2.log");
	CHECK_EQ(fx_put(c, Q, "m", 100, 100, 100), 100);
	CHECK(fx_drained(c, Q, 30000));
	audit("m", 200);
	CHECK(th_wait_file(th_path("worker.log"), "BROKER-BACK", 5000));
	stop_worker(w);
	char *log = th_read(th_path("worker.log"));
	CHECK_EQ(count_of(log, "BROKER-UNREACHABLE"), 1);
	CHECK_EQ(count_of(log, "BROKER-BACK"), 1);
}

/* CPU time (user + system) of a process, in clock ticks. */
static long
cpu_ticks(pid_t pid)
{
	char *stat = th_read(th_fmt("/proc/%ld/stat", (long)pid));
	CHECK(stat != NULL);
	const char *p = strrchr(stat, ')');
	CHECK(p != NULL);
	long utime = 0, stime = 0;
	/* after the name: state, then fields 4..13, then utime (14), stime (15) */
	CHECK(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime,
	             &stime) == 2);
	return utime + stime;
}

/* An idle worker long-polls: over 3 s it uses almost no CPU. */
static void
idle_worker_does_not_spin(void)
{
	fx_config(NULL);
	fx_broker("broker.log");
	pid_t w = fx_worker("worker.log", NULL);
	CHECK(th_wait_file(th_path("worker.log"), "WORKER-START", 10000));
	usleep(500000);
	long before = cpu_ticks(w);
	usleep(3000000);
	long used = cpu_ticks(w) - before;
	if (used > 15) /* 150 ms of CPU in 3 s */
		th_fail(__FILE__, __LINE__, "idle worker used %ld ticks of CPU in 3 s", used);
	stop_worker(w);
}

/* SIGTERM while a job outlives the grace: the job is killed, its message
 * handed back without counting the attempt, and the worker exits 0. */
static void
grace_runs_out_releases_and_exits(void)
{
	const char *job = th_write("job.sh", th_fmt("cat > /dev/null\ntouch '%s'\nsleep 600\n",
	                                            th_path("running")));
	fx_config(&(fx_cfg){
		.worker = "shutdown_grace: 1s",
		.sink = th_fmt("type: exec\ntimeout: 60s\ncommand: [/bin/sh, %s]", job),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	CHECK_EQ(fx_put(c, Q, "m", 0, 1, 1), 1);
	int64_t end = th_now_ms() + 10000;
	while (access(th_path("running"), F_OK) != 0 && th_now_ms() < end)
		usleep(20000);
	CHECK_EQ(fx_stat(c, Q, "in_flight"), 1);
	int64_t t0 = th_now_ms();
	stop_worker(w);
	CHECK(th_now_ms() - t0 >= 900); /* it did wait for the job, for the grace */
	CHECK(th_now_ms() - t0 < 5000);
	CHECK_EQ(fx_stat(c, Q, "in_flight"), 0);
	CHECK_EQ(fx_stat(c, Q, "depth"), 1);
	/* handed back untried: its next delivery is still attempt 1 */
	sluice_batch *b;
	CHECK(sluice_lease(c, Q, 1, 1000, 0, &b) == 0);
	CHECK_EQ(b->count, 1);
	CHECK_EQ(b->msgs[0].attempt, 1);
	sluice_batch_free(b);
}

/* Eight workers creating the same new sink database at once all start
 * (switching a new database to WAL can be busy without waiting). */
static void
workers_create_the_sink_together(void)
{
	for (int round = 0; round < 5; round++) {
		pid_t w[MAX_WORKERS];
		fx_config(NULL); /* a fresh sink path each round */
		pid_t b = fx_broker(th_fmt("broker%d.log", round));
		for (int i = 0; i < MAX_WORKERS; i++)
			w[i] = fx_worker(th_fmt("worker%d.%d.log", round, i), NULL);
		for (int i = 0; i < MAX_WORKERS; i++) {
			const char *log = th_path(th_fmt("worker%d.%d.log", round, i));
			if (!th_wait_file(log, "WORKER-START", 10000))
				th_fail(__FILE__, __LINE__, "worker %d of round %d: %s", i, round, th_read(log));
		}
		for (int i = 0; i < MAX_WORKERS; i++)
			kill(w[i], SIGTERM);
		for (int i = 0; i < MAX_WORKERS; i++)
			stop_worker(w[i]);
		th_stop(b, SIGTERM, 10000);
	}
}

static const th_case cases[] = {
	TH_CASE(exactly_once_one_worker),
	TH_CASE(exactly_once_four_workers),
	TH_CASE(exactly_once_eight_workers),
	TH_CASE(exactly_once_under_sigkill_chaos),
	TH_CASE(sigterm_mid_stream_loses_nothing),
	TH_CASE(locked_sink_trips_breaker),
	TH_CASE(exec_failure_is_retried_then_dead_lettered),
	TH_CASE(exec_hang_is_killed_at_timeout),
	TH_CASE(bad_sink_exits_1),
	TH_CASE(bad_config_exits_2),
	TH_CASE(flags_override_and_broker_may_come_later),
	TH_CASE(status_fd_reports_busy_and_idle),
	TH_CASE(supervisor_death_stops_worker),
	TH_CASE(long_job_keeps_its_lease),
	TH_CASE(broker_restart_is_survived),
	TH_CASE(idle_worker_does_not_spin),
	TH_CASE(grace_runs_out_releases_and_exits),
	TH_CASE(workers_create_the_sink_together),
	{NULL, NULL},
};

TH_MAIN(cases)

/* live_test: the live supervisor with the real broker and real workers:
 * scaling on a burst, the stabilization window, the database guard,
 * crash restarts, SIGKILL with no orphans, SIGHUP and SIGTERM. */
#include "fixture.h"
#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define Q "default"

/* Live sluice-worker processes running with this case's configuration. */
static int
count_workers(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char path[300], cmd[4096];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t len = fread(cmd, 1, sizeof(cmd) - 1, f);
		fclose(f);
		for (size_t i = 0; i < len; i++)
			if (cmd[i] == '\0')
				cmd[i] = ' ';
		cmd[len] = '\0';
		char stat[300], state = 0;
		snprintf(stat, sizeof(stat), "/proc/%s/stat", e->d_name);
		char *st = th_read(stat);
		const char *rp = st ? strrchr(st, ')') : NULL;
		if (rp != NULL)
			state = rp[2];
		if (strstr(cmd, "sluice-worker") && strstr(cmd, fx.config) && state != 'Z')
			n++;
	}
	if (d != NULL)
		closedir(d);
	return n;
}

static bool
wait_workers(int want, int timeout_ms)
{
	int64_t end = th_now_ms() + timeout_ms;
	while (count_workers() != want) {
		if (th_now_ms() > end)
			return false;
		usleep(50000);
	}
	return true;
}

/* Waits until text occurs at least n times in the file at path. */
static bool
wait_log_count(const char *path, const char *text, int n, int timeout_ms)
{
	int64_t end = th_now_ms() + timeout_ms;
	for (;;) {
		int seen = 0;
		const char *s = th_read(path);
		while (s != NULL && (s = strstr(s, text)) != NULL) {
			seen++;
			s += strlen(text);
		}
		if (seen >= n)
			return true;
		if (th_now_ms() > end)
			return false;
		usleep(50000);
	}
}

/* Milliseconds since the epoch of a log line's timestamp. */
static int64_t
line_ms(const char *line)
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

/* The time of the first log line containing text after from_ms, or -1. */
static int64_t
log_time(const char *log, const char *text, int64_t from_ms)
{
	char *s = th_read(th_path(log));
	for (char *line = s; line != NULL && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		int64_t t = line_ms(line);
		if (t >= from_ms && strstr(line, text))
			return t;
		if (!nl)
			break;
		line = nl + 1;
	}
	return -1;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A burst against slowish workers: up within two polls, drained, down only
 * after the stabilization window, and every message in the sink once. */
static void
burst_scales_up_then_down_after_the_window(void)
{
	fx_config(&(fx_cfg){
		.worker = "batch_size: 50\nlinger: 0s",
		.supervisor = "min_replicas: 1\nmax_replicas: 4\ntarget_per_worker: 5000\n"
		              "polling_interval: 500ms\ndownscale_stabilization: 4s",
	});
	fx_broker("broker.log");
	fx_supervisor("supervisor.log", NULL);
	CHECK(wait_workers(1, 10000));
	sluice_client *c = fx_client();
	long n = th_scaled(200000);
	CHECK_EQ(fx_put(c, Q, "b", 0, n, 1000), n);
	int64_t burst_done = wall_ms();
	/* up within two polls of the burst */
	CHECK(th_wait_file(th_path("supervisor.log"), "workers 1 -> 4", 5000));
	int64_t up = log_time("supervisor.log", "workers 1 -> 4", 0);
	printf("  scaled 1 -> 4 at %+lld ms from the end of the enqueue\n", (long long)(up - burst_done));
	CHECK(up - burst_done <= 2 * 500 + 300);
	CHECK(wait_workers(4, 5000));
	/* drained; note when the backlog stopped needing 4 workers (<= 15000) */
	int64_t low = -1, end = th_now_ms() + 120000;
	int64_t b;
	while ((b = fx_stat(c, Q, "backlog")) != 0 && th_now_ms() < end) {
		if (low < 0 && b >= 0 && b <= 15000)
			low = wall_ms();
		usleep(50000);
	}
	CHECK_EQ(b, 0);
	if (low < 0)
		low = wall_ms();
	int64_t drained = wall_ms();
	/* the first scale-down comes only after a whole window of lower
	 * recommendations, then it goes on down to min_replicas */
	CHECK(th_wait_file(th_path("supervisor.log"), "workers 4 -> ", 15000));
	int64_t down = log_time("supervisor.log", "workers 4 -> ", 0);
	printf("  drained %lld ms after the burst; first scale-down %lld ms after the backlog fell "
	       "under 4 workers' worth\n", (long long)(drained - burst_done), (long long)(down - low));
	CHECK(down - low >= 4000 - 600);
	CHECK(th_wait_file(th_path("supervisor.log"), "-> 1:", 15000));
	CHECK(wait_workers(1, 40000));
	long missing, dup, rows, distinct;
	fx_sink_audit(fx.sink, "events", "b", 0, n, &missing, &dup);
	fx_sink_count(fx.sink, "events", &rows, &distinct);
	printf("  sink: %ld rows, %ld missing, %ld duplicated\n", rows, missing, dup);
	CHECK_EQ(missing, 0);
	CHECK_EQ(dup, 0);
	CHECK_EQ(rows, distinct);
	CHECK_EQ(fx_stat(c, Q, "workers_current"), 1);
}

static void
sigkill_leaves_no_orphans_and_a_restart_resumes(void)
{
	fx_config(&(fx_cfg){.supervisor = "min_replicas: 2\nmax_replicas: 4\npolling_interval: 200ms"});
	fx_broker("broker.log");
	pid_t s = fx_supervisor("supervisor.log", NULL);
	CHECK(wait_workers(2, 10000));
	sluice_client *c = fx_client();
	long n = th_scaled(20000);
	CHECK_EQ(fx_put(c, Q, "k", 0, n, 500), n);
	usleep(300000);
	th_stop(s, SIGKILL, 5000);
	/* the workers notice their supervisor is gone and stop */
	CHECK(wait_workers(0, 10000));
	/* a restart resumes the count the state file holds, not min_replicas */
	const char *cur = strstr(th_read(fx.state), "\ncurrent: ");
	CHECK(cur != NULL);
	int decided = atoi(cur + 10);
	CHECK(decided >= 2);
	fx_supervisor("supervisor2.log", NULL);
	CHECK(th_wait_file(th_path("supervisor2.log"), "STATE-RESUMED", 5000));
	CHECK(wait_workers(decided, 10000) || count_workers() >= 2);
	CHECK(fx_drained(c, Q, 60000));
	long missing, dup;
	fx_sink_audit(fx.sink, "events", "k", 0, n, &missing, &dup);
	CHECK_EQ(missing, 0);
	CHECK_EQ(dup, 0);
}

static void
sigterm_stops_workers_and_exits_zero(void)
{
	fx_config(&(fx_cfg){.supervisor = "min_replicas: 3\npolling_interval: 200ms"});
	fx_broker("broker.log");
	pid_t s = fx_supervisor("supervisor.log", NULL);
	CHECK(wait_workers(3, 10000));
	int status = th_stop(s, SIGTERM, 20000);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_EQ(count_workers(), 0);
	CHECK_CONTAINS(th_read(th_path("supervisor.log")), "STOPPED");
}

static void
sighup_reloads_and_keeps_the_old_policy_on_a_bad_file(void)
{
	fx_config(&(fx_cfg){.supervisor = "min_replicas: 1\npolling_interval: 200ms"});
	fx_broker("broker.log");
	pid_t s = fx_supervisor("supervisor.log", NULL);
	CHECK(wait_workers(1, 10000));
	/* a new minimum */
	char *text = th_read(fx.config);
	char *p = strstr(text, "min_replicas: 1");
	CHECK(p != NULL);
	p[14] = '2';
	th_write(fx.config, text);
	kill(s, SIGHUP);
	CHECK(th_wait_file(th_path("supervisor.log"), "RELOADED", 5000));
	CHECK(wait_workers(2, 10000));
	/* both workers have read the file: one that starts after the edit
	 * below would fail on it, as docs/scaling.md says */
	CHECK(wait_log_count(th_path("supervisor.log"), "WORKER-START", 2, 10000));
	/* a broken file: reported, the old policy kept */
	th_write(fx.config, "supervisor:\n  min_replicas: [\n");
	kill(s, SIGHUP);
	CHECK(th_wait_file(th_path("supervisor.log"), "RELOAD-FAILED", 5000));
	usleep(600000);
	CHECK_EQ(count_workers(), 2);
}

static void
crashing_workers_are_restarted_with_backoff(void)
{
	th_write("crash.sh", "#!/bin/sh\nexit 3\n");
	CHECK(th_sh(NULL, "chmod +x crash.sh") == 0);
	fx_cfg x = {.supervisor = th_fmt("min_replicas: 1\npolling_interval: 200ms\n"
	                                 "worker_command: [%s]\nrestart:\n  base: 100ms\n  max: 400ms\n"
	                                 "  crash_loop_count: 3\n  crash_loop_window: 10s",
	                                 th_path("crash.sh"))};
	fx_config(&x);
	fx_broker("broker.log");
	fx_supervisor("supervisor.log", NULL);
	CHECK(th_wait_file(th_path("supervisor.log"), "WORKER-CRASHED", 5000));
	CHECK(th_wait_file(th_path("supervisor.log"), "CRASH-LOOP", 5000));
	sleep(2);
	/* backed off: a few restarts in 2+ s, not hundreds */
	char *log = th_read(th_path("supervisor.log"));
	int crashes = 0;
	for (const char *p = log; (p = strstr(p, "WORKER-CRASHED")) != NULL; p++)
		crashes++;
	printf("  %d crash lines in about 3 s\n", crashes);
	CHECK(crashes < 20);
	sluice_client *c = fx_client();
	usleep(500000);
	CHECK(fx_stat(c, Q, "workers_restarts") >= 2);
}

/* The database guard: while the sink is slow the pool does not grow,
 * however deep the queue; once the sink recovers it grows. */
static void
slow_sink_holds_the_pool_until_it_recovers(void)
{
	th_write("slow", "");
	fx_cfg x = {
		.queue_defaults = "visibility_timeout: 60s",
		.worker = "batch_size: 5\nlinger: 0s",
		.sink = th_fmt("type: exec\ncommand: [sh, -c, 'if [ -f %s ]; then sleep 0.1; fi; cat >/dev/null']\n"
		               "timeout: 10s", th_path("slow")),
		.supervisor = "min_replicas: 1\nmax_replicas: 4\ntarget_per_worker: 10\npolling_interval: 300ms\n"
		              "guard:\n  max_commit_p99: 200ms\n  window: 60s",
	};
	fx_config(&x);
	fx_broker("broker.log");
	fx_supervisor("supervisor.log", NULL);
	CHECK(wait_workers(1, 10000));
	sluice_client *c = fx_client();
	/* a first batch, so the worker has reported a slow sink */
	CHECK_EQ(fx_put(c, Q, "g", 0, 5, 5), 5);
	int64_t end = th_now_ms() + 10000;
	while (fx_stat(c, Q, "sink_commit_p99_us") < 200000 && th_now_ms() < end)
		usleep(100000);
	CHECK(fx_stat(c, Q, "sink_commit_p99_us") >= 200000);
	/* now a backlog that asks for 4 workers: held at 1 */
	CHECK_EQ(fx_put(c, Q, "g", 5, 300, 100), 300);
	CHECK(th_wait_file(th_path("supervisor.log"), "GUARD-HOLD", 3000));
	sleep(2);
	CHECK_EQ(count_workers(), 1);
	CHECK(fx_stat(c, Q, "depth") > 100);
	CHECK(fx_stat(c, Q, "guard_holds") > 0);
	/* the sink recovers: once its slow batches leave the report window
	 * (10-20 s), the pool grows */
	unlink(th_path("slow"));
	CHECK(th_wait_file(th_path("supervisor.log"), "workers 1 -> ", 40000));
	CHECK(fx_drained(c, Q, 60000));
}

static const th_case cases[] = {
	TH_CASE(burst_scales_up_then_down_after_the_window),
	TH_CASE(sigkill_leaves_no_orphans_and_a_restart_resumes),
	TH_CASE(sigterm_stops_workers_and_exits_zero),
	TH_CASE(sighup_reloads_and_keeps_the_old_policy_on_a_bad_file),
	TH_CASE(crashing_workers_are_restarted_with_backoff),
	TH_CASE(slow_sink_holds_the_pool_until_it_recovers),
	{NULL, NULL},
};

TH_MAIN(cases)

/* storage_fault_test: the broker's disk fills up or fails, the sink's
 * database turns read-only. The broker must refuse (never acknowledge)
 * what it could not store, with PROTO_ERR_STORAGE and a clear message,
 * never crash nor corrupt its database, and serve again once the fault is
 * gone; workers back off and recover. Each case ends with the audit.
 *
 *   - a true SQLITE_FULL from broker.max_db_size, then space returns: a
 *     restart with a bigger quota, and the workers draining, also while
 *     producers keep retrying hard;
 *   - RLIMIT_FSIZE on the broker (through prlimit): writes past it fail
 *     with EFBIG;
 *   - I/O errors injected with libfiu into the pwrite, fsync and
 *     fdatasync of the running broker (fiu-run's preload, then fiu-ctrl);
 *   - the sink database made read-only (immutable) under a running worker
 *     and under one that starts while it is. */
#include "fault.h"
#include "harness.h"

#include "codec.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define Q "default"

/* Replaces the first `from` in the configuration with `to`. */
static void
edit_config(const char *from, const char *to)
{
	char *text = th_read(fx.config);
	CHECK(text != NULL);
	char *at = strstr(text, from);
	CHECK(at != NULL);
	*at = '\0';
	th_write(fx.config, th_fmt("%s%s%s", text, to, at + strlen(from)));
}

/* Waits until the load has seen n refusals with code. */
static bool
wait_refused(const ft_load *l, int code, long n, int timeout_ms)
{
	int64_t end = th_now_ms() + timeout_ms;
	while (ft_load_refused(l, code) < n) {
		if (th_now_ms() > end)
			return false;
		usleep(20000);
	}
	return true;
}

/* PING and STATS still answered. */
static bool
reads_answered(void)
{
	sluice_client *c = fx_client();
	sluice_stats *s;
	if (sluice_ping(c, NULL) != 0 || sluice_stats_get(c, NULL, &s) != 0)
		return false;
	sluice_stats_free(s);
	return true;
}

/* The broker stops cleanly and leaves a database SQLite finds sound. */
static void
stop_and_check_database(pid_t b)
{
	int status = th_stop(b, SIGTERM, 15000);
	CHECK(WIFEXITED(status));
	sqlite3 *db;
	sqlite3_stmt *st;
	CHECK(sqlite3_open_v2(fx.data, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	const char *res = th_fmt("%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	CHECK_STR(res, "ok");
}

/* ---- the database full ---- */

static void
database_full_refuses_then_recovers(void)
{
	fx_config(&(fx_cfg){
		.broker = "max_db_size: 1MiB",
		.queue_defaults = "max_attempts: 1000",
		.worker = "batch_size: 200\nlinger: 20ms",
	});
	pid_t b = fx_broker("broker.log");
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 4, .batch = 5, .payload_bytes = 1000});
	CHECK(wait_refused(l, PROTO_ERR_STORAGE, 20, 60000));
	long acked_full = ft_load_acked(l);
	printf("  full after %ld messages: \"%s\"\n", acked_full,
	       ft_load_refused_text(l, PROTO_ERR_STORAGE));
	CHECK_CONTAINS(ft_load_refused_text(l, PROTO_ERR_STORAGE), "could not store this request");
	CHECK_CONTAINS(ft_load_refused_text(l, PROTO_ERR_STORAGE), "full");
	/* refused, not acknowledged: nothing more gets in while it is full */
	usleep(500000);
	CHECK(ft_load_acked(l) <= acked_full + 4 * 5);
	CHECK(reads_answered());
	/* over HTTP too (a small message may still find room in a page) */
	char *resp, big[4000];
	int st = 0;
	memset(big, 'h', sizeof(big));
	for (int i = 0; i < 20 && st != 503; i++)
		st = ft_http(fx.http, "POST", "/v1/queues/" Q "/messages", NULL, big, sizeof(big), &resp);
	printf("  HTTP while full: %d %s", st, resp);
	CHECK_EQ(st, 503);
	CHECK_CONTAINS(resp, "could not store this request");
	CHECK_CONTAINS(th_read(th_path("broker.log")), "STORAGE-FAILED");

	/* space returns, 1: a bigger quota at restart */
	stop_and_check_database(b);
	edit_config("max_db_size: 1MiB", "max_db_size: 3MiB");
	long refused_before = ft_load_refused(l, PROTO_ERR_STORAGE);
	b = fx_broker("broker2.log");
	int64_t end = th_now_ms() + 30000;
	while (ft_load_acked(l) < acked_full + 200 && th_now_ms() < end)
		usleep(20000);
	CHECK(ft_load_acked(l) >= acked_full + 200);
	CHECK(wait_refused(l, PROTO_ERR_STORAGE, refused_before + 20, 60000));
	long acked_full2 = ft_load_acked(l);
	printf("  full again at the new quota after %ld messages\n", acked_full2);

	/* space returns, 2: workers drain the queue and free pages */
	pid_t w = fx_worker("worker.log", NULL);
	CHECK(ft_load_wait(l, 500, 60000));
	long refused = ft_load_refused(l, PROTO_ERR_STORAGE);
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	th_stop(w, SIGTERM, 20000);
	stop_and_check_database(b);
	printf("  FIGURES storage_full: refused %ld enqueues (STORAGE), acknowledged %ld, lost %ld, "
	       "duplicated %ld\n",
	       refused, r.acked, r.lost, r.duplicated);
}

/* The drain frees the space, even while producers keep retrying hard: a
 * group commit would hold their refused enqueues and the workers' acks,
 * so while storage fails the writer commits the acks apart. */
static void
full_database_drains_under_enqueue_pressure(void)
{
	fx_config(&(fx_cfg){
		.broker = "max_db_size: 1MiB",
		.queue_defaults = "max_attempts: 1000",
		.worker = "batch_size: 50\nlinger: 0ms",
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 16, .batch = 5, .payload_bytes = 1000,
	                                           .retry_us = 1000});
	CHECK(wait_refused(l, PROTO_ERR_STORAGE, 20, 60000));
	long a0 = (long)fx_stat(c, Q, "acked_total");
	pid_t w = fx_worker("worker.log", NULL);
	usleep(5000000);
	long a1 = (long)fx_stat(c, Q, "acked_total");
	long ack_refusals = ft_count_in(th_path("worker.log"), "could not store");
	printf("  with the database full and 16 producers retrying: %ld acks in 5 s, %ld ack "
	       "requests refused (backlog %lld)\n",
	       a1 - a0, ack_refusals, (long long)fx_stat(c, Q, "backlog"));
	CHECK(a1 - a0 >= 500);
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	th_stop(w, SIGTERM, 20000);
	printf("  FIGURES storage_full_pressure: acks in 5 s while full %ld, ack requests refused %ld, "
	       "acknowledged %ld, lost %ld, duplicated %ld\n",
	       a1 - a0, ack_refusals, r.acked, r.lost, r.duplicated);
}

/* RLIMIT_FSIZE: a write past it fails (EFBIG) instead of growing the file. */
static void
file_size_limit_refuses_then_recovers(void)
{
	fx_config(&(fx_cfg){.queue_defaults = "max_attempts: 1000"});
	static const char *const limited[] = {"/usr/bin/prlimit", "--fsize=3000000", NULL};
	pid_t b = ft_broker_via("broker.log", limited);
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 4, .batch = 5, .payload_bytes = 1000});
	int64_t end = th_now_ms() + 60000;
	while (ft_load_refused(l, PROTO_ERR_STORAGE) == 0 && ft_alive(b) && th_now_ms() < end)
		usleep(20000);
	int status = th_wait(b, 0);
	printf("  broker: %s; refused %ld, \"%s\"\n",
	       status == -1 ? "alive" : WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited",
	       ft_load_refused(l, PROTO_ERR_STORAGE), ft_load_refused_text(l, PROTO_ERR_STORAGE));
	CHECK(status == -1);
	CHECK(ft_load_refused(l, PROTO_ERR_STORAGE) > 0);
	CHECK(reads_answered());
	stop_and_check_database(b);
	fx_broker("broker2.log");
	fx_worker("worker.log", NULL);
	CHECK(ft_load_wait(l, 200, 30000));
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	printf("  FIGURES storage_fsize: refused %ld, acknowledged %ld, lost %ld, duplicated %ld\n",
	       ft_load_refused(l, PROTO_ERR_STORAGE), r.acked, r.lost, r.duplicated);
}

/* ---- injected I/O errors ---- */

/* Every write SQLite makes (pwrite64, which libfiu names pwrite) and its
 * syncs. Not plain write(): NNG 1.5.2 writes to an eventfd to wake its
 * poller and panics ("write to epoll fd incorrect!") when that fails, an
 * error the kernel does not return for an eventfd; the broker itself uses
 * write() only for its log lines. */
static const char *const fiu_points[] = {
	"posix/io/rw/pwrite",
	"posix/io/sync/fsync",
	"posix/io/sync/fdatasync",
};

static void
fiu(pid_t pid, const char *ctl, const char *what)
{
	for (size_t i = 0; i < sizeof(fiu_points) / sizeof(fiu_points[0]); i++)
		CHECK(th_sh(NULL, "fiu-ctrl -f '%s' -c '%s name=%s%s' %ld", ctl, what, fiu_points[i],
		            strcmp(what, "enable_random") == 0 ? ",probability=0.05" : "",
		            (long)pid) == 0);
}

#define FIU_LIBS "/usr/lib/fiu"

/* The AddressSanitizer runtime this test was linked with, from its own
 * memory map ("" when there is none). */
static const char *
asan_runtime(void)
{
	char *maps = th_read("/proc/self/maps");
	const char *at = maps ? strstr(maps, "/libasan.so") : NULL;
	if (at == NULL)
		return "";
	const char *start = at;
	while (start > maps && start[-1] != ' ')
		start--;
	const char *end = strchr(at, '\n');
	return th_fmt("%.*s", (int)(end ? end - start : (long)strlen(start)), start);
}

/* pwrite, fsync and fdatasync fail at random (5%) for a while in the
 * running broker: it refuses what it could not store and never
 * acknowledges it, does not crash, serves again once the faults stop, and
 * leaves a sound database.
 *
 * The broker runs in the environment fiu-run gives (FIU_CTRL_FIFO, and
 * libfiu's preload libraries in LD_PRELOAD), built here so that under the
 * sanitizer build the ASan runtime can come first in LD_PRELOAD, which
 * ASan requires (with fiu-run it refuses to start, and with
 * verify_asan_link_order=0 it crashes). */
static void
injected_io_errors_are_refused_never_acknowledged(void)
{
	if (access(FIU_LIBS "/fiu_posix_preload.so", R_OK) != 0) {
		printf("  SKIPPED: libfiu's preload libraries are not in " FIU_LIBS
		       " (apt-get install fiu-utils)\n");
		return;
	}
	long secs = ft_count(5, 20);
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 1000",
		.worker = "batch_size: 100\nlinger: 20ms",
	});
	const char *ctl = th_path("fiu");
	const char *asan = asan_runtime();
	const char *const wrapper[] = {
		"/usr/bin/env",
		"FIU_ENABLE=",
		th_fmt("FIU_CTRL_FIFO=%s", ctl),
		th_fmt("LD_PRELOAD=%s%s" FIU_LIBS "/fiu_run_preload.so " FIU_LIBS "/fiu_posix_preload.so",
		       asan, asan[0] ? " " : ""),
		NULL,
	};
	pid_t b = ft_broker_via("broker.log", wrapper);
	pid_t w = fx_worker("worker.log", NULL);
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 4, .batch = 5, .payload_bytes = 200});
	CHECK(ft_load_wait(l, 200, 20000));
	long before = ft_load_acked(l);
	fiu(b, ctl, "enable_random");
	int64_t end = th_now_ms() + secs * 1000;
	while (th_now_ms() < end) {
		CHECK(ft_alive(b));
		usleep(100000);
	}
	fiu(b, ctl, "disable");
	long during = ft_load_acked(l) - before;
	long refused = ft_load_refused(l, PROTO_ERR_STORAGE), failed = ft_load_retries(l);
	printf("  %ld s of faults: %ld acknowledged, %ld refused with STORAGE, %ld retried in all; "
	       "\"%s\"\n",
	       secs, during, refused, failed, ft_load_refused_text(l, PROTO_ERR_STORAGE));
	CHECK(refused > 0);
	CHECK(ft_load_wait(l, 200, 30000)); /* serves again */
	CHECK(ft_broker_serves());
	int failed_logged = ft_count_in(th_path("broker.log"), "STORAGE-FAILED");
	CHECK(failed_logged >= 1);
	ft_load_stop(l, 30000);
	th_stop(w, SIGTERM, 20000);
	stop_and_check_database(b);
	/* everything acknowledged under the faults is there after a restart */
	fx_broker("broker2.log");
	fx_worker("worker2.log", NULL);
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	printf("  FIGURES storage_fiu: %ld s of 5%% faults, refused %ld, acknowledged %ld, lost %ld, "
	       "duplicated %ld, stored unacknowledged %ld\n",
	       secs, refused, r.acked, r.lost, r.duplicated, r.unacked_stored);
}

/* ---- the sink read-only ---- */

/* Makes the sink's files immutable (read-only even for root), or writable
 * again; false if the file system cannot. */
static bool
sink_read_only(bool on)
{
	return th_sh(NULL, "chattr %si '%s' '%s-wal' 2>/dev/null", on ? "+" : "-", fx.sink, fx.sink) == 0;
}

static void
unfreeze_sink(void *arg)
{
	(void)arg;
	sink_read_only(false);
}

static void
wait_breaker(const char *log, const char *event, int n)
{
	int64_t end = th_now_ms() + 20000;
	while (ft_count_in(th_path(log), event) < n && th_now_ms() < end)
		usleep(50000);
	CHECK(ft_count_in(th_path(log), event) >= n);
}

/* The sink turns read-only under a running worker (its writes fail), and
 * a worker starts while it is (SQLite opens it read-only): both back off
 * with the breaker and recover once it is writable again. */
static void
sink_read_only_backs_off_and_recovers(void)
{
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 1000",
		.worker = "batch_size: 100\nlinger: 20ms\nvisibility_timeout: 3s\n"
		          "breaker:\n  base: 200ms\n  max: 1s",
	});
	fx_broker("broker.log");
	pid_t w = fx_worker("worker.log", NULL);
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 2, .batch = 5, .pause_us = 2000});
	CHECK(ft_load_wait(l, 200, 20000));
	th_defer(unfreeze_sink, NULL);
	if (!sink_read_only(true)) {
		printf("  SKIPPED: chattr +i does not work here\n");
		return;
	}
	wait_breaker("worker.log", "BREAKER-OPEN", 1);
	usleep(1000000);
	CHECK(sink_read_only(false));
	wait_breaker("worker.log", "BREAKER-CLOSED", 1);
	printf("  a running worker: breaker opened on \"%s\" and closed again\n",
	       strstr(th_read(th_path("worker.log")), "disk I/O error") ? "disk I/O error" : "?");

	/* a worker that starts while the sink is read-only */
	CHECK(sink_read_only(true));
	th_stop(w, SIGKILL, 5000);
	w = fx_worker("worker2.log", NULL);
	wait_breaker("worker2.log", "BREAKER-OPEN", 1);
	CHECK_CONTAINS(th_read(th_path("worker2.log")), "readonly");
	usleep(1000000);
	CHECK(sink_read_only(false));
	wait_breaker("worker2.log", "BREAKER-CLOSED", 1);
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	printf("  FIGURES sink_read_only: acknowledged %ld, lost %ld, duplicated %ld, dead-lettered 0\n",
	       r.acked, r.lost, r.duplicated);
}

static const th_case cases[] = {
	TH_CASE(database_full_refuses_then_recovers),
	TH_CASE(full_database_drains_under_enqueue_pressure),
	TH_CASE(file_size_limit_refuses_then_recovers),
	TH_CASE(injected_io_errors_are_refused_never_acknowledged),
	TH_CASE(sink_read_only_backs_off_and_recovers),
	{NULL, NULL},
};

TH_MAIN(cases)

/* worker_kill_test: workers killed and frozen under load. SIGKILL random
 * workers of the supervisor's pool (it restarts them); SIGSTOP a worker
 * holding a batch past its visibility timeout, let another take the
 * batch, then SIGCONT it: its late ack is refused by the broker (the
 * worker says so in its SUMMARY line), and every message still lands
 * once. Each case ends with the audit. */
#include "fault.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define Q "default"

static void
sigkill_random_workers_of_the_pool(void)
{
	long kills = ft_count(10, 40);
	srand((unsigned)getpid());
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 1000",
		.worker = "batch_size: 100\nlinger: 20ms\nvisibility_timeout: 3s",
		.supervisor = "min_replicas: 3\nmax_replicas: 3\npolling_interval: 300ms\n"
		              "restart:\n  base: 100ms\n  max: 500ms\n  crash_loop_count: 1000",
	});
	fx_broker("broker.log");
	pid_t sup = fx_supervisor("supervisor.log", NULL);
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 4, .batch = 10, .pause_us = 2000});
	CHECK(ft_load_wait(l, 500, 20000));
	int64_t t0 = th_now_ms();
	long done = 0;
	while (done < kills && th_now_ms() - t0 < 120000) {
		usleep(400000 + (useconds_t)(rand() % 600) * 1000);
		pid_t w[8];
		int n = ft_children(sup, "sluice-worker", w, 8);
		if (n == 0)
			continue;
		pid_t victim = w[rand() % n];
		if (kill(victim, SIGKILL) == 0)
			done++;
	}
	CHECK_EQ(done, kills);
	CHECK(ft_load_wait(l, 100, 20000)); /* still flowing */
	sluice_client *c = fx_client();
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	int64_t expired = fx_stat(c, Q, "expired_total");
	int crashed = ft_count_in(th_path("supervisor.log"), "WORKER-CRASHED");
	printf("  FIGURES worker_kill: SIGKILLs %ld, restarts seen %d, leases expired %lld, "
	       "acknowledged %ld, lost %ld, duplicated %ld, %lld s\n",
	       done, crashed, (long long)expired, r.acked, r.lost, r.duplicated,
	       (long long)(th_now_ms() - t0) / 1000);
	CHECK(crashed >= 1);
	CHECK(ft_alive(sup));
}

/* The "lost to expired leases" figure of the worker's SUMMARY lines. */
static long
lost_in_summaries(const char *log)
{
	const char *s = th_read(log);
	long lost = 0;
	while (s != NULL && (s = strstr(s, " handed back, ")) != NULL) {
		s += strlen(" handed back, ");
		lost += atol(s);
	}
	return lost;
}

static void
frozen_worker_late_ack_is_refused(void)
{
	long freezes = ft_count(1, 3);
	/* an expired lease is retried at once, so that the helper takes it
	 * before the frozen worker wakes (a late ack of a message nobody else
	 * leased meanwhile is accepted: the work was done) */
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 1000\nretry:\n  base: 10ms\n  max: 20ms",
		.worker = "batch_size: 200\nlinger: 200ms\nvisibility_timeout: 2s\nreport_interval: 1s",
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	static const char *const verbose[] = {"-v", NULL};
	pid_t a = fx_worker("frozen.log", verbose);
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 2, .batch = 5, .pause_us = 5000});
	CHECK(ft_load_wait(l, 200, 20000));
	int64_t t0 = th_now_ms();
	pid_t helper = 0;
	for (long k = 0; k < freezes; k++) {
		/* freeze the worker while it holds leases (it alone leases), but
		 * not inside its sink commit: holding the sink's write lock, it
		 * would keep the helper from committing, and so from leasing the
		 * expired messages before the frozen worker wakes */
		int64_t held = 0, end = th_now_ms() + 20000;
		while (th_now_ms() < end) {
			CHECK(kill(a, SIGSTOP) == 0);
			usleep(100000);
			if ((held = fx_stat(c, Q, "in_flight")) > 0 && !ft_sqlite_write_locked(fx.sink))
				break;
			held = 0;
			kill(a, SIGCONT);
			usleep(50000 + (useconds_t)(rand() % 100) * 1000);
		}
		CHECK(held > 0);
		int64_t expired0 = fx_stat(c, Q, "expired_total");
		if (helper == 0)
			helper = fx_worker("helper.log", NULL);
		/* past the visibility: the broker expires the lease and the helper
		 * takes those messages */
		int64_t wait_end = th_now_ms() + 15000;
		while (fx_stat(c, Q, "expired_total") < expired0 + held && th_now_ms() < wait_end)
			usleep(50000);
		CHECK(fx_stat(c, Q, "expired_total") >= expired0 + held);
		while (fx_stat(c, Q, "delayed") > 0 && th_now_ms() < wait_end)
			usleep(20000);
		usleep(500000); /* the helper leases them again */
		CHECK(kill(a, SIGCONT) == 0);
		printf("  freeze %ld: held %lld leases past the visibility\n", k + 1, (long long)held);
		/* its late ack comes back refused: the SUMMARY counts them */
		int64_t lend = th_now_ms() + 15000;
		while (lost_in_summaries(th_path("frozen.log")) == 0 && th_now_ms() < lend)
			usleep(100000);
		CHECK(lost_in_summaries(th_path("frozen.log")) > 0);
		CHECK(ft_alive(a));
		kill(helper, SIGTERM); /* the frozen worker alone again */
		th_wait(helper, 20000);
		helper = 0;
	}
	long refused = lost_in_summaries(th_path("frozen.log"));
	const char *log = th_read(th_path("frozen.log"));
	CHECK_CONTAINS(log, "LEASE-LOST");
	helper = fx_worker("helper2.log", NULL);
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	printf("  FIGURES worker_freeze: freezes %ld, late acks refused %ld, acknowledged %ld, "
	       "lost %ld, duplicated %ld, %lld s\n",
	       freezes, refused, r.acked, r.lost, r.duplicated, (long long)(th_now_ms() - t0) / 1000);
}

static const th_case cases[] = {
	TH_CASE(sigkill_random_workers_of_the_pool),
	TH_CASE(frozen_worker_late_ack_is_refused),
	{NULL, NULL},
};

TH_MAIN(cases)

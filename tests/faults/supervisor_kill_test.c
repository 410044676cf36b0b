/* supervisor_kill_test: SIGKILL the supervisor again and again under load.
 * Each time its workers notice (PR_SET_PDEATHSIG), finish their batch and
 * exit: none is left orphaned; a restarted supervisor resumes the worker
 * count its state file holds; the sink ends with every acknowledged
 * message once. */
#include "fault.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_W 16

static void
sigkill_supervisor_repeatedly(void)
{
	long cycles = ft_count(3, 10);
	srand((unsigned)getpid());
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 1000",
		.worker = "batch_size: 100\nlinger: 20ms\nshutdown_grace: 5s",
		.supervisor = "min_replicas: 2\nmax_replicas: 4\ntarget_per_worker: 200\n"
		              "polling_interval: 300ms\ndownscale_stabilization: 30s",
	});
	fx_broker("broker.log");
	pid_t sup = fx_supervisor("supervisor0.log", NULL);
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 4, .batch = 10, .pause_us = 3000});
	CHECK(ft_load_wait(l, 500, 20000));
	int64_t t0 = th_now_ms(), worst_exit = 0;
	long orphans_seen = 0;
	for (long k = 0; k < cycles; k++) {
		pid_t w[MAX_W];
		int n = 0;
		int64_t end = th_now_ms() + 10000;
		while ((n = ft_children(sup, "sluice-worker", w, MAX_W)) < 2 && th_now_ms() < end)
			usleep(50000);
		CHECK(n >= 2);
		usleep(500000 + (useconds_t)(rand() % 1000) * 1000);
		n = ft_children(sup, "sluice-worker", w, MAX_W);
		CHECK(kill(sup, SIGKILL) == 0);
		th_wait(sup, 5000);
		int64_t killed = th_now_ms();
		/* every worker of the dead supervisor exits within its grace */
		for (int i = 0; i < n; i++) {
			while (ft_alive(w[i]) && th_now_ms() - killed < 15000)
				usleep(20000);
			if (ft_alive(w[i]))
				orphans_seen++;
		}
		int64_t took = th_now_ms() - killed;
		worst_exit = took > worst_exit ? took : worst_exit;
		printf("  cycle %ld: %d workers exited %lld ms after their supervisor\n", k + 1, n,
		       (long long)took);
		CHECK_EQ(orphans_seen, 0);
		const char *log = th_fmt("supervisor%ld.log", k + 1);
		sup = fx_supervisor(log, NULL);
		CHECK(th_wait_file(th_path(log), "STATE-RESUMED", 10000));
		CHECK(ft_load_wait(l, 50, 20000));
	}
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	printf("  FIGURES supervisor_kill: cycles %ld, orphans 0, slowest worker exit %lld ms, "
	       "acknowledged %ld, lost %ld, duplicated %ld, %lld s\n",
	       cycles, (long long)worst_exit, r.acked, r.lost, r.duplicated,
	       (long long)(th_now_ms() - t0) / 1000);
}

static const th_case cases[] = {
	TH_CASE(sigkill_supervisor_repeatedly),
	{NULL, NULL},
};

TH_MAIN(cases)

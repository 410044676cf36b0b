/* broker_kill_test: SIGKILL the broker at random moments while producers
 * enqueue and the supervisor's workers drain into a SQLite sink, restart
 * it, again and again; then the audit. Producers retry with user keys
 * until acknowledged; workers and the supervisor ride out each outage. */
#include "fault.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void
sigkill_under_load_with_supervisor(void)
{
	long cycles = ft_count(5, 20);
	srand((unsigned)getpid());
	fx_config(&(fx_cfg){
		.queue_defaults = "max_attempts: 1000",
		.worker = "batch_size: 100\nlinger: 20ms\nreport_interval: 2s",
		.supervisor = "min_replicas: 1\nmax_replicas: 4\ntarget_per_worker: 200\n"
		              "polling_interval: 500ms\ndownscale_stabilization: 5s\n"
		              "restart:\n  base: 200ms\n  max: 1s\n  crash_loop_count: 1000",
	});
	pid_t b = fx_broker("broker.log");
	pid_t sup = fx_supervisor("supervisor.log", NULL);
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 4, .batch = 5, .timeout_ms = 1000});
	CHECK(ft_load_wait(l, 100, 20000));
	int64_t t0 = th_now_ms();
	for (long k = 0; k < cycles; k++) {
		usleep(300000 + (useconds_t)(rand() % 1200) * 1000);
		CHECK(kill(b, SIGKILL) == 0);
		th_wait(b, 10000);
		b = fx_broker(th_fmt("broker%ld.log", k + 1));
		/* every restart serves the producers again */
		CHECK(ft_load_wait(l, 10, 30000));
	}
	usleep(500000);
	CHECK(ft_alive(sup));
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	printf("  FIGURES broker_kill: cycles %ld, acknowledged %ld, lost %ld, duplicated %ld, "
	       "retried requests %ld, stored unacknowledged %ld, %lld s\n",
	       cycles, r.acked, r.lost, r.duplicated, ft_load_retries(l), r.unacked_stored,
	       (long long)(th_now_ms() - t0) / 1000);
}

static const th_case cases[] = {
	TH_CASE(sigkill_under_load_with_supervisor),
	{NULL, NULL},
};

TH_MAIN(cases)

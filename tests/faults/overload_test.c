/* overload_test: producers push ten times what the workers can drain (a
 * slow exec sink) until the queue is at max_depth. Refused enqueues are
 * answered "queue full" at once (their answer time is measured: no
 * timeouts), with a retry hint over NNG and Retry-After over HTTP; the
 * queue never holds more than max_depth; everything accepted runs; and
 * once the load stops the queue drains and takes enqueues again. The
 * audit is the jobs one: every acknowledged message ran at least once. */
#include "fault.h"
#include "harness.h"

#include "codec.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define Q "default"
#define MAX_DEPTH 1000

/* The full HTTP answer (status line and headers) to one POST. */
static const char *
http_post_raw(const char *body)
{
	int fd = th_dial_tcp(fx.http);
	CHECK(fd >= 0);
	const char *req = th_fmt("POST /v1/queues/" Q "/messages HTTP/1.1\r\nHost: x\r\n"
	                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                         strlen(body), body);
	CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
	const char *out = th_recv_all(fd);
	close(fd);
	return out;
}

static void
tenfold_overload_is_refused_at_once_then_drains(void)
{
	long secs = ft_count(6, 20);
	const char *jobs = th_path("jobs.txt");
	const char *job = th_write("job.sh", th_fmt("p=$(cat)\necho \"$p\" >> '%s'\nsleep 0.01\n", jobs));
	fx_config(&(fx_cfg){
		.queue_defaults = th_fmt("max_depth: %d\nmax_attempts: 1000", MAX_DEPTH),
		.worker = "batch_size: 20\nlinger: 0ms\nvisibility_timeout: 30s",
		.sink = th_fmt("type: exec\nconcurrency: 2\ncommand: [/bin/sh, %s]", job),
	});
	fx_broker("broker.log");
	sluice_client *c = fx_client();
	pid_t w = fx_worker("worker.log", NULL);
	ft_load *l = ft_load_start(&(ft_load_opts){.producers = 4, .batch = 10, .retry_us = 20000,
	                                           .timeout_ms = 5000});
	int64_t t0 = th_now_ms(), full_at = -1;
	int64_t worst_size = 0;
	long http_429 = 0;
	const char *answer = NULL;
	while (th_now_ms() - t0 < secs * 1000) {
		int64_t size = fx_stat(c, Q, "backlog") + fx_stat(c, Q, "delayed");
		if (size > worst_size)
			worst_size = size;
		if (full_at < 0 && ft_load_refused(l, PROTO_ERR_QUEUE_FULL) > 0)
			full_at = th_now_ms() - t0;
		if (full_at >= 0 && http_429 == 0) {
			answer = http_post_raw("over http");
			if (strncmp(answer, "HTTP/1.1 429", 12) == 0)
				http_429++;
		}
		usleep(100000);
	}
	long acked_during = ft_load_acked(l);
	long refused = ft_load_refused(l, PROTO_ERR_QUEUE_FULL);
	int64_t refused_max = ft_load_refused_max_ms(l, PROTO_ERR_QUEUE_FULL);
	long timeouts = ft_load_refused(l, SLUICE_E_TIMEOUT);
	int64_t ran = fx_stat(c, Q, "acked_total");
	double ratio = ran > 0 ? (double)(acked_during + refused * 10) / (double)ran : 0;
	printf("  %ld s: offered %ld messages (%ld accepted, %ld requests refused QUEUE_FULL), "
	       "workers ran %lld: %.1fx what they drain\n",
	       secs, acked_during + refused * 10, acked_during, refused, (long long)ran, ratio);
	printf("  full after %lld ms; refused in at most %lld ms; %ld timeouts; the queue held at "
	       "most %lld of %d; \"%s\"\n",
	       (long long)full_at, (long long)refused_max, timeouts, (long long)worst_size, MAX_DEPTH,
	       ft_load_refused_text(l, PROTO_ERR_QUEUE_FULL));
	CHECK(full_at >= 0);
	CHECK(ratio >= 5.0);
	CHECK(refused_max < 500);
	CHECK_EQ(timeouts, 0);
	CHECK(worst_size <= MAX_DEPTH);
	CHECK_CONTAINS(ft_load_refused_text(l, PROTO_ERR_QUEUE_FULL), "is full");
	CHECK(answer != NULL);
	CHECK(http_429 == 1);
	CHECK_CONTAINS(answer, "Retry-After:");
	CHECK(ft_load_retry_after_ms(l, PROTO_ERR_QUEUE_FULL) > 0);

	/* load stops: everything accepted runs, the queue drains, takes again */
	ft_audit_result r;
	ft_audit(l, &(ft_audit_opts){.jobs = jobs, .drain_ms = 180000}, &r);
	sluice_msg_in m = {.payload = "after", .len = 5};
	uint64_t id;
	int64_t a0 = th_now_ms();
	CHECK_EQ(sluice_enqueue(c, Q, &m, 1, &id, NULL), 0);
	printf("  after the load: an enqueue answered in %lld ms\n", (long long)(th_now_ms() - a0));
	th_stop(w, SIGTERM, 30000);
	printf("  FIGURES overload: %.1fx the drain rate for %ld s, %ld enqueues refused QUEUE_FULL "
	       "(slowest answer %lld ms, 0 timeouts), queue at most %lld of %d, acknowledged %ld, "
	       "lost %ld, ran more than once %ld\n",
	       ratio, secs, refused, (long long)refused_max, (long long)worst_size, MAX_DEPTH, r.acked,
	       r.lost, r.duplicated);
}

static const th_case cases[] = {
	TH_CASE(tenfold_overload_is_refused_at_once_then_drains),
	{NULL, NULL},
};

TH_MAIN(cases)

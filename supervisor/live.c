/*
 * live: the supervisor's loop. Every polling_interval: read the queue's
 * stats (and the sink health the workers reported) from the broker, decide
 * with policy.c, resize the pool, persist the state, report to the broker.
 * Between polls it reaps workers and reads their status pipes. Signals
 * arrive on a signalfd: SIGTERM/SIGINT stop every worker gracefully and
 * exit 0; SIGHUP reloads the policy (a bad file is reported and the old
 * policy kept).
 */
#include "live.h"

#include "client.h"
#include "clock.h"
#include "log.h"
#include "policy.h"
#include "pool.h"
#include "statefile.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define TICK_MS 100
#define MAX_POLL_FDS 1024

typedef struct live {
	const cfg *c;
	const char *config_path;
	sup_policy policy;
	sup_state st;
	sup_pool *pool;
	sluice_client *client;
	const char *queue;
	uint64_t guard_holds;
	bool broker_down;
	int sigfd;
} live;

/* The worker command: supervisor.worker_command, or the sluice-worker
 * beside this program with the same configuration and queue. */
static char **
worker_argv(const cfg *c, const char *config_path, char *self, size_t selflen)
{
	static char *argv[8];
	if (c->supervisor.worker_command != NULL)
		return c->supervisor.worker_command;
	ssize_t n = readlink("/proc/self/exe", self, selflen - 1);
	if (n <= 0)
		snprintf(self, selflen, "sluice-worker");
	else {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		size_t dir = slash ? (size_t)(slash - self) + 1 : 0;
		snprintf(self + dir, selflen - dir, "sluice-worker");
	}
	int k = 0;
	argv[k++] = self;
	if (config_path != NULL) {
		argv[k++] = "-c";
		argv[k++] = (char *)config_path;
	}
	argv[k++] = "-q";
	argv[k++] = c->supervisor.queue;
	argv[k] = NULL;
	return argv;
}

/* Reads the queue's figures and the workers' sink health. */
static void
read_poll(live *L, sup_poll *poll)
{
	sluice_stats *s;
	int rc = sluice_stats_get(L->client, L->queue, &s);
	if (rc != 0) {
		if (!L->broker_down)
			log_warn("BROKER-UNREACHABLE", "cannot read stats: %s", sluice_errmsg());
		L->broker_down = true;
		poll->ok = false;
		return;
	}
	if (L->broker_down)
		log_info("BROKER-BACK", "stats readable again");
	L->broker_down = false;
	poll->ok = true;
	const sluice_queue_stats *q = sluice_stats_queue(s, L->queue);
	if (q != NULL) { /* a queue not created yet is an empty one */
		poll->depth = sluice_stat_value(q->fields, q->nfields, "depth", 0);
		poll->in_flight = sluice_stat_value(q->fields, q->nfields, "in_flight", 0);
		int64_t workers = sluice_stat_value(q->fields, q->nfields, "sink_workers", -1);
		if (workers > 0) {
			int64_t p99 = sluice_stat_value(q->fields, q->nfields, "sink_commit_p99_us", 0);
			int64_t batches = sluice_stat_value(q->fields, q->nfields, "sink_batches", 0);
			int64_t failures = sluice_stat_value(q->fields, q->nfields, "sink_failures", 0);
			poll->sink_reported = true;
			poll->sink_commit_p99_ms = (p99 + 999) / 1000;
			int64_t tried = batches > failures ? batches : failures;
			poll->sink_failure_ratio = tried > 0 ? (double)failures / (double)tried : 0.0;
		}
	}
	sluice_stats_free(s);
}

static void
save_state(live *L)
{
	char err[512];
	if (sup_statefile_write(L->c->supervisor.state_file, &L->st, err, sizeof(err)) != SUP_OK)
		log_warn("STATE-NOT-SAVED", "%s", err);
}

static void
report(live *L)
{
	sluice_field f[] = {
		{"desired_workers", sup_pool_wanted(L->pool)},
		{"current_workers", sup_pool_running(L->pool)},
		{"restarts", (int64_t)sup_pool_restarts(L->pool)},
		{"guard_holds", (int64_t)L->guard_holds},
	};
	if (!L->broker_down)
		sluice_report(L->client, L->queue, f, sizeof(f) / sizeof(f[0]));
}

static void
one_poll(live *L)
{
	sup_poll poll = SUP_POLL_INIT;
	sup_decision d;
	read_poll(L, &poll);
	poll.ready = sup_pool_running(L->pool);
	poll.leases = sup_pool_busy(L->pool);
	int rc = sup_decide(&L->policy, &L->st, clk_wall_ms(), &poll, &d);
	if (rc != SUP_OK) {
		log_error("DECIDE-FAILED", "%s; holding %d workers",
		          rc == SUP_E_NOMEM ? "out of memory" : "a reading out of range",
		          sup_pool_wanted(L->pool));
		return;
	}
	if (d.limit == SUP_LIMIT_GUARD) {
		L->guard_holds++;
		log_warn("GUARD-HOLD", "%s", d.reason);
	}
	if (d.replicas != d.previous) {
		char metric[32] = "-";
		if (d.has_metric)
			sup_format_metric(d.metric_num, d.metric_den, metric, sizeof(metric));
		log_info("SCALE", "%s %s, raw %lld, stabilized %lld, limit %s, workers %d -> %d: %s",
		         L->policy.metric == SUP_METRIC_BACKLOG ? "backlog" : "depth", metric,
		         (long long)d.raw, (long long)d.stabilized, sup_limit_name(d.limit), d.previous,
		         d.replicas, d.reason);
	}
	sup_pool_resize(L->pool, d.replicas, clk_mono_ms());
	save_state(L);
	report(L);
}

static void
reload(live *L)
{
	cfg *nc;
	cfg_error cerr;
	sup_policy np;
	char err[512];
	if (cfg_load(L->config_path, &nc, &cerr) != CFG_OK) {
		log_error("RELOAD-FAILED", "%s (keeping the old policy)", cerr.message);
		return;
	}
	if (sup_policy_from_cfg(&nc->supervisor, &np, err, sizeof(err)) != SUP_OK) {
		log_error("RELOAD-FAILED", "%s (keeping the old policy)", err);
	} else {
		L->policy = np;
		log_info("RELOADED", "policy from %s: %d-%d workers, %lld per worker",
		         L->config_path ? L->config_path : "built-in defaults", np.min_replicas,
		         np.max_replicas, (long long)np.target);
	}
	cfg_free(nc);
}

/* Resumes from the state file, or starts fresh. */
static void
load_state(live *L)
{
	const cfg_supervisor *s = &L->c->supervisor;
	struct stat sb;
	int initial = s->initial_replicas >= 0 ? s->initial_replicas : s->min_replicas;
	if (stat(s->state_file, &sb) == 0) {
		cfg_error cerr;
		if (sup_statefile_load(s->state_file, &L->st, &cerr) == SUP_OK) {
			log_info("STATE-RESUMED", "%s: %d workers, windows as they were", s->state_file,
			         L->st.current);
			return;
		}
		log_warn("STATE-IGNORED", "%s; starting fresh", cerr.message);
		sup_state_fini(&L->st);
	}
	sup_state_init(&L->st, initial, clk_wall_ms());
}

int
sup_run_live(const cfg *c, const char *config_path)
{
	live L = {.c = c, .config_path = config_path, .queue = c->supervisor.queue, .sigfd = -1};
	char err[512], self[PATH_MAX];
	int status = 1;

	if (sup_policy_from_cfg(&c->supervisor, &L.policy, err, sizeof(err)) != SUP_OK) {
		fprintf(stderr, "%s: %s\n", config_path ? config_path : "built-in configuration", err);
		return 2;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	/* blocked before any thread exists, so every thread inherits it */
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((L.sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_error("START-FAILED", "signalfd: %s", strerror(errno));
		return 1;
	}
	sluice_opts so = {
		.timeout_ms = c->supervisor.polling_interval_ms > 2000 ? c->supervisor.polling_interval_ms
		                                                       : 2000,
		.tls_ca = c->worker.tls_ca, /* the clients of this machine share worker.tls */
		.tls_cert_key = c->worker.tls_cert_key,
		.tls_server_name = c->worker.tls_server_name,
	};
	if (sluice_open(&L.client, c->supervisor.broker, &so) != 0) {
		log_error("START-FAILED", "%s", sluice_errmsg());
		close(L.sigfd);
		return 1;
	}
	sup_pool_opts po = {
		.argv = worker_argv(c, config_path, self, sizeof(self)),
		.shutdown_grace_ms = c->supervisor.shutdown_grace_ms,
		.restart_base_ms = c->supervisor.restart_base_ms,
		.restart_max_ms = c->supervisor.restart_max_ms,
		.crash_loop_count = c->supervisor.crash_loop_count,
		.crash_loop_window_ms = c->supervisor.crash_loop_window_ms,
	};
	if (sup_pool_open(&po, &L.pool, err, sizeof(err)) != 0) {
		log_error("START-FAILED", "%s", err);
		goto out;
	}
	load_state(&L);
	log_info("SUPERVISOR-START", "queue '%s' on %s, mode %s, %d-%d workers, %lld per worker, "
	         "worker command %s", L.queue, c->supervisor.broker,
	         L.policy.mode == SUP_MODE_KEDA ? "keda" : "responsive", L.policy.min_replicas,
	         L.policy.max_replicas, (long long)L.policy.target, po.argv[0]);
	sup_pool_resize(L.pool, L.st.current, clk_mono_ms());

	int64_t next_poll = clk_mono_ms();
	for (;;) {
		int64_t now = clk_mono_ms();
		if (now >= next_poll) {
			one_poll(&L);
			next_poll = now + c->supervisor.polling_interval_ms;
		}
		struct pollfd pfd[MAX_POLL_FDS];
		int fds[MAX_POLL_FDS - 1];
		size_t n = sup_pool_fds(L.pool, fds, MAX_POLL_FDS - 1);
		pfd[0] = (struct pollfd){.fd = L.sigfd, .events = POLLIN};
		for (size_t i = 0; i < n; i++)
			pfd[i + 1] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		int64_t wait = next_poll - clk_mono_ms();
		if (wait > TICK_MS)
			wait = TICK_MS;
		if (wait < 0)
			wait = 0;
		poll(pfd, n + 1, (int)wait);
		bool stop = false;
		struct signalfd_siginfo si;
		while (read(L.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
				log_info("SHUTDOWN", "%s: stopping %d workers gracefully",
				         si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT", sup_pool_running(L.pool));
				stop = true;
			} else if (si.ssi_signo == SIGHUP) {
				reload(&L);
			}
		}
		if (stop)
			break;
		sup_pool_tick(L.pool, clk_mono_ms());
	}
	/* the state keeps the count it decided, so a restart resumes it */
	save_state(&L);
	status = 0;
out:
	sup_pool_close(L.pool);
	if (status == 0) {
		L.broker_down = false;
		sluice_field f[] = {{"desired_workers", 0}, {"current_workers", 0}};
		sluice_report(L.client, L.queue, f, 2);
		log_info("STOPPED", "all workers stopped");
	}
	sup_state_fini(&L.st);
	sluice_close(L.client);
	close(L.sigfd);
	return status;
}

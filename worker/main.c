/*
 * sluice-worker: wires the configuration, the sink, the client and the loop
 * (loop.c), then tears down in reverse. A dedicated thread takes SIGTERM
 * and SIGINT with sigwait and asks the loop to finish the batch in hand;
 * no other thread ever sees a signal. Exit status: 0 stopped cleanly,
 * 1 the sink is unusable at start (or the shutdown overran its grace),
 * 2 bad usage or configuration.
 */
#include "client.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_TIMEOUT_MS 5000
/* After the grace, how long teardown may take before the process just exits. */
#define WATCHDOG_SLACK_MS 5000

static const char usage_text[] =
	"usage: sluice-worker [-c FILE] [-q QUEUE] [-b URL] [-v] [-h]\n"
	"\n"
	"Leases messages from a queue and hands them, in batches, to the sink of\n"
	"the configuration (section `worker`): a SQLite or PostgreSQL table, or a\n"
	"command run once per message. SIGTERM or SIGINT: finish the batch in hand,\n"
	"exit 0.\n"
	"\n"
	"  -c, --config FILE   configuration (default: the built-in defaults)\n"
	"  -q, --queue QUEUE   queue to drain instead of worker.queue\n"
	"  -b, --broker URL    broker instead of worker.broker\n"
	"  -v, --verbose       log debug detail\n"
	"  -h, --help          this text\n"
	"\n"
	"Environment: SLUICE_SUPERVISOR_PID (exit when that parent is gone),\n"
	"SLUICE_STATUS_FD (write 'B' when holding leases, 'I' when not).\n";

static const wrk_sink_ops *const sinks[] = {
	[CFG_SINK_SQLITE] = &wrk_sink_sqlite,
	[CFG_SINK_EXEC] = &wrk_sink_exec,
	[CFG_SINK_POSTGRES] = &wrk_sink_pg,
};

/* The signal thread's state. */
typedef struct sigctl {
	sigset_t set;           /* SIGTERM, SIGINT, SIGUSR1 (our own wake-up) */
	wrk_loop *loop;         /* borrowed */
	int64_t grace_ms;
	atomic_bool quit;       /* main is done: leave on SIGUSR1 */
	atomic_bool settled;    /* the loop returned: nothing is held any more */
} sigctl;

static int
usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "sluice-worker: %s %s\n%s", what, arg, usage_text);
	return 2;
}

/* Waits for signals. The first SIGTERM or SIGINT stops the loop and arms
 * a watchdog: if the process is still here WATCHDOG_SLACK_MS after the
 * grace, it exits anyway. */
static void *
signal_main(void *arg)
{
	sigctl *s = arg;
	int64_t deadline = 0;
	for (;;) {
		siginfo_t si;
		int sig;
		if (deadline == 0) {
			sig = sigwaitinfo(&s->set, &si);
		} else {
			int64_t left = deadline - clk_mono_ms();
			if (left <= 0) {
				if (atomic_load(&s->settled)) {
					log_warn("SHUTDOWN-WATCHDOG", "closing the broker connection hangs; exiting "
					         "(everything in hand was settled)");
					_exit(0);
				}
				log_error("SHUTDOWN-WATCHDOG", "the batch in hand did not finish within the "
				          "grace; exiting (unacknowledged leases will expire)");
				_exit(1);
			}
			struct timespec ts = {left / 1000, (left % 1000) * 1000000};
			sig = sigtimedwait(&s->set, &si, &ts);
		}
		if (sig < 0)
			continue; /* EAGAIN: see the deadline; EINTR */
		if (sig == SIGUSR1) {
			if (atomic_load(&s->quit))
				return NULL;
			continue;
		}
		if (deadline != 0) {
			log_info("SHUTDOWN", "%s again: already finishing", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			continue;
		}
		log_info("SHUTDOWN", "%s: finishing the batch in hand (grace %lld ms)",
		         sig == SIGTERM ? "SIGTERM" : "SIGINT", (long long)s->grace_ms);
		wrk_loop_stop(s->loop);
		deadline = clk_mono_ms() + s->grace_ms + WATCHDOG_SLACK_MS;
	}
}

/* SLUICE_SUPERVISOR_PID: die with the supervisor. Returns false if it is
 * already gone. */
static bool
watch_supervisor(void)
{
	const char *v = getenv("SLUICE_SUPERVISOR_PID");
	if (v == NULL || *v == '\0')
		return true;
	char *end;
	errno = 0;
	long pid = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || pid <= 1) {
		log_warn("SUPERVISOR-PID", "ignoring SLUICE_SUPERVISOR_PID=%s: not a process id", v);
		return true;
	}
	/* first the signal, then the check: no window where the parent dies unseen */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if ((long)getppid() != pid) {
		log_warn("SUPERVISOR-GONE", "supervisor %ld is gone (parent is %ld); exiting", pid,
		         (long)getppid());
		return false;
	}
	return true;
}

/* SLUICE_STATUS_FD: a descriptor for the status byte, made non-blocking
 * and kept from jobs; -1 if unset or unusable. */
static int
status_fd(void)
{
	const char *v = getenv("SLUICE_STATUS_FD");
	if (v == NULL || *v == '\0')
		return -1;
	char *end;
	errno = 0;
	long fd = strtol(v, &end, 10);
	int fl;
	if (errno != 0 || *end != '\0' || fd < 0 || fd > 65535 ||
	    (fl = fcntl((int)fd, F_GETFL)) < 0) {
		log_warn("STATUS-FD", "ignoring SLUICE_STATUS_FD=%s: not an open descriptor", v);
		return -1;
	}
	fcntl((int)fd, F_SETFL, fl | O_NONBLOCK);
	fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	return (int)fd;
}

static void
describe_sink(const cfg_sink *s, char *out, size_t len)
{
	if (s->type == CFG_SINK_EXEC)
		snprintf(out, len, "exec %s (concurrency %d, timeout %lld ms)",
		         s->ncommand > 0 ? s->command[0] : "?", s->concurrency, (long long)s->timeout_ms);
	else if (s->type == CFG_SINK_POSTGRES) /* the DSN may hold a password: the sink logs it redacted */
		snprintf(out, len, "postgres table %s (format %s)", s->table,
		         s->format == CFG_FORMAT_JSON ? "json" : "raw");
	else
		snprintf(out, len, "sqlite %s table %s (synchronous %s)", s->path, s->table,
		         s->synchronous == CFG_SYNC_FULL ? "full"
		         : s->synchronous == CFG_SYNC_NORMAL ? "normal" : "off");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"queue", required_argument, NULL, 'q'},
		{"broker", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *queue = NULL, *broker = NULL;
	bool verbose = false;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:q:b:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'q': queue = optarg; break;
		case 'b': broker = optarg; break;
		case 'v': verbose = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case ':': return usage_error("missing the argument of", argv[optind - 1]);
		default: return usage_error("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (queue != NULL && !cfg_queue_name_valid(queue, strlen(queue)))
		return usage_error("bad queue name (1-128 of A-Z a-z 0-9 . _ -):", queue);
	if (broker != NULL && *broker == '\0')
		return usage_error("empty broker URL for", "-b");

	cfg *c;
	cfg_error cerr;
	if (cfg_load(config_path, &c, &cerr) != CFG_OK) {
		fprintf(stderr, "%s\n", cerr.message);
		return 2;
	}
	/* command-line overrides: the strings stay owned by argv */
	char *file_queue = c->worker.queue, *file_broker = c->worker.broker;
	if (queue != NULL)
		c->worker.queue = (char *)queue;
	if (broker != NULL)
		c->worker.broker = (char *)broker;
	log_init("worker", verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);

	/* Every thread created from here on (NNG's too) inherits this mask:
	 * only the signal thread takes these, with sigwait. */
	sigctl sc = {.grace_ms = c->worker.shutdown_grace_ms};
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);
	atomic_init(&sc.quit, false);
	atomic_init(&sc.settled, false);

	int status = 1;
	void *sink = NULL;
	const wrk_sink_ops *ops = NULL;
	sluice_client *client = NULL;
	wrk_loop *loop = NULL;
	pthread_t sigthread;
	bool sigthread_up = false;
	char err[512], what[512];

	if (!watch_supervisor()) {
		status = 0;
		goto out;
	}
	int sfd = status_fd();

	int type = c->worker.sink.type;
	if (type < 0 || (size_t)type >= sizeof(sinks) / sizeof(sinks[0]) || sinks[type] == NULL) {
		fprintf(stderr, "sluice-worker: sink: type %s is not built into this worker\n",
		        type == CFG_SINK_POSTGRES ? "postgres" : "?");
		goto out;
	}
	ops = sinks[type];
	if (ops->open(&c->worker.sink, &sink, err, sizeof(err)) != WRK_SINK_OK) {
		log_error("SINK-FAILED", "sink: %s", err);
		fprintf(stderr, "sluice-worker: sink: %s\n", err);
		goto out;
	}
	sluice_opts so = {
		.timeout_ms = CLIENT_TIMEOUT_MS,
		.tls_ca = c->worker.tls_ca,
		.tls_cert_key = c->worker.tls_cert_key,
		.tls_server_name = c->worker.tls_server_name,
	};
	if (sluice_open(&client, c->worker.broker, &so) != SLUICE_OK) {
		fprintf(stderr, "sluice-worker: worker.broker: %s\n", sluice_errmsg());
		status = 2;
		goto out;
	}
	wrk_loop_cfg lc = {
		.worker = &c->worker,
		.client = client,
		.ops = ops,
		.sink = sink,
		.status_fd = sfd,
	};
	if (wrk_loop_open(&lc, &loop) != WRK_OK) {
		fprintf(stderr, "sluice-worker: out of memory\n");
		goto out;
	}
	sc.loop = loop;
	if (pthread_create(&sigthread, NULL, signal_main, &sc) != 0) {
		fprintf(stderr, "sluice-worker: cannot start the signal thread\n");
		goto out;
	}
	sigthread_up = true;

	describe_sink(&c->worker.sink, what, sizeof(what));
	log_info("WORKER-START", "queue '%s', sink %s, batch %d, linger %lld ms, broker %s",
	         c->worker.queue, what, c->worker.batch_size, (long long)c->worker.linger_ms,
	         c->worker.broker);
	if (wrk_loop_run(loop) != WRK_OK) {
		log_error("WORKER-FAILED", "cannot start the keepalive thread");
		goto out;
	}
	atomic_store(&sc.settled, true);
	status = 0;
out:
	wrk_loop_close(loop);
	if (ops != NULL)
		ops->close(sink);
	sluice_close(client);
	if (sigthread_up) {
		atomic_store(&sc.quit, true);
		pthread_kill(sigthread, SIGUSR1);
		pthread_join(sigthread, NULL);
	}
	if (status == 0)
		log_info("WORKER-STOP", "stopped cleanly");
	c->worker.queue = file_queue;
	c->worker.broker = file_broker;
	cfg_free(c);
	return status;
}

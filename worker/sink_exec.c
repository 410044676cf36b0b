/*
 * sink_exec: runs sink.command once per message, up to sink.concurrency at
 * once, with the payload on stdin and SLUICE_MESSAGE_ID, SLUICE_QUEUE and
 * SLUICE_ATTEMPT in the environment. Exit 0 acknowledges the message; any
 * other end fails it with the command's last line on stderr (else "exit
 * status N" / "killed by signal N"). A job past sink.timeout is killed with
 * its whole process group.
 *
 * Children are started with posix_spawn (NNG's threads make fork unsafe),
 * with an empty signal mask, default signal dispositions, a process group
 * of their own and only stdin/stdout/stderr open (every descriptor of ours
 * is close-on-exec). One poll loop writes the payloads without blocking
 * (a job that never reads cannot hold the worker), reads the stderr tails
 * and notices exits through pidfds; every child is reaped before commit
 * returns.
 */
#include "sink.h"

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Without pidfds (old kernels) exits are noticed by polling this often. */
#define REAP_TICK_MS 10
#define ENV_VALUE_MAX 160

typedef struct job {
	pid_t pid;           /* 0: slot free */
	int pidfd;           /* readable when the child exits; -1 if unsupported */
	int in_fd;           /* write end of the child's stdin; -1 once closed */
	int err_fd;          /* read end of the child's stderr; -1 once closed */
	size_t item;         /* index into the batch */
	size_t written;      /* payload bytes written */
	int64_t deadline_ms; /* monotonic */
	bool timed_out;
	char line[WRK_ERROR_MAX]; /* the stderr line being read */
	size_t line_len;
	char last[WRK_ERROR_MAX]; /* the last complete non-empty stderr line */
} job;

typedef struct exec_sink {
	const cfg_sink *cfg; /* borrowed */
	int concurrency;
	job *jobs;           /* concurrency slots */
	char **env;          /* environ less our variables, plus 3 slots and NULL */
	size_t nenv;         /* entries copied from environ */
	struct pollfd *pfds; /* 3 per slot */
} exec_sink;

static bool
our_variable(const char *e)
{
	static const char *const names[] = {"SLUICE_MESSAGE_ID=", "SLUICE_QUEUE=", "SLUICE_ATTEMPT=",
	                                    "SLUICE_STATUS_FD=", "SLUICE_SUPERVISOR_PID="};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strncmp(e, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/* Is prog runnable: a path to an executable, or a name found in PATH? */
static bool
runnable(const char *prog)
{
	if (strchr(prog, '/') != NULL)
		return access(prog, X_OK) == 0;
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);
		char full[4096];
		struct stat st;
		if (snprintf(full, sizeof(full), "%.*s/%s", (int)n, n ? path : ".", prog) <
		        (int)sizeof(full) &&
		    stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
			return true;
		path += n + (end ? 1 : 0);
	}
	return false;
}

static void
exec_close(void *arg)
{
	exec_sink *s = arg;
	if (s == NULL)
		return;
	free(s->jobs);
	free(s->env);
	free(s->pfds);
	free(s);
}

static int
exec_open(const cfg_sink *conf, void **out, char *err, size_t errlen)
{
	exec_sink *s;
	size_t n = 0;

	*out = NULL;
	if (conf->command == NULL || conf->ncommand == 0 || conf->command[0] == NULL ||
	    conf->command[0][0] == '\0') {
		snprintf(err, errlen, "sink.command is empty (type exec needs the command to run)");
		return WRK_SINK_EOPEN;
	}
	if (!runnable(conf->command[0])) {
		snprintf(err, errlen, "cannot run %s: %s", conf->command[0],
		         strchr(conf->command[0], '/') ? strerror(errno) : "not found in PATH");
		return WRK_SINK_EOPEN;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto nomem;
	s->cfg = conf;
	s->concurrency = conf->concurrency > 0 ? conf->concurrency : 1;
	while (environ != NULL && environ[n] != NULL)
		n++;
	s->env = calloc(n + 4, sizeof(*s->env));
	s->jobs = calloc((size_t)s->concurrency, sizeof(*s->jobs));
	s->pfds = calloc((size_t)s->concurrency * 3, sizeof(*s->pfds));
	if (s->env == NULL || s->jobs == NULL || s->pfds == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++)
		if (!our_variable(environ[i]))
			s->env[s->nenv++] = environ[i];
	*out = s;
	return WRK_SINK_OK;
nomem:
	exec_close(s);
	snprintf(err, errlen, "out of memory");
	return WRK_SINK_ENOMEM;
}

static int
cloexec_pipe(int fds[2])
{
	if (pipe(fds) != 0)
		return -1;
	/* Only this thread spawns, so setting the flags after pipe() does not race. */
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	return 0;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Starts item i in slot j. Returns 0, or an errno value. */
static int
start(exec_sink *s, job *j, const wrk_item *it, size_t i, int64_t now_ms)
{
	char id_env[ENV_VALUE_MAX], queue_env[ENV_VALUE_MAX], attempt_env[ENV_VALUE_MAX];
	int in[2] = {-1, -1}, errp[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dflt;
	int rc;

	if (cloexec_pipe(in) != 0)
		return errno;
	if (cloexec_pipe(errp) != 0) {
		rc = errno;
		close(in[0]);
		close(in[1]);
		return rc;
	}
	snprintf(id_env, sizeof(id_env), "SLUICE_MESSAGE_ID=%llu", (unsigned long long)it->id);
	snprintf(queue_env, sizeof(queue_env), "SLUICE_QUEUE=%s", it->queue);
	snprintf(attempt_env, sizeof(attempt_env), "SLUICE_ATTEMPT=%u", it->attempt);
	s->env[s->nenv] = id_env;
	s->env[s->nenv + 1] = queue_env;
	s->env[s->nenv + 2] = attempt_env;
	s->env[s->nenv + 3] = NULL;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, errp[1], STDERR_FILENO);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE); /* ignored by the worker; SIG_IGN survives exec */
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGINT);
	posix_spawnattr_setsigdefault(&attr, &dflt);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	                                    POSIX_SPAWN_SETPGROUP);
	char *const *argv = s->cfg->command;
	if (strchr(argv[0], '/') != NULL)
		rc = posix_spawn(&j->pid, argv[0], &fa, &attr, argv, s->env);
	else
		rc = posix_spawnp(&j->pid, argv[0], &fa, &attr, argv, s->env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(in[0]);
	close(errp[1]);
	if (rc != 0) {
		j->pid = 0;
		close(in[1]);
		close(errp[0]);
		return rc;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	j->in_fd = in[1];
	j->err_fd = errp[0];
#ifdef SYS_pidfd_open
	j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
#else
	j->pidfd = -1;
#endif
	j->item = i;
	j->written = 0;
	j->timed_out = false;
	j->line_len = 0;
	j->last[0] = '\0';
	int64_t t = s->cfg->timeout_ms > 0 ? s->cfg->timeout_ms : INT64_MAX / 4;
	j->deadline_ms = now_ms + t;
	if (it->len == 0)
		close_fd(&j->in_fd);
	return 0;
}

/* Writes what the pipe takes of the payload; closes stdin when done or
 * when the child stopped reading. */
static void
feed(job *j, const wrk_item *it)
{
	while (j->in_fd >= 0 && j->written < it->len) {
		ssize_t w = write(j->in_fd, it->payload + j->written, it->len - j->written);
		if (w > 0) {
			j->written += (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && errno == EAGAIN) {
			return;
		} else {
			close_fd(&j->in_fd); /* EPIPE: the job does not want the rest */
			return;
		}
	}
	close_fd(&j->in_fd);
}

static void
take_line(job *j)
{
	while (j->line_len > 0 && (j->line[j->line_len - 1] == '\r' || j->line[j->line_len - 1] == ' '))
		j->line_len--;
	if (j->line_len > 0) {
		memcpy(j->last, j->line, j->line_len);
		j->last[j->line_len] = '\0';
	}
	j->line_len = 0;
}

/* Reads stderr as far as it goes, keeping the last line. */
static void
drain_stderr(job *j)
{
	char buf[4096];
	while (j->err_fd >= 0) {
		ssize_t r = read(j->err_fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			close_fd(&j->err_fd);
			break;
		}
		for (ssize_t k = 0; k < r; k++) {
			if (buf[k] == '\n')
				take_line(j);
			else if (j->line_len < sizeof(j->line) - 1)
				j->line[j->line_len++] = buf[k];
		}
	}
	take_line(j);
}

static void
duration_text(char *out, size_t len, int64_t ms)
{
	if (ms % 1000 == 0)
		snprintf(out, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, len, "%lldms", (long long)ms);
}

/* The child is gone (status from waitpid): records its result, frees the slot. */
static void
finish(exec_sink *s, job *j, int status, wrk_result *res)
{
	wrk_result *r = &res[j->item];
	drain_stderr(j);
	if (j->timed_out) {
		char d[32];
		duration_text(d, sizeof(d), s->cfg->timeout_ms);
		r->state = WRK_ITEM_FAILED;
		snprintf(r->error, sizeof(r->error), "timed out after %s", d);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		r->state = WRK_ITEM_OK;
	} else {
		r->state = WRK_ITEM_FAILED;
		if (j->last[0] != '\0')
			snprintf(r->error, sizeof(r->error), "%s", j->last);
		else if (WIFEXITED(status))
			snprintf(r->error, sizeof(r->error), "exit status %d", WEXITSTATUS(status));
		else
			snprintf(r->error, sizeof(r->error), "killed by signal %d", WTERMSIG(status));
	}
	close_fd(&j->in_fd);
	close_fd(&j->err_fd);
	close_fd(&j->pidfd);
	j->pid = 0;
}

/* Kills a job's process group and waits for the job itself. */
static void
kill_and_reap(job *j)
{
	int status;
	kill(-j->pid, SIGKILL);
	while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR)
		;
	close_fd(&j->in_fd);
	close_fd(&j->err_fd);
	close_fd(&j->pidfd);
	j->pid = 0;
}

static int
exec_commit(void *arg, const wrk_item *items, size_t n, const atomic_llong *deadline,
            wrk_result *res, char *err, size_t errlen)
{
	exec_sink *s = arg;
	size_t next = 0;
	int running = 0, rc = WRK_SINK_OK;

	for (;;) {
		int64_t now = clk_mono_ms();
		int64_t deadline_ms = atomic_load(deadline);
		if (deadline_ms > 0 && now >= deadline_ms)
			break;
		while (rc == WRK_SINK_OK && next < n && running < s->concurrency) {
			job *j = NULL;
			for (int k = 0; k < s->concurrency && j == NULL; k++)
				if (s->jobs[k].pid == 0)
					j = &s->jobs[k];
			int e = start(s, j, &items[next], next, now);
			if (e != 0) {
				/* the command cannot be started at all: the sink is down */
				snprintf(err, errlen, "cannot run %s: %s", s->cfg->command[0], strerror(e));
				rc = WRK_SINK_EFAIL;
				break;
			}
			feed(j, &items[next]);
			next++;
			running++;
		}
		if (running == 0)
			break;

		/* wait for any job to be writable, to write stderr, or to exit */
		nfds_t np = 0;
		int64_t wait = deadline_ms > 0 ? deadline_ms - now : WRK_DEADLINE_POLL_MS;
		if (wait > WRK_DEADLINE_POLL_MS)
			wait = WRK_DEADLINE_POLL_MS; /* the deadline may move meanwhile */
		bool tick = false;
		for (int k = 0; k < s->concurrency; k++) {
			job *j = &s->jobs[k];
			if (j->pid == 0)
				continue;
			if (j->in_fd >= 0)
				s->pfds[np++] = (struct pollfd){.fd = j->in_fd, .events = POLLOUT};
			if (j->err_fd >= 0)
				s->pfds[np++] = (struct pollfd){.fd = j->err_fd, .events = POLLIN};
			if (j->pidfd >= 0)
				s->pfds[np++] = (struct pollfd){.fd = j->pidfd, .events = POLLIN};
			else
				tick = true;
			if (!j->timed_out && j->deadline_ms - now < wait)
				wait = j->deadline_ms - now;
		}
		if (tick && wait > REAP_TICK_MS)
			wait = REAP_TICK_MS;
		if (wait < 0)
			wait = 0;
		if (poll(s->pfds, np, (int)wait) < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			rc = WRK_SINK_EFAIL;
			break;
		}

		now = clk_mono_ms();
		for (int k = 0; k < s->concurrency; k++) {
			job *j = &s->jobs[k];
			int status;
			if (j->pid == 0)
				continue;
			feed(j, &items[j->item]);
			drain_stderr(j);
			pid_t w = waitpid(j->pid, &status, WNOHANG);
			if (w == j->pid) {
				finish(s, j, status, res);
				running--;
			} else if (!j->timed_out && now >= j->deadline_ms) {
				j->timed_out = true;
				kill(-j->pid, SIGKILL); /* reaped on a following turn */
			}
		}
	}
	/* past the deadline, or the sink failed: abandon what still runs */
	for (int k = 0; k < s->concurrency; k++)
		if (s->jobs[k].pid != 0)
			kill_and_reap(&s->jobs[k]);
	for (size_t i = 0; i < n; i++)
		if (res[i].state != WRK_ITEM_OK && res[i].state != WRK_ITEM_FAILED)
			res[i].state = WRK_ITEM_UNTRIED;
	return rc;
}

const wrk_sink_ops wrk_sink_exec = {
	.name = "exec",
	.open = exec_open,
	.commit = exec_commit,
	.close = exec_close,
};

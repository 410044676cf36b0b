/* pool: worker processes started, watched, restarted and stopped. */
#include "pool.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_WORKERS 100000
#define CRASH_HISTORY 64

enum slot_state {
	W_EMPTY = 0,    /* not wanted */
	W_RUNNING,      /* alive */
	W_STOPPING,     /* sent SIGTERM; SIGKILL at kill_at */
	W_WAITING,      /* crashed; start again at restart_at */
};

typedef struct worker {
	int state;
	pid_t pid;
	int status_fd;     /* read end of the worker's status pipe, or -1 */
	bool busy;         /* holds leases ('B'), as last told */
	int64_t kill_at;   /* W_STOPPING: when to SIGKILL */
	int64_t restart_at;
	int64_t started_at;
} worker;

struct sup_pool {
	char **argv;       /* owned, NULL-terminated */
	sup_pool_opts o;
	worker *w;         /* slots; a slot's index is not a worker's identity */
	int nw, capw;
	int wanted;
	uint64_t restarts;
	int consecutive_crashes;
	int64_t crashes[CRASH_HISTORY]; /* times of recent crashes (ring) */
	int ncrash;
	bool looping;
};

int
sup_pool_open(const sup_pool_opts *o, sup_pool **out, char *err, size_t errlen)
{
	sup_pool *p = calloc(1, sizeof(*p));
	size_t n = 0;
	*out = NULL;
	if (p == NULL)
		goto nomem;
	p->o = *o;
	while (o->argv[n] != NULL)
		n++;
	if ((p->argv = calloc(n + 1, sizeof(char *))) == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++)
		if ((p->argv[i] = strdup(o->argv[i])) == NULL)
			goto nomem;
	p->o.argv = p->argv;
	*out = p;
	return 0;
nomem:
	sup_pool_close(p);
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void
close_status(worker *w)
{
	if (w->status_fd >= 0)
		close(w->status_fd);
	w->status_fd = -1;
}

/* Starts a worker in slot w; false (and the slot waits) if it cannot. */
static bool
start(sup_pool *p, worker *w, int64_t now)
{
	int fds[2];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defaults;
	char env_pid[48], env_fd[32];
	char **env;
	size_t n = 0;
	pid_t pid;
	int rc;

	if (pipe(fds) != 0) {
		log_error("WORKER-START-FAILED", "pipe: %s", strerror(errno));
		w->state = W_WAITING;
		w->restart_at = now + p->o.restart_base_ms;
		return false;
	}
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	while (environ[n] != NULL)
		n++;
	env = calloc(n + 3, sizeof(char *));
	if (env == NULL) {
		close(fds[0]);
		close(fds[1]);
		w->state = W_WAITING;
		w->restart_at = now + p->o.restart_base_ms;
		return false;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "SLUICE_SUPERVISOR_PID=", 22) != 0 &&
		    strncmp(environ[i], "SLUICE_STATUS_FD=", 17) != 0)
			env[k++] = environ[i];
	snprintf(env_pid, sizeof(env_pid), "SLUICE_SUPERVISOR_PID=%ld", (long)getpid());
	snprintf(env_fd, sizeof(env_fd), "SLUICE_STATUS_FD=3");
	env[k++] = env_pid;
	env[k++] = env_fd;
	env[k] = NULL;

	posix_spawn_file_actions_init(&fa);
	/* the write end becomes fd 3 (dup2 clears close-on-exec) */
	posix_spawn_file_actions_adddup2(&fa, fds[1], 3);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGHUP);
	sigaddset(&defaults, SIGCHLD);
	sigaddset(&defaults, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	                                    POSIX_SPAWN_SETPGROUP);
	rc = posix_spawn(&pid, p->argv[0], &fa, &attr, p->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(env);
	close(fds[1]);
	if (rc != 0) {
		close(fds[0]);
		log_error("WORKER-START-FAILED", "%s: %s", p->argv[0], strerror(rc));
		w->state = W_WAITING;
		w->restart_at = now + p->o.restart_max_ms;
		return false;
	}
	w->state = W_RUNNING;
	w->pid = pid;
	w->status_fd = fds[0];
	w->busy = false;
	w->started_at = now;
	log_debug("WORKER-STARTED", "pid %ld", (long)pid);
	return true;
}

static void
stop(sup_pool *p, worker *w, int64_t now)
{
	if (w->state == W_WAITING) { /* nothing runs: just forget it */
		w->state = W_EMPTY;
		return;
	}
	kill(w->pid, SIGTERM);
	w->state = W_STOPPING;
	w->kill_at = now + p->o.shutdown_grace_ms;
	log_debug("WORKER-STOPPING", "pid %ld (%s)", (long)w->pid, w->busy ? "busy" : "idle");
}

static worker *
free_slot(sup_pool *p)
{
	for (int i = 0; i < p->nw; i++)
		if (p->w[i].state == W_EMPTY)
			return &p->w[i];
	if (p->nw == p->capw) {
		int cap = p->capw ? p->capw * 2 : 16;
		worker *v = realloc(p->w, (size_t)cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		p->w = v;
		p->capw = cap;
	}
	worker *w = &p->w[p->nw++];
	memset(w, 0, sizeof(*w));
	w->status_fd = -1;
	return w;
}

/* Workers that count toward the wanted number: running or waiting to restart. */
static int
counted(const sup_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->nw; i++)
		n += p->w[i].state == W_RUNNING || p->w[i].state == W_WAITING;
	return n;
}

void
sup_pool_resize(sup_pool *p, int n, int64_t now)
{
	if (n < 0)
		n = 0;
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	p->wanted = n;
	int have = counted(p);
	while (have < n) {
		worker *w = free_slot(p);
		if (w == NULL)
			break;
		start(p, w, now);
		have++;
	}
	/* too many: first those waiting to restart, then idle ones, then busy
	 * ones (they finish and ack their batch before they exit) */
	for (int pass = 0; pass < 3 && have > n; pass++) {
		for (int i = 0; i < p->nw && have > n; i++) {
			worker *w = &p->w[i];
			bool pick = pass == 0 ? w->state == W_WAITING
			                      : w->state == W_RUNNING && w->busy == (pass == 2);
			if (pick) {
				stop(p, w, now);
				have--;
			}
		}
	}
}

static void
read_status(worker *w)
{
	char buf[64];
	ssize_t n;
	while (w->status_fd >= 0 && (n = read(w->status_fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == 'B' || buf[i] == 'I')
				w->busy = buf[i] == 'B';
}

static void
note_crash(sup_pool *p, worker *w, int64_t now, int status)
{
	char how[64];
	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
	else
		snprintf(how, sizeof(how), "signal %d", WTERMSIG(status));
	/* a worker that ran a good while before dying is not looping */
	if (now - w->started_at > p->o.crash_loop_window_ms)
		p->consecutive_crashes = 0;
	p->consecutive_crashes++;
	p->crashes[p->ncrash++ % CRASH_HISTORY] = now;
	int recent = 0;
	int k = p->ncrash < CRASH_HISTORY ? p->ncrash : CRASH_HISTORY;
	for (int i = 0; i < k; i++)
		recent += now - p->crashes[i] < p->o.crash_loop_window_ms;
	int64_t delay = p->o.restart_base_ms;
	for (int i = 1; i < p->consecutive_crashes && delay < p->o.restart_max_ms; i++)
		delay *= 2;
	if (delay > p->o.restart_max_ms)
		delay = p->o.restart_max_ms;
	bool looping = recent >= p->o.crash_loop_count;
	if (looping && !p->looping)
		log_error("CRASH-LOOP", "%d worker crashes in the last %lld s (latest: pid %ld, %s); "
		          "restarting every %lld ms at most", recent,
		          (long long)(p->o.crash_loop_window_ms / 1000), (long)w->pid, how,
		          (long long)delay);
	else
		log_warn("WORKER-CRASHED", "pid %ld: %s; restarting in %lld ms", (long)w->pid, how,
		         (long long)delay);
	p->looping = looping;
	w->state = W_WAITING;
	w->restart_at = now + delay;
}

void
sup_pool_tick(sup_pool *p, int64_t now)
{
	for (int i = 0; i < p->nw; i++)
		read_status(&p->w[i]);
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		for (int i = 0; i < p->nw; i++) {
			worker *w = &p->w[i];
			if ((w->state != W_RUNNING && w->state != W_STOPPING) || w->pid != pid)
				continue;
			read_status(w);
			close_status(w);
			if (w->state == W_STOPPING) {
				log_debug("WORKER-STOPPED", "pid %ld", (long)pid);
				w->state = W_EMPTY;
			} else {
				note_crash(p, w, now, status);
			}
			break;
		}
	}
	for (int i = 0; i < p->nw; i++) {
		worker *w = &p->w[i];
		if (w->state == W_STOPPING && now >= w->kill_at) {
			log_warn("WORKER-KILLED", "pid %ld did not stop within the grace period", (long)w->pid);
			kill(-w->pid, SIGKILL);
			kill(w->pid, SIGKILL);
			w->kill_at = now + 60000;
		} else if (w->state == W_WAITING && now >= w->restart_at) {
			if (start(p, w, now))
				p->restarts++;
		}
	}
	if (p->looping && p->ncrash > 0 &&
	    now - p->crashes[(p->ncrash - 1) % CRASH_HISTORY] > p->o.crash_loop_window_ms) {
		p->looping = false;
		p->consecutive_crashes = 0;
		log_info("CRASH-LOOP-OVER", "no worker crash for %lld s",
		         (long long)(p->o.crash_loop_window_ms / 1000));
	}
}

int
sup_pool_wanted(const sup_pool *p)
{
	return p->wanted;
}

int
sup_pool_running(const sup_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->nw; i++)
		n += p->w[i].state == W_RUNNING;
	return n;
}

int
sup_pool_busy(const sup_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->nw; i++)
		n += p->w[i].state == W_RUNNING && p->w[i].busy;
	return n;
}

int
sup_pool_stopping(const sup_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->nw; i++)
		n += p->w[i].state == W_STOPPING;
	return n;
}

uint64_t
sup_pool_restarts(const sup_pool *p)
{
	return p->restarts;
}

bool
sup_pool_crash_looping(const sup_pool *p)
{
	return p->looping;
}

size_t
sup_pool_fds(const sup_pool *p, int *fds, size_t max)
{
	size_t n = 0;
	for (int i = 0; i < p->nw && n < max; i++)
		if (p->w[i].status_fd >= 0)
			fds[n++] = p->w[i].status_fd;
	return n;
}

void
sup_pool_close(sup_pool *p)
{
	if (p == NULL)
		return;
	sup_pool_resize(p, 0, clk_mono_ms());
	/* wait for them, SIGKILL after the grace */
	while (sup_pool_stopping(p) > 0) {
		sup_pool_tick(p, clk_mono_ms());
		if (sup_pool_stopping(p) > 0)
			usleep(20000);
	}
	for (int i = 0; i < p->nw; i++)
		close_status(&p->w[i]);
	free(p->w);
	if (p->argv != NULL)
		for (size_t i = 0; p->argv[i] != NULL; i++)
			free(p->argv[i]);
	free(p->argv);
	free(p);
}

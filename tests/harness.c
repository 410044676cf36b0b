/* harness: case runner, scratch directories and child processes for tests. */
#include "harness.h"

#include "port.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_CHILDREN 256
#define MAX_ALLOCS 4096

static jmp_buf case_jmp;
static char case_dir[512];
static pid_t children[MAX_CHILDREN];
static int nchildren;
static void *allocs[MAX_ALLOCS];
static int nallocs;
#define MAX_DEFERS 256
static struct {
	void (*fn)(void *);
	void *arg;
} defers[MAX_DEFERS];
static int ndefers;

void
th_defer(void (*fn)(void *), void *arg)
{
	if (ndefers < MAX_DEFERS) {
		defers[ndefers].fn = fn;
		defers[ndefers].arg = arg;
		ndefers++;
	}
}

int64_t
th_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *
keep(void *p)
{
	if (p == NULL) {
		fprintf(stderr, "harness: out of memory\n");
		abort();
	}
	if (nallocs < MAX_ALLOCS)
		allocs[nallocs++] = p;
	return p;
}

void
th_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: FAILED: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	longjmp(case_jmp, 1);
}

const char *
th_dir(void)
{
	return case_dir;
}

static const char *
vfmt(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	char *s = keep(malloc((size_t)n + 1));
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

const char *
th_fmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *s = vfmt(fmt, ap);
	va_end(ap);
	return s;
}

const char *
th_path(const char *name)
{
	return th_fmt("%s/%s", case_dir, name);
}

const char *
th_ipc(const char *name)
{
	return th_fmt("ipc://%s/%s", case_dir, name);
}

const char *
th_bin(const char *name)
{
	const char *bin = getenv("SLUICE_BIN");
	return th_fmt("%s/%s", bin ? bin : "bin", name);
}

const char *
th_src(const char *rel)
{
	const char *src = getenv("SLUICE_SRC");
	return th_fmt("%s/%s", src ? src : ".", rel);
}

int
th_port(void)
{
	int port = port_free_loopback();
	if (port < 0)
		th_fail(__FILE__, __LINE__, "no free port");
	return port;
}

const char *
th_write(const char *name, const char *text)
{
	const char *p = name[0] == '/' ? name : th_path(name);
	FILE *f = fopen(p, "w");
	if (f == NULL)
		th_fail(__FILE__, __LINE__, "cannot write %s: %s", p, strerror(errno));
	fputs(text, f);
	fclose(f);
	return p;
}

void
th_sock_timeouts(int fd, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int
th_dial_tcp(const char *addr)
{
	char host[64];
	if (strncmp(addr, "tcp://", 6) == 0)
		addr += 6;
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
		return -1;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	th_sock_timeouts(fd, 5000);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

char *
th_recv_all(int fd)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	ssize_t n;
	if (buf == NULL)
		return NULL;
	while (len < cap - 1 && (n = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return keep(buf);
}

char *
th_read(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf == NULL)
		return NULL;
	buf[len] = '\0';
	return keep(buf);
}

pid_t
th_spawn(const char *log_name, char *const argv[])
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	pid_t pid;
	const char *log = th_path(log_name);

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
	int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "cannot start %s: %s", argv[0], strerror(rc));
	if (nchildren < MAX_CHILDREN)
		children[nchildren++] = pid;
	return pid;
}

static void
forget_child(pid_t pid)
{
	for (int i = 0; i < nchildren; i++)
		if (children[i] == pid) {
			children[i] = children[--nchildren];
			return;
		}
}

int
th_wait(pid_t pid, int timeout_ms)
{
	int64_t end = th_now_ms() + timeout_ms;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			forget_child(pid);
			return status;
		}
		if (r < 0 && errno != EINTR) {
			forget_child(pid);
			return -1;
		}
		if (th_now_ms() >= end)
			return -1;
		usleep(10000);
	}
}

int
th_stop(pid_t pid, int sig, int timeout_ms)
{
	kill(pid, sig);
	int status = th_wait(pid, timeout_ms);
	if (status == -1) {
		kill(pid, SIGKILL);
		th_wait(pid, 5000);
	}
	return status;
}

bool
th_wait_file(const char *path, const char *text, int timeout_ms)
{
	int64_t end = th_now_ms() + timeout_ms;
	do {
		char *s = th_read(path);
		if (s != NULL && strstr(s, text) != NULL)
			return true;
		usleep(20000);
	} while (th_now_ms() < end);
	return false;
}

int
th_sh(char **out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *cmd = vfmt(fmt, ap);
	va_end(ap);
	const char *full = th_fmt("cd '%s' && T='%s' && export T && %s", case_dir, case_dir, cmd);
	FILE *p = popen(full, "r");
	if (p == NULL)
		return -1;
	size_t cap = 4096, len = 0, n;
	char *buf = malloc(cap), tmp[4096];
	if (buf == NULL) {
		pclose(p);
		return -1;
	}
	while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0) {
		if (len + n + 1 > cap) {
			while (len + n + 1 > cap)
				cap *= 2;
			char *nb = realloc(buf, cap);
			if (nb == NULL)
				break;
			buf = nb;
		}
		memcpy(buf + len, tmp, n);
		len += n;
	}
	buf[len] = '\0';
	keep(buf);
	int status = pclose(p);
	if (out != NULL)
		*out = buf;
	if (status == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

long
th_scaled(long n)
{
	const char *s = getenv("SLUICE_TEST_SCALE");
	double f = s ? atof(s) : 1.0;
	long v = (long)((double)n * (f > 0 ? f : 1.0));
	return v < 1 ? 1 : v;
}

static void
remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char sub[1024];
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			struct stat st;
			if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(sub);
			else
				unlink(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

static void
end_case(void)
{
	for (int i = 0; i < nchildren; i++) {
		kill(children[i], SIGKILL);
		waitpid(children[i], NULL, 0);
	}
	nchildren = 0;
	while (ndefers > 0) {
		ndefers--;
		defers[ndefers].fn(defers[ndefers].arg);
	}
	for (int i = 0; i < nallocs; i++)
		free(allocs[i]);
	nallocs = 0;
}

/* setjmp in a function of its own, so no local of th_run is clobbered. */
static int
run_one(void (*fn)(void))
{
	if (setjmp(case_jmp) != 0)
		return 0;
	fn();
	return 1;
}

int
th_run(int argc, char **argv, const th_case *cases)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	const char *tmp = getenv("TMPDIR");
	int failed = 0, ran = 0;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (const th_case *c = cases; c->name != NULL; c++) {
		if (only != NULL && strcmp(only, c->name) != 0)
			continue;
		snprintf(case_dir, sizeof(case_dir), "%s/sluice-test-XXXXXX", tmp ? tmp : "/tmp");
		if (mkdtemp(case_dir) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		int64_t t0 = th_now_ms();
		ran++;
		int ok = run_one(c->fn);
		int64_t took = th_now_ms() - t0;
		end_case();
		if (ok) {
			printf("ok   %s (%lld ms)\n", c->name, (long long)took);
		} else {
			failed++;
			printf("FAIL %s (%lld ms) scratch %s\n", c->name, (long long)took, case_dir);
		}
		if (ok && getenv("TH_KEEP") == NULL)
			remove_tree(case_dir);
	}
	if (only != NULL && ran == 0) {
		fprintf(stderr, "no case named %s\n", only);
		return 2;
	}
	printf("%d/%d cases passed\n", ran - failed, ran);
	return failed ? 1 : 0;
}

/*
 * harness: Sluice's small test framework. A test file defines cases and a
 * table of them, and ends with TH_MAIN(cases). Each case gets its own
 * scratch directory (removed afterwards unless TH_KEEP is set), its own
 * ipc:// paths inside it, and any child it spawns is killed by PID when the
 * case ends. A failed CHECK ends the case at once and the run goes on.
 *
 *   static void put_then_count(void) { CHECK(th_sh("...") == 0); }
 *   static const th_case cases[] = { TH_CASE(put_then_count), {NULL, NULL} };
 *   TH_MAIN(cases)
 *
 * Run one case with `./test_name case_name`.
 */
#ifndef SLUICE_HARNESS_H
#define SLUICE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

typedef struct th_case {
	const char *name;
	void (*fn)(void);
} th_case;

#define TH_CASE(fn) {#fn, fn}
#define TH_MAIN(cases)                                                         \
	int main(int argc, char **argv) { return th_run(argc, argv, cases); }

int th_run(int argc, char **argv, const th_case *cases);

/* Records a failure and ends the current case. */
void th_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define CHECK(cond)                                                            \
	do {                                                                       \
		if (!(cond))                                                           \
			th_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                   \
	} while (0)
#define CHECK_EQ(a, b)                                                         \
	do {                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                    \
		if (a_ != b_)                                                          \
			th_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_,  \
			        b_);                                                       \
	} while (0)
#define CHECK_STR(a, b)                                                        \
	do {                                                                       \
		const char *a_ = (a), *b_ = (b);                                       \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                   \
			th_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,  \
			        a_ ? a_ : "(null)", b_ ? b_ : "(null)");                   \
	} while (0)
#define CHECK_CONTAINS(hay, needle)                                            \
	do {                                                                       \
		const char *h_ = (hay), *n_ = (needle);                                \
		if (h_ == NULL || strstr(h_, n_) == NULL)                              \
			th_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"",      \
			        h_ ? h_ : "(null)", n_);                                   \
	} while (0)

/* Scratch directory of the current case. */
const char *th_dir(void);
/* th_dir()/name; the result lives until the case ends. */
const char *th_path(const char *name);
/* ipc://th_dir()/name; lives until the case ends. */
const char *th_ipc(const char *name);
/* A free TCP port on 127.0.0.1 (bound and released; good enough for tests). */
int th_port(void);
/* printf into memory that lives until the case ends. */
const char *th_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Path of a built program: $SLUICE_BIN/name. */
const char *th_bin(const char *name);
/* Path of a source file: $SLUICE_SRC/rel. */
const char *th_src(const char *rel);

/* Writes text to th_path(name); returns the full path. */
const char *th_write(const char *name, const char *text);
/* Reads a whole file (NUL-terminated); lives until the case ends; NULL if
 * unreadable. */
char *th_read(const char *path);
/* Sets fd's send and receive timeouts to ms. */
void th_sock_timeouts(int fd, int ms);
/* Connects to addr ("host:port" or "tcp://host:port", IPv4) with 5 s send
 * and receive timeouts; the socket, or -1. */
int th_dial_tcp(const char *addr);
/* Reads a socket until the peer closes it, it fails or 64 KiB are in
 * (NUL-terminated); lives until the case ends. */
char *th_recv_all(int fd);

/* Starts argv (NULL-terminated) in its own process group, stdout and stderr
 * appended to th_path(log_name). The child is killed when the case ends. */
pid_t th_spawn(const char *log_name, char *const argv[]);
/* Sends sig, waits up to timeout_ms for the exit; returns the wait status,
 * or -1 if it did not exit (it is then killed with SIGKILL). */
int th_stop(pid_t pid, int sig, int timeout_ms);
/* Waits for a child started by th_spawn to exit; returns its wait status or
 * -1 on timeout (the child keeps running). */
int th_wait(pid_t pid, int timeout_ms);
/* Waits until the file contains text; true if it did within timeout_ms. */
bool th_wait_file(const char *path, const char *text, int timeout_ms);

/* Runs a shell command (sh -c) in th_dir() with SLUICE_BIN and T (the
 * scratch dir) in its environment; stdout is captured into *out (lives
 * until the case ends) when out is not NULL. Returns the exit code, or -1. */
int th_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs fn(arg) when the current case ends (after its children are
 * killed), last registered first. */
void th_defer(void (*fn)(void *), void *arg);

/* Monotonic milliseconds. */
int64_t th_now_ms(void);

/* A count scaled for the run: SLUICE_TEST_SCALE (default 1.0) times n,
 * at least 1. The sanitizer build runs with a smaller scale. */
long th_scaled(long n);

#endif

/* log: formats a whole line into a stack buffer, then one write(2). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int log_threshold = LOG_LEVEL_INFO;
static char role_name[32] = "sluice";

static const char *const level_names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void
log_init(const char *role, int level)
{
	snprintf(role_name, sizeof(role_name), "%s", role);
	log_threshold = level;
}

int
log_level_parse(const char *name)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++)
		if (strcasecmp(name, names[i]) == 0)
			return i;
	return -1;
}

void
log_write(int level, const char *event, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;
	int k;

	if (level < 0 || level > LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_ERROR;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s[%ld] %s ",
	             ts.tv_nsec / 1000000, level_names[level], role_name, (long)getpid(),
	             event);
	if (k > 0)
		n += (size_t)k;
	if (n >= sizeof(line) - 2)
		n = sizeof(line) - 2;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (k > 0)
		n += (size_t)k;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* truncated: keep the newline */
	line[n++] = '\n';
	/* A short write to stderr is not worth retrying: logging must not block. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

/*
 * replay: reads a trace line by line, decides each poll with sup_decide and
 * writes one CSV row per poll. Nothing is kept per row, so a trace of any
 * length replays in constant memory.
 */
#include "replay.h"

#include "state.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum column {
	COL_T,
	COL_DEPTH,
	COL_IN_FLIGHT,
	COL_CURRENT,
	COL_READY,
	COL_LEASES,
	COL_P99,
	COL_RATIO,
	NCOLUMNS,
};

static const char *const column_names[NCOLUMNS] = {
	[COL_T] = "t",
	[COL_DEPTH] = "depth",
	[COL_IN_FLIGHT] = "in_flight",
	[COL_CURRENT] = "current",
	[COL_READY] = "ready",
	[COL_LEASES] = "leases",
	[COL_P99] = "sink_commit_p99_ms",
	[COL_RATIO] = "sink_failure_ratio",
};

#define MAX_FIELDS NCOLUMNS

typedef struct trace {
	const char *name;
	long line;
	char *err;
	size_t errlen;
	int ncols;
	int col_of[MAX_FIELDS]; /* field index -> enum column */
} trace;

static int
bad_line(trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
bad_line(trace *t, const char *fmt, ...)
{
	int n = snprintf(t->err, t->errlen, "%s:%ld: ", t->name, t->line);
	if (n >= 0 && (size_t)n < t->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(t->err + n, t->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return SUP_E_TRACE;
}

/* Splits line in place at commas, trimming blanks around each field.
 * Returns the number of fields, or -1 if there are more than max. */
static int
split(char *line, char **fields, int max)
{
	int n = 0;
	char *p = line;
	for (;;) {
		char *end = strchr(p, ',');
		if (end != NULL)
			*end = '\0';
		if (n == max)
			return -1;
		while (*p == ' ' || *p == '\t')
			p++;
		char *e = p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		fields[n++] = p;
		if (end == NULL)
			return n;
		p = end + 1;
	}
}

static int
parse_int(const char *s, int64_t max, int64_t *out)
{
	int64_t v = 0;
	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

static int
read_header(trace *t, char *line)
{
	char *f[MAX_FIELDS];
	bool seen[NCOLUMNS] = {false};
	int n = split(line, f, MAX_FIELDS);

	if (n < 3 || strcmp(f[0], "t") != 0 || strcmp(f[1], "depth") != 0 ||
	    strcmp(f[2], "in_flight") != 0)
		return bad_line(t, "the header must start with t,depth,in_flight");
	for (int i = 0; i < n; i++) {
		int c = -1;
		for (int k = 0; k < NCOLUMNS; k++)
			if (strcmp(f[i], column_names[k]) == 0)
				c = k;
		if (c < 0)
			return bad_line(t,
			                "unknown column '%s' (known: current, ready, leases, "
			                "sink_commit_p99_ms, sink_failure_ratio)",
			                f[i]);
		if (seen[c])
			return bad_line(t, "column '%s' appears twice", f[i]);
		seen[c] = true;
		t->col_of[i] = c;
	}
	t->ncols = n;
	return SUP_OK;
}

/* One trace row into a poll; *t_text borrows from line. */
static int
read_row(trace *t, char *line, const char **t_text, int64_t *t_ms, sup_poll *poll)
{
	char *f[MAX_FIELDS + 1];
	int n = split(line, f, MAX_FIELDS + 1);
	int64_t v;
	bool have_depth = false, have_in_flight = false, health = false;

	if (n != t->ncols)
		return bad_line(t, "expected %d fields, found %d%s", t->ncols, n < 0 ? MAX_FIELDS + 1 : n,
		                n < 0 ? " or more" : "");
	*poll = (sup_poll)SUP_POLL_INIT;
	for (int i = 0; i < n; i++) {
		const char *s = f[i];
		bool empty = *s == '\0';
		switch (t->col_of[i]) {
		case COL_T:
			if (cfg_seconds_parse(s, t_ms) != 0)
				return bad_line(t, "t: '%s' is not seconds (e.g. 12 or 12.5, at most 3 decimals)",
				                s);
			*t_text = s;
			break;
		case COL_DEPTH:
			if (empty)
				break;
			if (parse_int(s, SUP_METRIC_MAX, &poll->depth) != 0)
				return bad_line(t, "depth: '%s' is not a whole number from 0 to 1e15", s);
			have_depth = true;
			break;
		case COL_IN_FLIGHT:
			if (empty)
				break;
			if (parse_int(s, SUP_METRIC_MAX, &poll->in_flight) != 0)
				return bad_line(t, "in_flight: '%s' is not a whole number from 0 to 1e15", s);
			have_in_flight = true;
			break;
		case COL_CURRENT:
		case COL_READY:
		case COL_LEASES:
			if (empty)
				break;
			if (parse_int(s, SUP_REPLICAS_MAX, &v) != 0)
				return bad_line(t, "%s: '%s' is not a whole number from 0 to %d",
				                column_names[t->col_of[i]], s, SUP_REPLICAS_MAX);
			if (t->col_of[i] == COL_CURRENT)
				poll->current = (int)v;
			else if (t->col_of[i] == COL_READY)
				poll->ready = (int)v;
			else
				poll->leases = (int)v;
			break;
		case COL_P99:
			if (empty)
				break;
			if (parse_int(s, INT64_C(1000000000000), &poll->sink_commit_p99_ms) != 0)
				return bad_line(t, "sink_commit_p99_ms: '%s' is not a whole number of ms", s);
			health = true;
			break;
		case COL_RATIO: {
			if (empty)
				break;
			char *end;
			errno = 0;
			double r = strtod(s, &end);
			if (*end != '\0' || errno != 0 || !isfinite(r) || r < 0 || s[0] == '+' || s[0] == '-')
				return bad_line(t, "sink_failure_ratio: '%s' is not a ratio from 0 to 1", s);
			poll->sink_failure_ratio = r;
			health = true;
			break;
		}
		}
	}
	if (have_depth && !have_in_flight)
		return bad_line(t, "in_flight: empty, but depth is given (leave depth empty for a failed "
		                   "poll)");
	poll->ok = have_depth;
	if (!have_depth) {
		poll->depth = 0;
		poll->in_flight = 0;
	}
	poll->sink_reported = health;
	return SUP_OK;
}

/* One output row, built in memory and written with one fwrite: t as
 * given, the metric, the count, the reason quoted when it holds a comma or
 * a quote (quotes doubled). */
typedef struct row {
	char buf[1024];
	size_t len;
} row;

static void
put(row *r, const char *s, size_t n)
{
	if (n > sizeof(r->buf) - r->len)
		n = sizeof(r->buf) - r->len;
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

static void
put_field(row *r, const char *s)
{
	size_t n = strlen(s);
	if (strpbrk(s, ",\"\r\n") == NULL) {
		put(r, s, n);
		return;
	}
	put(r, "\"", 1);
	for (const char *q; (q = strchr(s, '"')) != NULL; s = q + 1) {
		put(r, s, (size_t)(q - s) + 1);
		put(r, "\"", 1);
	}
	put(r, s, strlen(s));
	put(r, "\"", 1);
}

static void
put_int(row *r, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
	put(r, tmp, (size_t)n);
}

int
sup_replay(const sup_policy *p, sup_state *st, FILE *in, const char *trace_name, FILE *out,
           char *err, size_t errlen)
{
	trace t = {.name = trace_name, .err = err, .errlen = errlen};
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	bool header = false, have_prev = false;
	int64_t prev = 0;
	int rc = SUP_OK;

	fputs("t,metric,replicas,reason\n", out);
	while ((len = getline(&line, &cap, in)) >= 0) {
		t.line++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (!header) {
			if ((rc = read_header(&t, line)) != SUP_OK)
				goto done;
			header = true;
			continue;
		}

		const char *t_text = "";
		int64_t now;
		sup_poll poll;
		sup_decision d;
		if ((rc = read_row(&t, line, &t_text, &now, &poll)) != SUP_OK)
			goto done;
		if (have_prev && now < prev) {
			rc = bad_line(&t, "t: %s is earlier than the row before", t_text);
			goto done;
		}
		have_prev = true;
		prev = now;
		rc = sup_decide(p, st, now, &poll, &d);
		if (rc == SUP_E_NOMEM) {
			snprintf(err, errlen, "%s:%ld: out of memory", trace_name, t.line);
			goto done;
		}
		if (rc != SUP_OK) {
			rc = bad_line(&t, "values out of range");
			goto done;
		}

		row r = {.len = 0};
		put(&r, t_text, strlen(t_text));
		put(&r, ",", 1);
		if (d.has_metric && d.metric_den == 1) {
			put_int(&r, d.metric_num);
		} else if (d.has_metric) {
			char metric[48];
			sup_format_metric(d.metric_num, d.metric_den, metric, sizeof(metric));
			put(&r, metric, strlen(metric));
		}
		put(&r, ",", 1);
		put_int(&r, d.replicas);
		put(&r, ",", 1);
		put_field(&r, d.reason);
		put(&r, "\n", 1);
		fwrite(r.buf, 1, r.len, out);
	}
	if (ferror(in)) {
		snprintf(err, errlen, "%s: cannot read: %s", trace_name, strerror(errno));
		rc = SUP_E_IO;
		goto done;
	}
	if (!header) {
		t.line = 1;
		rc = bad_line(&t, "no header (expected t,depth,in_flight)");
		goto done;
	}

done:
	free(line);
	if (fflush(out) != 0 && rc == SUP_OK) {
		snprintf(err, errlen, "cannot write the output: %s", strerror(errno));
		rc = SUP_E_IO;
	}
	return rc;
}

/*
 * statefile: formats a sup_state as STATE.yaml and replaces the file
 * atomically (temporary file, fsync, rename, fsync of the directory);
 * converts config/'s cfg_state back into a sup_state.
 */
#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Seconds with up to 3 decimals, trailing zeros dropped: "12", "12.5". */
static void
put_seconds(FILE *f, int64_t ms)
{
	const char *sign = ms < 0 ? "-" : "";
	uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	if (a % 1000 == 0) {
		fprintf(f, "%s%" PRIu64, sign, a / 1000);
		return;
	}
	char digits[12];
	snprintf(digits, sizeof(digits), "%03u", (unsigned)(a % 1000));
	for (int i = 2; i > 0 && digits[i] == '0'; i--)
		digits[i] = '\0';
	fprintf(f, "%s%" PRIu64 ".%s", sign, a / 1000, digits);
}

static void
put_samples(FILE *f, const char *key, const sup_sample *v, size_t n)
{
	if (n == 0) {
		fprintf(f, "%s: []\n", key);
		return;
	}
	fprintf(f, "%s:\n", key);
	for (size_t i = 0; i < n; i++) {
		fputs("  - [", f);
		put_seconds(f, v[i].t_ms);
		fprintf(f, ", %" PRId64 "]\n", v[i].n);
	}
}

/* A series copied out of the state (heap; NULL when empty). */
static int
copy_out(const sup_state *st, int which, sup_sample **v, size_t *n)
{
	size_t want = which == 0 ? sup_state_recommendations(st, NULL, 0)
	                         : sup_state_events(st, which == 1, NULL, 0);
	*v = NULL;
	*n = want;
	if (want == 0)
		return SUP_OK;
	*v = malloc(want * sizeof(**v));
	if (*v == NULL)
		return SUP_E_NOMEM;
	if (which == 0)
		sup_state_recommendations(st, *v, want);
	else
		sup_state_events(st, which == 1, *v, want);
	return SUP_OK;
}

int
sup_statefile_format(const sup_state *st, char **text, size_t *len)
{
	sup_sample *rec = NULL, *up = NULL, *down = NULL;
	size_t nrec, nup, ndown;
	FILE *f = NULL;
	int rc = SUP_E_NOMEM;

	*text = NULL;
	*len = 0;
	if (copy_out(st, 0, &rec, &nrec) != SUP_OK || copy_out(st, 1, &up, &nup) != SUP_OK ||
	    copy_out(st, 2, &down, &ndown) != SUP_OK)
		goto fail;
	if ((f = open_memstream(text, len)) == NULL)
		goto fail;

	fputs("# sluice-supervisor state; times in seconds. See docs/scaling.md.\n", f);
	fputs("t0: ", f);
	put_seconds(f, st->t0_ms);
	fprintf(f, "\ncurrent: %d\nlast_active: ", st->current);
	if (st->has_last_active)
		put_seconds(f, st->last_active_ms);
	else
		fputs("null", f);
	fprintf(f, "\nfailures: %d\n", st->failures);
	if (st->seeded)
		put_samples(f, "recommendations", rec, nrec);
	else
		fputs("# recommendations omitted: the first poll seeds them\n", f);
	put_samples(f, "scale_up_events", up, nup);
	put_samples(f, "scale_down_events", down, ndown);
	fputs("guard_since: ", f);
	if (st->guard_over)
		put_seconds(f, st->guard_since_ms);
	else
		fputs("null", f);
	fputc('\n', f);
	if (fclose(f) != 0) {
		f = NULL;
		goto fail;
	}
	f = NULL;
	rc = SUP_OK;

fail:
	if (f != NULL)
		fclose(f);
	if (rc != SUP_OK) {
		free(*text);
		*text = NULL;
		*len = 0;
	}
	free(down);
	free(up);
	free(rec);
	return rc;
}

static int
io_fail(char *err, size_t errlen, const char *path, const char *what)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s: %s", path, what, strerror(errno));
	return SUP_E_IO;
}

int
sup_statefile_write(const char *path, const sup_state *st, char *err, size_t errlen)
{
	char *text = NULL, *tmp = NULL, *dir = NULL;
	size_t len;
	int fd = -1, rc;

	if ((rc = sup_statefile_format(st, &text, &len)) != SUP_OK) {
		snprintf(err, errlen, "%s: out of memory", path);
		return rc;
	}
	size_t plen = strlen(path);
	tmp = malloc(plen + 8);
	dir = malloc(plen + 2);
	if (tmp == NULL || dir == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = SUP_E_NOMEM;
		goto done;
	}
	snprintf(tmp, plen + 8, "%s.XXXXXX", path);
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, plen + 2, ".");
	else if (slash == path)
		snprintf(dir, plen + 2, "/");
	else
		snprintf(dir, plen + 2, "%.*s", (int)(slash - path), path);

	/* mkstemp creates the file with mode 0600 */
	if ((fd = mkstemp(tmp)) < 0) {
		rc = io_fail(err, errlen, path, "cannot create a temporary file");
		tmp[0] = '\0';
		goto done;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = io_fail(err, errlen, path, "cannot write");
			goto done;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		rc = io_fail(err, errlen, path, "cannot fsync");
		goto done;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = io_fail(err, errlen, path, "cannot close");
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = io_fail(err, errlen, path, "cannot rename into place");
		goto done;
	}
	tmp[0] = '\0'; /* renamed: nothing to remove */
	/* the rename itself is durable once the directory is */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0 && errno != EINVAL) {
			rc = io_fail(err, errlen, path, "cannot fsync the directory");
			close(dfd);
			goto done;
		}
		close(dfd);
	}
	rc = SUP_OK;

done:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL && tmp[0] != '\0' && rc != SUP_OK)
		unlink(tmp);
	free(dir);
	free(tmp);
	free(text);
	return rc;
}

static int
by_time(const void *a, const void *b)
{
	const cfg_state_sample *x = a, *y = b;
	return x->t_ms < y->t_ms ? -1 : x->t_ms > y->t_ms;
}

/* Sorted copy (stable enough: equal times keep no meaning of order for a
 * max or a sum). */
static cfg_state_sample *
sorted(const cfg_state_sample *v, size_t n)
{
	if (n == 0)
		return NULL;
	cfg_state_sample *c = malloc(n * sizeof(*c));
	if (c == NULL)
		return NULL;
	memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), by_time);
	return c;
}

int
sup_state_from_cfg(const cfg_state *cs, sup_state *st)
{
	cfg_state_sample *v;
	int rc = SUP_OK;

	sup_state_init(st, cs->current, cs->t0_ms);
	st->has_last_active = cs->has_last_active;
	st->last_active_ms = cs->last_active_ms;
	st->failures = cs->failures;
	st->guard_over = cs->has_guard_since;
	st->guard_since_ms = cs->guard_since_ms;

	if (cs->has_recommendations) {
		st->seeded = true;
		if (cs->nrecommendations > 0) {
			if ((v = sorted(cs->recommendations, cs->nrecommendations)) == NULL)
				return SUP_E_NOMEM;
			for (size_t i = 0; i < cs->nrecommendations && rc == SUP_OK; i++)
				rc = sup_state_add_recommendation(st, v[i].t_ms, v[i].n);
			free(v);
		}
	}
	for (int up = 1; up >= 0 && rc == SUP_OK; up--) {
		const cfg_state_sample *src = up ? cs->scale_up_events : cs->scale_down_events;
		size_t n = up ? cs->nscale_up_events : cs->nscale_down_events;
		if (n == 0)
			continue;
		if ((v = sorted(src, n)) == NULL)
			return SUP_E_NOMEM;
		for (size_t i = 0; i < n && rc == SUP_OK; i++)
			rc = sup_state_add_event(st, up, v[i].t_ms, v[i].n);
		free(v);
	}
	return rc;
}

int
sup_statefile_load(const char *path, sup_state *st, cfg_error *err)
{
	cfg_state *cs = NULL;
	int rc = cfg_state_load(path, &cs, err);

	sup_state_init(st, 0, 0);
	switch (rc) {
	case CFG_OK:
		break;
	case CFG_E_IO:
		return SUP_E_IO;
	case CFG_E_NOMEM:
		return SUP_E_NOMEM;
	default:
		return SUP_E_INVALID;
	}
	rc = sup_state_from_cfg(cs, st);
	cfg_state_free(cs);
	if (rc != SUP_OK)
		snprintf(err->message, sizeof(err->message), "%s: out of memory", path);
	return rc;
}

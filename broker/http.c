/* placeholder until the HTTP API lands: the broker runs without it */
#include "http.h"

#include <stdio.h>

int
brk_http_open(const cfg *c, brk_writer *w, brk_http **out, char *err, size_t errlen)
{
	(void)c;
	(void)w;
	(void)err;
	(void)errlen;
	*out = NULL;
	return 0;
}

void
brk_http_drain(brk_http *h)
{
	(void)h;
}

void
brk_http_close(brk_http *h)
{
	(void)h;
}

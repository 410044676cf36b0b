/* libFuzzer target: the configuration loader on arbitrary bytes. Every
 * input must load or fail with a one-line message, and leak nothing. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cfg *c = NULL;
	cfg_error err;
	int rc = cfg_load_buffer("fuzz.yaml", (const char *)data, size, &c, &err);

	if (rc == CFG_OK) {
		/* the derived defaults are always there */
		if (c->worker.broker == NULL || c->supervisor.queue == NULL ||
		    c->broker.nlisten == 0 || c->broker.listen[c->broker.nlisten] != NULL)
			abort();
		cfg_free(c);
	} else if (c != NULL || strchr(err.message, '\n') != NULL || err.message[0] == '\0') {
		abort();
	}
	return 0;
}

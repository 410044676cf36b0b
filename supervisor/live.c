/*
 * live: PLACEHOLDER. The live supervisor is not written yet; this stub
 * keeps the program linkable and says so. Replace the whole file.
 */
#include "live.h"

#include "log.h"

int
sup_run_live(const cfg *c, const char *config_path)
{
	(void)c;
	(void)config_path;
	log_error("LIVE-NOT-BUILT", "live supervision is not built yet; use --replay");
	return 1;
}

/*
 * statefile: the supervisor's state on disk (format in config/state.h and
 * docs/scaling.md). Writing is here; reading is config/'s (libyaml), and
 * this file converts what it reads into a sup_state.
 *
 * Times in the file are seconds; a sup_state counts milliseconds on the
 * same clock.
 */
#ifndef SLUICE_SUPERVISOR_STATEFILE_H
#define SLUICE_SUPERVISOR_STATEFILE_H

#include <stddef.h>

#include "config.h"
#include "policy.h"
#include "state.h"

/* Formats st as STATE.yaml text into a new heap string (*text, owned by the
 * caller, NUL-terminated, *len bytes). SUP_E_NOMEM on failure. */
int sup_statefile_format(const sup_state *st, char **text, size_t *len);

/* Writes st to path atomically: a temporary file in the same directory
 * (mode 0600), fsync, rename over path, fsync of the directory. A crash
 * leaves the old file or the new one, never a mix. On failure returns
 * SUP_E_IO or SUP_E_NOMEM with "PATH: what failed" in err. */
int sup_statefile_write(const char *path, const sup_state *st, char *err, size_t errlen);

/* Reads path into *st (initialized here; sup_state_fini it, also after a
 * failure). Returns SUP_OK, or SUP_E_IO / SUP_E_INVALID / SUP_E_NOMEM with
 * the config-style message ("FILE:LINE:COLUMN: key: message") in err. */
int sup_statefile_load(const char *path, sup_state *st, cfg_error *err);

/* Converts a state read by config/ into *st (initialized here). Samples are
 * put in time order first. */
int sup_state_from_cfg(const cfg_state *cs, sup_state *st);

#endif

/*
 * replay: evaluates the scaling rules over a recorded trace, poll by poll,
 * without processes: `sluice-supervisor -c FILE --replay TRACE.csv
 * [--state STATE.yaml]`.
 *
 * Trace (CSV): a header starting t,depth,in_flight, then optional columns in
 * any order, found by name:
 *   current             the live count before this poll (overrides the state)
 *   ready               workers ready, for metric_type value (default current)
 *   leases              workers holding leases (responsive scale-in floor;
 *                       default min(current, in_flight))
 *   sink_commit_p99_ms  sink health for the database guard; the row reports
 *   sink_failure_ratio  sink health when either cell is given
 * t is seconds (up to 3 decimals), never decreasing. An empty depth is a
 * failed poll; an empty optional cell means "not given for this row".
 *
 * Output (CSV): header t,metric,replicas,reason; one row per trace row; t
 * printed as given, metric empty when the read failed and no fallback
 * applied, reason quoted when it holds a comma.
 */
#ifndef SLUICE_SUPERVISOR_REPLAY_H
#define SLUICE_SUPERVISOR_REPLAY_H

#include <stddef.h>
#include <stdio.h>

#include "policy.h"

/* Replays trace (named trace_name in messages) from state *st, writing the
 * decisions to out. Returns SUP_OK; SUP_E_TRACE with "TRACE:LINE: what is
 * wrong" in err (rows before it were written); SUP_E_IO if out failed;
 * SUP_E_NOMEM. */
int sup_replay(const sup_policy *p, sup_state *st, FILE *trace, const char *trace_name, FILE *out,
               char *err, size_t errlen);

#endif

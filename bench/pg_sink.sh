#!/bin/sh
# pg_sink: the postgres sink's drain rate, and what Sluice spares PostgreSQL.
#
#   bench/pg_sink.sh [BUILD_DIR] [MESSAGES] [SECONDS]   (defaults: ./build, 200000, 10)
#
# Builds nothing: BUILD_DIR must hold bin/sluice-broker, bin/sluice-worker and
# bin/sluice. Starts a throwaway PostgreSQL cluster (scripts/pg-cluster, with
# synchronous_commit=on and max_connections=200, on a Unix socket in a scratch
# directory), then:
#
# 1. drain: enqueues MESSAGES messages of 200 bytes, starts one worker (batch
#    500, linger 50ms, sink postgres, format raw) and reads the rate from the
#    table itself: the rows committed after the first commit divided by the time
#    from the first commit to the last (committed_at). Commits are the
#    database's xact_commit (pg_stat_database) before and after.
# 2. the same offered load, single-row writes from 64 clients (64 VUs, each
#    writing again as soon as it is answered), for SECONDS:
#    direct   `sluice load --target direct --db postgres --vus 64 --pool 64`:
#             every write is an INSERT in its own transaction, read back with a
#             SELECT (a transaction too);
#    pgbench  the same INSERT from `pgbench -n -c 64 -j 2 -T SECONDS`, without
#             the read-back: the lightest client there is (when pgbench is
#             installed);
#    sluice   `sluice load --target sluice --vus 64` against a broker with
#             WORKERS workers (default 1) writing to the same database; the
#             window runs from the start of the load until the table holds
#             every acknowledged message (checked: exactly once). With
#             VIA=http the producers use the broker's HTTP API instead
#             (`sluice load --target http`), as a web application would.
#    With KEYS=no the producers send no idempotency keys (`--no-keys`), the
#    same guarantee as the direct side's plain INSERT; by default they do.
#    For each: acknowledged rows per second, and the database's transactions
#    per second = xact_commit after - before, over the window. Every session is
#    closed before `after` is read, so its statistics are flushed. And the CPU
#    each part spent per acknowledged row, from /proc over the same window:
#    the load client (or pgbench), the broker, the workers and PostgreSQL (the
#    postmaster, its live backends and those that ended).
#
# Run it on a quiet machine (see uptime). Leaves nothing behind but its output.
set -eu

BUILD=${1:-./build}
N=${2:-200000}
SECS=${3:-10}
WORKERS=${WORKERS:-1}
VIA=${VIA:-sluice}
KEYS=${KEYS:-yes}
case $KEYS in yes) NOKEYS= ;; no) NOKEYS=--no-keys ;; *) echo "pg_sink: KEYS is yes or no" >&2; exit 2 ;; esac
case $VIA in sluice | http) ;; *) echo "pg_sink: VIA is sluice or http" >&2; exit 2 ;; esac
VUS=64
BIN=$(cd "$BUILD/bin" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for p in sluice-broker sluice-worker sluice; do
	[ -x "$BIN/$p" ] || { echo "pg_sink: $BIN/$p not found (build first)" >&2; exit 2; }
done
command -v psql >/dev/null || { echo "pg_sink: needs psql (postgresql-client)" >&2; exit 2; }

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/sluice-pgbench-XXXXXX")
chmod 755 "$SCRATCH"
PIDS=""
cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	"$ROOT/scripts/pg-cluster" stop "$SCRATCH/pg" immediate >/dev/null 2>&1 || true
	rm -rf "$SCRATCH"
}
trap cleanup EXIT INT TERM

DSN=$("$ROOT/scripts/pg-cluster" start "$SCRATCH/pg" synchronous_commit=on max_connections=200)
q() { psql "$DSN" -X -qAt -c "$1"; }
# Sessions flush their statistics when they end: give the last ones a moment.
xacts() { sleep 1; q "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# CPU accounting, in clock ticks: a process with its reaped children; the
# cluster; the children this shell has waited for (`times`, into a file so
# that it runs in this shell, not a subshell).
HZ=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
	pm=$(head -1 "$SCRATCH/pg/data/postmaster.pid")
	t=$(ticks "$pm")
	for c in $(cat /proc/"$pm"/task/*/children 2>/dev/null); do t=$((t + $(ticks "$c"))); done
	echo "$t"
}
child_ticks() { # child_ticks VAR: must run in this shell, not in $(...)
	times >"$SCRATCH/times"
	eval "$1=$(awk -v hz="$HZ" 'NR == 2 { split($1, u, /[ms]/); split($2, k, /[ms]/)
		printf "%d\n", ((u[1] + k[1]) * 60 + u[2] + k[2]) * hz }' "$SCRATCH/times")"
}
workers_ticks() { t=0; for p in $WPIDS; do t=$((t + $(ticks "$p"))); done; echo "$t"; }
# us_per_row TICKS ROWS
us_per_row() { awk -v t="$1" -v r="$2" -v hz="$HZ" 'BEGIN { printf "%.1f", (r > 0 ? t / hz / r * 1e6 : 0) }'; }

# free_ports: two distinct free loopback ports (both bound at once, so the
# kernel cannot offer the same one twice)
free_ports() {
	python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))'
}

# config NAME TABLE: a broker on loopback, workers on the table
config() {
	dir="$SCRATCH/$1"
	mkdir -p "$dir"
	read -r p1 p2 <<EOF
$(free_ports)
EOF
	http='""'
	[ "$VIA" = http ] && http=127.0.0.1:$p2
	url=tcp://127.0.0.1:$p1
	cat >"$dir/sluice.yaml" <<EOF
broker:
  listen: [$url]
  http: $http
  data: $dir/broker.db
worker:
  broker: $url
  queue: bench
  batch_size: 500
  linger: 50ms
  report_interval: 1h
  sink:
    type: postgres
    dsn: "$DSN"
    table: $2
EOF
	echo "$dir/sluice.yaml"
}

broker_start() {
	"$BIN/sluice-broker" -c "$1" >"$(dirname "$1")/broker.log" 2>&1 &
	BROKER=$!
	PIDS="$PIDS $BROKER"
	i=0
	until "$BIN/sluice" stats -c "$1" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 200 ] || { echo "pg_sink: broker did not start" >&2; exit 1; }
		sleep 0.05
	done
}

backlog() {
	"$BIN/sluice" stats -c "$1" 2>/dev/null | awk '$1 == "bench" { print $6 }'
}

wait_drained() {
	i=0
	while [ "$(backlog "$1")" != "0" ]; do
		i=$((i + 1)); [ $i -lt 12000 ] || { echo "pg_sink: did not drain" >&2; exit 1; }
		sleep 0.05
	done
}

stop_all() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	PIDS=""
}

json_total() { # json_total FILE KEY: a number of the "total" object
	python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['total'][sys.argv[2]])" "$1" "$2"
}

echo "pg_sink: PostgreSQL $(q 'SHOW server_version'), synchronous_commit=$(q 'SHOW synchronous_commit'), $(nproc) cores, load $(uptime | sed 's/.*average: //'), producers via $VIA, idempotency keys $KEYS"

# ---- 1. drain with one worker ----
cfg=$(config drain drain_events)
broker_start "$cfg"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "%0200d\n", i }' |
	"$BIN/sluice" put -c "$cfg" -q bench >/dev/null
x0=$(xacts)
"$BIN/sluice-worker" -c "$cfg" >"$SCRATCH/drain/worker.log" 2>&1 &
PIDS="$PIDS $!"
wait_drained "$cfg"
stop_all
x1=$(xacts)
q "SELECT count(*), count(DISTINCT id),
          (SELECT count(*) FROM drain_events WHERE committed_at = (SELECT min(committed_at) FROM drain_events)),
          extract(epoch FROM max(committed_at) - min(committed_at))
   FROM drain_events" | tr '|' ' ' >"$SCRATCH/drain/result"
read -r rows distinct first_rows span <"$SCRATCH/drain/result"
echo
echo "1. drain: $N messages of 200 bytes, one worker, batch 500, linger 50ms"
awk -v r="$rows" -v d="$distinct" -v f="$first_rows" -v s="$span" -v c=$((x1 - x0)) 'BEGIN {
	printf "   rows %d (distinct ids %d) in %.2f s from the first commit to the last: %.0f rows/s; %d transactions, %.0f rows each\n",
	       r, d, s, (s > 0 ? (r - f) / s : 0), c, (c ? r / c : 0) }'

# ---- 2. the same offered load: direct, then through Sluice ----
echo
echo "2. $VUS clients writing single rows for ${SECS}s"
cfg=$(config direct direct_events)
x0=$(xacts)
child_ticks c0; g0=$(pg_ticks)
"$BIN/sluice" -c "$cfg" load --target direct --db postgres --dsn "$DSN" --table direct_events \
	--vus $VUS --pool $VUS --duration "${SECS}s" --quiet --json "$SCRATCH/direct.json" >/dev/null
child_ticks c1; d_client=$((c1 - c0))
d_x=$(( $(xacts) - x0 )) # after its sessions ended: the postmaster has reaped their CPU
d_pg=$(( $(pg_ticks) - g0 ))
d_ok=$(json_total "$SCRATCH/direct.json" ok)
d_dur=$(json_total "$SCRATCH/direct.json" duration_s)
d_fail=$(json_total "$SCRATCH/direct.json" failed)
d_p99=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['total']['latency_ms']['p99'])" "$SCRATCH/direct.json")
d_rows=$(q "SELECT count(*) FROM direct_events")

p_tps=0 p_x=0 p_lat=- p_client=0 p_pg=0
if command -v pgbench >/dev/null; then
	q "CREATE TABLE pgbench_events (LIKE direct_events INCLUDING ALL); CREATE SEQUENCE pgbench_ids"
	echo "INSERT INTO pgbench_events (id, queue, payload, enqueued_at, committed_at) VALUES (nextval('pgbench_ids'), 'bench', convert_to(repeat('.', 200), 'UTF8'), now(), now());" >"$SCRATCH/insert.sql"
	x0=$(xacts)
	child_ticks c0; g0=$(pg_ticks)
	pgbench -n -c $VUS -j 2 -T "$SECS" -f "$SCRATCH/insert.sql" "$DSN" >"$SCRATCH/pgbench.out" 2>&1
	child_ticks c1; p_client=$((c1 - c0))
	p_x=$(( $(xacts) - x0 ))
	p_pg=$(( $(pg_ticks) - g0 ))
	p_tps=$(awk '/^tps/ { print $3; exit }' "$SCRATCH/pgbench.out")
	p_lat=$(awk '/^latency average/ { print $4; exit }' "$SCRATCH/pgbench.out")
fi

cfg=$(config sluice sluice_events)
broker_start "$cfg"
w=0 WPIDS=""
while [ $w -lt "$WORKERS" ]; do
	"$BIN/sluice-worker" -c "$cfg" >"$SCRATCH/sluice/worker$w.log" 2>&1 &
	PIDS="$PIDS $!" WPIDS="$WPIDS $!"
	w=$((w + 1))
done
sleep 1 # the workers are connected
x0s=$(xacts)
child_ticks c0; g0=$(pg_ticks) b0=$(ticks "$BROKER") w0=$(workers_ticks)
t0=$(now_ms)
"$BIN/sluice" -c "$cfg" load --target "$VIA" --queue bench --vus $VUS --duration "${SECS}s" \
	$NOKEYS --quiet --json "$SCRATCH/sluice.json" >/dev/null
child_ticks c1; s_client=$((c1 - c0))
wait_drained "$cfg"
t1=$(now_ms)
s_pg=$(( $(pg_ticks) - g0 )) s_broker=$(( $(ticks "$BROKER") - b0 )) s_workers=$(( $(workers_ticks) - w0 ))
stop_all
x1s=$(xacts)
s_ok=$(json_total "$SCRATCH/sluice.json" ok)
s_dur=$(json_total "$SCRATCH/sluice.json" duration_s)
s_fail=$(json_total "$SCRATCH/sluice.json" failed)
s_p99=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['total']['latency_ms']['p99'])" "$SCRATCH/sluice.json")
s_rows=$(q "SELECT count(*) FROM sluice_events")
s_ids=$(q "SELECT count(DISTINCT id) FROM sluice_events")
p_rows=$(awk -v t="$p_tps" -v s="$SECS" 'BEGIN { printf "%d", t * s }')

awk -v dok="$d_ok" -v ddur="$d_dur" -v dx="$d_x" -v dfail="$d_fail" -v dp99="$d_p99" -v drows="$d_rows" \
    -v ptps="$p_tps" -v px="$p_x" -v plat="$p_lat" -v secs="$SECS" \
    -v sok="$s_ok" -v sdur="$s_dur" -v sx=$((x1s - x0s)) -v sfail="$s_fail" -v sp99="$s_p99" \
    -v srows="$s_rows" -v sids="$s_ids" -v win="$(( t1 - t0 ))" -v workers="$WORKERS" \
    -v dcl="$(us_per_row "$d_client" "$d_ok")" -v dpg="$(us_per_row "$d_pg" "$d_ok")" \
    -v pcl="$(us_per_row "$p_client" "$p_rows")" -v ppg="$(us_per_row "$p_pg" "$p_rows")" \
    -v scl="$(us_per_row "$s_client" "$s_ok")" -v spg="$(us_per_row "$s_pg" "$s_ok")" \
    -v sbr="$(us_per_row "$s_broker" "$s_ok")" -v swk="$(us_per_row "$s_workers" "$s_ok")" 'BEGIN {
	drps = dok / ddur; dtps = dx / ddur
	srps = sok / sdur; stps = sx / (win / 1000)
	ptpsx = px / secs
	printf "   %-30s %12s %12s %16s\n", "", "direct", "pgbench", "through Sluice"
	printf "   %-30s %12.0f %12.0f %16.0f\n", "acknowledged rows/s", drps, ptps, srps
	printf "   %-30s %12.1f %12s %16.1f\n", "p99 latency (ms)", dp99, "avg " plat, sp99
	printf "   %-30s %12d %12s %16d\n", "failed requests", dfail, "-", sfail
	printf "   %-30s %12.2f %12.2f %16.2f\n", "window (s)", ddur, secs, win / 1000
	printf "   %-30s %12d %12d %16d\n", "xact_commit delta", dx, px, sx
	printf "   %-30s %12.0f %12.0f %16.1f\n", "database transactions/s", dtps, ptpsx, stps
	printf "   %-30s %12.1f %12.1f %16.0f\n", "rows per transaction", (dx ? drows / dx : 0), (px ? ptps * secs / px : 0), (sx ? srows / sx : 0)
	printf "   %-30s %12s %12s %16s\n", "CPU us per row: client", dcl, pcl, scl
	printf "   %-30s %12s %12s %16s\n", "  broker", "-", "-", sbr
	printf "   %-30s %12s %12s %16s\n", "  workers", "-", "-", swk
	printf "   %-30s %12s %12s %16s\n", "  PostgreSQL", dpg, ppg, spg
	printf "   %-30s %12.1f %12.1f %16.1f\n", "  all", dcl + dpg, pcl + ppg, scl + sbr + swk + spg
	printf "   rows in the table: direct %d of %d acknowledged; through Sluice %d of %d (%d distinct ids, %d worker(s))\n",
	       drows, dok, srows, sok, sids, workers
	printf "   transactions/s, Sluice / direct: 1/%.0f, of which writes (half are read-backs) 1/%.0f; Sluice / pgbench: 1/%.0f (want at most 1/100)\n",
	       (stps > 0 ? dtps / stps : 0), (stps > 0 ? dtps / 2 / stps : 0), (stps > 0 ? ptpsx / stps : 0)
	printf "   rows/s, Sluice / direct: %.2fx; Sluice / pgbench: %.2fx (want at least 5x)\n",
	       (drps > 0 ? srps / drps : 0), (ptps > 0 ? srps / ptps : 0)
}'
[ "$s_rows" = "$s_ok" ] && [ "$s_ids" = "$s_ok" ] || { echo "pg_sink: NOT exactly once" >&2; exit 1; }

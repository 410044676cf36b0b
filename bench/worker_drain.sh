#!/bin/sh
# worker_drain: how fast sluice-worker drains a backlog into its SQLite sink.
#
#   bench/worker_drain.sh [BUILD_DIR] [MESSAGES]     (defaults: ./build, 200000)
#
# Builds nothing: BUILD_DIR must hold bin/sluice-broker, bin/sluice-worker and
# bin/sluice. For 1 worker, then 4: starts a broker on a scratch directory,
# enqueues MESSAGES messages of 200 bytes in batches of 500, starts the
# workers (batch 500, linger 50ms, sink synchronous=FULL), waits for the
# backlog to drain, stops them with SIGTERM, and reads the result from the
# sink itself: the drain rate is the messages committed after the first
# commit divided by the time from the first commit to the last (committed_at).
# Commits are counted from the workers' COMMIT lines (-v), per second.
# A worker commits at most once per linger unless its batch is full, so with
# a backlog (full batches) commits/s is messages/s / 500, and the bound
# workers x (1/linger) applies to partial batches: the last row, "trickle",
# checks it with 4 workers and single messages enqueued one request at a
# time for TRICKLE_S seconds (default 5).
# Needs the sqlite3 command. Leaves nothing behind but its output.
set -eu

BUILD=${1:-./build}
N=${2:-200000}
BIN=$(cd "$BUILD/bin" && pwd)
LINGER_MS=50
BATCH=500
TRICKLE_S=${TRICKLE_S:-5}
for p in sluice-broker sluice-worker sluice; do
	[ -x "$BIN/$p" ] || { echo "worker_drain: $BIN/$p not found (build first)" >&2; exit 2; }
done
command -v sqlite3 >/dev/null || { echo "worker_drain: needs the sqlite3 command" >&2; exit 2; }

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$SCRATCH"
}
trap cleanup EXIT INT TERM

# stat FIELD CONFIG: one field of the bench queue, from `sluice stats`
backlog() {
	"$BIN/sluice" stats -c "$1" 2>/dev/null | awk '$1 == "bench" { print $6 }'
}

# trickle CONFIG SECONDS: single messages, one request each, from 4 loops
trickle() {
	end=$(( $(date +%s) + $2 ))
	loops=""
	for l in 1 2 3 4; do
		(
			i=0
			while [ "$(date +%s)" -lt "$end" ]; do
				"$BIN/sluice" put -c "$1" -q bench "$(printf "%0200d" "$l$i")" >/dev/null
				i=$((i + 1))
			done
		) &
		loops="$loops $!"
	done
	for p in $loops; do wait "$p"; done
}

# run WORKERS MODE: MODE backlog (enqueue N, then drain) or trickle
run() {
	workers=$1
	mode=$2
	dir="$SCRATCH/w$workers-$mode"
	mkdir -p "$dir"
	cfg="$dir/sluice.yaml"
	cat >"$cfg" <<EOF
broker:
  listen: [ipc://$dir/broker.ipc]
  http: ""
  data: $dir/broker.db
worker:
  broker: ipc://$dir/broker.ipc
  queue: bench
  batch_size: $BATCH
  linger: ${LINGER_MS}ms
  report_interval: 1h
  sink:
    path: $dir/app.db
    synchronous: full
EOF
	"$BIN/sluice-broker" -c "$cfg" >"$dir/broker.log" 2>&1 &
	broker=$!
	PIDS="$PIDS $broker"
	i=0
	until "$BIN/sluice" stats -c "$cfg" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 200 ] || { echo "broker did not start" >&2; exit 1; }
		sleep 0.05
	done

	if [ "$mode" = backlog ]; then
		t0=$(date +%s%N)
		awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "%0200d\n", i }' |
			"$BIN/sluice" put -c "$cfg" -q bench >/dev/null
		t1=$(date +%s%N)
		enq_rate=$(( N * 1000000000 / (t1 - t0) ))
	fi

	wpids=""
	w=0
	while [ $w -lt "$workers" ]; do
		"$BIN/sluice-worker" -v -c "$cfg" >"$dir/worker$w.log" 2>&1 &
		wpids="$wpids $!"
		w=$((w + 1))
	done
	PIDS="$PIDS $wpids"
	if [ "$mode" = trickle ]; then
		t0=$(date +%s%N)
		trickle "$cfg" "$TRICKLE_S"
		t1=$(date +%s%N)
	fi
	i=0
	while [ "$(backlog "$cfg")" != "0" ]; do
		i=$((i + 1)); [ $i -lt 6000 ] || { echo "did not drain" >&2; exit 1; }
		sleep 0.05
	done
	for p in $wpids; do kill -TERM "$p"; done
	for p in $wpids; do wait "$p" || true; done
	kill -TERM "$broker"; wait "$broker" || true

	# COMMIT lines (one per sink commit, all workers): total and busiest second
	cat "$dir"/worker*.log | grep ' COMMIT ' | cut -c1-19 | sort | uniq -c |
		awk '{ t += $1; if ($1 > m) m = $1 } END { print t + 0, m + 0 }' >"$dir/commits"
	read -r commits busiest <"$dir/commits"
	# rows, first and last commit, rows of the first commit
	sqlite3 -separator ' ' "$dir/app.db" "
		SELECT count(*), min(committed_at), max(committed_at),
		       (SELECT count(*) FROM events WHERE committed_at = (SELECT min(committed_at) FROM events))
		FROM events" >"$dir/result"
	read -r rows first last first_rows <"$dir/result"
	if [ "$mode" = trickle ]; then
		enq_rate=$(( rows * 1000000000 / (t1 - t0) ))
	fi
	span=$((last - first))
	[ "$span" -gt 0 ] || span=1
	rate=$(( (rows - first_rows) * 1000 / span ))
	cps=$(awk -v c="$commits" -v s="$span" 'BEGIN { printf "%.0f", c * 1000 / s }')
	bound=$(( workers * 1000 / LINGER_MS ))
	avg=$(awk -v r="$rows" -v c="$commits" 'BEGIN { printf "%.0f", c ? r / c : 0 }')
	printf "%-8s %7d %9d %9s %10d %8d %10s %11d %14d %9d %10d\n" "$mode" "$workers" "$rows" \
		"$(awk -v s="$span" 'BEGIN { printf "%.2f", s / 1000 }')" "$rate" "$commits" "$cps" \
		"$busiest" "$bound" "$avg" "$enq_rate"
	PIDS=""
}

echo "sluice-worker drain: $N messages of 200 bytes, batch $BATCH, linger ${LINGER_MS}ms, sink synchronous=FULL"
printf "%-8s %7s %9s %9s %10s %8s %10s %11s %14s %9s %10s\n" mode workers rows drain_s msg/s \
	commits commits/s max_per_sec workers/linger avg_batch enqueue/s
run 1 backlog
run 4 backlog
run 4 trickle

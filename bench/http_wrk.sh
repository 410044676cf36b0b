#!/bin/sh
# HTTP enqueue throughput: a broker in a scratch directory, then wrk with
# 64 connections POSTing 200-byte messages for 10 s; prints the rate of
# 2xx answers (acknowledged, durable messages per second).
#
#   bench/http_wrk.sh BUILD_DIR [SECONDS] [CONNECTIONS]
#
# THREADS sets wrk's threads (default 2); DURABILITY=fast runs the broker
# without an fsync per commit.
set -eu

build=${1:?usage: bench/http_wrk.sh BUILD_DIR [SECONDS] [CONNECTIONS]}
secs=${2:-10}
conns=${3:-64}
threads=${THREADS:-2}
here=$(cd "$(dirname "$0")" && pwd)
broker="$build/bin/sluice-broker"
[ -x "$broker" ] || { echo "no $broker: build the sluice-broker target" >&2; exit 2; }
command -v wrk > /dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }

dir=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2> /dev/null || true
		wait "$pid" 2> /dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# port 0: the broker picks a free port and logs it (HTTP-LISTENING)
cat > "$dir/sluice.yaml" << YAML
broker:
  listen: [ipc://$dir/broker.ipc]
  http: "127.0.0.1:0"
  data: $dir/broker.db
  durability: ${DURABILITY:-full}
YAML
"$broker" -c "$dir/sluice.yaml" > "$dir/broker.log" 2>&1 &
pid=$!

addr=
for _ in $(seq 1 100); do
	addr=$(sed -n 's|.*HTTP-LISTENING http://\([^ ]*\).*|\1|p' "$dir/broker.log")
	[ -n "$addr" ] && break
	kill -0 "$pid" 2> /dev/null || break
	sleep 0.1
done
if [ -z "$addr" ]; then
	echo "the broker did not start:" >&2
	cat "$dir/broker.log" >&2
	exit 1
fi

echo "wrk -t$threads -c$conns -d${secs}s -s bench/http_post.lua http://$addr/v1/queues/bench/messages"
wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$here/http_post.lua" \
	"http://$addr/v1/queues/bench/messages"
printf 'stored: '
curl -s "http://$addr/v1/queues/bench" | sed -n 's/.*"depth":\([0-9]*\).*/\1 messages/p'

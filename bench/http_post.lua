-- wrk script for bench/http_wrk.sh: every request POSTs one 200-byte
-- message to the URL given on wrk's command line
-- (http://HOST:PORT/v1/queues/QUEUE/messages).
wrk.method = "POST"
wrk.body = string.rep("m", 200)
wrk.headers["Content-Type"] = "application/octet-stream"

-- summary.errors.status counts answers with a status above 399; the rest
-- of the completed requests were acknowledged (201).
function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local ok = summary.requests - summary.errors.status
   io.write(string.format("2xx: %d in %.2f s = %.0f messages/s (non-2xx %d, socket errors %d)\n",
      ok, seconds, ok / seconds, summary.errors.status,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
   io.write(string.format("latency p50 %.2f ms, p99 %.2f ms\n",
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

-- wrk script for `replay ingest` throughput: every request is a POST of a ~500-byte
-- JSON document without an id, so ingest chooses a UUID and the keys spread over all
-- partitions. Each 201 means Kafka acknowledged the envelope (acks=all).
--
--   replay broker --topic telemetry --partitions 8
--   replay ingest -b HOST:PORT -t telemetry --namespaces telemetry --port 8080
--   wrk -t2 -c32 -d10s -s bench/ingest-post.lua http://127.0.0.1:8080
--
-- wrk prints "Non-2xx or 3xx responses: N" when anything was not stored.
wrk.method = "POST"
wrk.path = "/1.0/submit/telemetry"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"ver":1,"info":{"appUpdateChannel":"release","reason":"idle-daily"},"simpleMeasurements":{"uptime":4711},"pad":"'
    .. string.rep("x", 380) .. '"}'

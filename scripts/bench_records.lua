-- wrk script for scripts/bench_records.sh: every request creates one record
-- through POST /api/v1/apps/{app}/objects/{object}/records, with values of
-- five field types that the server validates (text, dropdown, number,
-- checkbox, date). Reports records created per second (201 responses only)
-- and the latency percentiles.
--
-- Environment: QUARRY_TOKEN (an API token), QUARRY_RECORDS_PATH (the records
-- path of the benchmark object).

local token = os.getenv("QUARRY_TOKEN")
local path = os.getenv("QUARRY_RECORDS_PATH")
if token == nil or path == nil then
  error("set QUARRY_TOKEN and QUARRY_RECORDS_PATH (scripts/bench_records.sh does)")
end

local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
}
local priorities = { "Low", "Medium", "High" }

-- Per-thread state (each wrk thread has its own Lua state); read back by done().
counter = 0
created = 0
failed = 0
first_failure = ""

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"values":{"title":"Load test %d-%d","priority":"%s","estimate":%d,"urgent":%s,"due":"2026-12-%02d"}}',
    id, counter, priorities[counter % 3 + 1], counter % 100,
    counter % 2 == 0 and "true" or "false", counter % 28 + 1)
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    failed = failed + 1
    if first_failure == "" then
      first_failure = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total_created, total_failed, failure = 0, 0, ""
  for _, thread in ipairs(threads) do
    total_created = total_created + thread:get("created")
    total_failed = total_failed + thread:get("failed")
    if failure == "" then failure = thread:get("first_failure") end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("records created: %d in %.1f s (other responses: %d, socket errors: %d)\n",
    total_created, seconds, total_failed,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  if failure ~= "" then io.write("first failure: " .. failure .. "\n") end
  io.write(string.format("records/s: %.0f\n", total_created / seconds))
  io.write(string.format("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end

-- bench.py --spread: how many responses each worker sent (the /pid
-- route answers the worker's pid).
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    counts = {}
end

function response(status, headers, body)
    counts[body] = (counts[body] or 0) + 1
end

function done(summary, latency, requests)
    for _, t in ipairs(threads) do
        for pid, n in pairs(t:get("counts")) do
            io.write(string.format("worker %s %d\n", pid, n))
        end
    end
end

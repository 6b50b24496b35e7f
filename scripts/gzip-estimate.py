#!/usr/bin/env python3
"""How much a compressed /hystrix.stream would save, and cost: a synthetic tick of 1,000
command lines and 100 pool lines (a real captured line of each kind, every integer replaced by
a random one up to 5,000, names made distinct) deflated as one shared segment would be, at
zlib levels 1, 3 and 6. Random values compress worse than real metrics, which are mostly
zeros and small numbers, so the ratios are a floor.

usage: scripts/gzip-estimate.py [FIXTURE]   (default: ../shared/fixtures/hystrix-stream/dashboard-mock.stream)
"""
import json
import random
import sys
import time
import zlib

fixture = sys.argv[1] if len(sys.argv) > 1 else "../shared/fixtures/hystrix-stream/dashboard-mock.stream"
lines = [l for l in open(fixture) if l.startswith("data:")]
command = next(l for l in lines if '"HystrixCommand"' in l)
pool = next(l for l in lines if '"HystrixThreadPool"' in l)
random.seed(1)


def vary(line, i):
    obj = json.loads(line[5:])
    obj["name"] = f"Command{i:04d}"

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if isinstance(v, bool):
                    continue
                if isinstance(v, int) and k != "reportingHosts":
                    o[k] = random.randint(0, 5000)
                else:
                    walk(v)

    walk(obj)
    return "data: " + json.dumps(obj, separators=(",", ":")) + "\n\n"


tick = "".join(vary(command, i) for i in range(1000)) + "".join(vary(pool, i) for i in range(100))
raw = tick.encode()
print(f"tick: {len(raw)} bytes")
for level in (1, 3, 6):
    start = time.perf_counter()
    for _ in range(5):
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        out = c.compress(raw) + c.flush(zlib.Z_SYNC_FLUSH)
    took = (time.perf_counter() - start) / 5
    print(f"level {level}: {len(out)} bytes, {len(raw) / len(out):.1f} times smaller, {took * 1000:.2f} ms")

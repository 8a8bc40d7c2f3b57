#!/usr/bin/env python3
"""Send and receive at N = 64 across the binding, from Python: the same
calls as `cargo bench -p grove-ffi --bench ffi_calls` makes in Rust, against
the same grove-ds (GROVE_BENCH_DS_URL, an http:// loopback URL; run by
bindings/bench-calls). Prints the median and mean per call in microseconds."""

import asyncio
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.environ["GROVE_FFI_DIR"])
import grove_ffi as g  # noqa: E402

N = 64
ROUNDS = int(os.environ.get("GROVE_BENCH_ROUNDS", "300"))


async def main():
    url = os.environ["GROVE_BENCH_DS_URL"]
    tmp = tempfile.mkdtemp(prefix="grove-bench-")
    run = time.time_ns() % 1_000_000_000
    users = [f"p{run}-{i}" for i in range(N)]
    clients = [await g.create_client(os.path.join(tmp, u), g.ClientOptions(server=url, user=u)) for u in users]
    sender, receiver = clients[0], clients[1]
    group = await sender.create_group("bench")
    await sender.add_members(group, users[1:])
    await receiver.sync()
    text = "x" * 100

    for _ in range(20):  # warm-up
        await sender.send(group, text)
    await receiver.sync()

    sends = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        await sender.send(group, text)
        sends.append(time.perf_counter() - t)
    await receiver.sync()

    receives = []
    for _ in range(ROUNDS):
        await sender.send(group, text)
        t = time.perf_counter()
        report = await receiver.sync()
        receives.append(time.perf_counter() - t)
        assert report.messages == 1, report

    for name, xs in (("send", sends), ("receive", receives)):
        us = [x * 1e6 for x in xs]
        print(f"python/{name}/n64: median {statistics.median(us):.0f} us, mean {statistics.mean(us):.0f} us, "
              f"p90 {sorted(us)[int(len(us) * 0.9)]:.0f} us over {len(us)} calls")


asyncio.run(main())

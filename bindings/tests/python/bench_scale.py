#!/usr/bin/env python3
"""Send and receive medians through the binding at N = 2, 16 and 64 against
the grove-ds at argv[1] (plain HTTP on loopback), client homes on /dev/shm:
how a call's cost grows with the group. GROVE_FFI_DIR: the generated
binding beside its library (bindings/bench-calls makes one in
target/bindings-release)."""
import asyncio
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.environ["GROVE_FFI_DIR"])
import grove_ffi as g  # noqa: E402



async def run(url, n):
    tmp = tempfile.mkdtemp(dir="/dev/shm")
    tag = time.time_ns() % 10**9
    users = [f"n{tag}-{i}" for i in range(n)]
    cs = [await g.create_client(os.path.join(tmp,u), g.ClientOptions(server=url, user=u)) for u in users]
    s, r = cs[0], cs[1]
    grp = await s.create_group("x"); await s.add_members(grp, users[1:]); await r.sync()
    for _ in range(10): await s.send(grp, "x"*100)
    await r.sync()
    ts=[]
    for _ in range(100):
        t=time.perf_counter(); await s.send(grp, "x"*100); ts.append(time.perf_counter()-t)
    rs=[]
    for _ in range(50):
        await s.send(grp, "y")
        t=time.perf_counter(); await r.sync(); rs.append(time.perf_counter()-t)
    print(n, "send median us", int(statistics.median(ts)*1e6), "recv median us", int(statistics.median(rs)*1e6))


async def main():
    url=sys.argv[1]
    for n in (2, 16, 64): await run(url, n)


asyncio.run(main())

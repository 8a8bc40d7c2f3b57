"""Child process of the kill -9 test: opens an encrypted client home through the
binding and sends numbered messages to a group until it is killed, printing
`acked N SEQ` after the DS acknowledged message N (before the next call)."""

import asyncio
import os
import sys

sys.path.insert(0, os.environ["GROVE_FFI_DIR"])
import grove_ffi as g  # noqa: E402


async def main(home, group, key_hex):
    client = g.open_client(home, bytes.fromhex(key_hex))
    n = 0
    while True:
        seq = await client.send(group, f"crash-msg-{n}")
        print(f"acked {n} {seq}", flush=True)
        n += 1


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))

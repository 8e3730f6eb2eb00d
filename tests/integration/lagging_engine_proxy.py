#!/usr/bin/python3
"""A unix-socket proxy in front of a Docker engine whose attach streams lag.

What the engine sends on a connection that asked for `/attach` reaches the client
`--delay` seconds after the engine sent it (in order; the end of the stream too). Every
other request passes through at once. It stands in for a busy engine, whose attach
streams were seen to trail the container by over a second, for the log-tail tests.

Usage: lagging_engine_proxy.py --listen PATH --engine PATH [--delay SECONDS]
It prints "ready" once it listens, and runs until killed.
"""
import argparse
import asyncio
import os
import sys


async def forward(reader, writer, state, lag):
    """Copies reader to writer; `lag` seconds behind once the connection is an attach."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def drain():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(drain())
    try:
        while True:
            data = await reader.read(65536)
            if lag is None and b"/attach" in data:
                state["attach"] = True
            delay = lag if lag is not None and state["attach"] else 0
            queue.put_nowait((loop.time() + delay, data or None))
            if not data:
                break
    except (ConnectionError, asyncio.CancelledError):
        queue.put_nowait((loop.time(), None))
    await sender


async def serve(args):
    async def on_client(client_reader, client_writer):
        try:
            engine_reader, engine_writer = await asyncio.open_unix_connection(args.engine)
        except OSError:
            client_writer.close()
            return
        state = {"attach": False}
        await asyncio.gather(
            forward(client_reader, engine_writer, state, None),
            forward(engine_reader, client_writer, state, args.delay),
            return_exceptions=True,
        )

    if os.path.exists(args.listen):
        os.unlink(args.listen)
    server = await asyncio.start_unix_server(on_client, path=args.listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="the socket to serve on")
    parser.add_argument("--engine", required=True, help="the engine's socket")
    parser.add_argument("--delay", type=float, default=1.5,
                        help="how far attach streams lag, in seconds (default 1.5)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

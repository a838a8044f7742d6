#!/usr/bin/env python3
"""asyncio_echo.py: the benchmark's Python reference, the echo server from the
asyncio streams documentation made to loop: read(100), write, drain, until EOF.

usage: asyncio_echo.py [--uvloop] [--listen] HOST:PORT
Prints "listening on HOST:PORT" on stderr once listening; exits 0 on SIGTERM.
"""
import asyncio
import signal
import sys


async def handle_echo(reader, writer):
    try:
        while True:
            data = await reader.read(100)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(host, port):
    server = await asyncio.start_server(handle_echo, host, port, backlog=4096)
    addr = server.sockets[0].getsockname()
    if ":" in addr[0]:
        print(f"listening on [{addr[0]}]:{addr[1]}", file=sys.stderr, flush=True)
    else:
        print(f"listening on {addr[0]}:{addr[1]}", file=sys.stderr, flush=True)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with server:
        await stop


def parse_args(argv):
    use_uvloop = False
    spec = None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--uvloop":
            use_uvloop = True
        elif a == "--listen" and args:
            spec = args.pop(0)
        elif not a.startswith("-") and spec is None:
            spec = a
        else:
            spec = None
            break
    if spec is None or ":" not in spec:
        sys.exit("usage: asyncio_echo.py [--uvloop] [--listen] HOST:PORT")
    host, _, port = spec.rpartition(":")
    return use_uvloop, host.strip("[]"), int(port)


if __name__ == "__main__":
    use_uvloop, host, port = parse_args(sys.argv[1:])
    if use_uvloop:
        import uvloop  # the caller checks that it exists

        uvloop.install()
    asyncio.run(main(host, port))
    sys.exit(0)

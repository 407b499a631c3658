"""The edge of the containerised stack: owns the services' published ports and relays each
TCP connection to one replica of the service, looked up by name for every new connection.

    python /app/image/edge_proxy.py 8000=gateway:8000 8001=orders:8001 ...

Why a proxy: a host port can be published by one container only, so with a service's own
container publishing it, `docker-compose up -d --scale inventory=3` stops at the second
replica ("port is already allocated") and the extra replicas would take no traffic from the
host. Here the service containers publish nothing, any number of replicas share the service's
DNS name inside the network (Docker's DNS answers with every replica, in rotating order), and
this relay spreads the host's connections over them. A service with no replica left makes it
close the connection at once, as a refused connection would; a paused one leaves it waiting,
as the local stack does.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import sys

CONNECT_TIMEOUT_S = 2.0
CHUNK = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    random.shuffle(addresses)  # spread even when the resolver answers in a fixed order
    error: Exception = OSError(f"no address for {host}")
    for address in addresses:
        try:
            return await asyncio.wait_for(asyncio.open_connection(address, port),
                                          CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            error = exc
    raise error


def _handler(host: str, port: int):  # noqa: ANN202 - asyncio's callback shape
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await _connect(host, port)
        except (TimeoutError, OSError):
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    return handle


def parse(argv: list[str]) -> list[tuple[int, str, int]]:
    routes = []
    for arg in argv:
        listen, _, target = arg.partition("=")
        host, _, port = target.rpartition(":")
        if not (listen.isdigit() and host and port.isdigit()):
            raise SystemExit(f"edge_proxy: bad route {arg!r}; expected LISTEN=HOST:PORT")
        routes.append((int(listen), host, int(port)))
    if not routes:
        raise SystemExit("edge_proxy: give at least one LISTEN=HOST:PORT route")
    return routes


async def serve(routes: list[tuple[int, str, int]]) -> None:
    servers = [await asyncio.start_server(_handler(host, port), "0.0.0.0", listen,
                                          reuse_address=True, backlog=2048)
               for listen, host, port in routes]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("edge_proxy: " + ", ".join(f"{lp} -> {h}:{p}" for lp, h, p in routes), flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    routes = parse(sys.argv[1:] if argv is None else argv)
    try:
        import uvloop  # the image has it; the relay is on every request's path

        uvloop.run(serve(routes))
    except ImportError:
        asyncio.run(serve(routes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

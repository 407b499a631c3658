"""The one client layer: every byte chaosctl sends to the stack goes through here.

- `http`: one GET over a plain socket (probes, `chaosctl health`), and httpx clients (sync and
  async) for the rest; both ignore proxy environment variables and refuse any request that is
  not to a loopback address;
- `redis`: redis-py clients (sync and asyncio) without retries, so an outage shows at once;
- `prometheus`: instant queries through prometheus-api-client, with failures told apart by
  HTTP status and the API's `errorType`.

Nothing here imports anything of chaosctl above `errors`, `domain` and `config`. The heavy
libraries (httpx, redis-py, requests and prometheus-api-client, 250-330 ms CPU each to
import on the 2-core machine) are imported inside the factories that use them, so a command
pays only for the clients it builds; this package's `__init__` stays empty so importing one
submodule does not load the others.
"""

"""The load generator's closed loop against a real (stdlib) HTTP server on a free port.

The server is a tiny order endpoint that counts requests in flight; the first `N` requests wait
at a barrier for each other, which proves N workers really run at once without timing anything.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chaosctl.chaos.load import LoadConfig, LoadRunner
from chaosctl.errors import InvalidInputError
from tests.support import wait_for

WORKERS = 3


class OrderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, barrier_parties: int) -> None:
        super().__init__(("127.0.0.1", 0), OrderHandler)
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.served = 0
        self.barrier = threading.Barrier(barrier_parties, timeout=30)
        self.hold = threading.Event()  # set: every request hangs until released
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class OrderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OrderServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        srv = self.server
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with srv.lock:
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
            first = srv.served < srv.barrier.parties
            srv.served += 1
        try:
            if first:
                srv.barrier.wait()
            if srv.hold.is_set():
                srv.release.wait(30)
        finally:
            with srv.lock:
                srv.inflight -= 1
        body = json.dumps({"order_id": "o", "status": "completed"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[OrderServer]:
    srv = OrderServer(WORKERS)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def test_workers_send_back_to_back_up_to_the_request_cap(server: OrderServer) -> None:
    runner = LoadRunner(LoadConfig(base_url=server.url, rps=0, duration_s=60, max_requests=40,
                                   concurrency=WORKERS)).start()
    result = runner.join(60)
    assert result["stop_reason"] == "max_requests"
    assert result["sent"] == result["ok"] == result["arrivals"] == 40
    assert result["skipped"] == 0 and result["errors"] == 0
    # The barrier let the first three through only together: exactly WORKERS at once, no more.
    assert server.max_inflight == WORKERS
    assert server.served == 40


def test_rps_caps_the_closed_loop(server: OrderServer) -> None:
    # Arrival i may not start before i / rps seconds: within 1.5 s at 1 rps at most arrivals
    # 0 and 1 start, however fast the server answers (a bound, not a timing expectation).
    server.barrier = threading.Barrier(1)
    runner = LoadRunner(LoadConfig(base_url=server.url, rps=1, duration_s=1.5, max_requests=100,
                                   concurrency=4)).start()
    result = runner.join(60)
    assert result["stop_reason"] == "duration"
    assert 1 <= result["arrivals"] <= 2 and result["sent"] == result["arrivals"]


def test_stop_cuts_in_flight_requests(server: OrderServer) -> None:
    server.barrier = threading.Barrier(1)
    server.hold.set()
    runner = LoadRunner(LoadConfig(base_url=server.url, rps=0, duration_s=300, max_requests=10,
                                   timeout_s=60, concurrency=2)).start()
    wait_for(lambda: server.inflight == 2, timeout=30, what="two requests in flight")
    runner.stop()
    result = runner.join(60)
    assert not runner.running()
    assert result["stop_reason"] == "stopped"
    assert result["sent"] == 2 and result["ok"] == 0


@pytest.mark.parametrize("values", [{"rps": 0}, {"rps": -1, "concurrency": 2},
                                    {"rps": 1, "concurrency": 0}])
def test_bad_closed_loop_configs_refused(values: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        LoadConfig(base_url="http://127.0.0.1:1", duration_s=1, max_requests=1,
                   **values)  # type: ignore[arg-type]

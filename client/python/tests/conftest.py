"""Starts real traum-server processes for the client tests.

The binary is target/debug/traum-server of this repository, or
$TRAUM_SERVER_BIN (relative to the current directory). Each server gets
free ports, a temporary data directory and the tiny CLAP model of
tests/fixtures, and is stopped at the end of the session. A failing test
shows the tail of the server's log.
"""

from __future__ import annotations

import array
import math
import os
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from traum import TraumClient

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
MODEL_DIR = FIXTURES / "clap-model" / "htsat-tiny"
SERVER_BIN = (
    Path(os.environ["TRAUM_SERVER_BIN"]).resolve()
    if os.environ.get("TRAUM_SERVER_BIN")
    else REPO / "target" / "debug" / "traum-server"
)
# How long a debug build may take to load the model and open its indexes;
# a bound on waiting for start-up, not a measured expectation.
START_TIMEOUT_S = 300.0

_servers: list[Server] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sine_wav(freq_hz: float, seconds: float, *, rate: int = 48_000, amplitude: float = 0.5) -> bytes:
    """16-bit mono PCM WAV of a sine with its second harmonic."""
    frames = int(rate * seconds)
    samples = array.array(
        "h",
        (
            int(
                32767
                * amplitude
                * (
                    0.8 * math.sin(2 * math.pi * freq_hz * i / rate)
                    + 0.2 * math.sin(4 * math.pi * freq_hz * i / rate)
                )
            )
            for i in range(frames)
        ),
    )
    if samples.itemsize != 2:
        raise RuntimeError("array('h') is not 16-bit on this platform")
    if sys.byteorder != "little":
        samples.byteswap()
    out = BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


@dataclass
class Server:
    name: str
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self, limit: int = 20_000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError as err:
            return f"(cannot read {self.log_path}: {err})"

    def create_key(self, role: str, name: str) -> str:
        """`traum-server keys create` on the server's data directory."""
        out = subprocess.run(
            [str(SERVER_BIN), "keys", "create", "--role", role, "--name", name, "--data-dir", str(self.data_dir)],
            env=_server_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        if out.returncode != 0 or not lines or not lines[-1].startswith("traum_"):
            raise RuntimeError(
                f"traum-server keys create exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
            )
        return lines[-1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _server_env() -> dict[str, str]:
    # A TRAUM_* variable of the developer's shell (a database URL, a model
    # directory) would change what the flags below set up.
    return {k: v for k, v in os.environ.items() if not k.startswith("TRAUM_")}


def start_server(name: str, base: Path, *extra: str, health_service: str) -> Server:
    if not SERVER_BIN.is_file():
        pytest.fail(
            f"traum-server binary not found at {SERVER_BIN}: run `cargo build --bin traum-server` "
            "or set TRAUM_SERVER_BIN",
            pytrace=False,
        )
    data_dir = base / "data"
    data_dir.mkdir(parents=True)
    log_path = base / "server.log"
    port = free_port()
    args = [
        str(SERVER_BIN),
        "--listen",
        f"127.0.0.1:{port}",
        "--web-listen",
        "off",
        "--metrics-listen",
        "off",
        "--data-dir",
        str(data_dir),
        "--log",
        os.environ.get("TRAUM_TEST_LOG", "warn"),
        "--shutdown-grace",
        "1s",
        *extra,
    ]
    log = log_path.open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_server_env())
    log.close()
    server = Server(name, port, data_dir, log_path, process)
    try:
        _wait_serving(server, health_service)
    except BaseException:
        server.stop()
        raise
    _servers.append(server)
    return server


def _wait_serving(server: Server, service: str) -> None:
    """Polls the standard health service until `service` is SERVING."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Any = None
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if server.process.poll() is not None:
                pytest.fail(
                    f"{server.name} exited with {server.process.returncode} before serving:\n"
                    f"{server.log_tail()}",
                    pytrace=False,
                )
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as err:
                last = err.code()
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{server.name}: health of {service!r} not SERVING after {START_TIMEOUT_S:.0f} s "
                    f"(last answer: {last}):\n{server.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.1)


@pytest.fixture(scope="session")
def traum_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the tiny model and `--auth required`, ready to search,
    with a `read` and a `write` key."""
    server = start_server(
        "traum-server",
        tmp_path_factory.mktemp("traum-server"),
        "--model-dir",
        str(MODEL_DIR),
        "--workers",
        "2",
        "--auth",
        "required",
        # Failed credentials are answered at once, the auth test sends some.
        "--auth-failure-delay",
        "0s",
        health_service="traum.v1.SearchService",
    )
    try:
        server.keys["write"] = server.create_key("write", "python client tests")
        server.keys["read"] = server.create_key("read", "python client tests, read only")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without a model that admits one search per caller and then
    refuses for a long time, to see a rate-limit error."""
    server = start_server(
        "traum-server (rate limited)",
        tmp_path_factory.mktemp("traum-server-limited"),
        "--model",
        "none",
        "--search-rate",
        "0.001",
        "--search-burst",
        "1",
        health_service="",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client(traum_server: Server) -> Iterator[TraumClient]:
    with TraumClient(traum_server.address, api_key=traum_server.keys["write"]) as c:
        yield c


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for server in _servers:
            report.sections.append((f"{server.name} log (tail)", server.log_tail()))

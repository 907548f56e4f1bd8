"""Starting the real service: the one `bentoml serve` command line (`bearid serve` becomes it),
and `LocalServer`, which runs it as a subprocess on a free loopback port for tests, benchmarks
and the load script, waited on until /readyz answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bearid.errors import BearIDError, require

SERVICE = "bearid.service.service:BearID"


def serve_command(
    port: int,
    host: str = "127.0.0.1",
    workers: int = 1,
    bundle: Path | None = None,
    env: dict[str, str] | None = None,
    target: str = SERVICE,
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that serve BearID with BentoML: the store's champion, or `bundle`;
    `target` may name a built bento instead (a tag, or an exported bento's folder)."""
    require("serve", "bearid serve", "bentoml", "onnxruntime", "prometheus_client", "fastapi", "sklearn")
    environ = dict(os.environ, BEARID_WORKERS=str(workers), BENTOML_DO_NOT_TRACK="True", **(env or {}))
    if bundle:
        environ["BEARID_BUNDLE"] = str(Path(bundle).resolve())
    argv = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        target,
        "--port",
        str(port),
        "--host",
        host,
    ]
    return argv, environ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """`with LocalServer(env={...}, workers=2) as url: ...` — the service, stopped after."""

    def __init__(
        self,
        workers: int = 1,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        timeout: float = 120,
        target: str = SERVICE,
    ):
        self.workers, self.extra_env, self.timeout, self.target = workers, env or {}, timeout, target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        argv, env = serve_command(self.port, workers=self.workers, env=self.extra_env, target=self.target)
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + self.timeout
        while time.time() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.__exit__()
        tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""
        raise BearIDError(f"the service did not become ready in {self.timeout:.0f} s\n{tail}")

    def pid_rss(self) -> dict[int, int]:
        """Resident memory (bytes) of the server and each worker process."""
        out: dict[int, int] = {}
        if self.proc is None:
            return out
        pids = [self.proc.pid]
        try:
            children = subprocess.run(
                ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
            ).stdout.split()
            pids += [int(c) for c in children]
        except OSError:
            pass
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1]) * 1024
            except OSError:
                pass
        return out

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()

"""The real `gatehouse run` in a subprocess on free ports, and the CLI around it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.upstream import UPSTREAM_NAMES, Upstream

GATEHOUSE = str(Path(sys.executable).with_name("gatehouse"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pins_for(upstream: Upstream) -> list[str]:
    """--connect-to entries sending every test hostname to the local upstream."""
    pins = []
    for name in UPSTREAM_NAMES:
        if name not in ("localhost", "127.0.0.1"):
            pins += [f"{name}:443=127.0.0.1:{upstream.https_port}",
                     f"{name}:80=127.0.0.1:{upstream.http_port}"]
    return pins


class Gatehouse:
    def __init__(self, state: Path, policy: Path, upstream: Upstream | None = None,
                 extra: list[str] | None = None) -> None:
        self.state = state
        self.policy = policy
        self.upstream = upstream
        self.proxy_port = free_port()
        self.admin_port = free_port()
        self.extra = extra or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log = state.parent / f"{state.name}.log"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def ca_bundle(self) -> Path:
        return self.state / "ca-bundle.pem"

    def proxy_url(self, agent: str | None = None, token: str | None = None) -> str:
        credentials = f"{agent}:{token}@" if agent else ""
        return f"http://{credentials}127.0.0.1:{self.proxy_port}"

    def start(self) -> Gatehouse:
        args = [GATEHOUSE, "run", "--policy", str(self.policy), "--state", str(self.state),
                "--listen", f"127.0.0.1:{self.proxy_port}",
                "--admin", f"127.0.0.1:{self.admin_port}", *self.extra]
        if "--scan-workers" not in self.extra:
            args += ["--scan-workers", "1"]  # 2 cores shared with the client and the upstream
        if self.upstream is not None:
            args += ["--upstream-ca", str(self.upstream.ca_file)]
            own = {pin.partition("=")[0] for pin in self.extra}  # the test's pins win
            for pin in pins_for(self.upstream):
                if pin.partition("=")[0] not in own:
                    args += ["--connect-to", pin]
        self.process = subprocess.Popen(args, stdout=self.log.open("ab"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gatehouse exited early:\n{self.log.read_text()}")
            try:
                health = httpx.get(f"{self.admin}/healthz", timeout=1, trust_env=False)
                if health.status_code == 200 and self._proxy_listening():
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gatehouse did not come up:\n{self.log.read_text()}")

    def _proxy_listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.proxy_port)) == 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def cli(self, *args: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GATEHOUSE_STATE": str(self.state), "GATEHOUSE_ADMIN": self.admin,
               **(env or {})}
        result = subprocess.run([GATEHOUSE, *args], capture_output=True, text=True, env=env,
                                timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"gatehouse {' '.join(args)} failed:\n{result.stderr}")
        return result

    def token(self, *args: str) -> str:
        """`gatehouse token create ARGS`: the token is alone on the last line."""
        return self.cli("token", "create", "--state", str(self.state), *args
                        ).stdout.strip().splitlines()[-1]

    def admin_call(self, method: str, path: str, token: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, self.admin + path,
                             headers={"Authorization": f"Bearer {token}"}, timeout=10,
                             trust_env=False,  # an agent's proxy variables may be set
                             **kwargs)  # type: ignore[arg-type]

"""Private ``redis-server`` processes for tests: free port, own temp dir, never 6379.

    with RedisServer() as server:          # or server = RedisServer(); server.start()
        FluxQueue(server.url)

``RedisCluster`` starts three masters and joins them into a cluster. Nothing here mocks
Redis: tests talk to the real server binary, which must be installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

INSTALL_HINT = (
    "redis-server was not found on PATH. The Redis tests start their own private server; "
    "install it with `apt-get install -y redis-server` (Debian/Ubuntu) or "
    "`brew install redis` (macOS)."
)


def free_port(also_free: int | None = None) -> int:
    """A TCP port nobody listens on (and, with ``also_free``, port + that offset too)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port == 6379 or (also_free and port + also_free > 65535):
            continue
        if also_free:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + also_free))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port found")


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    return found


class RedisServer:
    """One ``redis-server`` on 127.0.0.1 (and optionally a unix socket)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        unix_socket: bool = False,
        directory: str | Path | None = None,
        cluster: bool = False,
        password: str | None = None,
        tls: bool = False,
    ) -> None:
        # A cluster node also listens on port + 10000 (the cluster bus).
        self.port = port or free_port(also_free=10000 if cluster else None)
        self.appendonly = appendonly
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="fluxqueue-redis-"))
        self.unix_socket = str(self.dir / "redis.sock") if unix_socket else None
        self.extra = (
            ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] if cluster else []
        )
        self.password = password
        #: With ``tls``, a second port speaks TLS with a certificate for 127.0.0.1 signed by
        #: a throwaway CA (``ca_file``); the plain port stays for set-up and checks.
        self.tls_port = free_port() if tls else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("password", self.password)
        return redis.Redis(host=self.host, port=self.port, socket_timeout=5, **kwargs)

    def start(self) -> RedisServer:
        args = [
            server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.unix_socket:
            args += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls_port:
            self._make_certificates()
            args += [
                "--tls-port", str(self.tls_port),
                "--tls-cert-file", str(self.dir / "server.pem"),
                "--tls-key-file", str(self.dir / "server.key"),
                "--tls-ca-cert-file", str(self.ca_file),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        args += self.extra
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def _make_certificates(self) -> None:
        if (self.dir / "server.pem").exists():
            return

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=self.dir, check=True, capture_output=True)

        subject = ["-nodes", "-newkey", "rsa:2048", "-days", "2", "-subj"]
        openssl("req", "-x509", *subject, "/CN=fluxqueue test CA", "-keyout", "ca.key",
                "-out", "ca.pem")  # fmt: skip
        openssl("req", *subject, "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
        (self.dir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        signing = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"]
        openssl("x509", "-req", "-in", "server.csr", *signing, "-out", "server.pem",
                "-extfile", "san.ext")  # fmt: skip

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    log = self.dir / "redis.log"
                    err += log.read_text() if log.exists() else ""
                    raise RuntimeError(f"redis-server exited at start: {err.strip()}")
                try:
                    if client.ping():
                        return
                except redis.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM lets an appendonly server flush; ``kill`` does not)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr:
            process.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same port and directory (data kept if appendonly)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class RedisCluster:
    """Three cluster-enabled masters on free ports, joined with ``CLUSTER MEET``/ADDSLOTS."""

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(masters)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}?cluster=1"

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        clients = [node.client() for node in self.nodes]
        try:
            per = 16384 // len(self.nodes)
            for i, client in enumerate(clients):
                last = 16383 if i == len(clients) - 1 else (i + 1) * per - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", i * per, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)
            deadline = time.monotonic() + 20
            while True:
                infos = [c.execute_command("CLUSTER INFO") for c in clients]  # parsed to dicts
                if all(
                    i.get("cluster_state") == "ok"
                    and int(i.get("cluster_known_nodes", 0)) == len(self.nodes)
                    for i in infos
                ):
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the test cluster did not form: {infos[0]}")
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

"""Starting and stopping the servers: uvicorn for HTTP (and the pgwire server) over one Service."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

from sqlrec.serve import require
from sqlrec.serve.service import ConfigError, Service, Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    """The HTTP server (and, with pg_port, the PostgreSQL one) over one database."""

    def __init__(self, database: str, host: str = "127.0.0.1", port: int = 8000, pg_port: int | None = None,
                 token: str | None = None, settings: Settings | None = None, log_level: str = "warning",
                 labels: str | None = None):
        require()
        if not is_loopback(host) and not token:
            raise ConfigError(f"serving on {host} (not a loopback address) needs --token", "--host")
        self.host, self.token, self.labels = host, token, labels
        self.service = Service(database, settings)
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        try:
            self._sock.bind((host, port))
            # listening from here: a client that connects before uvicorn runs (the command's
            # "serving on" line comes first) waits in the backlog instead of being refused
            self._sock.listen(2048)
        except OSError:
            self._sock.close()
            self.service.close()
            raise
        self.port = self._sock.getsockname()[1]
        self._http = self._uvicorn(log_level)
        self._threads: list[threading.Thread] = []
        self.pg = None
        if pg_port is not None:
            from sqlrec.serve.pgwire import PgServer

            try:
                self.pg = PgServer(self.service, host, pg_port, token)
            except OSError:  # the PostgreSQL port is taken: give back the HTTP one and the file
                self._sock.close()
                self.service.close()
                raise
        self.pg_port = self.pg.port if self.pg else None

    def _uvicorn(self, log_level: str) -> Any:
        import uvicorn

        from sqlrec.serve.http import create_app

        app = create_app(self.service, self.token, labels=self.labels)
        config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
        return uvicorn.Server(config)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C (uvicorn handles the signals)."""
        if self.pg:
            self._thread(self.pg.serve_forever)
        try:
            self._http.run(sockets=[self._sock])
        finally:
            self.close()

    def start(self) -> "Server":
        """Serve on background threads; returns once the HTTP server accepts connections."""
        if self.pg:
            self._thread(self.pg.serve_forever)
        self._thread(lambda: self._http.run(sockets=[self._sock]))
        for _ in range(500):
            if self._http.started:
                break
            threading.Event().wait(0.01)
        return self

    def _thread(self, target: Any) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._http.should_exit = True
        if self.pg:
            self.pg.shutdown()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        self._sock.close()
        if not self.service.con.closed:
            self.service.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

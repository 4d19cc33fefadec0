"""The status page inside ``praxisbackup serve``: uvicorn in a thread of the service process,
ending on the service's stop event.

Why in the same process: the practice installs and runs one Windows service; the page reads
what the scheduler's runs write (the local catalog) and calls the same application functions
as the command line. The socket is bound before the thread starts, so a taken port or a wrong
address is one line in the service log at once (and the backups go on without the page).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import uvicorn

from praxisbackup import platform
from praxisbackup.model.config import Config, is_local_address, split_listen
from praxisbackup.web.app import create_app

#: How long a stopping page waits for open requests before it closes them.
GRACE_SECONDS = 3


class StatusPage:
    """The running page (a companion of ``serve``, see ``app.serve.Companion``)."""

    def __init__(self, app: object, sock: socket.socket, stop: threading.Event, login: bool):
        self.socket = sock
        host, port = sock.getsockname()[:2]
        shown = host if host not in ("0.0.0.0", "::") else platform.hostname()
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{port}/"
        self.login = login
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="status-page", daemon=True
        )
        self.watcher = threading.Thread(
            target=self._stop_when_asked, args=(stop,), name="status-page-stop", daemon=True
        )
        self.thread.start()
        self.watcher.start()

    @property
    def description(self) -> str:
        return f"status page: {self.url}" + (" (login required)" if self.login else "")

    def _stop_when_asked(self, stop: threading.Event) -> None:
        stop.wait()
        self.server.should_exit = True

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)
        self.socket.close()


def bind(listen: str) -> socket.socket:
    """A listening socket for ``listen`` ("127.0.0.1:8765"); port 0 picks a free port."""
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=64)
    except OSError as exc:
        raise OSError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


def start(load_config: Callable[[], Config], stop: threading.Event) -> StatusPage | None:
    """Start the page as ``[web]`` says (None when it is switched off)."""
    config = load_config()
    web = config.web
    if not web.enabled:
        return None
    host, _port = split_listen(web.listen)
    login = web.login or not is_local_address(host)
    sock = bind(web.listen)
    app = create_app(load_config, login=login, session_minutes=web.session_minutes)
    return StatusPage(app, sock, stop, login)

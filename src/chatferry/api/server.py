"""``chatferry serve``'s HTTP server: uvicorn, hardened at the connection level.

uvicorn closes idle keep-alive connections, but not one that never finishes sending a
request (a client that stalls or trickles bytes, "slowloris"): such connections would
pile up until no one else gets in. Our protocol gives every request a deadline for its
headers and a longer one for its body, and closes the connection when one passes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from chatferry.obs.log import log_event
from chatferry.settings import Settings

log = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = 10.0  # the default of CHATFERRY_HTTP_HEADER_TIMEOUT_SECONDS
_RECEIVING = (h11.IDLE, h11.SEND_BODY)


class DeadlineProtocol(H11Protocol):
    """h11 with a deadline for a request's headers, then one for its body."""

    header_timeout = HEADER_TIMEOUT_SECONDS
    body_timeout = 60.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_body = False
        self._arm(self.header_timeout)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY and not self._reading_body:
            self._reading_body = True
            self._arm(self.body_timeout)
        elif state not in _RECEIVING:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._reading_body = False
        if not self.transport.is_closing():
            self._arm(self.header_timeout)  # the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _expired(self, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _RECEIVING:
            return
        if self.cycle is not None and not self.cycle.response_complete and not self._reading_body:
            return  # a request is being answered; the keep-alive timer takes over after
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        log_event(
            log,
            "closed a stalled connection",
            logging.WARNING,
            client=client,
            waited_seconds=seconds,
            stage="body" if self._reading_body else "headers",
        )
        self.transport.close()


def _protocol(settings: Settings) -> type[DeadlineProtocol]:
    return type(
        "ChatferryProtocol",
        (DeadlineProtocol,),
        {
            "header_timeout": settings.http_header_timeout_seconds,
            "body_timeout": settings.http_body_timeout_seconds,
        },
    )


def run_server(app: Any, settings: Settings, host: str, port: int) -> None:
    """Serves ``app`` until SIGINT/SIGTERM, with the HTTP settings applied."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_protocol(settings),
        log_config=None,  # chatferry's own logging (obs/log.py) formats uvicorn's lines
        server_header=False,
        timeout_keep_alive=int(max(1, settings.http_keepalive_seconds)),
        limit_concurrency=settings.http_max_connections,
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run()

"""What one replica changes and the others must act on at once, pushed with LISTEN/NOTIFY.

A store announces `kind:id` on the `gatehouse` channel inside the transaction that makes the
change, so PostgreSQL delivers it to every listening replica once, and only once it committed.
Each replica listens on a connection of its own, in a thread, and hands each change to its event
loop: a decided item wakes the agent held on it whichever replica holds it; a halt set or lifted
rebuilds the live halt board and has every held call check it again. Changes announced while the
connection was down are lost, so after every (re)connect the listener resyncs: halts reloaded,
every held call re-checked.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg

from gateway.postgres.database import CONNECT_TIMEOUT_SECONDS, Connection, safe_url

if TYPE_CHECKING:  # the services import the stores, which import this
    from gateway.approvals.service import ApprovalService
    from gateway.halt_service import HaltService

log = logging.getLogger("gatehouse.replicas")

CHANNEL = "gatehouse"
PENDING, HALTS = "pending", "halts"
RETRY_SECONDS = 1.0  # between attempts to reconnect
WAKE_SECONDS = 0.5  # how often the thread looks up from the connection to see if it must stop


def announce(db: Connection, kind: str, ident: str) -> None:
    """Inside the caller's transaction: the other replicas hear of it when it commits."""
    db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{kind}:{ident}"))


class Listener:
    """Hands every change announced on the channel to `handlers[kind](id)` on `loop`, and calls
    `resync()` there after each (re)connect."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop,
                 handlers: dict[str, Callable[[str], None]], resync: Callable[[], None]) -> None:
        self._url, self._loop, self._handlers, self._resync = url, loop, handlers, resync
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gatehouse-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as e:
                log.warning("not hearing other replicas (%s): %s; retrying", safe_url(self._url),
                            " ".join(str(e).split()))
                self._stop.wait(RETRY_SECONDS)
            except RuntimeError:  # the event loop is closed: the gateway has stopped
                return

    def _listen(self) -> None:
        with psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                             application_name="gatehouse listener") as db:
            db.execute(f"LISTEN {CHANNEL}")
            self._loop.call_soon_threadsafe(self._resync)
            while not self._stop.is_set():
                for note in db.notifies(timeout=WAKE_SECONDS):
                    kind, _, ident = note.payload.partition(":")
                    if (handler := self._handlers.get(kind)) is not None:
                        self._loop.call_soon_threadsafe(handler, ident)


def listen_to_replicas(url: str, approvals: ApprovalService, halts: HaltService) -> Listener:
    """On the gateway's event loop: decisions and halts made through other replicas act here
    as if made here."""

    def halts_changed(_: str = "") -> None:
        halts.reload()
        approvals.wake_all()  # held calls look at the new board at once

    return Listener(url, asyncio.get_running_loop(),
                    {PENDING: approvals.wake, HALTS: halts_changed}, halts_changed)

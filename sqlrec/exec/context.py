"""What a command works with (Context): its own module, so that the router (light, imported at
connect) and the full path's command table (sqlrec.exec.dispatch, imported on first use) both
name it without importing each other."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlrec.models.catalog import Catalog
    from sqlrec.store.session import Session


@dataclass
class Context:
    """What a command works with: the handle's session, the catalog, the statement's cancel flag,
    and the relations registered for the statement (released before the next one)."""

    session: Session
    catalog: Catalog
    cancel: threading.Event
    registered: list[str] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)  # keys scored per model reference (Router.scored)

    def cancelled(self) -> bool:
        return self.cancel.is_set()

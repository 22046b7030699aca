"""Fields that Superset's list endpoints leave out, kept between runs and validated like HTTP's
Last-Modified: a dashboard's layout or a database's connection URI is reused only while the row's
`changed_on` (which Superset moves on every write to that row) is exactly the one it was read at.
A stale entry therefore costs one detail read, never a wrong plan.

One JSON file per Superset URL and user under `<home>/cache/`; `PFILL_LIVE_CACHE=off` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

VERSION = 1


class DetailCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.changed = False
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                if data.get("version") == VERSION:
                    self.entries = data["entries"]

    @classmethod
    def for_superset(cls, home: Path, url: str, user: str) -> DetailCache:
        if os.environ.get("PFILL_LIVE_CACHE", "").lower() in ("off", "0", "no", "false"):
            return cls(None)
        name = hashlib.sha256(f"{url}\n{user}".encode()).hexdigest()[:16]
        return cls(home / "cache" / f"superset-{name}.json")

    def get(self, uuid: str, changed_on: str | None) -> dict[str, Any] | None:
        entry = self.entries.get(uuid)
        if changed_on and entry and entry["changed_on"] == changed_on:
            return entry["fields"]
        return None

    def put(self, uuid: str, changed_on: str | None, fields: dict[str, Any]) -> None:
        if changed_on:
            self.entries[uuid] = {"changed_on": changed_on, "fields": fields}
            self.changed = True

    def save(self) -> None:
        """Write atomically (another process may read it meanwhile); a cache that cannot be written
        is simply not kept."""
        if self.path is None or not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as out:
                json.dump({"version": VERSION, "entries": self.entries}, out)
            os.replace(tmp, self.path)
            self.changed = False
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

"""A file another process may rewrite (``pylog users`` / ``pylog acls`` while the
server runs): ``changed()`` says whether it differs from when it was last seen."""
from __future__ import annotations

import os

__all__ = ["WatchedFile"]


class WatchedFile:
    def __init__(self, path) -> None:
        self.path = path
        self._stamp = self._now()

    def _now(self):
        try:
            st = os.stat(self.path) if self.path is not None else None
        except OSError:
            return None
        return None if st is None else (st.st_mtime_ns, st.st_size, st.st_ino)

    def changed(self) -> bool:
        """True (once) when the file was replaced, changed or removed since."""
        stamp = self._now()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True

    def seen(self) -> None:
        """We wrote it ourselves: the current version is known."""
        self._stamp = self._now()

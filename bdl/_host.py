"""Host-side helpers shared by the training and sampling loops: atomic writes, progress bars."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temp file and ``os.replace`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def progress_bar(enabled: bool, total: int, initial: int, description: str, unit: str):
    """A tqdm bar, or None when ``enabled`` is False."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit=unit, leave=False)

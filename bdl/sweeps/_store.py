"""The results store: one JSON file per finished run, written atomically.

Layout of a store directory::

    OUT/sweep.json              the sweep specification (for collation and resumption)
    OUT/runs/<run_id>.json      one record per finished run ("ok" or "failed")

A record is written to a temporary file in ``runs/`` (name starting with ``.tmp-``), flushed
to disk, then renamed over its final name with ``os.replace`` (atomic on POSIX): a process
killed at any point leaves either the whole record or none, plus at most an ignored temp
file. Several processes (shards) may write to one store: each run has its own file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["ResultsStore", "collate", "to_dataframe"]

_TMP_PREFIX = ".tmp-"


class ResultsStore:
    """Finished runs of a sweep under ``root``, keyed by run id.

    Example:
      >>> store = ResultsStore(tmp_path)                   # doctest: +SKIP
      >>> store.write({"run_id": "abc", "status": "ok"})   # doctest: +SKIP
      >>> "abc" in store                                   # doctest: +SKIP
      True
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str) -> Path:
        """Where the record of ``run_id`` lives."""
        return self.runs / f"{run_id}.json"

    def __contains__(self, run_id: str) -> bool:
        return self.path(run_id).exists()

    def run_ids(self) -> set[str]:
        """Ids of every finished run (ok or failed)."""
        return {p.stem for p in self.runs.glob("*.json") if not p.name.startswith(_TMP_PREFIX)}

    def read(self, run_id: str) -> dict[str, Any]:
        """The record of ``run_id``."""
        return json.loads(self.path(run_id).read_text())

    def write(self, record: dict[str, Any]) -> Path:
        """Write ``record`` (it must have a ``run_id``) atomically; returns its path."""
        return _atomic_write_json(self.path(record["run_id"]), record)

    def records(self) -> list[dict[str, Any]]:
        """Every finished record, ordered by run id.

        Raises:
          ValueError: naming the file if a record cannot be parsed (never caused by a crash
            during a write, which only ever leaves a temp file behind).
        """
        out = []
        for path in sorted(self.runs.glob("*.json")):
            if path.name.startswith(_TMP_PREFIX):
                continue
            try:
                out.append(json.loads(path.read_text()))
            except json.JSONDecodeError as err:
                raise ValueError(f"Corrupt sweep record {path}: {err}") from None
        return out

    def clean_temp(self, older_than_s: float = 600.0) -> int:
        """Remove temp files left by killed writers (older than ``older_than_s``, so that a
        concurrent shard's write in progress is never touched); returns how many."""
        now, removed = time.time(), 0
        for path in self.runs.glob(f"{_TMP_PREFIX}*"):
            try:
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def write_spec(self, spec: dict[str, Any]) -> None:
        """Save the sweep specification as ``sweep.json`` (atomically)."""
        _atomic_write_json(self.root / "sweep.json", spec)

    def read_spec(self) -> dict[str, Any] | None:
        """The saved specification, or ``None``."""
        path = self.root / "sweep.json"
        return json.loads(path.read_text()) if path.exists() else None


def collate(root: str | os.PathLike, *, as_frame: bool = False) -> Any:
    """All records of the store at ``root``: a list of flat dicts, or with ``as_frame=True`` a
    ``pandas.DataFrame`` (pandas must be installed; it is not a dependency of bdl)."""
    records = ResultsStore(root).records()
    return to_dataframe(records) if as_frame else records


def to_dataframe(records: list[dict[str, Any]]) -> Any:
    """``records`` as a ``pandas.DataFrame`` (raises ``ImportError`` without pandas)."""
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("to_dataframe needs pandas (`pip install pandas`); collate() without "
                          "as_frame returns a list of dicts.") from err
    return pd.DataFrame.from_records(records)


def _atomic_write_json(path: Path, obj: Any) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, sort_keys=False, default=_jsonable)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays and tuples inside records."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")

"""The run directory: layout, single-writer lock, metrics log.

    RUN/config.yaml  metrics.jsonl  samples/  checkpoints/  export/  plots/  .lock
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

from gankit.engine.checkpoint import atomic_write, remove_stale_temp
from gankit.errors import GankitError, UsageError


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    samples = property(lambda self: self.path / "samples")
    checkpoints = property(lambda self: self.path / "checkpoints")
    export = property(lambda self: self.path / "export")
    plots = property(lambda self: self.path / "plots")

    def has_state(self) -> bool:
        return self.config.exists() or (self.checkpoints.is_dir() and any(self.checkpoints.iterdir()))

    def create(self) -> None:
        try:
            for d in (self.path, self.samples, self.checkpoints, self.export, self.plots):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create run directory {self.path}: {err.strerror}") from None

    def lock(self) -> None:
        """Hold an exclusive lock for this process's lifetime: a second writer is refused."""
        lock_path = self.path / ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UsageError(f"cannot write in run directory {self.path}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UsageError(
                f"run directory {self.path} is in use by another gankit process (pid {other}); "
                "wait for it or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        for folder in (self.path, self.checkpoints, self.export, self.samples, self.plots):
            remove_stale_temp(folder)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def write_config(self, doc: dict[str, Any]) -> None:
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False)
        atomic_write(self.config, lambda f: f.write(text.encode()))

    def append_metrics(self, record: dict[str, Any]) -> None:
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in record.items()}
        try:
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(clean) + "\n")
        except OSError as err:
            raise GankitError(f"cannot write {self.metrics}: {err.strerror}") from None

    def truncate_metrics(self, step: int) -> None:
        """Drop records logged after ``step`` (a resumed run re-does those steps)."""
        if not self.metrics.exists():
            return
        lines = self.metrics.read_text(encoding="utf-8", errors="replace").splitlines()
        keep = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if isinstance(rec, dict) and rec.get("step", 0) <= step:
                keep.append(line)
        text = "".join(line + "\n" for line in keep)
        atomic_write(self.metrics, lambda f: f.write(text.encode()))

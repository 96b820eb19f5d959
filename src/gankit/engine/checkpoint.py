"""Training state on disk: atomic writes, keep-last-N, and loading that never unpickles code.

A checkpoint is one ``torch.save`` of plain dicts of tensors and Python scalars, so it loads with
``torch.load(weights_only=True)``; a file carrying any other pickle global is refused.
Writes go to a temporary file in the same folder, are fsync'ed, then renamed over the final name
(atomic on POSIX): a crash at any moment leaves either the old set of checkpoints or the new one.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from gankit.errors import GankitError, UntrustedFileError

log = logging.getLogger(__name__)

FORMAT = "gankit-train-state"
VERSION = 1
_NAME = re.compile(r"^step_(\d{9})\.pt$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step_{step:09d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of finished checkpoints, oldest first (temporary files are ignored)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def remove_stale_temp(folder: Path) -> None:
    """Delete temp files a killed writer left behind (call while holding the run lock)."""
    for p in folder.glob("*.tmp-*") if folder.is_dir() else ():
        try:
            p.unlink()
        except OSError:
            pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file_object)`` on a temp file beside ``path`` then rename it into place.

    On failure (disk full, permissions) the temp file is removed, ``path`` is untouched, and a
    one-line :class:`GankitError` names the file.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a failed write as RuntimeError
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(err, OSError):
            reason = err.strerror or str(err)
        else:
            reason = "write failed (disk full or file-size limit?): " + (str(err).strip().splitlines() or ["?"])[-1][:120]
        raise GankitError(f"cannot write {path}: {reason} (the previous file, if any, is untouched)") from None
    _fsync_dir(path.parent)


def save(folder: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``step`` and prune to the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(folder, step)
    state = {"format": FORMAT, "version": VERSION, "step": step, **state}
    atomic_write(path, lambda f: torch.save(state, f))
    for _, old in list_checkpoints(folder)[:-keep]:
        try:
            old.unlink()
        except OSError as err:  # pruning is best-effort; never fail a run for it
            log.warning("could not remove old checkpoint %s: %s", old, err)
    return path


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; refuse anything that is not one."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:200]
        raise UntrustedFileError(
            f"refusing to load {path}: it holds more than tensors and plain data ({first})"
        ) from None
    except FileNotFoundError:
        raise GankitError(f"checkpoint not found: {path}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise GankitError(f"checkpoint {path} is unreadable or truncated ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GankitError(f"{path} is not a gankit training checkpoint")
    if state.get("version", 0) > VERSION:
        raise GankitError(f"{path} was written by a newer gankit (format version {state['version']})")
    return state


def load_latest(folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """Newest loadable checkpoint in ``folder`` (an unreadable newest one falls back, with a warning)."""
    errors: list[str] = []
    for _, path in reversed(list_checkpoints(folder)):
        try:
            return load(path, map_location)
        except UntrustedFileError:
            raise
        except GankitError as err:
            errors.append(str(err))
            log.warning("skipping %s", err)
    if errors:
        raise GankitError(f"no loadable checkpoint in {folder}: {errors[0]}")
    return None

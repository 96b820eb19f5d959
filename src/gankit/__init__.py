"""gankit: the classic GANs, trainable on a laptop CPU, offline, and on many GPUs via torchrun.

Importing ``gankit`` is cheap (no torch import); heavy modules load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path):  # noqa: ANN001, ANN201 - thin lazy re-export
    """Load an export (``RUN/export`` or a run directory) as a ready-to-sample model.

    Only safetensors + JSON are read; no pickle is ever loaded. See :func:`gankit.export.load`.
    """
    from gankit.export import load as _load

    return _load(path)

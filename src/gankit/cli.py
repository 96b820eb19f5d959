"""The ``gankit`` command: parses arguments, calls the library, prints.

Imports of torch and friends happen inside the command functions so that ``gankit --help`` and
argument errors answer instantly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gankit import __version__
from gankit.errors import GankitError, UsageError

TRAIN_EXAMPLES = """\
examples:
  gankit train gan --data ring8 --minutes 2            # watch G learn 8 Gaussians
  gankit train gan --data ring8 --steps 5000 --set loss=minimax   # the lecture's exact V(D,G)
  gankit train dcgan --data mnist --minutes 3          # DCGAN on the built-in MNIST digits
  gankit train dcgan --data ~/faces --size 64 --channels 3 --set width=32 --set ema=true
  gankit train dcgan --out runs/mine --resume --steps 20000   # continue a run to 20k steps
  gankit train dcgan --data mnist --minutes 10 --eval-every 500  # FID curve + best export
  gankit train cyclegan --data mnist2mnistm --minutes 10  # unpaired MNIST -> MNIST-M translation
  gankit train cyclegan --data ~/horse2zebra --size 128 --steps 200000  # ROOT/trainA, trainB[, testA, testB]
  gankit train text2image --data shapes --minutes 15   # images from captions (its text encoder first, inside the 15)
  gankit train stackgan --data shapes --minutes 20     # encoder, Stage-I into RUN/stage1, then Stage-II (4x the side)
  torchrun --nproc_per_node=2 -m gankit train dcgan --data mnist --steps 2000

Settings for --set (and --config FILE.yaml) are listed per recipe by `gankit recipes`.
"""

SAMPLE_EXAMPLES = """\
examples:
  gankit sample runs/mnist --n 64 --out grid.png
  gankit sample runs/mnist --n 5000 --out samples.npz      # arr_0: uint8 (N,H,W,C)
  gankit sample runs/ring --n 2000 --out points.npz         # arr_0: float32 (N,2)
"""


TXT2IMG_EXAMPLES = """\
examples:
  gankit txt2img runs/t2i "a small red circle on a black background" --out red.png
  gankit txt2img runs/t2i --captions captions.txt --n-per-caption 8 --seed 1 --out grid.png
  gankit txt2img runs/t2i "a big blue square on white" --n-per-caption 100 --out blue.npz   # arr_0 uint8 (N,H,W,C)
  gankit txt2img runs/t2i --interpolate "a red circle" "a blue square" --steps 8 --out interp.png
  gankit txt2img runs/stack "a small red circle on a black background" --stages --out pairs.png

--captions FILE: one caption a line (blank lines skipped). PNG grids hold one caption per row.
--stages (stackgan runs): each Stage-II image beside its Stage-I image (upsampled bicubically in
the PNG; an npz gets the Stage-I images at their own side as `stage1`).
--interpolate A B: the first K rows (K = --n-per-caption, default 4) keep z fixed and move the text
embedding from A to B; the last K rows keep caption A and move z between two draws.
"""


EVAL_EXAMPLES = """\
examples:
  gankit eval runs/mnist                        # 5,000 samples vs the run's training data
  gankit eval samples.npz --data mnist --json   # any generator's samples, arr_0 uint8 (N,H,W,C)
  gankit eval samples.npz --data ~/photos --features inception --inception-weights pt_inception.pth

--features inception needs pytorch-fid's FID InceptionV3 weights file,
pt_inception-2015-12-05-6726825d.pth, on disk (gankit never downloads it): pass
--inception-weights PATH, set GANKIT_INCEPTION_WEIGHTS=PATH, or put it in the torch hub cache,
$TORCH_HOME/hub/checkpoints/ (TORCH_HOME defaults to ~/.cache/torch).
"""

TRANSLATE_EXAMPLES = """\
examples:
  gankit translate runs/m2m digits/ --out translated/             # keeps file names (and sub-folders)
  gankit translate runs/m2m a.png b.png --direction BtoA --out out.npz   # arr_0: uint8 (N,H,W,C), names

Inputs are resized (shorter side) and centre-cropped to the side the run was trained at.
"""


def _parser() -> argparse.ArgumentParser:
    from gankit.recipes import REGISTRY

    p = argparse.ArgumentParser(
        prog="gankit",
        description="Train, sample and inspect the classic GANs on a laptop CPU, offline.",
        epilog="Run `gankit COMMAND --help` for worked examples.",
    )
    p.add_argument("--version", action="version", version=f"gankit {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    recipes = "\n".join(f"  {k:<10} {v[2]}" for k, v in REGISTRY.items())
    t = sub.add_parser(
        "train", help="train a recipe", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Train a recipe into a run directory.\n\nrecipes:\n{recipes}", epilog=TRAIN_EXAMPLES,
    )
    t.add_argument("recipe", help=f"one of: {', '.join(REGISTRY)}")
    t.add_argument("--data", help="built-in name (see `gankit datasets`) or a path")
    t.add_argument("--out", help="run directory (default: runs/RECIPE-DATA-TIME)")
    t.add_argument("--steps", help="total optimisation steps for the run")
    t.add_argument("--minutes", help="wall-clock budget for this invocation, data preparation included (e.g. the "
                                     "text encoder text2image trains first)")
    t.add_argument("--seed", help="random seed (default 0)")
    t.add_argument("--batch", help="minibatch size (recipe default otherwise)")
    t.add_argument("--size", help="image side in pixels (recipe default otherwise)")
    t.add_argument("--channels", help="1 or 3: convert images (native otherwise)")
    t.add_argument("--eval-every", dest="eval_every", metavar="N",
                   help="every N steps: fid_lenet, is_lenet, classes_lenet (cyclegan: content, cycle and fid "
                        "scores) to metrics.jsonl, best export to RUN/best")
    t.add_argument("--config", dest="config_file", metavar="FILE.yaml", help="settings file (flat key: value, or a run's config.yaml)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override one setting (repeatable)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")

    s = sub.add_parser("sample", help="draw samples from a trained run", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Sample a run's export (RUN/export).", epilog=SAMPLE_EXAMPLES)
    s.add_argument("run", help="run directory or export folder")
    s.add_argument("--n", default="64", help="number of samples (default 64)")
    s.add_argument("--seed", default="0", help="seed for the latents (default 0)")
    s.add_argument("--out", required=True, help="FILE.png (grid or scatter) or FILE.npz (arr_0)")

    e = sub.add_parser("eval", help="score samples against real data (offline metrics)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="FID, KID, IS (analogue), precision/recall and class coverage in the features of "
                                   "gankit's own digit classifier (lenet; trained once, offline, and cached), or FID, "
                                   "KID, IS and precision/recall in the standard FID InceptionV3 features (inception; "
                                   "from a local weights file).",
                       epilog=EVAL_EXAMPLES)
    e.add_argument("source", help="run directory (sampled from its export) or FILE.npz (arr_0: uint8 N,H,W,C)")
    e.add_argument("--data", help="real data to compare with (default: the run's training data)")
    e.add_argument("--metrics", help="comma-separated subset of fid,kid,is,pr,classes (classes: lenet only; "
                                     "default: all the extractor supports)")
    e.add_argument("--features", default="lenet",
                   help="feature extractor: lenet (default; gankit's digit classifier) or inception (the FID "
                        "InceptionV3; needs its weights file, see below)")
    e.add_argument("--inception-weights", dest="inception_weights", metavar="PATH",
                   help="pt_inception-2015-12-05-6726825d.pth for --features inception (default: "
                        "$GANKIT_INCEPTION_WEIGHTS, then the torch hub cache)")
    e.add_argument("--n", default="5000", help="samples drawn from a run (default 5000)")
    e.add_argument("--seed", default="0", help="seed for the samples drawn from a run")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    tr = sub.add_parser("translate", help="translate images with a trained cyclegan run",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Map images from one domain of a cyclegan run to the other.",
                        epilog=TRANSLATE_EXAMPLES)
    tr.add_argument("run", help="run directory or export folder")
    tr.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    tr.add_argument("--direction", default="AtoB", help="AtoB (default, G_AB) or BtoA (G_BA)")
    tr.add_argument("--out", required=True, help="DIR (one image per input, same names) or FILE.npz")
    x = sub.add_parser("txt2img", help="images from captions with a text2image or stackgan run",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Generate images for captions with a text2image or stackgan run's export (its "
                                   "own frozen text encoder reads any caption).", epilog=TXT2IMG_EXAMPLES)
    x.add_argument("run", help="text2image or stackgan run directory or export folder")
    x.add_argument("caption", nargs="?", help="the caption (or use --captions FILE / --interpolate)")
    x.add_argument("--captions", metavar="FILE", help="a text file with one caption a line")
    x.add_argument("--n-per-caption", dest="n_per_caption", help="images per caption (default 8; 4 with --interpolate)")
    x.add_argument("--seed", default="0", help="seed for the latents z (default 0)")
    x.add_argument("--interpolate", nargs=2, metavar=("CAPTION_A", "CAPTION_B"),
                   help="interpolate the text embedding from A to B (and z with A fixed)")
    x.add_argument("--steps", default="8", help="images per interpolation row (default 8)")
    x.add_argument("--stages", action="store_true", help="stackgan: Stage-I and Stage-II images side by side")
    x.add_argument("--out", required=True, help="FILE.png (grid) or FILE.npz (arr_0: uint8 N,H,W,C)")

    sub.add_parser("datasets", help="list built-in datasets and the on-disk layouts --data reads")
    sub.add_parser("recipes", help="list recipes and their settings with defaults")
    return p


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name} must be an integer, got {raw!r}") from None


def cmd_train(a: argparse.Namespace) -> int:
    from gankit.train import train

    res = train(a.recipe, out=a.out, resume=a.resume, data=a.data, config_file=a.config_file, overrides=a.overrides,
                steps=a.steps, minutes=a.minutes, seed=a.seed, batch=a.batch, size=a.size, channels=a.channels,
                eval_every=a.eval_every)
    if res.run_dir is None:
        return 0
    if res.reason == "done":
        print(f"{res.run_dir} is already at step {res.step}; raise --steps to train further")
        return 0
    run = res.run_dir
    how = {"steps": "reached its step budget", "minutes": "used its time budget",
           "interrupted": "was interrupted (checkpoint saved; continue with --resume)"}[res.reason]
    print(f"\ntraining {how} at step {res.step}")
    from gankit.engine.loop import EVAL_PLOT_KEYS  # one list of sample-quality metrics: plotted and printed

    quality = {k: res.last[k] for k in EVAL_PLOT_KEYS if k in res.last}
    if quality:
        print("  sample quality:  " + "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in quality.items()))
    for label, path in (("samples", run / "samples" / "latest.png"), ("progress", run / "samples" / "progress.gif"),
                        ("losses", run / "plots" / "losses.png"), ("metrics", run / "metrics.jsonl"),
                        ("export", run / "export"), ("best", run / "best")):
        if path.exists():
            print(f"  {label:<9}{path}")
    if a.recipe == "cyclegan":
        print(f"  translate: gankit translate {run} INPUT... --direction AtoB --out DIR|FILE.npz")
    elif a.recipe in ("text2image", "stackgan"):
        print(f"  from captions: gankit txt2img {run} \"a small red circle on a black background\" --out red.png")
    elif a.recipe == "text-encoder":
        print(f"  use it: gankit train text2image --data {a.data or 'shapes'} --set encoder={run}")
    else:
        print(f"  sample more: gankit sample {run} --n 64 --out grid.png")
    return 130 if res.reason == "interrupted" else 0


def cmd_sample(a: argparse.Namespace) -> int:
    import numpy as np

    from gankit import load, viz
    from gankit.engine.checkpoint import atomic_write

    n, seed, out = _int("--n", a.n), _int("--seed", a.seed), Path(a.out)
    if out.suffix.lower() not in (".png", ".npz"):
        raise UsageError(f"--out must end in .png or .npz, got {out}")
    if not out.parent.is_dir():
        raise UsageError(f"output folder does not exist: {out.parent}")
    model = load(a.run)
    if model.recipe.name == "text-encoder":
        raise UsageError(f"{a.run} is a text encoder (it embeds captions); sample a text2image run trained with it")
    x = model.sample(n, seed=seed)
    if out.suffix.lower() == ".npz":
        arr = x.numpy().astype(np.float32) if model.kind == "points" else viz.to_uint8(x).permute(0, 2, 3, 1).numpy()

        def write(f):  # noqa: ANN001
            np.savez_compressed(f, arr_0=arr)

        atomic_write(out, write)
    elif model.kind == "points":
        info = model.recipe.spec.info
        modes = np.asarray(info["modes"], dtype=np.float32) if "modes" in info else None
        import torch

        viz.save_points(x, out, modes=None if modes is None else torch.from_numpy(modes), std=info.get("std"),
                        title=f"{n} samples, seed {seed}")
    else:
        viz.save_grid(x, out, upscale=max(1, 64 // x.shape[-1]))
    print(f"wrote {n} samples to {out}")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    import json

    import numpy as np
    import torch

    from gankit.data import load_dataset
    from gankit.metrics.evaluate import evaluate, resolve_metrics

    # every request error surfaces before a run is sampled or data is loaded
    metrics = None if a.metrics is None else tuple(m.strip() for m in a.metrics.split(",") if m.strip())
    metrics = resolve_metrics(a.features, metrics)
    if a.inception_weights and a.features != "inception":
        raise UsageError("--inception-weights only applies to --features inception")
    if a.features == "inception":
        from gankit.metrics.inception import find_weights

        find_weights(a.inception_weights)
    n, seed, src = _int("--n", a.n), _int("--seed", a.seed), Path(a.source)
    data_spec = a.data
    if src.suffix.lower() == ".npz":
        if not src.is_file():
            raise UsageError(f"no such file: {src}")
        if data_spec is None:
            raise UsageError("evaluating an .npz needs --data NAME|PATH (the real data to compare with)")
        try:
            with np.load(src, allow_pickle=False) as z:
                arr = z["arr_0"]
        except (OSError, ValueError, KeyError) as err:
            raise UsageError(f"cannot read {src} as an npz with arr_0 ({str(err).splitlines()[0][:100]})") from None
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
            raise UsageError(f"{src}: arr_0 must be uint8 (N,H,W,C) with C 1 or 3, got {arr.dtype} {arr.shape}")
        fake = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    else:
        from gankit import load

        model = load(src)
        if model.recipe.name in ("text2image", "stackgan") and a.metrics is None:
            return _eval_captions(a, model, seed)
        if model.recipe.name == "text-encoder":
            raise UsageError(f"{src} is a text encoder; evaluate the text2image run trained with it")
        data_spec = data_spec or model.config.get("data", {}).get("name")
        if not data_spec:
            raise UsageError(f"cannot tell which data {src} was trained on; pass --data")
        if model.recipe.domains:
            return _eval_translator(a, model, data_spec, n, seed)
        fake = model.sample(n, seed=seed)
    data = load_dataset(data_spec)
    res = evaluate(fake, data, metrics, seed=seed, features=a.features, inception_weights=a.inception_weights)
    if a.json:
        print(json.dumps(res))
    else:
        width = max(18, *(len(k) + 2 for k in res))
        for k, v in res.items():
            if k != "protocol":
                print(f"{k:<{width}}{v:.4g}" if isinstance(v, float) else f"{k:<{width}}{v}")
        p = res["protocol"]
        if "features_held_out_accuracy" in p:
            what = f"{p['features']} (held-out acc {p['features_held_out_accuracy']:.3f})"
        else:
            what = f"{p['features']} ({p['features_weights']}, sha256 {p['features_weights_sha256']})"
        print(f"protocol: {what}, {p['n_fake']} generated vs {p['n_real']} real images of {p['data']}")
    return 0


def _eval_translator(a: argparse.Namespace, model, data_spec: str, n: int, seed: int) -> int:  # noqa: ANN001
    """``gankit eval`` of a cyclegan run: its held-out images, its own scores."""
    import json

    from gankit.data import load_dataset

    if a.metrics is not None or a.features != "lenet":
        raise UsageError(f"a {model.recipe.name} run is scored by content, cycle and fid in its own classifier's "
                         "features; --metrics and --features do not apply")
    C, H, _ = model.recipe.spec.shape
    data = load_dataset(data_spec, channels=C, size=H)
    if not data.domains:
        raise UsageError(f"{data_spec} has one domain; a {model.recipe.name} run is scored on two-domain data "
                         "(ROOT/trainA, trainB[, testA, testB] or mnist2mnistm)")
    res = model.recipe.evaluate(model.recipe.modules, data, n, seed)
    if a.json:
        print(json.dumps(res))
        return 0
    p = res["protocol"]
    for k, v in res.items():
        if k != "protocol":
            print(f"{k:<18}{v:.4g}")
    print(f"protocol: {p['n_A']} held-out A and {p['n_B']} held-out B images of {p['data']}"
          + (f"; classifier of B: {p['features']}, held-out accuracy {p['features_held_out_accuracy']:.3f}" if "features" in p else ""))
    baseline = {k.removeprefix("untranslated_"): v for k, v in p.items() if k.startswith("untranslated_")}
    if baseline:
        print("untranslated A:   " + "  ".join(f"{k} {v:.4g}" for k, v in baseline.items()))
    return 0


def cmd_translate(a: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from gankit import load, viz
    from gankit.data.disk import read_images
    from gankit.engine.checkpoint import atomic_write

    if a.direction not in ("AtoB", "BtoA"):
        raise UsageError(f"--direction must be AtoB or BtoA, got {a.direction!r}")
    out = Path(a.out)
    npz = out.suffix.lower() == ".npz"
    if npz and not out.parent.is_dir():
        raise UsageError(f"output folder does not exist: {out.parent}")
    if not npz and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder or a FILE.npz")
    model = load(a.run)
    if not model.recipe.domains:
        raise UsageError(f"{a.run} is a {model.recipe.name} run; only cyclegan runs translate images")
    C, H, _ = model.recipe.spec.shape
    images, names, warns = read_images(a.inputs, H)
    for w in warns:
        logging.getLogger("gankit").warning("%s", w)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    if C == 1:
        from gankit.data.dataset import to_channels

        x = to_channels(x, 1)
    arr = viz.to_uint8(model.translate(x, a.direction)).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    if npz:
        atomic_write(out, lambda f: np.savez_compressed(f, arr_0=arr, names=np.array(names)))
    else:
        formats = Image.registered_extensions()
        for img, name in zip(arr, names):
            path = out / name
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UsageError(f"cannot create output folder {path.parent}: {err.strerror or err}") from None
            pil = Image.fromarray(img[..., 0] if C == 1 else img)
            fmt = formats.get(path.suffix.lower(), "PNG")
            extra = {"quality": 95} if fmt == "JPEG" else {}
            atomic_write(path, lambda f, im=pil, fm=fmt, kw=extra: im.save(f, format=fm, **kw))
    print(f"translated {len(names)} images {a.direction} to {out}")
    return 0


def _read_captions_file(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such captions file: {p}")
    try:
        lines = [" ".join(line.split()) for line in p.read_bytes().decode("utf-8").splitlines()]
    except UnicodeDecodeError:
        raise UsageError(f"{p} is not UTF-8 text (expected one caption a line)") from None
    except OSError as err:
        raise UsageError(f"cannot read {p}: {err.strerror or err}") from None
    caps = [line for line in lines if line]
    if not caps:
        raise UsageError(f"{p} holds no caption (expected one caption a line)")
    return caps


def cmd_txt2img(a: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from gankit import load, viz
    from gankit.engine.checkpoint import atomic_write

    out, seed, steps = Path(a.out), _int("--seed", a.seed), _int("--steps", a.steps)
    if out.suffix.lower() not in (".png", ".npz"):
        raise UsageError(f"--out must end in .png or .npz, got {out}")
    if not out.parent.is_dir():
        raise UsageError(f"output folder does not exist: {out.parent}")
    given = [x for x in (a.caption is not None, a.captions is not None, a.interpolate is not None) if x]
    if len(given) != 1:
        raise UsageError("give exactly one of: a caption, --captions FILE, --interpolate CAPTION_A CAPTION_B")
    k = _int("--n-per-caption", a.n_per_caption) if a.n_per_caption is not None else (4 if a.interpolate else 8)
    if k <= 0:
        raise UsageError(f"--n-per-caption must be a positive integer, got {k}")
    captions = [a.caption] if a.caption is not None else list(a.interpolate or []) or _read_captions_file(a.captions)
    for cap in captions:
        if not cap.strip():
            raise UsageError("empty caption: write what the image should show, e.g. \"a small red circle\"")
    if a.interpolate and steps < 2:
        raise UsageError(f"--steps must be at least 2, got {steps}")
    if a.stages and a.interpolate:
        raise UsageError("--stages applies to captions, not to --interpolate")
    model = load(a.run)
    recipe = model.recipe
    if recipe.name not in ("text2image", "stackgan"):
        raise UsageError(f"{a.run} is a {recipe.name} run; txt2img needs a text2image or stackgan run")
    if a.stages and not getattr(recipe, "two", False):
        raise UsageError(f"--stages needs a stackgan run with Stage-II; {a.run} is a {recipe.name} "
                         f"{'Stage-I ' if recipe.name == 'stackgan' else ''}run")
    dim = getattr(recipe, "latent_dim", None) or recipe.cfg.z_dim  # stackgan, text2image ca=true: [z, CA noise]
    gen = torch.Generator().manual_seed(seed)
    stage1 = None
    if a.interpolate:
        z0, z1 = torch.randn(k, dim, generator=gen), torch.randn(k, dim, generator=gen)
        emb = recipe.embed(recipe.modules, captions).cpu()  # (2, E)
        w = torch.linspace(0, 1, steps)[:, None]  # (steps, 1)
        text_path = (1 - w) * emb[0] + w * emb[1]  # (steps, E)
        rows = []
        for i in range(k):  # z fixed, caption A -> B
            rows.append(recipe.generate_from_embeddings(recipe.modules, z0[i].expand(steps, -1), text_path))
        for i in range(k):  # caption A fixed, z0 -> z1
            zs = (1 - w) * z0[i] + w * z1[i]
            rows.append(recipe.generate_from_embeddings(recipe.modules, zs, emb[0].expand(steps, -1)))
        images, nrow = torch.cat(rows).cpu(), steps
        what = f"{len(images)} images ({k} rows caption A->B, {k} rows z0->z1 with caption A; {steps} steps)"
    else:
        z = torch.randn(len(captions) * k, dim, generator=gen)
        caps = [c for c in captions for _ in range(k)]
        gen_fn = recipe.generate_stages if a.stages else lambda m, x: [recipe.generate(m, x)]
        parts = [[im.cpu() for im in gen_fn(recipe.modules, recipe.inputs_for(caps[i : i + 500], z[i : i + 500]))]
                 for i in range(0, len(caps), 500)]
        images = torch.cat([p[-1] for p in parts])
        nrow = k
        what = f"{len(images)} images ({len(captions)} caption{'s' if len(captions) > 1 else ''} x {k})"
        if a.stages:
            from gankit.recipes.stackgan import side_by_side, upsample

            stage1 = torch.cat([p[0] for p in parts])
            what += f", each beside its {stage1.shape[-1]} px Stage-I image"
    if out.suffix.lower() == ".npz":
        arr = viz.to_uint8(images).permute(0, 2, 3, 1).numpy()
        extra = {} if stage1 is None else {"stage1": viz.to_uint8(stage1).permute(0, 2, 3, 1).numpy()}
        atomic_write(out, lambda f: np.savez_compressed(f, arr_0=arr, **extra))
    else:
        if stage1 is not None:  # pairs: Stage-I upsampled bicubically, then Stage-II
            images, nrow = side_by_side(upsample(stage1, images.shape[-1]), images), 2 * k
        viz.save_grid(images, out, nrow=nrow, upscale=max(1, 64 // images.shape[-1]))
    print(f"wrote {what} to {out}")
    return 0


def _eval_captions(a: argparse.Namespace, model, seed: int) -> int:  # noqa: ANN001
    """text2image / stackgan on shapes: attribute accuracy for held-out-template captions, sample
    diversity; stackgan: also fid_attr, and for Stage-II runs Stage-I upsampled bicubically."""
    import json

    from gankit.metrics.attributes import caption_accuracy, size_split_text

    data = a.data or model.config.get("data", {}).get("name")
    if data != "shapes":
        raise UsageError(f"caption accuracy needs the built-in shapes data (this run used {data!r}); "
                         "for FID pass --metrics fid,kid --features inception")
    report = getattr(model.recipe, "caption_report", None)
    res = report(model.recipe.modules, seed) if report else caption_accuracy(model.recipe, model.recipe.modules, seed=seed)
    if a.json:
        print(json.dumps(res))
        return 0
    for k, v in res.items():
        if k.endswith(("_acc", "fid_attr")):
            print(f"{k:<32}{v:.4f}")
    d = res["diversity"]
    print(f"diversity for {d['caption']!r} ({d['n']} samples): positions {d['position_share']}, sizes {d['size_share']}, "
          f"colour {d['colour_acc']:.3f}, shape {d['shape_acc']:.3f}")
    pc = d["per_caption"]
    print(f"per caption ({pc['captions']} captions leaving size and position open, {pc['n']} samples each): "
          f"{pc['positions_covered_mean']:.2f} of 5 positions, {pc['sizes_covered_mean']:.2f} of 2 sizes on average; "
          + size_split_text(pc))
    p = res["protocol"]
    clf = ", ".join(f"{k} {v:.3f}" for k, v in p["classifier_held_out_accuracy"].items())
    print(f"protocol: {p['captions']} captions in held-out templates, one image each; classifier {p['classifier']} "
          f"(accuracy on real images: {clf})")
    return 0


def cmd_datasets(a: argparse.Namespace) -> int:
    from gankit.data import describe_datasets

    print(describe_datasets())
    return 0


def cmd_recipes(a: argparse.Namespace) -> int:
    from gankit.config import TrainConfig, to_dict
    from gankit.recipes import REGISTRY, get_recipe

    for name, (_, _, summary) in REGISTRY.items():
        print(f"{name}: {summary}")
        for k, v in to_dict(get_recipe(name).Config()).items():
            print(f"    {k} = {v}")
    print("engine settings (every recipe):")
    for k, v in to_dict(TrainConfig()).items():
        print(f"    {k} = {v}")
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "translate": cmd_translate,
            "txt2img": cmd_txt2img, "datasets": cmd_datasets, "recipes": cmd_recipes}


def main(argv: list[str] | None = None) -> int:
    rc = _main(argv)
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:  # a torchrun worker: see dist.exit_worker
        from gankit.engine.dist import exit_worker

        exit_worker(rc)
    return rc


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    if a.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO, format="gankit: %(message)s", stream=sys.stderr)
    try:
        return COMMANDS[a.command](a)
    except GankitError as err:
        print(f"gankit: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `gankit datasets | head`
        sys.stderr.close()
        return 0

"""Quality per CPU-minute: the textbook DCGAN recipe vs ``gankit train dcgan``, same budget.

(a) textbook: pytorch/examples/dcgan/main.py's settings and loop, written out here on the same
    G and D classes: sigmoid + BCE, BatchNorm in both nets, width 64, z 100, Adam 2e-4 β1 0.5,
    batch 64, a fresh shuffle every epoch. Samples are drawn the way that script draws them (G
    never switched to eval mode, batches of 64).
(b) gankit: ``gankit train dcgan --data mnist --minutes M`` with its defaults (plus any ``--set``
    given here), sampled from its export.

Both train one after the other in this process on the built-in MNIST (5,000 digits, 32 px),
each for the same wall-clock budget; each then draws ``--n`` samples (seed 0), which are scored
with ``gankit.metrics.evaluate`` (lenet features: fid_lenet, kid_lenet, is_lenet,
precision/recall, classes_lenet). The ratio fid(textbook) / fid(gankit) is printed last.
When gankit's run has InfoGAN's categorical code (``info_cat``, on by default), it also prints,
for each code, the lenet class most of its samples get and that class's share, and ``--grids``
writes ``qpm_gankit_codes.png`` (row c: ten samples whose code is c).

    python benchmarks/quality_per_minute.py                       # 3 + 3 minutes, ~8 min total
    python benchmarks/quality_per_minute.py --only gankit --set width=32
    python benchmarks/quality_per_minute.py --grids docs/images   # also writes 8x8 sample grids
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from gankit.data import load_dataset
from gankit.data.dataset import fit_size
from gankit.metrics.evaluate import evaluate, extract
from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_, latent_category

SHOWN = ("fid_lenet", "kid_lenet", "is_lenet", "precision_lenet", "recall_lenet", "classes_lenet")


def textbook(x: torch.Tensor, seconds: float, n: int, seed: int) -> tuple[torch.Tensor, dict]:
    """Train the pytorch/examples DCGAN on uint8 ``x`` (N, 1, 32, 32) for ``seconds``; ``n`` samples."""
    torch.manual_seed(seed)
    nz, width, b, lr = 100, 64, 64, 2e-4
    G, D = DCGANGenerator(nz, x.shape[1], x.shape[-1], width), DCGANDiscriminator(x.shape[1], x.shape[-1], width)
    dcgan_init_(G)
    dcgan_init_(D)
    crit = nn.BCELoss()
    optD = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    optG = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    xf = x.float().div_(127.5).sub_(1)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        perm = torch.randperm(len(xf))
        for i in range(0, len(xf), b):  # DataLoader(shuffle=True), last partial batch kept
            real = xf[perm[i : i + b]]
            m = len(real)
            D.zero_grad()
            err_real = crit(torch.sigmoid(D(real)), torch.ones(m))
            err_real.backward()
            fake = G(torch.randn(m, nz, 1, 1))
            err_fake = crit(torch.sigmoid(D(fake.detach())), torch.zeros(m))
            err_fake.backward()
            optD.step()
            G.zero_grad()
            crit(torch.sigmoid(D(fake)), torch.ones(m)).backward()
            optG.step()
            steps += 1
            if time.perf_counter() - t0 >= seconds:
                break
    elapsed = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the script never calls G.eval(): BatchNorm uses each batch's statistics
        fake = torch.cat([G(torch.randn(min(b, n - i), nz, 1, 1, generator=gen)) for i in range(0, n, b)])
    return fake, {"steps": steps, "seconds": elapsed, "img_per_s": steps * b / elapsed}


def gankit_run(seconds: float, n: int, seed: int, overrides: list[str], out: Path) -> tuple[torch.Tensor, dict]:
    from gankit import load
    from gankit.train import train

    t0 = time.perf_counter()
    res = train("dcgan", out=out, data="mnist", minutes=seconds / 60, seed=seed,
                overrides=["progress=false", *overrides])  # cadence as the CLI default
    elapsed = time.perf_counter() - t0
    steps = getattr(res, "step", None)
    model = load(out)
    batch = model.config["hparams"]["batch"]
    info = {"steps": steps, "seconds": elapsed, "img_per_s": (steps or 0) * batch / elapsed,
            "hparams": model.config["hparams"]}
    fake = model.sample(n, seed=0)
    k = model.config["hparams"].get("info_cat", 0)
    if k:  # the same latents model.sample drew (seed 0): which InfoGAN code each sample had
        info["codes"] = latent_category(model.recipe.data_inputs(n, torch.Generator().manual_seed(0)), k)
    return fake, info


def code_report(fake: torch.Tensor, codes: torch.Tensor, k: int) -> tuple[list[str], torch.Tensor]:
    """How InfoGAN's categorical code maps to lenet's digit classes: for each code, its samples'
    most frequent class and that class's share (1 = the code fixes the digit); and a k x 10 grid,
    row c = the first 10 samples whose code is c."""
    from gankit.metrics.lenet import load_lenet

    lenet, _ = load_lenet()
    cls = extract(lenet, fake.clamp(-1, 1))[1].argmax(1)  # (n,)
    lines, shares, tops = [], [], set()
    for c in range(k):
        counts = torch.bincount(cls[codes == c], minlength=10)
        top = int(counts.argmax())
        tops.add(top)
        shares.append(float(counts[top]) / max(1, int(counts.sum())))
        lines.append(f"code {c}: {int(counts.sum())} samples, digit {top} in {shares[-1]:.1%}")
    lines.append(f"mean share of each code's top digit: {sum(shares) / k:.1%}; the codes' top digits cover "
                 f"{len(tops)} of 10 classes")
    rows = [fake[codes == c][:10] for c in range(k)]
    grid = torch.cat([torch.cat([r, -torch.ones(10 - len(r), *fake.shape[1:])]) for r in rows])
    return lines, grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget for each contender")
    ap.add_argument("--n", type=int, default=5000, help="samples scored per contender")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("textbook", "gankit"), help="run one contender")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra gankit --set override (repeatable)")
    ap.add_argument("--grids", type=Path, help="write qpm_textbook.png / qpm_gankit.png (64 samples) here")
    ap.add_argument("--json", type=Path, help="append the results as one JSON line to this file")
    a = ap.parse_args()

    data = load_dataset("mnist")
    x32, _ = fit_size(data.x, 32)
    results: dict[str, dict] = {}
    for name in ("textbook", "gankit"):
        if a.only and a.only != name:
            continue
        print(f"training {name} for {a.minutes:g} min ...", flush=True)
        if name == "textbook":
            fake, info = textbook(x32, a.minutes * 60, a.n, a.seed)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                fake, info = gankit_run(a.minutes * 60, a.n, a.seed, a.overrides, Path(tmp) / "run")
        codes = info.pop("codes", None)
        scores = evaluate(fake.clamp(-1, 1), data, seed=0)
        results[name] = {**info, **{k: scores[k] for k in SHOWN}}
        if a.grids:
            from gankit import viz

            viz.save_grid(fake[:64], a.grids / f"qpm_{name}.png", upscale=2)
        if codes is not None:
            lines, grid = code_report(fake, codes, info["hparams"]["info_cat"])
            print("  InfoGAN code -> lenet class:\n    " + "\n    ".join(lines), flush=True)
            if a.grids:
                viz.save_grid(grid, a.grids / "qpm_gankit_codes.png", nrow=10, upscale=2)
        print(f"  {name}: " + "  ".join(f"{k} {results[name][k]:.4g}" if isinstance(results[name][k], float)
                                       else f"{k} {results[name][k]}" for k in ("steps", "img_per_s", *SHOWN)),
              flush=True)

    print(f"\nDCGAN on built-in MNIST (32 px), {a.minutes:g} min each, {torch.get_num_threads()} threads, "
          f"{a.n} samples, lenet features")
    print(f"{'':10}{'steps':>7}{'img/s':>8}{'fid':>8}{'kid':>8}{'IS':>7}{'prec':>6}{'rec':>6}{'classes':>8}")
    for name, r in results.items():
        print(f"{name:10}{r['steps']:>7}{r['img_per_s']:>8.0f}{r['fid_lenet']:>8.2f}{r['kid_lenet']:>8.2f}"
              f"{r['is_lenet']:>7.2f}{r['precision_lenet']:>6.2f}{r['recall_lenet']:>6.2f}{r['classes_lenet']:>8}")
    if len(results) == 2:
        ratio = results["textbook"]["fid_lenet"] / results["gankit"]["fid_lenet"]
        print(f"fid_lenet textbook / gankit = {ratio:.2f}  (target >= 5)")
    if a.overrides:
        print("gankit overrides:", " ".join(a.overrides))
    if a.json:
        with a.json.open("a") as f:
            f.write(json.dumps({"minutes": a.minutes, "overrides": a.overrides, **results}) + "\n")


if __name__ == "__main__":
    main()

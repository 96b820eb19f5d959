"""CycleGAN on the built-in MNIST -> MNIST-M task, default settings, a wall-clock budget.

    python benchmarks/cyclegan_mnistm.py                 # 10 minutes, 2 threads
    python benchmarks/cyclegan_mnistm.py --minutes 3 --out runs/m2m-3min

Trains ``gankit train cyclegan --data mnist2mnistm --minutes M`` (a subprocess, as a user would)
and scores the final export on the 500 held-out digits of each domain:

- content_mnistm: the FCN-score analogue: a classifier trained on domain B (MNIST-M) with its
  evaluation-only labels reads G_AB(a) for held-out MNIST digits a; the accuracy against a's
  labels. The classifier's accuracy on real held-out MNIST-M is printed beside it.
- fid_mnistm: FID between G_AB(held-out A) and held-out B in that classifier's features.
- cycle_ABA / cycle_BAB: mean |x - x_rec| in [-1, 1].
- colour: mean over pixels of the standard deviation across R, G, B (0..255): 0 for the plain
  digits, that of real MNIST-M for the target; translated digits must take on colour.

Passes (exit 0) when content_mnistm >= 0.95, the translated images carry at least half the colour
of real MNIST-M, and fid_mnistm is below that of the untranslated digits: the digits stay readable
*and* move toward MNIST-M. (fid_mnistm cannot approach 0: G_AB is deterministic, so a digit
gets one background where MNIST-M draws it over a random photo patch.) The grid (rows: A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B),
G_AB(G_BA(B))) is left in RUN/samples/latest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def colour(x: torch.Tensor) -> float:
    """Mean over pixels of the std across channels, images uint8 or [-1, 1] (N, 3, H, W), in 0..255 units."""
    x = x.float() if x.dtype == torch.uint8 else (x.float() + 1) * 127.5
    return float(x.std(dim=1, unbiased=False).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="run directory (default: a temporary one)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="extra settings")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    run = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="cyclegan-mnistm-")) / "run"
    cmd = [sys.executable, "-m", "gankit", "train", "cyclegan", "--data", "mnist2mnistm", "--minutes", str(a.minutes),
           "--seed", str(a.seed), "--out", str(run), "--set", "progress=false", *[x for s in a.sets for x in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    print("$", " ".join(cmd[1:]), flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, env=env)
    wall = time.monotonic() - t0

    import gankit
    from gankit.data import load_dataset
    from gankit.metrics.translation import evaluate_translation

    model = gankit.load(run)
    data = load_dataset("mnist2mnistm")
    t1 = time.monotonic()
    res = evaluate_translation(lambda x, d: model.translate(x, d), data)
    p = res["protocol"]
    fake_b = model.translate(data.rows("A", held_out=True), "AtoB")
    col = {"A": colour(data.rows("A", held_out=True)), "B": colour(data.rows("B", held_out=True)), "G_AB(A)": colour(fake_b)}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    speed = [r["img_per_s"] for r in records if "img_per_s" in r]
    steps = model.config["step"]

    print(f"\ncyclegan on mnist2mnistm, defaults, {a.minutes:g} minutes, {a.threads} threads, seed {a.seed}")
    print(f"  steps {steps} (batch {model.config['hparams']['batch']}), median {sorted(speed)[len(speed) // 2] if speed else 0:.1f} img/s, "
          f"train wall {wall:.0f} s, scoring {time.monotonic() - t1:.0f} s")
    print(f"  {'':<22}{'translated G_AB(A)':>20}{'untranslated A':>16}")
    print(f"  {'content_mnistm':<22}{res['content_mnistm']:>20.3f}{p['untranslated_content_mnistm']:>16.3f}"
          f"   (classifier on real held-out MNIST-M: {p['features_held_out_accuracy']:.3f})")
    print(f"  {'fid_mnistm':<22}{res['fid_mnistm']:>20.1f}{p['untranslated_fid_mnistm']:>16.1f}")
    print(f"  {'colour (0..255)':<22}{col['G_AB(A)']:>20.1f}{col['A']:>16.1f}   (real MNIST-M: {col['B']:.1f})")
    print(f"  cycle_ABA {res['cycle_ABA']:.3f}   cycle_BAB {res['cycle_BAB']:.3f}   (mean |x - x_rec|, [-1, 1])")
    print(f"  grid: {run / 'samples' / 'latest.png'}")
    ok = (res["content_mnistm"] >= 0.95 and col["G_AB(A)"] >= 0.5 * col["B"]
          and res["fid_mnistm"] < p["untranslated_fid_mnistm"])
    print("PASS" if ok else "FAIL", "(content >= 0.95, colour >= half of MNIST-M's, fid below the untranslated)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""StackGAN on the built-in shapes, end to end, as a user runs it, on 2 CPU cores.

    python benchmarks/stackgan_shapes.py                 # the 20-minute check (encoder + Stage-I + Stage-II)
    python benchmarks/stackgan_shapes.py --minutes 1.5   # a shortened run (says so in its output)

Steps, each a real `gankit` subprocess with OMP/torch limited to 2 threads:

1. ``gankit train stackgan --data shapes --minutes M`` (default 19.5) with default settings and a
   fresh cache: the text encoder is trained first (``encoder=auto``), then Stage-I (16 px) into
   ``RUN/stage1`` for ``stage1_share`` (0.3) of the minutes the encoder left, then Stage-II (64 px)
   for the rest. The wall time of this one command is the budget that must stay under 20 minutes.
   (Before 2026-12-02 ``--minutes`` did not count the encoder, and the default was 14.5.)
2. ``gankit eval RUN --json`` (the attribute classifier is trained here, outside the timed
   budget, and cached): for 1,080 captions in the held-out templates, one image each, the colour /
   shape / size / background accuracy and ``fid_attr`` (FID in the classifier's features against
   real 64 px shapes) of Stage-II's images and of the same latents' Stage-I images upsampled 4x
   bicubically. ``gankit eval RUN/stage1 --json`` adds Stage-I at its own 16 px for reference.

Pass criteria (the issue's): total <= 20 min; Stage-II colour and shape accuracy >= 90 %; Stage-II
better than bicubic Stage-I (lower fid_attr). Results: ``--out`` (default ``runs/bench-stackgan``),
``results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

BUDGET_MINUTES = 20.0
DEFAULT_MINUTES = 19.5  # the whole command, text encoder included; start-up and final exports take the rest
ATTRS = ("colour", "shape", "size", "background", "all")


sys.path.insert(0, str(Path(__file__).resolve().parent))
from text2image_shapes import diversity_lines, evaluate, gankit, progress  # noqa: E402  (one runner for both checks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help=f"--minutes of the training command "
                   f"(default {DEFAULT_MINUTES:g}; encoder and both stages)")
    p.add_argument("--threads", default="2")
    p.add_argument("--out", default="runs/bench-stackgan")
    p.add_argument("--seed", default="0")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="extra setting for the training command (smoke runs only, e.g. encoder_steps=200)")
    a = p.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": a.threads, "MKL_NUM_THREADS": a.threads, "GANKIT_CACHE": str(out / "cache")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1] / "src"),
                                                       env.get("PYTHONPATH")]))
    shortened = a.minutes < DEFAULT_MINUTES or bool(a.sets)
    run = out / "run"
    if (run / "export" / "config.json").is_file():
        print(f"reusing {run}")
        wall = json.loads((out / "results.json").read_text())["wall_s"] if (out / "results.json").is_file() else float("nan")
    else:
        wall = gankit(["train", "stackgan", "--data", "shapes", "--minutes", str(a.minutes), "--seed", a.seed,
                       "--out", str(run), "--set", "progress=false", *sum((["--set", x] for x in a.sets), [])],
                      env, out / "train.log")
        (out / "results.json").write_text(json.dumps({"wall_s": round(wall, 1)}))  # kept if evaluation stops
    res2, res1 = evaluate(run, env), evaluate(run / "stage1", env)
    rows = {
        "Stage-II (64 px)": {k: res2[f"{k}_acc"] for k in ATTRS} | {"fid_attr": res2["fid_attr"]},
        "Stage-I, bicubic x4 (64 px)": {k: res2[f"stage1_bicubic_{k}_acc"] for k in ATTRS}
        | {"fid_attr": res2["stage1_bicubic_fid_attr"]},
        "Stage-I (16 px, its own real set)": {k: res1[f"{k}_acc"] for k in ATTRS} | {"fid_attr": res1["fid_attr"]},
    }
    results = {"minutes": a.minutes, "threads": a.threads, "shortened": shortened, "sets": a.sets, "wall_s": round(wall, 1),
               "steps": {"stage1": progress(run / "stage1")[0], "stage2": progress(run)[0]},
               "rows": rows, "diversity": res2["diversity"], "protocol": res2["protocol"]}
    (out / "results.json").write_text(json.dumps(results, indent=2))

    s2, bic = rows["Stage-II (64 px)"], rows["Stage-I, bicubic x4 (64 px)"]
    ok_time = wall <= BUDGET_MINUTES * 60
    ok_acc = s2["colour"] >= 0.9 and s2["shape"] >= 0.9
    ok_better = s2["fid_attr"] < bic["fid_attr"]
    lines = [
        f"stackgan on shapes, {'--set ' + ' '.join(a.sets) if a.sets else 'defaults'}, {a.threads} threads, "
        f"--minutes {a.minutes:g}" + (" (SHORTENED run, not the 20-minute check)" if shortened else ""),
        f"total {wall / 60:.1f} min; Stage-I {results['steps']['stage1']:,} steps, "
        f"Stage-II {results['steps']['stage2']:,} steps",
        "",
        "| images | colour | shape | size | background | all stated | fid_attr |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * r[k]:.1f} %" for k in ATTRS) + f" | {r['fid_attr']:.2f} |")
    d = res2["diversity"]
    lines += ["", *diversity_lines(d, "Stage-II"),
              f"total {wall / 60:.1f} min <= {BUDGET_MINUTES:g}: {ok_time}; Stage-II colour and shape >= 90 %: {ok_acc}; "
              f"Stage-II fid_attr below bicubic Stage-I: {ok_better}"]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    sys.exit(0 if ok_time and ok_acc and ok_better else 1)


if __name__ == "__main__":
    main()

"""Training-step throughput: gankit's DCGAN step vs a plain textbook loop, side by side.

The textbook loop is the pytorch/examples DCGAN recipe on the *same* G and D classes: sigmoid +
BCELoss, D on real and fake in separate backward passes, then the G step through D (which also
computes D's unused weight gradients), with ``nn.ConvTranspose2d`` as G's first layer where gankit
uses ``ProjectZ`` (timed alone at the end). gankit runs its real engine (sampler, step context,
non-finite checks, logging accumulators) with ``loss=non_saturating`` (the same objective).

gankit's engine keeps conv weights and batches channels-last (NHWC, ``channels_last=true``, the
default); a third contender runs the engine with ``channels_last=false`` (PyTorch's default NCHW
layout) and the ratio of the two is printed. The textbook loop stays NCHW, as pytorch/examples.

All contenders use the same widths for G and D (``--width``). With
``--width-d N`` a fourth contender runs the engine with D at width N (``--set width_d=N``; the
DCGAN default on MNIST is 16) and its speed-up over the same-width engine is printed.

Blocks of steps alternate (textbook, gankit, gankit NCHW, textbook, ...) so machine noise hits
all; the median img/s of each and the ratios are printed. Last, G's first layer (a 4x4
transposed convolution of a 1x1 input) is timed forward + backward as ``nn.ConvTranspose2d`` and
as gankit's ``ProjectZ`` (the same map as one matrix product), alternating, medians printed.

``--text2image`` instead times the text2image recipe's full step (GAN-INT-CLS with the defaults'
contrastive and mode-seeking terms) on the built-in ``shapes`` at its default 32 px: D as wide as
G against D at ``--width-d`` (default 16), alternating blocks. The text
encoder is a 2-step throwaway in a temporary cache: its weights do not change the step's cost.

``--text-encoder`` times the text encoder's training step (``gankit train text-encoder --data
shapes --size 32``, the one text2image trains first) with gankit's char-CNN-RNN against the same
network computed as drawn: the one-hot (B, 70, max_chars) input through ``conv1`` over all
``max_chars`` characters. gankit gathers conv1's weight columns instead and cuts each batch after
the characters its last valid recurrent step reads; the outputs are the same
(``tests/test_text2image.py``). Same weights, same engine, alternating blocks.

    python benchmarks/throughput.py                 # DCGAN-64: width 64, batch 64, 3x64x64
    python benchmarks/throughput.py --size 32 --channels 1 --width 32 --width-d 16 --steps 20
    python benchmarks/throughput.py --text2image --width 32 --width-d 16 --steps 10
    python benchmarks/throughput.py --text-encoder --steps 20
    python benchmarks/throughput.py --text2image --width 32 --against 5a79c5a --steps 20 --blocks 6
    python benchmarks/throughput.py --text2image --width 32 --with lambda_imle=10 --steps 20

``--text2image --with ca=true,ms_space=occupancy`` times the defaults' step against the step with
those settings (any ``--set`` items, comma-separated), alternating blocks.

``--text2image --against REV`` times this tree's text2image step against the step git revision
REV wrote (its ``train_step`` and helpers, on this tree's config and engine), alternating blocks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from torch import nn

from gankit.config import TrainConfig
from gankit.data.dataset import Dataset
from gankit.engine.loop import Engine
from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator, ProjectZ, dcgan_init_, num_stages
from gankit.models.text_encoder import CharCNNRNN
from gankit.recipes.base import DataSpec
from gankit.recipes.dcgan import DCGANConfig, DCGANRecipe


def textbook(x: torch.Tensor, cfg: DCGANConfig, size: int, channels: int):
    """pytorch/examples/dcgan/main.py's loop, reduced to its arithmetic."""
    torch.manual_seed(0)
    G, D = DCGANGenerator(cfg.z_dim, channels, size, cfg.width), DCGANDiscriminator(channels, size, cfg.width)
    G.net[0] = nn.ConvTranspose2d(cfg.z_dim, G.net[0].out_channels, 4, 1, 0, bias=False)  # the reference's layer
    dcgan_init_(G)
    dcgan_init_(D)
    crit = nn.BCELoss()
    optD = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    optG = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    b = cfg.batch
    ones, zeros = torch.ones(b), torch.zeros(b)

    def step(i: int) -> None:
        real = x[(i * b) % (len(x) - b) :][:b].float().div(127.5).sub(1)
        D.zero_grad()
        err_real = crit(torch.sigmoid(D(real)), ones)
        err_real.backward()
        fake = G(torch.randn(b, cfg.z_dim, 1, 1))
        err_fake = crit(torch.sigmoid(D(fake.detach())), zeros)
        err_fake.backward()
        optD.step()
        G.zero_grad()
        err_g = crit(torch.sigmoid(D(fake)), ones)
        err_g.backward()
        optG.step()

    return step


def gankit_engine(x: torch.Tensor, cfg: DCGANConfig, channels_last: bool = True):
    ds = Dataset("bench", "image", x, None, {})
    spec = DataSpec.from_dataset(ds)
    tcfg = TrainConfig(steps=1, progress=False, log_every=50, channels_last=channels_last)
    return stepper(Engine(DCGANRecipe(cfg, spec), ds, tcfg, {}))


def stepper(eng: Engine):
    """A function that trains ``eng`` for n more steps."""

    def run(n: int) -> None:
        eng.tcfg.steps = eng.step + n
        eng.fit(None)

    return run


def print_rates(header: str, rates: dict[str, list[float]], width: int) -> dict[str, float]:
    """Print each contender's median img/s and its blocks; return the medians."""
    print(header)
    med = {k: statistics.median(v) for k, v in rates.items()}
    for name, r in rates.items():
        print(f"  {name:<{width}s}{med[name]:8.1f} img/s   (blocks: {', '.join(f'{x:.0f}' for x in r)})")
    return med


def text2image_engines(width: int, batch: int, setups: list[tuple[list[str], type | None]]) -> list:
    """The text2image recipe's engine on shapes, as ``gankit train text2image`` builds it, once per
    setup: extra ``--set`` items and a recipe class (None: this tree's)."""
    import copy

    from gankit.train import load_data, resolve

    runs, ds = [], None
    for extra, recipe in setups:
        sets = [f"width={width}", f"batch={batch}", "encoder_steps=2", "sample_every=100000", "standing_stats=0",
                "progress=false", "log_every=50", *extra]
        cls, hp, tcfg = resolve("text2image", data="shapes", overrides=sets, steps=1)  # a tcfg per engine
        if ds is None:  # the data and its embeddings do not depend on the setups: load once
            ds = load_data(tcfg.data, cls, hp, tcfg)
        data = copy.copy(ds)
        runs.append(stepper(Engine((recipe or cls)(hp, DataSpec.from_dataset(data)), data, tcfg, {})))
    return runs


def alternate(contenders: list, steps: int, blocks: int, batch: int) -> dict[str, list[float]]:
    """img/s of each block, contenders' blocks interleaved so machine noise hits all alike."""
    for _, run in contenders:  # warm-up: allocator, oneDNN primitive caches
        run(2)
    rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(blocks):
        for name, run in contenders:
            t = time.perf_counter()
            run(steps)
            rates[name].append(steps * batch / (time.perf_counter() - t))
    return rates


def step_of_revision(rev: str):
    """``Text2ImageRecipe.train_step`` as git revision ``rev`` wrote it (its module loaded from
    ``git show``, so its helpers are that revision's too)."""
    import importlib.util
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = subprocess.run(["git", "-C", root, "show", f"{rev}:src/gankit/recipes/text2image.py"], check=True,
                         capture_output=True, text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "text2image_at_rev.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("text2image_at_rev", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file executes
    spec.loader.exec_module(mod)
    return mod.Text2ImageRecipe.train_step


def text2image_pair(a: argparse.Namespace, first: tuple[str, list[str], type | None],
                    second: tuple[str, list[str], type | None]) -> None:
    """Two text2image steps, each (label, ``--set`` items, recipe class or None: this tree's), in
    alternating blocks; prints both rates and second / first."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GANKIT_CACHE"] = cache  # the throwaway encoder and embeddings go here
        engines = text2image_engines(a.width, a.batch, [(sets, recipe) for _, sets, recipe in (first, second)])
        rates = alternate([(first[0], engines[0]), (second[0], engines[1])], a.steps, a.blocks, a.batch)
    med = print_rates(f"text2image step on shapes, 32 px, width {a.width} batch {a.batch}, {torch.get_num_threads()} "
                      f"threads, {a.blocks} blocks x {a.steps} steps each", rates,
                      max(12, len(first[0]) + 2, len(second[0]) + 2))
    print(f"  ratio {second[0]} / {first[0]} = {med[second[0]] / med[first[0]]:.3f}")


def text2image_main(a: argparse.Namespace) -> None:
    if a.against:  # this tree's step against revision a.against's, on this tree's config and engine
        from gankit.recipes.text2image import Text2ImageRecipe

        at_rev = type("AtRevision", (Text2ImageRecipe,), {"train_step": step_of_revision(a.against)})
        return text2image_pair(a, (a.against, [], at_rev), ("this tree", [], None))
    if a.with_sets:  # the defaults against the step with these settings (D as wide as G)
        sets = [s for s in a.with_sets.split(",") if s]
        return text2image_pair(a, ("defaults", [], None), (" ".join(sets), sets, None))
    width_d = a.width_d or 16
    text2image_pair(a, (f"width_d {a.width}", [f"width_d={a.width}"], None),
                    (f"width_d {width_d}", [f"width_d={width_d}"], None))


class OneHotCharCNNRNN(CharCNNRNN):
    """The char-CNN-RNN as drawn (``CharCNNRNN.one_hot_forward``)."""

    forward = CharCNNRNN.one_hot_forward


def text_encoder_main(a: argparse.Namespace) -> None:
    from gankit.recipes.text_encoder import TextEncoderRecipe
    from gankit.train import load_data, resolve

    class OneHotRecipe(TextEncoderRecipe):
        def build(self, device: torch.device) -> None:
            super().build(device)
            T = OneHotCharCNNRNN(**self.cfg.text_arch()).to(device)
            T.load_state_dict(self.modules["T"].state_dict())  # the same weights as gankit's
            self.modules["T"] = T
            self.optimizers["joint"] = torch.optim.Adam([*T.parameters(), *self.modules["V"].parameters()],
                                                        lr=self.cfg.lr)

    sets = ["sample_every=100000", "progress=false", "log_every=50"]
    cls, hp, tcfg = resolve("text-encoder", data="shapes", overrides=sets, steps=1, size=32, batch=a.batch)
    ds = load_data(tcfg.data, cls, hp, tcfg)
    contenders = []
    for name, recipe_cls in (("one-hot conv", OneHotRecipe), ("gankit", TextEncoderRecipe)):
        torch.manual_seed(0)  # the same initial weights for both
        contenders.append((name, stepper(Engine(recipe_cls(hp, DataSpec.from_dataset(ds)), ds, tcfg, {}))))
    rates = alternate(contenders, a.steps, a.blocks, a.batch)
    med = print_rates(f"text encoder on shapes (32 px, max_chars {hp.max_chars}), batch {a.batch}, "
                      f"{torch.get_num_threads()} threads, {a.blocks} blocks x {a.steps} steps each", rates, 14)
    print(f"  ratio gankit / one-hot conv = {med['gankit'] / med['one-hot conv']:.3f}")


def first_layer(z_dim: int, ch: int, batch: int, blocks: int) -> tuple[float, float]:
    """Median ms of forward + backward of G's first layer: nn.ConvTranspose2d vs ProjectZ."""
    torch.manual_seed(0)
    ref = nn.ConvTranspose2d(z_dim, ch, 4, 1, 0, bias=False).to(memory_format=torch.channels_last)
    fast = ProjectZ(z_dim, ch, 4, 1, 0, bias=False).to(memory_format=torch.channels_last)
    z = torch.randn(batch, z_dim, 1, 1, requires_grad=True)
    times: dict[nn.Module, list[float]] = {ref: [], fast: []}
    for i in range(blocks * 10 + 4):
        for m in (ref, fast):
            t = time.perf_counter()
            m(z).backward(torch.ones(batch, ch, 4, 4))
            if i >= 4:  # the first calls build oneDNN primitives
                times[m].append((time.perf_counter() - t) * 1e3)
    return statistics.median(times[ref]), statistics.median(times[fast])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--width-d", type=int, default=None, help="also run the engine with D at this width")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks per contender")
    ap.add_argument("--text2image", action="store_true", help="time text2image's step, D at --width vs --width-d")
    ap.add_argument("--against", metavar="REV", help="with --text2image: this tree's step against git revision REV's")
    ap.add_argument("--with", dest="with_sets", metavar="K=V,...",
                    help="with --text2image: the defaults' step against the step with these settings")
    ap.add_argument("--text-encoder", action="store_true", help="time the text encoder's step against one-hot conv1")
    a = ap.parse_args()
    if a.text2image:
        return text2image_main(a)
    if a.text_encoder:
        return text_encoder_main(a)
    cfg = DCGANConfig(width=a.width, width_d=a.width, batch=a.batch, size=a.size)
    x = torch.randint(0, 256, (1024, a.channels, a.size, a.size), dtype=torch.uint8)
    tb_step = textbook(x, cfg, a.size, a.channels)
    gk_run = gankit_engine(x, cfg)
    nchw_run = gankit_engine(x, cfg, channels_last=False)

    def tb_run(n: int) -> None:
        for i in range(n):
            tb_step(i)

    contenders = [("textbook", tb_run), ("gankit", gk_run), ("gankit_nchw", nchw_run)]
    if a.width_d:
        narrow = DCGANConfig(width=a.width, width_d=a.width_d, batch=a.batch, size=a.size)
        contenders.append(("gankit_narrow_d", gankit_engine(x, narrow)))
    rates = alternate(contenders, a.steps, a.blocks, a.batch)
    tb, gk, nchw = (statistics.median(rates[k]) for k in ("textbook", "gankit", "gankit_nchw"))
    print(f"DCGAN-{a.size} width {a.width} batch {a.batch}, {a.channels} channels, {torch.get_num_threads()} threads, "
          f"{a.blocks} blocks x {a.steps} steps each")
    print(f"  textbook loop  {tb:8.1f} img/s   (blocks: {', '.join(f'{r:.0f}' for r in rates['textbook'])})")
    print(f"  gankit engine  {gk:8.1f} img/s   (blocks: {', '.join(f'{r:.0f}' for r in rates['gankit'])})")
    print(f"  gankit, NCHW   {nchw:8.1f} img/s   (blocks: {', '.join(f'{r:.0f}' for r in rates['gankit_nchw'])};"
          " --set channels_last=false)")
    print(f"  ratio gankit / textbook = {gk / tb:.3f}   channels_last / NCHW = {gk / nchw:.3f}")
    if a.width_d:
        nd = statistics.median(rates["gankit_narrow_d"])
        print(f"  gankit, width_d {a.width_d:<3d}{nd:8.1f} img/s   (blocks: "
              f"{', '.join(f'{r:.0f}' for r in rates['gankit_narrow_d'])}); ratio to width_d {a.width} = {nd / gk:.3f}")
    ch = a.width * 2 ** (num_stages(a.size) - 1)
    conv_ms, proj_ms = first_layer(cfg.z_dim, ch, a.batch, a.blocks)
    print(f"  G's first layer ({cfg.z_dim} -> {ch}x4x4, forward + backward): ConvTranspose2d {conv_ms:.2f} ms, "
          f"ProjectZ {proj_ms:.2f} ms, ratio {conv_ms / proj_ms:.2f}")


if __name__ == "__main__":
    main()

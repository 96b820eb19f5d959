"""Feature-space sample-quality scores: FID, KID, Inception Score, improved precision/recall.

Pure functions of torch tensors (no I/O, no global state); every reduction is done in float64.
Feature extraction (LeNet, InceptionV3) happens elsewhere; these functions only see features or
class probabilities.

- **FID** — Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
  Nash Equilibrium", arXiv:1706.08500, Eq. (6): the Fréchet (2-Wasserstein) distance between the
  Gaussians N(mu1, S1) and N(mu2, S2) fitted to real and generated features,

      d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).

  We avoid the non-symmetric ``scipy.linalg.sqrtm(S1 @ S2)`` with the identity

      Tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(S1^{1/2} S2 S1^{1/2})),

  which holds because AB and BA have the same eigenvalues: with A = S1^{1/2}, B = S1^{1/2} S2,
  eig(S1 S2) = eig(S1^{1/2} S2 S1^{1/2}), and the latter matrix is symmetric PSD, so its
  eigenvalues are real and >= 0 and ``torch.linalg.eigh`` computes them stably (also for singular,
  rank-deficient covariances, where sqrtm can return complex junk or NaN).
- **KID** — Bińkowski et al. 2018, "Demystifying MMD GANs", arXiv:1801.01401, Sec. 2.1 / Eq. (2)
  for the unbiased MMD^2 estimator and Sec. 4 ("KID") for the kernel k(x, y) = (x.y / d + 1)^3:

      MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
                - 2/m^2 sum_{i,j} k(x_i, y_j),

  averaged over random subsets of size m (as in their reference code and torch-fidelity).
- **Inception Score** — Salimans et al. 2016, "Improved Techniques for Training GANs",
  arXiv:1606.03498, Sec. 4: IS = exp(E_x KL(p(y|x) || p(y))), with p(y) the marginal over each
  split; mean and std over splits.
- **Precision / recall** — Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models", arXiv:1904.06991, Eqs. (1)-(3): the manifold of a set is the union
  of balls around its samples with radius the distance to the k-th nearest neighbour in the same
  set; precision = fraction of generated samples inside the real manifold, recall = fraction of
  real samples inside the generated manifold.

Standard deviations (KID over subsets, IS over splits) are population std (ddof=0), like
``np.std`` in the reference implementations, so one subset/split gives 0 rather than NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "FeatureStats",
    "fid",
    "frechet_distance",
    "inception_score",
    "kid",
    "precision_recall",
]

_F64 = torch.float64


@dataclass
class FeatureStats:
    """Running first and second moments of features, float64.

    Only sums are stored, so batches can be added in any order, partial statistics merged
    (``merge``) and, under DDP, ``sum``/``sum_outer``/``n`` all-reduced with a plain SUM.
    """

    n: int
    sum: Tensor  # (D,)
    sum_outer: Tensor  # (D, D): sum_i x_i x_i^T

    @classmethod
    def empty(cls, dim: int, device: torch.device | str | None = None) -> FeatureStats:
        return cls(0, torch.zeros(dim, dtype=_F64, device=device), torch.zeros(dim, dim, dtype=_F64, device=device))

    @property
    def dim(self) -> int:
        return self.sum.shape[0]

    def update(self, feats: Tensor) -> None:
        """Accumulate a batch ``feats`` (B, D) of any float dtype."""
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"expected features of shape (B, {self.dim}), got {tuple(feats.shape)}")
        f = feats.detach().to(dtype=_F64, device=self.sum.device)
        self.n += f.shape[0]
        self.sum += f.sum(dim=0)
        self.sum_outer += f.T @ f

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Statistics of the union of both sample sets (neither input is modified)."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge dim {self.dim} with dim {other.dim}")
        dev = self.sum.device
        return FeatureStats(
            self.n + other.n, self.sum + other.sum.to(dev), self.sum_outer + other.sum_outer.to(dev)
        )

    @property
    def mean(self) -> Tensor:
        if self.n < 1:
            raise ValueError("mean needs at least 1 sample")
        return self.sum / self.n

    @property
    def cov(self) -> Tensor:
        """Unbiased covariance (divides by n - 1), like ``np.cov(rowvar=False)``."""
        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 samples, got {self.n}")
        mu = self.sum / self.n
        c = (self.sum_outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return (c + c.T) / 2  # exact symmetry for eigh downstream

    def state_dict(self) -> dict[str, Tensor | int]:
        """Plain int + CPU tensors: loadable with ``torch.load(..., weights_only=True)``."""
        return {
            "n": int(self.n),
            "sum": self.sum.detach().cpu().clone(),
            "sum_outer": self.sum_outer.detach().cpu().clone(),
        }

    @classmethod
    def from_state_dict(cls, d: dict[str, Tensor | int]) -> FeatureStats:
        s, so = torch.as_tensor(d["sum"], dtype=_F64), torch.as_tensor(d["sum_outer"], dtype=_F64)
        if s.ndim != 1 or so.shape != (s.shape[0], s.shape[0]):
            raise ValueError(f"inconsistent shapes sum {tuple(s.shape)}, sum_outer {tuple(so.shape)}")
        return cls(int(d["n"]), s.clone(), so.clone())


def _sym_psd_sqrt(s: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix via eigh (round-off negatives -> 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (arXiv:1706.08500, Eq. 6).

    Tr((S1 S2)^{1/2}) is the sum of square roots of the eigenvalues of the symmetric PSD matrix
    S1^{1/2} S2 S1^{1/2} (same spectrum as S1 S2, since eig(AB) = eig(BA)); see module docstring.
    """
    mu1 = torch.as_tensor(mu1).detach().to(dtype=_F64).reshape(-1)
    dev, d = mu1.device, mu1.shape[0]
    mu2 = torch.as_tensor(mu2).detach().to(device=dev, dtype=_F64).reshape(d)
    s1 = torch.as_tensor(sigma1).detach().to(device=dev, dtype=_F64).reshape(d, d)
    s2 = torch.as_tensor(sigma2).detach().to(device=dev, dtype=_F64).reshape(d, d)
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    r1 = _sym_psd_sqrt(s1)
    m = r1 @ s2 @ r1
    m = (m + m.T) / 2  # remove round-off asymmetry so eigvalsh sees a symmetric matrix
    tr_covmean = torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    d2 = float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)
    return max(d2, 0.0)  # a squared distance; identical statistics can round to -1e-6


def fid(real: FeatureStats, fake: FeatureStats) -> float:
    """FID between two feature statistics (same extractor, same dim)."""
    if real.dim != fake.dim:
        raise ValueError(f"feature dims differ: {real.dim} vs {fake.dim}")
    return frechet_distance(real.mean, real.cov, fake.mean, fake.cov)


def _feature_pair(real_feats: Tensor, fake_feats: Tensor) -> tuple[Tensor, Tensor]:
    """Both feature sets as float64 (N, D) on the real set's device, with equal D."""
    x = torch.as_tensor(real_feats).detach().to(_F64)
    y = torch.as_tensor(fake_feats).detach().to(device=x.device, dtype=_F64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected (N, D) features with equal D, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def _poly_kernel(x: Tensor, y: Tensor) -> Tensor:
    return (x @ y.T / x.shape[1] + 1) ** 3


def _mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD^2 (arXiv:1801.01401, Eq. 2) for equal-size sets: diagonals dropped in k_xx, k_yy."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / (m * m)


def kid(
    real_feats: Tensor,
    fake_feats: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) of unbiased MMD^2 over random subsets.

    Each subset draws ``m = min(subset_size, n_real, n_fake)`` real and fake samples without
    replacement; polynomial kernel (x.y/d + 1)^3 with d the feature dimension.
    """
    x_all, y_all = _feature_pair(real_feats, fake_feats)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(subset_size, x_all.shape[0], y_all.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got subset size {m}")
    # Indices are drawn on the generator's device (randperm requires it), then moved to the data.
    gdev = generator.device if generator is not None else torch.device("cpu")
    vals = torch.empty(subsets, dtype=_F64)
    for i in range(subsets):
        ix = torch.randperm(x_all.shape[0], generator=generator, device=gdev)[:m].to(x_all.device)
        iy = torch.randperm(y_all.shape[0], generator=generator, device=gdev)[:m].to(x_all.device)
        vals[i] = _mmd2_unbiased(x_all[ix], y_all[iy]).cpu()
    return float(vals.mean()), float(vals.std(correction=0))


def inception_score(probs: Tensor, splits: int = 10) -> tuple[float, float]:
    """Inception Score (arXiv:1606.03498, Sec. 4): (mean, std) of exp(E_x KL(p(y|x) || p(y))).

    Samples are split like ``np.array_split`` (sizes differ by at most one, none dropped); p(y) is
    the marginal within each split, as in the reference implementation.
    """
    p = torch.as_tensor(probs).detach().to(_F64)
    if p.ndim != 2:
        raise ValueError(f"expected probs of shape (N, K), got {tuple(p.shape)}")
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must be in [1, N={p.shape[0]}], got {splits}")
    scores = []
    for part in torch.tensor_split(p, splits, dim=0):
        py = part.mean(dim=0, keepdim=True)
        # p log p -> 0 at p = 0 thanks to the clamp (0 * log 1e-12 = 0), no NaN.
        kl = (part * (part.clamp_min(1e-12).log() - py.clamp_min(1e-12).log())).sum(dim=1).mean()
        scores.append(kl.exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(correction=0))


def _sq_dists(a: Tensor, b: Tensor, b_sqnorm: Tensor) -> Tensor:
    """Squared Euclidean distances (float64 via the Gram trick; clamp round-off negatives)."""
    return (a.square().sum(dim=1, keepdim=True) + b_sqnorm[None, :] - 2 * a @ b.T).clamp_min(0)


def _knn_radii_sq(x: Tensor, k: int, batch: int) -> Tensor:
    """Squared distance from each row of ``x`` to its k-th nearest *other* row."""
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n-1={n - 1}], got k={k}")
    sq = x.square().sum(dim=1)
    out = torch.empty(n, dtype=_F64, device=x.device)
    for i0 in range(0, n, batch):
        d2 = _sq_dists(x[i0 : i0 + batch], x, sq)
        rows = torch.arange(d2.shape[0], device=x.device)
        d2[rows, rows + i0] = math.inf  # exclude self explicitly (Gram-trick self-distance need not be exactly 0)
        out[i0 : i0 + batch] = torch.kthvalue(d2, k, dim=1).values
    return out


def _coverage(centers: Tensor, radii_sq: Tensor, queries: Tensor, batch: int) -> float:
    """Fraction of ``queries`` inside at least one ball (centre, radius) — distance <= radius."""
    sq = centers.square().sum(dim=1)
    inside = 0
    for i0 in range(0, queries.shape[0], batch):
        d2 = _sq_dists(queries[i0 : i0 + batch], centers, sq)
        inside += int((d2 <= radii_sq[None, :]).any(dim=1).sum())
    return inside / queries.shape[0]


def precision_recall(real_feats: Tensor, fake_feats: Tensor, k: int = 3, batch: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (arXiv:1904.06991, Eqs. 1-3) with k-NN radii.

    Distances are computed ``batch`` rows at a time (memory O(batch * N)), in float64, and compared
    squared to avoid square roots.
    """
    x, y = _feature_pair(real_feats, fake_feats)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    precision = _coverage(x, _knn_radii_sq(x, k, batch), y, batch)
    recall = _coverage(y, _knn_radii_sq(y, k, batch), x, batch)
    return precision, recall

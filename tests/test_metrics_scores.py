import math

import numpy as np
import pytest
import scipy.linalg
import torch

from gankit.metrics.scores import (
    FeatureStats,
    fid,
    frechet_distance,
    inception_score,
    kid,
    precision_recall,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_spd(d, rng):
    a = rng.standard_normal((d, 2 * d))
    return a @ a.T / (2 * d) + 0.1 * np.eye(d)


# ---------------------------------------------------------------- FeatureStats


def test_feature_stats_matches_numpy_over_batches():
    g = gen(0)
    x = torch.randn(203, 7, generator=g) * 3 + 5  # offset mean: cancellation in sum_outer - n mu mu^T
    st = FeatureStats.empty(7)
    for chunk in x.split(37):
        st.update(chunk.float())
    assert st.n == 203 and st.sum.dtype == torch.float64
    xn = x.double().numpy()
    np.testing.assert_allclose(st.mean.numpy(), xn.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st.cov.numpy(), np.cov(xn, rowvar=False), rtol=1e-9, atol=1e-10)


def test_feature_stats_merge_equals_single_pass():
    x = torch.randn(100, 5, generator=gen(1), dtype=torch.float64)
    one = FeatureStats.empty(5)
    one.update(x)
    a, b = FeatureStats.empty(5), FeatureStats.empty(5)
    a.update(x[:30])
    b.update(x[30:])
    m = a.merge(b)
    assert m.n == 100 and a.n == 30  # merge does not mutate
    torch.testing.assert_close(m.mean, one.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.cov, one.cov, rtol=1e-12, atol=1e-12)


def test_feature_stats_state_dict_round_trip(tmp_path):
    st = FeatureStats.empty(4)
    st.update(torch.randn(50, 4, generator=gen(2)))
    path = tmp_path / "stats.pt"
    torch.save(st.state_dict(), path)
    back = FeatureStats.from_state_dict(torch.load(path, weights_only=True))
    assert back.n == st.n
    assert torch.equal(back.sum, st.sum) and torch.equal(back.sum_outer, st.sum_outer)
    assert torch.equal(back.cov, st.cov)


def test_feature_stats_errors():
    st = FeatureStats.empty(3)
    st.update(torch.zeros(1, 3))
    with pytest.raises(ValueError):
        st.cov
    with pytest.raises(ValueError):
        st.update(torch.zeros(2, 4))
    with pytest.raises(ValueError):
        st.merge(FeatureStats.empty(2))


# ---------------------------------------------------------------- Fréchet distance


def scipy_fd(mu1, s1, mu2, s2):
    diff = mu1 - mu2
    return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)


@pytest.mark.parametrize("d", [2, 16, 64])
def test_frechet_matches_scipy(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(d, rng), random_spd(d, rng)
    got = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu2), torch.from_numpy(s2))
    assert isinstance(got, float)
    assert got == pytest.approx(scipy_fd(mu1, s1, mu2, s2), rel=1e-6)


def test_frechet_identical_is_zero():
    rng = np.random.default_rng(3)
    mu, s = torch.from_numpy(rng.standard_normal(32)), torch.from_numpy(random_spd(32, rng))
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-6


def test_frechet_1d_closed_form():
    m1, m2, sd1, sd2 = 0.3, -1.2, 0.7, 2.5
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731 (float32 would round the inputs)
    got = frechet_distance(t([m1]), t([[sd1**2]]), t([m2]), t([[sd2**2]]))
    assert got == pytest.approx((m1 - m2) ** 2 + (sd1 - sd2) ** 2, rel=1e-12)


def test_frechet_rank_deficient_no_nan():
    g = gen(4)
    a, b = FeatureStats.empty(16), FeatureStats.empty(16)
    a.update(torch.randn(5, 16, generator=g))  # rank 4 covariance
    b.update(torch.randn(6, 16, generator=g) + 1)  # rank 5
    v = fid(a, b)
    assert math.isfinite(v) and v > 0
    assert abs(fid(a, a)) < 1e-6


def test_fid_from_stats_matches_scipy():
    g = gen(5)
    x, y = torch.randn(300, 8, generator=g), torch.randn(250, 8, generator=g) * 1.5 + 0.5
    a, b = FeatureStats.empty(8), FeatureStats.empty(8)
    a.update(x)
    b.update(y)
    xn, yn = x.double().numpy(), y.double().numpy()
    ref = scipy_fd(xn.mean(0), np.cov(xn, rowvar=False), yn.mean(0), np.cov(yn, rowvar=False))
    assert fid(a, b) == pytest.approx(ref, rel=1e-6)


# ---------------------------------------------------------------- KID


def naive_mmd2(x, y):
    m, d = len(x), len(x[0])

    def k(a, b):
        return (sum(p * q for p, q in zip(a, b)) / d + 1) ** 3

    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_matches_naive():
    g = gen(6)
    x, y = torch.randn(20, 3, generator=g), torch.randn(20, 3, generator=g) + 0.5
    mean, std = kid(x, y, subsets=1, subset_size=20, generator=gen(0))
    ref = naive_mmd2(x.double().tolist(), y.double().tolist())
    assert mean == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert std == 0.0
    # subset_size capped at min(n_real, n_fake); full-size subsets are permutations -> same value
    assert kid(x, y, subsets=3, subset_size=1000, generator=gen(1))[0] == pytest.approx(ref, rel=1e-10)


def test_kid_same_vs_shifted_distribution():
    g = gen(7)
    x, y = torch.randn(600, 8, generator=g), torch.randn(600, 8, generator=g)
    mean, std = kid(x, y, subsets=20, subset_size=200, generator=gen(1))
    assert abs(mean) < 3 * std or abs(mean) < 1e-3
    mean_s, std_s = kid(x, y + 1.0, subsets=20, subset_size=200, generator=gen(1))
    assert mean_s > 0.1 and mean_s > 10 * std_s and mean_s > 10 * abs(mean)


def test_kid_reproducible_with_generator():
    g = gen(8)
    x, y = torch.randn(100, 4, generator=g), torch.randn(80, 4, generator=g)
    assert kid(x, y, subsets=5, subset_size=30, generator=gen(3)) == kid(x, y, subsets=5, subset_size=30, generator=gen(3))


# ---------------------------------------------------------------- Inception Score


def test_is_uniform_is_one():
    mean, std = inception_score(torch.full((100, 10), 0.1), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_is_one_hot_spread_is_k():
    k = 10
    probs = torch.nn.functional.one_hot(torch.arange(1000) % k, k).float()
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(k, rel=1e-10) and std == pytest.approx(0.0, abs=1e-9)


def test_is_matches_naive_kl():
    probs = torch.softmax(3 * torch.randn(103, 7, generator=gen(9), dtype=torch.float64), dim=1)
    p = probs.numpy()
    scores = []
    for part in np.array_split(p, 4):
        py = part.mean(0)
        kls = [sum(pi * math.log(pi / qi) for pi, qi in zip(row, py)) for row in part]
        scores.append(math.exp(sum(kls) / len(kls)))
    mean, std = inception_score(probs, splits=4)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8, abs=1e-12)


# ---------------------------------------------------------------- precision / recall


def naive_pr(real, fake, k):
    def radii(s):
        out = []
        for i, a in enumerate(s):
            d = sorted(math.dist(a, b) for j, b in enumerate(s) if j != i)
            out.append(d[k - 1])
        return out

    def cover(centers, rad, queries):
        return sum(any(math.dist(q, c) <= r for c, r in zip(centers, rad)) for q in queries) / len(queries)

    real, fake = real.tolist(), fake.tolist()
    return cover(real, radii(real), fake), cover(fake, radii(fake), real)


def test_pr_matches_naive():
    g = gen(10)
    real, fake = torch.randn(40, 4, generator=g), torch.randn(30, 4, generator=g) * 1.3 + 0.4
    got = precision_recall(real, fake, k=3, batch=7)  # batch not dividing N exercises the edges
    assert got == pytest.approx(naive_pr(real.double(), fake.double(), 3), abs=1e-12)
    assert precision_recall(real, fake, k=3, batch=1000) == got


def test_pr_identical_and_far():
    x = torch.randn(300, 5, generator=gen(11))
    assert precision_recall(x, x.clone(), k=3, batch=64) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0, k=3, batch=64) == (0.0, 0.0)


def test_pr_half_modes():
    g = gen(12)
    n = 1000
    centers = torch.tensor([[-10.0, 0.0], [10.0, 0.0]])
    real = torch.cat([centers[0] + torch.randn(n // 2, 2, generator=g), centers[1] + torch.randn(n // 2, 2, generator=g)])
    fake = centers[0] + torch.randn(n, 2, generator=g)  # only the left mode
    p, r = precision_recall(real, fake, k=3, batch=256)
    assert p > 0.95
    assert abs(r - 0.5) < 0.05

"""PCA, KMeans, adjusted Rand index and purity (deepnum.apps.unsupervised) against scikit-learn."""
import numpy as np
import pytest
from sklearn import cluster as sk_cluster
from sklearn import decomposition, metrics

import deepnum as dn
from deepnum.apps.unsupervised import PCA, KMeans, adjusted_rand_score, cluster_purity, contingency_matrix


def _low_rank_data(seed=0, n=200, d=12):
    rng = np.random.default_rng(seed)
    scales = np.array([5.0, 3.0, 2.0, 1.0] + [0.1] * (d - 4))
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return (rng.standard_normal((n, d)) * scales) @ basis.T + rng.standard_normal(d)


@pytest.mark.parametrize("k", [1, 3, 12])
def test_pca_matches_sklearn_up_to_sign(k):
    x = _low_rank_data()
    ours, ref = PCA(k).fit(x), decomposition.PCA(k, svd_solver="full").fit(x)
    sign = np.sign((ours.components_ * ref.components_).sum(axis=1))
    np.testing.assert_allclose(ours.components_ * sign[:, None], ref.components_, atol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-10)
    np.testing.assert_allclose(ours.transform(x) * sign, ref.transform(x), atol=1e-9)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(x)), ref.inverse_transform(ref.transform(x)),
                               atol=1e-9)


def test_pca_full_rank_reconstructs_and_keeps_float32():
    x = _low_rank_data(1).astype(np.float32)
    pca = PCA().fit(dn.tensor(x))
    assert pca.components_.dtype == np.float32 and pca.n_components_ == 12
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(x)), x, atol=1e-4)
    # the sign convention: each component's largest-magnitude entry is positive
    idx = np.abs(pca.components_).argmax(axis=1)
    assert (pca.components_[np.arange(12), idx] > 0).all()


def test_pca_errors():
    with pytest.raises(ValueError, match="n_components"):
        PCA(0)
    with pytest.raises(ValueError, match=r"min\(n_samples, n_features\) = 3"):
        PCA(5).fit(np.ones((3, 8)))
    with pytest.raises(RuntimeError, match="fit first"):
        PCA(2).transform(np.ones((3, 8)))
    pca = PCA(2).fit(_low_rank_data())
    with pytest.raises(ValueError, match=r"expected 12 columns.*\(4, 5\)"):
        pca.transform(np.ones((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        pca.transform(np.ones(12))


def _blobs(seed=0, per=60, k=4, d=3, spread=0.3):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, (k, d))
    y = np.repeat(np.arange(k), per)
    return centers[y] + spread * rng.standard_normal((k * per, d)), y


def test_kmeans_recovers_separated_clusters():
    x, y = _blobs()
    km = KMeans(4, random_state=0).fit(x)
    assert adjusted_rand_score(y, km.labels_) == 1.0
    np.testing.assert_array_equal(km.predict(x), km.labels_)
    ref = sk_cluster.KMeans(4, n_init=10, random_state=0).fit(x)
    np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=1e-9)
    own = np.sort(km.cluster_centers_, axis=0)
    np.testing.assert_allclose(own, np.sort(ref.cluster_centers_, axis=0), atol=1e-9)


def test_kmeans_best_of_n_init_on_overlapping_data():
    x, _ = _blobs(3, per=40, k=6, d=2, spread=3.0)
    ours = KMeans(6, n_init=10, random_state=0).fit(x)
    ref = sk_cluster.KMeans(6, n_init=10, random_state=0).fit(x)
    assert ours.inertia_ <= ref.inertia_ * 1.02
    np.testing.assert_allclose(ours.inertia_, ((x - ours.cluster_centers_[ours.labels_]) ** 2).sum(), rtol=1e-10)
    assert np.bincount(ours.labels_, minlength=6).min() > 0


def test_kmeans_seeded_and_errors():
    x, _ = _blobs(1, spread=2.0)
    a, b = KMeans(4, random_state=7).fit(x), KMeans(4, random_state=7).fit(x)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    with pytest.raises(ValueError, match="n_samples=3 must be >= n_clusters=4"):
        KMeans(4).fit(x[:3])
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(0)
    with pytest.raises(ValueError, match="expected 3 columns"):
        a.predict(np.ones((2, 2)))


@pytest.mark.parametrize("seed", range(5))
def test_adjusted_rand_and_purity_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.6, t + 10, rng.integers(0, 7, 300))
    assert adjusted_rand_score(t, p) == pytest.approx(metrics.adjusted_rand_score(t, p), abs=1e-12)
    table = metrics.cluster.contingency_matrix(t, p)
    np.testing.assert_array_equal(contingency_matrix(t, p), table)
    assert cluster_purity(t, p) == pytest.approx(table.max(axis=0).sum() / 300, abs=1e-12)


def test_adjusted_rand_edge_cases():
    y = np.array([0, 0, 1, 1, 2])
    assert adjusted_rand_score(y, y + 5) == 1.0
    assert adjusted_rand_score(np.zeros(5), np.zeros(5)) == metrics.adjusted_rand_score(np.zeros(5), np.zeros(5))
    assert adjusted_rand_score(np.arange(5), np.arange(5)) == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        adjusted_rand_score(y, y[:3])

"""Unsupervised learning on feature matrices (N samples × D features), with scikit-learn's names:
``PCA`` (principal components by the SVD of the centred data), ``KMeans`` (Lloyd's algorithm with
k-means++ seeding) and two ways to compare a clustering with labels, ``adjusted_rand_score`` and
``cluster_purity``. Inputs may be NumPy/CuPy arrays or Tensors; floating inputs keep their dtype
(float32 stays float32), integer inputs become float32.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepnum import backend
from deepnum.tensor import Tensor

__all__ = ["KMeans", "PCA", "adjusted_rand_score", "cluster_purity", "contingency_matrix"]


def _matrix(x: Any, who: str, name: str = "X") -> Any:
    a = x.data if isinstance(x, Tensor) else x
    a = backend.get_array_module(a).asarray(a)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{who}: {name} must be a non-empty 2-D array (n_samples, n_features), got shape {a.shape}")
    if a.dtype.kind != "f":
        a = a.astype(np.float32)
    return a


class PCA:
    """Principal component analysis (Pearson 1901; Hotelling 1933): the directions of largest
    variance are the right singular vectors of the centred data, X − mean = U S Vᵀ, with variances
    S² / (N − 1). ``transform`` projects onto the first ``n_components`` of them, ``inverse_transform``
    maps back; the projection's reconstruction error is the smallest any rank-k linear map reaches
    (Eckart & Young 1936). Signs are fixed so that each component's largest-magnitude entry is
    positive (an SVD's signs are arbitrary)."""

    def __init__(self, n_components: int | None = None) -> None:
        if n_components is not None and (not isinstance(n_components, int) or n_components < 1):
            raise ValueError(f"PCA: n_components must be a positive integer or None, got {n_components!r}")
        self.n_components = n_components

    def fit(self, X: Any) -> PCA:  # noqa: N803  (scikit-learn's name)
        x = _matrix(X, "PCA.fit")
        n, d = x.shape
        k = min(n, d) if self.n_components is None else self.n_components
        if k > min(n, d):
            raise ValueError(f"PCA.fit: n_components={k} must be <= min(n_samples, n_features) = {min(n, d)} "
                             f"for X of shape {x.shape}")
        xp = backend.get_array_module(x)
        self.mean_ = x.mean(axis=0)
        _, s, vt = xp.linalg.svd(x - self.mean_, full_matrices=False)
        pivot = xp.argmax(xp.abs(vt), axis=1)
        vt *= xp.sign(vt[xp.arange(vt.shape[0]), pivot])[:, None]
        variance = (s * s) / max(n - 1, 1)
        self.components_ = vt[:k]
        self.singular_values_ = s[:k]
        self.explained_variance_ = variance[:k]
        total = variance.sum()
        self.explained_variance_ratio_ = variance[:k] / total if total > 0 else xp.zeros_like(variance[:k])
        self.n_components_, self.n_features_in_ = k, d
        return self

    def _check(self, x: Any, who: str, columns: str) -> Any:
        if not hasattr(self, "components_"):
            raise RuntimeError(f"PCA.{who}: call fit first")
        a, width = _matrix(x, f"PCA.{who}"), getattr(self, columns)
        if a.shape[1] != width:
            raise ValueError(f"PCA.{who}: expected {width} columns, got an array of shape {a.shape}")
        return a.astype(self.components_.dtype, copy=False)

    def transform(self, X: Any) -> Any:  # noqa: N803
        """Coordinates along the components, (N, n_components)."""
        return (self._check(X, "transform", "n_features_in_") - self.mean_) @ self.components_.T

    def fit_transform(self, X: Any) -> Any:  # noqa: N803
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: Any) -> Any:  # noqa: N803
        """Points in the input space from component coordinates: Z Vₖ + mean."""
        return self._check(Z, "inverse_transform", "n_components_") @ self.components_ + self.mean_


def _squared_distances(x: Any, centers: Any) -> Any:
    xp = backend.get_array_module(x)
    d = (x * x).sum(axis=1)[:, None] - 2.0 * (x @ centers.T) + (centers * centers).sum(axis=1)[None, :]
    return xp.maximum(d, 0.0)


class KMeans:
    """k-means clustering: Lloyd's algorithm (Lloyd 1982) alternates assigning each point to its
    nearest centre and moving each centre to the mean of its points, which never increases the
    inertia Σ‖x − c(x)‖². Seeding is k-means++ (Arthur & Vassilvitskii, SODA 2007): the first centre
    uniformly at random, each next one drawn with probability proportional to the squared distance to
    the nearest centre so far. Stops when the centres move by less than ``tol`` × the mean feature
    variance (in total squared distance, scikit-learn's convention) or after ``max_iter`` steps; the
    best of ``n_init`` seedings (lowest inertia) is kept. A centre left with no points is moved to
    the point farthest from its own centre. Runs on the host (a CuPy input is copied to NumPy)."""

    def __init__(self, n_clusters: int = 8, *, n_init: int = 1, max_iter: int = 300, tol: float = 1e-4,
                 random_state: int | None = None) -> None:
        for name, v in (("n_clusters", n_clusters), ("n_init", n_init), ("max_iter", max_iter)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"KMeans: {name} must be a positive integer, got {v!r}")
        if not tol >= 0:
            raise ValueError(f"KMeans: tol must be >= 0, got {tol!r}")
        self.n_clusters, self.n_init, self.max_iter, self.tol = n_clusters, n_init, max_iter, float(tol)
        self.random_state = random_state

    def _plusplus(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        centers = np.empty((self.n_clusters, x.shape[1]), dtype=x.dtype)
        centers[0] = x[rng.integers(x.shape[0])]
        closest = _squared_distances(x, centers[:1])[:, 0]
        for j in range(1, self.n_clusters):
            total = float(closest.sum())
            i = rng.choice(x.shape[0], p=closest / total) if total > 0 else rng.integers(x.shape[0])
            centers[j] = x[i]
            closest = np.minimum(closest, _squared_distances(x, centers[j:j + 1])[:, 0])
        return centers

    def _lloyd(self, x: np.ndarray, centers: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, float, int]:
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            dist = _squared_distances(x, centers)
            labels = dist.argmin(axis=1)
            new = np.zeros_like(centers)
            np.add.at(new, labels, x)
            counts = np.bincount(labels, minlength=self.n_clusters)
            for j in np.flatnonzero(counts == 0):
                far = int(dist[np.arange(x.shape[0]), labels].argmax())
                new[j], counts[j] = x[far], 1
            new /= counts[:, None].astype(x.dtype)
            shift = float(((new - centers) ** 2).sum())
            centers = new
            if shift <= tol:
                break
        dist = _squared_distances(x, centers)
        labels = dist.argmin(axis=1)
        return centers, labels, float(dist[np.arange(x.shape[0]), labels].sum()), n_iter

    def fit(self, X: Any) -> KMeans:  # noqa: N803
        x = backend.to_device(_matrix(X, "KMeans.fit"), "cpu")
        if x.shape[0] < self.n_clusters:
            raise ValueError(f"KMeans.fit: n_samples={x.shape[0]} must be >= n_clusters={self.n_clusters}")
        rng = np.random.default_rng(self.random_state)
        tol = self.tol * float(x.var(axis=0).mean())
        best = None
        for _ in range(self.n_init):
            result = self._lloyd(x, self._plusplus(x, rng), tol)
            if best is None or result[2] < best[2]:
                best = result
        self.cluster_centers_, self.labels_, self.inertia_, self.n_iter_ = best
        return self

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        """The index of the nearest centre for each row of X."""
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("KMeans.predict: call fit first")
        x = backend.to_device(_matrix(X, "KMeans.predict"), "cpu").astype(self.cluster_centers_.dtype, copy=False)
        if x.shape[1] != self.cluster_centers_.shape[1]:
            raise ValueError(f"KMeans.predict: expected {self.cluster_centers_.shape[1]} columns, got shape {x.shape}")
        return _squared_distances(x, self.cluster_centers_).argmin(axis=1)

    def fit_predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.fit(X).labels_


def _labels(a: Any, who: str, name: str) -> np.ndarray:
    arr = a.data if isinstance(a, Tensor) else a
    arr = np.asarray(arr.get() if hasattr(arr, "get") else arr).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{who}: {name} is empty")
    return arr


def contingency_matrix(labels_true: Any, labels_pred: Any) -> np.ndarray:
    """C[i, j] = number of samples with the i-th true label and the j-th predicted label (labels in
    sorted order), int64."""
    t, p = _labels(labels_true, "contingency_matrix", "labels_true"), _labels(labels_pred, "contingency_matrix",
                                                                             "labels_pred")
    if t.shape != p.shape:
        raise ValueError(f"contingency_matrix: labels_true {t.shape} and labels_pred {p.shape} differ in length")
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    table = np.zeros((ti.max() + 1, pi.max() + 1), dtype=np.int64)
    np.add.at(table, (ti, pi), 1)
    return table


def adjusted_rand_score(labels_true: Any, labels_pred: Any) -> float:
    """The Rand index corrected for chance (Hubert & Arabie, "Comparing partitions", J. Classification
    1985): ARI = (Σᵢⱼ C(nᵢⱼ,2) − E) / (½[Σᵢ C(aᵢ,2) + Σⱼ C(bⱼ,2)] − E), E = Σᵢ C(aᵢ,2) Σⱼ C(bⱼ,2) / C(n,2),
    from the contingency table nᵢⱼ with row sums aᵢ and column sums bⱼ. 1 for identical partitions
    (up to renaming), about 0 for random ones; 1.0 when the denominator vanishes (both trivial)."""
    table = contingency_matrix(labels_true, labels_pred).astype(np.float64)
    n = table.sum()

    def pairs(v: np.ndarray) -> float:
        return float((v * (v - 1) / 2).sum())

    index, rows, cols = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2) if n > 1 else 0.0
    denominator = (rows + cols) / 2 - expected
    return 1.0 if denominator == 0 else float((index - expected) / denominator)


def cluster_purity(labels_true: Any, labels_pred: Any) -> float:
    """The fraction of samples whose cluster's majority label is their own: Σⱼ maxᵢ nᵢⱼ / N
    (Manning, Raghavan & Schütze, *Introduction to Information Retrieval*, 2008, §16.3)."""
    table = contingency_matrix(labels_true, labels_pred)
    return float(table.max(axis=0).sum() / table.sum())

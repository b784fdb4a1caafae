"""The figures of ``deepnum anomaly``, written as PNGs with matplotlib's Agg canvas:

* ``errors.png``: test reconstruction errors of normal and anomalous samples (histograms, log scale),
  autoencoder and PCA side by side, each with its validation-chosen threshold;
* ``roc.png``: the ROC curves of both scores;
* ``reconstructions.png``: originals and their AE and PCA reconstructions, normal and anomalous
  (MNIST: image rows; ECG: one normal and one anomalous window, and the score along the test record);
* ``latent.png``: the test latent codes in 2-D (PCA of the codes when they are wider), coloured by
  class, next to the same points coloured by their k-means cluster.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from deepnum.apps._anomaly_scores import roc_curve
from deepnum.train.plots import _figure

__all__ = ["save_figures"]


def _errors(arrays: dict, result: dict, path: str) -> None:
    y = arrays["data"].y_test.astype(bool)
    fig = _figure(10, 3.6)
    for i, (key, name) in enumerate((("ae_scores", "autoencoder"), ("pca_scores", "pca"))):
        ax = fig.add_subplot(1, 2, i + 1)
        s = arrays[key]["test"]
        wide = s.min() > 0 and s.max() / s.min() > 20  # log axis only when the errors span decades
        bins = np.geomspace(s.min(), s.max(), 40) if wide else np.linspace(s.min(), s.max(), 40)
        ax.hist(s[~y], bins=bins, alpha=0.6, label=f"normal ({(~y).sum()})")
        ax.hist(s[y], bins=bins, alpha=0.6, label=f"anomaly ({y.sum()})")
        r = result[name]
        ax.axvline(r["threshold"], color="k", linestyle="--", label="threshold")
        if wide:
            ax.set_xscale("log")
        title = "autoencoder" if name == "autoencoder" else f"PCA, k={result['pca_components']}"
        ax.set_title(f"{title}: AUC {r['auc']:.3f}, P {r['precision']:.2f} R {r['recall']:.2f}")
        ax.set_xlabel(f"test reconstruction error ({result['score'].upper()})")
        ax.set_ylabel("samples")
        ax.legend(fontsize=8)
    fig.suptitle(result["data"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _roc(arrays: dict, result: dict, path: str) -> None:
    fig = _figure(4.6, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    for key, name in (("ae_scores", "autoencoder"), ("pca_scores", "pca")):
        fpr, tpr, _ = roc_curve(arrays[key]["test"], arrays["data"].y_test)
        ax.plot(fpr, tpr, label=f"{'AE' if name == 'autoencoder' else 'PCA'} (AUC {result[name]['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("ROC on the test split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _image_rows(arrays: dict, result: dict, path: str) -> None:
    data = arrays["data"]
    normal_classes = np.unique(data.classes_test[data.y_test == 0])
    first = [int(np.flatnonzero((data.classes_test == c) & (data.y_test == 0))[0]) for c in normal_classes]
    n = len(first)
    picks = {"normal": np.array(first), "anomaly": np.flatnonzero(data.y_test == 1)[:n]}
    rows = [(f"{kind}\n{label}", src[idx]) for kind, idx in picks.items()
            for label, src in (("input", data.x_test), ("AE", arrays["ae_recon"]), ("PCA", arrays["pca_recon"]))]
    fig = _figure(1.0 * n + 1, 1.05 * len(rows))
    for r, (label, images) in enumerate(rows):
        for c in range(len(images)):
            ax = fig.add_subplot(len(rows), n, r * n + c + 1)
            ax.imshow(images[c, 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"{result['data']}: test inputs and their reconstructions")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _series(arrays: dict, result: dict, path: str) -> None:
    data = arrays["data"]
    anomalous = np.flatnonzero(data.y_test == 1)
    picks = (("normal", int(np.flatnonzero(data.y_test == 0)[len(anomalous) // 2])),
             ("anomalous", int(anomalous[len(anomalous) // 2])))
    fig = _figure(11, 7)
    for i, (kind, j) in enumerate(picks):
        ax = fig.add_subplot(2, 2, i + 1)
        ax.plot(data.x_test[j, 0], color="k", label="input")
        ax.plot(arrays["ae_recon"][j, 0], label=f"AE (error {arrays['ae_scores']['test'][j]:.3g})")
        ax.plot(arrays["pca_recon"][j, 0], label=f"PCA (error {arrays['pca_scores']['test'][j]:.3g})")
        ax.set_title(f"a {kind} test window (#{j})")
        ax.set_xlabel("sample in window")
        ax.legend(fontsize=8)
    ax = fig.add_subplot(2, 1, 2)
    start = np.arange(len(data.y_test))
    for key, name in (("ae_scores", "autoencoder"), ("pca_scores", "pca")):
        s = arrays[key]["test"]
        ax.plot(start, s / result[name]["threshold"], label=f"{name} error / its threshold")
    ax.axhline(1.0, color="k", linestyle="--", linewidth=1)
    ax.fill_between(start, 0, 1, where=data.y_test == 1, color="red", alpha=0.15,
                    transform=ax.get_xaxis_transform(), label="window touches the anomaly")
    ax.set_yscale("log")
    ax.set_xlabel("test window index (time)")
    ax.legend(fontsize=8)
    fig.suptitle(result["data"])
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _latent(arrays: dict, result: dict, path: str) -> None:
    from matplotlib import colormaps

    from deepnum.apps.unsupervised import PCA

    data, codes, clusters = arrays["data"], arrays["codes"], arrays["clusters"]
    xy = codes if codes.shape[1] == 2 else PCA(2).fit_transform(codes)
    km = result["kmeans_latent"]
    fig = _figure(11, 4.8)
    how = "latent code" if codes.shape[1] == 2 else f"PCA of the {codes.shape[1]}-D latent code"
    for i, (colours, title) in enumerate(((data.classes_test, "class (anomaly class marked x)"),
                                          (clusters, f"k-means cluster: ARI {km['ari']:.2f}, "
                                                     f"purity {km['purity']:.2f}"))):
        ax = fig.add_subplot(1, 2, i + 1)
        cmap = "tab10" if len(np.unique(colours)) <= 10 else "tab20"
        for c in np.unique(colours):
            m = colours == c
            name = data.class_names[c] if i == 0 else f"cluster {c}"
            anomalous = i == 0 and bool(data.y_test[m].all())
            ax.scatter(xy[m, 0], xy[m, 1], s=10 if anomalous else 6, marker="x" if anomalous else "o",
                       color=colormaps[cmap](int(c) % 10), label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"{how}, axis 1")
        ax.set_ylabel("axis 2")
        ax.legend(fontsize=7, markerscale=2, ncol=2)
    fig.suptitle(f"{result['data']}: test latents")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def save_figures(arrays: dict[str, Any], result: dict[str, Any], output: str) -> list[str]:
    """Write the four figures into ``output``; returns their file names."""
    names = {"errors.png": _errors, "roc.png": _roc, "latent.png": _latent,
             "reconstructions.png": _image_rows if arrays["data"].x_test.ndim == 4 else _series}
    for name, draw in names.items():
        draw(arrays, result, os.path.join(output, name))
    return list(names)

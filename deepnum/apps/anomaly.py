"""``deepnum anomaly``: autoencoders for anomaly detection, compared with PCA.

An autoencoder (``deepnum.models.autoencoder``) is trained on normal data only, to reproduce its
input. A sample's anomaly score is its reconstruction error (MSE or MAE over its features): the
network has learned to reconstruct what normal data looks like, so an unlike input reconstructs
badly. The threshold is chosen on validation data (``choose_threshold``: a high percentile of the
normal validation errors, or the F1-best score on a labelled validation split); the test split gives
the ROC-AUC (threshold-free) and precision/recall at the threshold. The baseline is PCA with as many
components as the latent code (``deepnum.apps.unsupervised.PCA``): the reconstruction after
projecting onto the first k principal components, scored the same way. The latent codes of the
test set are plotted in 2-D (the code itself when it is 2-D, its PCA otherwise) and clustered with
k-means, whose agreement with the classes is the adjusted Rand index and the purity.

Data (``_anomaly_data``): MNIST with one digit held out as the anomaly, or the MIT-BIH ECG record
shipped in sktime. Writes ``metrics.json``, ``model.safetensors`` and the figures into ``--output``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

HELP = "autoencoder anomaly detection (MNIST held-out digit, MIT-BIH ECG) vs a PCA baseline"
DESCRIPTION = __doc__.split("\n\n")[1] + "\n\nExample: deepnum anomaly --data mnist --holdout-digit 2 --model dense"

DEFAULTS = {  # per data set (measured in docs/apps/anomaly.md): model, latent size, epochs, learning rate
    "mnist": {"model": "dense", "latent_dim": 16, "epochs": 30, "lr": 1e-3},
    "ecg": {"model": "conv", "latent_dim": 16, "epochs": 100, "lr": 1e-3},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", choices=("mnist", "ecg"), default="mnist", help="data set (default mnist)")
    parser.add_argument("--model", choices=("dense", "conv"), default=None,
                        help="autoencoder kind (default: dense for mnist, conv for ecg)")
    parser.add_argument("--holdout-digit", type=int, default=2, help="MNIST digit used as the anomaly (default 2)")
    parser.add_argument("--latent-dim", type=int, default=None, help="size of the latent code (default 16)")
    parser.add_argument("--pca-components", type=int, default=None, help="PCA baseline's k (default: latent size)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: mnist 30, ecg 100)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--score", choices=("mse", "mae"), default="mse", help="reconstruction error (default mse)")
    parser.add_argument("--threshold", choices=("percentile", "f1"), default="percentile",
                        help="percentile: that percentile of normal validation errors; f1: the F1-best score on "
                             "labelled validation data (MNIST only)")
    parser.add_argument("--percentile", type=float, default=95.0, help="for --threshold percentile (default 95)")
    parser.add_argument("--window", type=int, default=360, help="ECG window length in samples (default 360)")
    parser.add_argument("--stride", type=int, default=5, help="ECG window stride in samples (default 5)")
    parser.add_argument("--train-size", type=int, default=None, help="cap on MNIST training images")
    parser.add_argument("--output", default="runs/anomaly", help="output folder (default runs/anomaly)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, the weights and the data order")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")


def build_model(kind: str, input_shape: tuple[int, ...], latent_dim: int, output_activation: str | None) -> Any:
    """The dense or convolutional autoencoder for inputs (C, H, W) or (C, L)."""
    from deepnum.models.autoencoder import ConvAutoencoder, DenseAutoencoder

    if kind == "dense":
        hidden = (256, 64) if len(input_shape) == 3 else (128, 64)
        return DenseAutoencoder(input_shape, latent_dim, hidden, output_activation)
    if len(input_shape) == 3:
        return ConvAutoencoder(input_shape[0], input_shape[1:], latent_dim, (16, 32), 3, 2, output_activation)
    return ConvAutoencoder(input_shape[0], input_shape[1], latent_dim, (16, 32, 32), 7, 1, output_activation)


def train_autoencoder(model: Any, x: np.ndarray, *, epochs: int, batch_size: int, lr: float, seed: int) -> Any:
    """Fit ``model`` to reproduce ``x`` (MSE loss, Adam); returns the History."""
    from deepnum import nn, optim
    from deepnum.creation import as_tensor
    from deepnum.data import DataLoader, TensorDataset
    from deepnum.random import Generator
    from deepnum.train import fit

    data = as_tensor(x)
    loader = DataLoader(TensorDataset(data, data), batch_size=batch_size, shuffle=True,
                        generator=Generator().manual_seed(seed))
    return fit(model, loader, epochs=epochs, optimizer=optim.Adam(model.parameters(), lr=lr),
               loss_fn=nn.MSELoss(), metrics=(), progress=False)


def reconstruct(model: Any, x: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(reconstructions, latent codes) of ``x`` in eval mode, without gradients."""
    from deepnum.autograd.grad_mode import no_grad
    from deepnum.creation import as_tensor

    model.eval()
    recon, codes = [], []
    with no_grad():
        for i in range(0, len(x), batch_size):
            z = model.encode(as_tensor(x[i:i + batch_size]))
            codes.append(z.numpy())
            recon.append(model.decode(z).numpy())
    return np.concatenate(recon), np.concatenate(codes)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    d = DEFAULTS[args.data]

    def pick(name: str, default: Any) -> Any:
        value = getattr(args, name)
        return default if value is None else value

    latent = pick("latent_dim", d["latent_dim"])
    out = {"model": pick("model", d["model"]), "latent_dim": latent, "pca_components": pick("pca_components", latent),
           "epochs": pick("epochs", d["epochs"]), "lr": pick("lr", d["lr"])}
    for name in ("latent_dim", "pca_components", "epochs", "batch_size"):
        value = out.get(name, getattr(args, name, None))
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"deepnum anomaly: --{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if args.data == "mnist" and not 0 <= args.holdout_digit <= 9:
        raise ValueError(f"deepnum anomaly: --holdout-digit must be 0-9, got {args.holdout_digit}")
    if args.train_size is not None and args.train_size < 1:
        raise ValueError(f"deepnum anomaly: --train-size must be a positive integer, got {args.train_size}")
    if not 0 < args.percentile <= 100:
        raise ValueError(f"deepnum anomaly: --percentile must be in (0, 100], got {args.percentile}")
    if args.data == "ecg" and (args.window < 8 or args.stride < 1 or (out["model"] == "conv" and args.window % 8)):
        raise ValueError(f"deepnum anomaly: --window must be >= 8 (a multiple of 8 for the conv model: three "
                         f"stride-2 stages) and --stride >= 1, got window {args.window}, stride {args.stride}")
    if args.threshold == "f1" and args.data == "ecg":
        raise ValueError("deepnum anomaly: --threshold f1 needs labelled anomalies in the validation data; the ECG "
                         "record has none before the test stretch, so use --threshold percentile")
    return out


def _score_all(recon: dict[str, np.ndarray], data: Any, kind: str) -> dict[str, np.ndarray]:
    from deepnum.apps._anomaly_scores import reconstruction_error

    return {split: reconstruction_error(getattr(data, f"x_{split}"), recon[split], kind) for split in ("val", "test")}


def _evaluate(scores: dict[str, np.ndarray], data: Any, args: argparse.Namespace) -> dict[str, float]:
    from deepnum.apps._anomaly_scores import choose_threshold, detection_report
    from deepnum.train.metrics import roc_auc

    t = choose_threshold(scores["val"], data.y_val, args.threshold, args.percentile)
    report = detection_report(scores["test"], data.y_test, t)
    if data.y_val.any():
        report["val_auc"] = roc_auc(scores["val"], data.y_val)
    return report


def _pca_baseline(data: Any, k: int) -> tuple[dict[str, np.ndarray], Any]:
    from deepnum.apps.unsupervised import PCA

    def flat(a: np.ndarray) -> np.ndarray:
        return a.reshape(len(a), -1)

    pca = PCA(k).fit(flat(data.x_train))
    recon = {s: pca.inverse_transform(pca.transform(flat(getattr(data, f"x_{s}")))).reshape(getattr(data, f"x_{s}")
                                                                                               .shape)
             for s in ("val", "test")}
    return recon, pca


def _clusters(codes: np.ndarray, classes: np.ndarray, seed: int) -> tuple[dict[str, float], np.ndarray]:
    """k-means on the latent codes with k = the number of classes, and its agreement with them."""
    from deepnum.apps.unsupervised import KMeans, adjusted_rand_score, cluster_purity

    k = len(np.unique(classes))
    labels = KMeans(k, n_init=5, random_state=seed).fit_predict(codes)
    return {"k": k, "ari": adjusted_rand_score(classes, labels), "purity": cluster_purity(classes, labels)}, labels


def experiment(args: argparse.Namespace) -> dict[str, Any]:
    """Train, score and compare; returns the metrics (and keeps arrays for plots under '_arrays')."""
    from deepnum.apps._anomaly_data import load_anomaly_data
    from deepnum.random import manual_seed

    settings = _settings(args)
    data = load_anomaly_data(args.data, holdout=args.holdout_digit, seed=args.seed, train_size=args.train_size,
                             window=args.window, stride=args.stride)
    manual_seed(args.seed)
    model = build_model(settings["model"], tuple(data.x_train.shape[1:]), settings["latent_dim"],
                        data.output_activation)
    start = time.perf_counter()
    history = train_autoencoder(model, data.x_train, epochs=settings["epochs"], batch_size=args.batch_size,
                                lr=settings["lr"], seed=args.seed)
    train_s = time.perf_counter() - start
    ae = {s: reconstruct(model, getattr(data, f"x_{s}")) for s in ("val", "test")}
    ae_scores = _score_all({s: r for s, (r, _) in ae.items()}, data, args.score)
    pca_recon, pca = _pca_baseline(data, settings["pca_components"])
    pca_scores = _score_all(pca_recon, data, args.score)
    codes = ae["test"][1]
    clusters, cluster_labels = _clusters(codes, data.classes_test, args.seed)
    result = {"data": data.description, "score": args.score, "threshold_method": args.threshold,
              "percentile": args.percentile if args.threshold == "percentile" else None, "seed": args.seed,
              **settings, "train_samples": len(data.x_train), "val_samples": len(data.x_val),
              "test_samples": len(data.x_test), "test_anomalies": int(data.y_test.sum()),
              "train_seconds": round(train_s, 1), "final_train_loss": float(history.history["loss"][-1]),
              "autoencoder": _evaluate(ae_scores, data, args), "pca": _evaluate(pca_scores, data, args),
              "kmeans_latent": clusters,
              "kmeans_pca": _clusters(pca.transform(data.x_test.reshape(len(data.x_test), -1)), data.classes_test,
                                      args.seed)[0]}
    result["_arrays"] = {"data": data, "model": model, "ae_scores": ae_scores, "pca_scores": pca_scores,
                         "ae_recon": ae["test"][0], "pca_recon": pca_recon["test"], "codes": codes,
                         "clusters": cluster_labels}
    return result


def _summary(result: dict[str, Any]) -> str:
    ae, pca = result["autoencoder"], result["pca"]
    lines = [f"{result['data']}: {result['train_samples']} training samples, {result['test_samples']} test "
             f"({result['test_anomalies']} anomalies); {result['model']} autoencoder, latent {result['latent_dim']}, "
             f"{result['epochs']} epochs in {result['train_seconds']} s"]
    for name, r in (("autoencoder", ae), (f"PCA (k={result['pca_components']})", pca)):
        lines.append(f"  {name:<14} test ROC-AUC {r['auc']:.4f}  at threshold {r['threshold']:.4g}: precision "
                     f"{r['precision']:.3f} recall {r['recall']:.3f} F1 {r['f1']:.3f} FPR {r['fpr']:.3f}")
    km = result["kmeans_latent"]
    kp = result["kmeans_pca"]
    lines.append(f"  k-means (k={km['k']}) on test latents: adjusted Rand {km['ari']:.3f}, purity {km['purity']:.3f}; "
                 f"on PCA coordinates: {kp['ari']:.3f}, {kp['purity']:.3f}")
    return "\n".join(lines)


def _save(result: dict[str, Any], output: str, plots: bool) -> None:
    from deepnum.io import save

    os.makedirs(output, exist_ok=True)
    arrays = result.pop("_arrays")
    save(arrays["model"].state_dict(), os.path.join(output, "model.safetensors"))
    if plots:
        from deepnum.apps._anomaly_plots import save_figures

        result["figures"] = save_figures(arrays, result, output)
    tmp = os.path.join(output, "metrics.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, os.path.join(output, "metrics.json"))


def run(args: argparse.Namespace) -> int:
    from deepnum._cli_common import CLIError

    try:
        _settings(args)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    result = experiment(args)
    print(_summary(result))
    _save(result, args.output, not args.no_plots)
    print(f"wrote {os.path.join(args.output, 'metrics.json')}")
    return 0

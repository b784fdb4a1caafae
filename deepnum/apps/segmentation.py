"""``deepnum segment``: semantic segmentation of multi-digit MNIST canvases with a fully
convolutional network (Long, Shelhamer, Darrell, CVPR 2015).

Every pixel of a 64x64 canvas (``deepnum.apps.canvas``) is labelled background (0) or ``1 + digit``.
The run (1) trains a small digit classifier on the 28x28 MNIST train digits, (2) checks that its
"convolutionalized" copy (``convolutionalize``: the dense head as convolutions) gives the same
logits on 28x28 digits and a dense score map on a canvas, (3) builds the FCN from the classifier's
weights and trains it with per-pixel cross-entropy on canvases of train digits, and (4) measures the
intersection over union of every class on canvases made only of the held-out test digits:
IoU_c = TP_c / (TP_c + FP_c + FN_c) over all test pixels, mean IoU = the mean over the 11 classes
(the PASCAL VOC definition).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from deepnum.apps._common import add_canvas_arguments, check_canvas_args
from deepnum.apps._segmentation_fcn import FCN, DigitClassifier, convolutionalize

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "confusion_matrix", "iou_from_confusion", "predict_masks",
           "run", "train_classifier", "train_fcn"]

HELP = "semantic segmentation of MNIST canvases with an FCN (mean IoU, convolutionalization)"
DESCRIPTION = __doc__.split("\n\n", 1)[1] + """
Outputs in --output: results.json (per-class IoU, mean IoU, losses), fcn.safetensors,
classifier.safetensors, segmentation.png (canvas / ground truth / prediction).

example: deepnum segment --epochs 15 --output runs/segment"""

NUM_CLASSES = 11
CLASS_NAMES = ["background"] + [str(d) for d in range(10)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``deepnum segment``."""
    add_canvas_arguments(parser, "segment",
                         "epochs of the digit classifier on 28x28 digits (0: the FCN starts from scratch)", "FCN")


def _loader(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> Any:
    import deepnum as dn
    from deepnum.data import DataLoader, TensorDataset

    gen = dn.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(dn.tensor(x), dn.tensor(y)), batch_size=batch_size, shuffle=shuffle,
                      generator=gen)


def train_classifier(epochs: int, seed: int = 0, batch_size: int = 64, lr: float = 2e-3,
                     limit: int | None = None) -> tuple[DigitClassifier, float]:
    """A ``DigitClassifier`` trained on the MNIST train digits (the first ``limit`` of them), and its
    accuracy on the 1,000 test digits."""
    import deepnum as dn
    from deepnum.data.datasets.mnist import mnist_arrays
    from deepnum.train import evaluate, fit

    dn.manual_seed(seed)
    model = DigitClassifier()
    x, y = mnist_arrays("train")
    xt, yt = mnist_arrays("test")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if epochs > 0:
        fit(model, _loader(x, y, batch_size, True, seed), epochs=epochs, loss_fn=dn.nn.CrossEntropyLoss(),
            optimizer=dn.optim.Adam(model.parameters(), lr=lr), progress=False)
    acc = evaluate(model, _loader(np.ascontiguousarray(xt), yt, 256, False, seed))["accuracy"]
    return model, float(acc)


def check_convolutionalization(classifier: DigitClassifier, canvas: np.ndarray) -> dict[str, Any]:
    """Largest difference between the classifier's logits and its convolutionalized copy's on the
    first 200 MNIST test digits, and the shape of the dense score map on ``canvas`` (N, 1, H, W)."""
    import deepnum as dn
    from deepnum.data.datasets.mnist import mnist_arrays

    conv = convolutionalize(classifier).eval()
    classifier.eval()
    x = dn.tensor(np.ascontiguousarray(mnist_arrays("test")[0][:200]))
    with dn.no_grad():
        dense, mapped = classifier(x).numpy(), conv(x).numpy()
        score_map = conv(dn.tensor(canvas)).numpy()
    return {"max_abs_difference": float(np.abs(dense - mapped[:, :, 0, 0]).max()),
            "map_shape_28x28": list(mapped.shape), "score_map_shape": list(score_map.shape)}


def train_adam_cosine(model: Any, images: np.ndarray, targets: np.ndarray, loss_fn: Any, *, epochs: int,
                      batch_size: int = 32, lr: float = 2e-3, seed: int = 0, progress: bool | None = False) -> Any:
    """Train a canvas model (the FCN, the detector) with Adam and a cosine learning-rate schedule on
    shuffled (image, target) batches; returns the History (``progress`` as in ``fit``: None = one
    line per epoch)."""
    import deepnum as dn
    from deepnum.train import fit

    dn.manual_seed(seed)
    opt = dn.optim.Adam(model.parameters(), lr=lr)
    sched = dn.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    return fit(model, _loader(images, targets, batch_size, True, seed), epochs=epochs, optimizer=opt,
               loss_fn=loss_fn, scheduler=sched, metrics=(), progress=progress)


def train_fcn(model: FCN, images: np.ndarray, masks: np.ndarray, **options: Any) -> Any:
    """Per-pixel cross-entropy training (``train_adam_cosine``'s options); returns the History."""
    import deepnum as dn

    return train_adam_cosine(model, images, masks, dn.nn.CrossEntropyLoss(), **options)


def predict_masks(model: FCN, images: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """Per-pixel argmax class (N, H, W) int64 of ``images`` (N, 1, H, W)."""
    import deepnum as dn

    model.eval()
    out = []
    with dn.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(model(dn.tensor(images[i:i + batch_size])).numpy().argmax(1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, *images.shape[2:]), np.int64)


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes, num_classes) pixel counts, rows = true class, columns = predicted class."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"confusion_matrix: pred {pred.shape} and target {target.shape} differ in shape")
    idx = target.ravel().astype(np.int64) * num_classes + pred.ravel().astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU TP / (TP + FP + FN); NaN for a class absent from both prediction and truth."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def _colour_masks(masks: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    palette = np.asarray(colormaps["tab10"].colors)
    rgb = np.zeros((*masks.shape, 3))
    for c in range(1, NUM_CLASSES):
        rgb[masks == c] = palette[c - 1]
    return rgb


def save_figure(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, path: str) -> None:
    """Columns of canvas / ground truth / prediction, classes in tab10 colours (background black)."""
    from matplotlib.patches import Patch

    from deepnum.io.safetensors import atomic_write
    from deepnum.train.plots import _figure

    n = len(images)
    fig = _figure(1.6 * n + 0.4, 5.4)
    axes = fig.subplots(3, n, squeeze=False)
    gt, pr = _colour_masks(truth), _colour_masks(pred)
    for j in range(n):
        for row, (img, title) in enumerate(((images[j, 0], "canvas"), (gt[j], "ground truth"),
                                            (pr[j], "prediction"))):
            ax = axes[row, j]
            ax.imshow(img, cmap="gray" if row == 0 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(title)
    from matplotlib import colormaps

    colours = colormaps["tab10"].colors
    fig.legend(handles=[Patch(color=colours[d], label=str(d)) for d in range(10)], loc="lower center", ncol=10,
               frameon=False)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.09, top=0.99, wspace=0.04, hspace=0.04)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


def _write_json(path: str, payload: dict) -> None:
    from deepnum.io.safetensors import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(payload, fh, indent=2)

    atomic_write(path, write)


def segment(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run of ``deepnum segment``; returns the results (also written to results.json)."""
    import deepnum as dn
    from deepnum.apps.canvas import load_canvas_split

    check_canvas_args(args, "segment", "FCN")
    os.makedirs(args.output, exist_ok=True)
    start = time.time()
    digits = tuple(args.digits)
    train = load_canvas_split("train", args.train_canvases, args.size, digits, args.seed)
    test = load_canvas_split("test", args.test_canvases, args.size, digits, args.seed + 1)
    classifier, cls_acc = train_classifier(args.pretrain_epochs, args.seed)
    conv_check = check_convolutionalization(classifier, test.images[:2])
    dn.manual_seed(args.seed)
    model = FCN(NUM_CLASSES)
    if args.pretrain_epochs > 0:
        model.load_classifier(classifier)
    history = train_fcn(model, train.images, train.masks, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, seed=args.seed, progress=None)
    pred = predict_masks(model, test.images)
    conf = confusion_matrix(pred, test.masks)
    iou = iou_from_confusion(conf)
    results = {
        "classifier_test_accuracy": cls_acc, "convolutionalization": conv_check,
        "per_class_iou": {name: float(v) for name, v in zip(CLASS_NAMES, iou)},
        "mean_iou": float(np.nanmean(iou)), "pixel_accuracy": float(np.trace(conf) / conf.sum()),
        "train_loss": [float(v) for v in history.history["loss"]],
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                     if not callable(v) and k not in ("command",)},
        "seconds": round(time.time() - start, 1),
    }
    dn.io.save(model.state_dict(), os.path.join(args.output, "fcn.safetensors"))
    dn.io.save(classifier.state_dict(), os.path.join(args.output, "classifier.safetensors"))
    save_figure(test.images[:8], test.masks[:8], pred[:8], os.path.join(args.output, "segmentation.png"))
    _write_json(os.path.join(args.output, "results.json"), results)
    return results


def run(args: argparse.Namespace) -> int:
    """Entry point of ``deepnum segment``: train, evaluate, print mean IoU and per-class IoU."""
    res = segment(args)
    conv = res["convolutionalization"]
    print(f"digit classifier: test accuracy {res['classifier_test_accuracy']:.4f}; convolutionalized: max |diff| "
          f"{conv['max_abs_difference']:.2e} on 28x28 digits, score map {conv['score_map_shape']} on a canvas")
    print("per-class IoU: " + ", ".join(f"{k} {v:.3f}" for k, v in res["per_class_iou"].items()))
    print(f"mean IoU {res['mean_iou']:.4f} (target 0.80), pixel accuracy {res['pixel_accuracy']:.4f}, "
          f"{res['seconds']:.0f} s; outputs in {args.output}")
    return 0

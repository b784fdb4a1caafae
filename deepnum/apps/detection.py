"""``deepnum detect``: a single-stage YOLO-style digit detector on multi-digit MNIST canvases
(Redmon et al., CVPR 2016), judged by PASCAL VOC's mAP@0.5.

Canvases of 64x64 pixels hold 1-3 real MNIST digits with tight boxes (``deepnum.apps.canvas``). The
run (1) pre-trains the backbone as a digit classifier on the 28x28 train digits (YOLO pre-trains its
convolutions on classification), (2) trains the detector (an 8x8 grid; per cell a box, an objectness
and 10 class scores) on canvases of train digits, (3) decodes the detections of canvases made only
of the held-out test digits (class-specific score = objectness x class probability, per-class
non-maximum suppression at IoU 0.5, ``deepnum.ops.batched_nms``) and (4) measures the average
precision of every digit class at IoU >= 0.5 (VOC all-point interpolation) and their mean.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from deepnum.apps._common import add_canvas_arguments, check_canvas_args
from deepnum.apps._detection_metrics import mean_average_precision
from deepnum.apps._detection_yolo import TinyYOLO, decode, encode_targets, yolo_loss

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "detect", "draw_detections", "predict", "run", "train_detector"]

HELP = "YOLO-style digit detection on MNIST canvases (box IoU, NMS, mAP@0.5)"
DESCRIPTION = __doc__.split("\n\n", 1)[1] + """
Outputs in --output: results.json, detector.safetensors, detections.png (predicted boxes with class
and score in colour, true boxes dashed white).

example: deepnum detect --epochs 15 --output runs/detect"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``deepnum detect``."""
    add_canvas_arguments(parser, "detect", "epochs of backbone pre-training as a digit classifier (0: from scratch)",
                         "detector")
    parser.add_argument("--draw-threshold", type=float, default=0.5, help="score of the boxes drawn in the PNG")


def train_detector(model: TinyYOLO, images: np.ndarray, target: np.ndarray, **options: Any) -> Any:
    """Train on ``encode_targets`` targets with the YOLO loss (``train_adam_cosine``'s options: epochs,
    batch_size, lr, seed, progress); returns the History."""
    from deepnum.apps.segmentation import train_adam_cosine

    return train_adam_cosine(model, images, target, yolo_loss, **options)


def predict(model: TinyYOLO, images: np.ndarray, batch_size: int = 100,
            **kw: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(boxes, scores, labels) per image; keyword arguments go to ``decode``."""
    import deepnum as dn

    model.eval()
    out = []
    with dn.no_grad():
        for i in range(0, len(images), batch_size):
            out += decode(model(dn.tensor(images[i:i + batch_size])).numpy(), images.shape[-1], **kw)
    return out


def draw_detections(images: np.ndarray, detections: list, path: str, threshold: float = 0.5,
                    truth: list[np.ndarray] | None = None) -> None:
    """A grid of canvases with their detections of score >= ``threshold`` as coloured rectangles
    labelled "class score", and (optionally) the true boxes dashed white."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    from deepnum.io.safetensors import atomic_write
    from deepnum.train.plots import _figure

    n = len(images)
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig = _figure(2.2 * cols, 2.3 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    colours = colormaps["tab10"].colors
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.imshow(images[k, 0], cmap="gray", vmin=0, vmax=1)
        for x1, y1, x2, y2 in ([] if truth is None else truth[k]):
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="white", ls="--", lw=0.8))
        boxes, scores, labels = detections[k]
        for (x1, y1, x2, y2), s, c in zip(boxes, scores, labels):
            if s < threshold:
                continue
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=colours[c], lw=1.5))
            ax.text(x1 - 0.5, y1 - 1, f"{c} {s:.2f}", color="black", fontsize=7, va="bottom",
                    bbox=dict(facecolor=colours[c], edgecolor="none", pad=0.5))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.15)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def detect(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run of ``deepnum detect``; returns the results (also written to results.json)."""
    import deepnum as dn
    from deepnum.apps.canvas import load_canvas_split
    from deepnum.apps.segmentation import _write_json, train_classifier

    check_canvas_args(args, "detect", "detector")
    os.makedirs(args.output, exist_ok=True)
    start = time.time()
    digits = tuple(args.digits)
    train = load_canvas_split("train", args.train_canvases, args.size, digits, args.seed)
    test = load_canvas_split("test", args.test_canvases, args.size, digits, args.seed + 1)
    target, dropped = encode_targets(train.boxes, train.classes, args.size)
    dn.manual_seed(args.seed)
    model = TinyYOLO()
    cls_acc = None
    if args.pretrain_epochs > 0:
        classifier, cls_acc = train_classifier(args.pretrain_epochs, args.seed)
        model.load_classifier(classifier)
    history = train_detector(model, train.images, target, epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, seed=args.seed, progress=None)
    dets = predict(model, test.images)
    m_ap, ap = mean_average_precision([d[0] for d in dets], [d[1] for d in dets], [d[2] for d in dets],
                                      test.boxes, test.classes, num_classes=10, iou_threshold=0.5)
    results = {
        "map_50": m_ap, "per_class_ap_50": {str(c): float(v) for c, v in enumerate(ap)},
        "classifier_test_accuracy": cls_acc, "train_boxes_sharing_a_cell": dropped,
        "test_boxes": int(sum(len(c) for c in test.classes)),
        "train_loss": [float(v) for v in history.history["loss"]],
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items() if not callable(v)},
        "seconds": round(time.time() - start, 1),
    }
    dn.io.save(model.state_dict(), os.path.join(args.output, "detector.safetensors"))
    draw_detections(test.images[:12], dets[:12], os.path.join(args.output, "detections.png"), args.draw_threshold,
                    test.boxes[:12])
    _write_json(os.path.join(args.output, "results.json"), results)
    return results


def run(args: argparse.Namespace) -> int:
    """Entry point of ``deepnum detect``: train, evaluate, print mAP@0.5 and per-class AP."""
    res = detect(args)
    print("per-class AP@0.5: " + ", ".join(f"{k} {v:.3f}" for k, v in res["per_class_ap_50"].items()))
    print(f"mAP@0.5 {res['map_50']:.4f} (target 0.80) on {res['test_boxes']} held-out digits, "
          f"{res['seconds']:.0f} s; outputs in {args.output}")
    return 0

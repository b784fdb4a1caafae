"""The single-stage detector of ``deepnum detect``, after YOLO (Redmon, Divvala, Girshick, Farhadi,
"You Only Look Once: Unified, Real-Time Object Detection", CVPR 2016).

The image is divided into an S x S grid of ``cell``-pixel cells; the cell that contains a box's
centre is "responsible" for it. For every cell the network outputs 5 + C numbers:
``(tx, ty, tw, th, to, class logits)``. Box centre = (cell column + sigmoid(tx), cell row +
sigmoid(ty)) * cell (the bounded offsets of YOLOv2); width = tw^2 * image width and height =
th^2 * image height (YOLOv1 regresses the square roots of the sizes, so an error on a small box
costs more than the same error on a large one); objectness = sigmoid(to). The loss is YOLOv1's
sum-squared coordinate error weighted by lambda_coord = 5 on responsible cells, plus a binary
cross-entropy objectness term over all cells (as YOLOv3) and a cross-entropy class term on
responsible cells. A detection's score for class c is objectness x softmax(class logits)_c,
v1's "class-specific confidence"; per-class non-maximum suppression removes duplicates.
One box per cell (B = 1): two digit centres in one 8-pixel cell are rare on these canvases
(``encode_targets`` counts them; the larger box is kept as the target).
"""
from __future__ import annotations

import numpy as np

from deepnum.apps._segmentation_fcn import DigitClassifier, Standardize, _block
from deepnum.autograd.grad_mode import no_grad
from deepnum.functional.activation import softmax
from deepnum.functional.loss import binary_cross_entropy_with_logits, cross_entropy
from deepnum.nn.modules.activation import ReLU
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import MaxPool2d
from deepnum.tensor import Tensor

__all__ = ["TinyYOLO", "decode", "encode_targets", "yolo_loss"]

LAMBDA_COORD = 5.0


class TinyYOLO(Module):
    """Backbone = the ``DigitClassifier`` body (three conv+pool stages, stride 8) and its dense layer
    as a padded 3x3 convolution, one more 3x3 convolution, and a 1x1 convolution giving the
    (5 + num_classes) numbers of every grid cell. ``(N, 1, H, W) -> (N, 5 + C, H / 8, W / 8)``."""

    stride = 8

    def __init__(self, num_classes: int = 10, hidden: int = 128) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = Sequential(Standardize(), _block(1, 16), MaxPool2d(2), _block(16, 32), MaxPool2d(2),
                                   _block(32, 64), MaxPool2d(2))
        self.neck = Sequential(Conv2d(64, hidden, 3, padding=1), ReLU(), Conv2d(hidden, hidden, 3, padding=1), ReLU())
        self.head = Conv2d(hidden, 5 + num_classes, 1)

    def load_classifier(self, classifier: DigitClassifier) -> TinyYOLO:
        """Start from a trained classifier (YOLO pre-trains its convolutions on classification): copy
        its convolutions and its first dense layer, reshaped to the 3x3 kernel of ``neck[0]``."""
        fc = classifier.classifier[1]
        with no_grad():
            for i in (1, 3, 5):
                self.features[i][0].weight.copy_(classifier.features[i][0].weight)
                self.features[i][0].bias.copy_(classifier.features[i][0].bias)
            self.neck[0].weight.copy_(fc.weight.reshape(self.neck[0].weight.shape))
            self.neck[0].bias.copy_(fc.bias)
        return self

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"TinyYOLO: input must be (N, 1, H, W) with H and W multiples of 8, got {tuple(x.shape)}")
        return self.head(self.neck(self.features(x)))


def encode_targets(boxes: list[np.ndarray], classes: list[np.ndarray], size: int,
                   stride: int = 8) -> tuple[np.ndarray, int]:
    """The (N, 6, S, S) float32 target of each image: [responsible, x offset in cell, y offset,
    sqrt(w / size), sqrt(h / size), class]; and the number of boxes dropped because another box's
    centre fell in the same cell (the larger one is kept)."""
    s = size // stride
    target = np.zeros((len(boxes), 6, s, s), np.float32)
    dropped = 0
    for n, (bx, cl) in enumerate(zip(boxes, classes)):
        areas = (bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])
        for k in np.argsort(-areas, kind="stable"):
            x1, y1, x2, y2 = bx[k]
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            j, i = min(int(cx), s - 1), min(int(cy), s - 1)
            if target[n, 0, i, j]:
                dropped += 1
                continue
            target[n, :, i, j] = (1.0, cx - j, cy - i, np.sqrt((x2 - x1) / size), np.sqrt((y2 - y1) / size), cl[k])
    return target, dropped


def yolo_loss(output: Tensor, target: Tensor) -> Tensor:
    """YOLO's loss per image (see the module docstring) for ``output`` (N, 5 + C, S, S) and an
    ``encode_targets`` target (N, 6, S, S)."""
    if output.ndim != 4 or target.ndim != 4 or target.shape[1] != 6 or output.shape[2:] != target.shape[2:]:
        raise ValueError(f"yolo_loss: output (N, 5 + C, S, S) and target (N, 6, S, S) expected, got "
                         f"{tuple(output.shape)} and {tuple(target.shape)}")
    n = output.shape[0]
    obj = target[:, 0]
    xy = (output[:, 0:2].sigmoid() - target[:, 1:3]) ** 2
    wh = (output[:, 2:4] - target[:, 3:5]) ** 2
    coord = ((xy + wh) * obj[:, None]).sum()
    objectness = binary_cross_entropy_with_logits(output[:, 4], obj, reduction="sum")
    responsible = obj.long()
    cls = target[:, 5].long() * responsible + (responsible - 1) * 100  # other cells get ignore_index -100
    classes = cross_entropy(output[:, 5:], cls, ignore_index=-100, reduction="sum")
    return (LAMBDA_COORD * coord + objectness + classes) / n


def decode(output: np.ndarray, size: int, score_threshold: float = 0.01, iou_threshold: float = 0.5,
           max_detections: int = 100) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Detections (boxes (k, 4) xyxy, scores (k,), labels (k,)) of each image from the raw network
    output (N, 5 + C, S, S): every cell proposes its box once per class with score objectness x class
    probability; scores below ``score_threshold`` are dropped, then per-class NMS."""
    import deepnum as dn
    from deepnum.ops import batched_nms

    n, ch, s, _ = output.shape
    stride = size / s
    grid_y, grid_x = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    sig = 1 / (1 + np.exp(-output[:, :5].astype(np.float64)))
    cx, cy = (grid_x + sig[:, 0]) * stride, (grid_y + sig[:, 1]) * stride
    w, h = np.clip(output[:, 2], 0, None) ** 2 * size, np.clip(output[:, 3], 0, None) ** 2 * size
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).clip(0, size)  # (N, 4, S, S)
    probs = softmax(dn.tensor(output[:, 5:]), dim=1).numpy() * sig[:, 4:5]  # (N, C, S, S)
    results = []
    for b in range(n):
        cells = boxes[b].reshape(4, -1).T
        p = probs[b].reshape(ch - 5, -1)
        cls, cell = np.nonzero(p > score_threshold)
        bx, sc = cells[cell].astype(np.float32), p[cls, cell].astype(np.float32)
        keep = batched_nms(dn.tensor(bx), dn.tensor(sc), dn.tensor(cls), iou_threshold).numpy()[:max_detections]
        results.append((bx[keep], sc[keep], cls[keep].astype(np.int64)))
    return results

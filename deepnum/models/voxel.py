"""Volumetric (3-D) CNNs: VoxNet (D. Maturana, S. Scherer, "VoxNet: A 3D Convolutional Neural Network
for real-time object recognition", IROS 2015) and a small BatchNorm variant for 16³ grids.

Inputs are ``(N, C, D, H, W)`` grids (occupancy or intensity voxels); 3-D convolutions slide a
``k×k×k`` kernel over depth, height and width, so the filters see shape in all three directions.

``voxnet`` follows the paper's layer list for a 32³ occupancy grid (K classes, ModelNet40: K = 40)::

    Conv3d(1, 32, 5, stride=2) → LeakyReLU(0.1) → Dropout(0.2)       32×14³
    Conv3d(32, 32, 3)          → LeakyReLU(0.1) → MaxPool3d(2)       32×12³ → 32×6³
    Dropout(0.3) → Flatten → Linear(6912, 128) → ReLU → Dropout(0.4) → Linear(128, K)

Parameters: 4,032 + 27,680 + 884,864 + (128·K + K); with K = 40 that is 921,736, the total the
paper gives for its network. The rates 0.2 / 0.3 / 0.4 are the usual choice of VoxNet implementations
(the paper regularises with dropout; the rates change no shape or count).

``voxnet_small`` is this project's compact classifier for the 16³ ``voxel_digits`` volumes
(``deepnum.data.datasets.voxels``), the two-stage Conv3d → BatchNorm3d → ReLU → MaxPool3d pattern
followed by one linear layer::

    Conv3d(1, 16, 3, padding=1) → BatchNorm3d(16) → ReLU → MaxPool3d(2)    16×16³ → 16×8³
    Conv3d(16, 32, 3, padding=1) → BatchNorm3d(32) → ReLU → MaxPool3d(2)   32×8³  → 32×4³
    Flatten → Dropout(0.25) → Linear(2048, num_classes)

Parameters with 10 classes: 448 + 32 + 13,856 + 64 + 20,490 = 34,890. Weights use PyTorch's default
initialisation (the paper trains from random initialisation; no reference implementation prescribes
another)."""
from __future__ import annotations

from deepnum.models import register_model
from deepnum.nn.modules.activation import LeakyReLU, ReLU
from deepnum.nn.modules.batchnorm import BatchNorm3d
from deepnum.nn.modules.container import Sequential
from deepnum.nn.modules.conv import Conv3d
from deepnum.nn.modules.dropout import Dropout
from deepnum.nn.modules.linear import Flatten, Linear
from deepnum.nn.modules.module import Module
from deepnum.nn.modules.pooling import MaxPool3d
from deepnum.tensor import Tensor

__all__ = ["VoxNet", "VoxNetSmall", "voxnet", "voxnet_small"]


class _VolumeClassifier(Module):
    """Shared by the voxel models: ``features`` then ``classifier``, with an input check."""

    grid_size = 32

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        if int(num_classes) < 1 or int(in_chans) < 1:
            raise ValueError(f"{type(self).__name__}: num_classes and in_chans must be >= 1, got "
                             f"num_classes={num_classes}, in_chans={in_chans}")
        self.num_classes, self.in_chans = int(num_classes), int(in_chans)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The shape of one input volume, (C, D, H, W)."""
        return (self.in_chans, self.grid_size, self.grid_size, self.grid_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or tuple(x.shape[1:]) != self.input_shape:
            g = self.grid_size
            hint = "" if x.ndim != 4 else " (a batch of volumes has 5 dims; add the batch dim with x.unsqueeze(0))"
            raise ValueError(f"{type(self).__name__}(in_chans={self.in_chans}, num_classes={self.num_classes}): "
                             f"expected input (N, {self.in_chans}, {g}, {g}, {g}), got {tuple(x.shape)}{hint}")
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, in_chans={self.in_chans}"


class VoxNet(_VolumeClassifier):
    """VoxNet (Maturana & Scherer 2015) for ``(N, in_chans, 32, 32, 32)`` grids; see the module docstring."""

    grid_size = 32

    def __init__(self, num_classes: int = 40, in_chans: int = 1) -> None:
        super().__init__(num_classes, in_chans)
        self.features = Sequential(
            Conv3d(self.in_chans, 32, kernel_size=5, stride=2), LeakyReLU(0.1), Dropout(0.2),
            Conv3d(32, 32, kernel_size=3), LeakyReLU(0.1), MaxPool3d(2), Dropout(0.3),
        )
        self.classifier = Sequential(
            Flatten(), Linear(32 * 6 * 6 * 6, 128), ReLU(), Dropout(0.4), Linear(128, self.num_classes),
        )


class VoxNetSmall(_VolumeClassifier):
    """A two-block 3-D CNN (Conv3d → BatchNorm3d → ReLU → MaxPool3d, twice, then Linear) for
    ``(N, in_chans, 16, 16, 16)`` grids such as ``voxel_digits``."""

    grid_size = 16

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 8, dropout: float = 0.25) -> None:
        super().__init__(num_classes, in_chans)
        if int(width) < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"VoxNetSmall: width must be >= 1 and dropout in [0, 1), got width={width}, "
                             f"dropout={dropout}")
        w = int(width)
        self.features = Sequential(
            Conv3d(self.in_chans, w, kernel_size=3, padding=1), BatchNorm3d(w), ReLU(), MaxPool3d(2),
            Conv3d(w, 2 * w, kernel_size=3, padding=1), BatchNorm3d(2 * w), ReLU(), MaxPool3d(2),
        )
        self.classifier = Sequential(Flatten(), Dropout(dropout), Linear(2 * w * 4 * 4 * 4, self.num_classes))


@register_model(paper="Maturana & Scherer 2015, VoxNet: A 3D Convolutional Neural Network for real-time object "
                      "recognition")
def voxnet(num_classes: int = 40, in_chans: int = 1) -> VoxNet:
    """VoxNet (Maturana & Scherer 2015) for 32³ occupancy grids; 921,736 parameters with 40 classes."""
    return VoxNet(num_classes=num_classes, in_chans=in_chans)


@register_model(paper="Maturana & Scherer 2015, VoxNet (small BatchNorm variant for 16³ grids)", small_input=True)
def voxnet_small(num_classes: int = 10, in_chans: int = 1, width: int = 8, dropout: float = 0.25) -> VoxNetSmall:
    """Small 3-D CNN for 16³ volumes (voxel_digits): 2×(Conv3d-BN-ReLU-MaxPool3d) + Linear, 34,890 parameters."""
    return VoxNetSmall(num_classes=num_classes, in_chans=in_chans, width=width, dropout=dropout)

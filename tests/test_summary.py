"""summary(model, input_size) / Module.summary: rows, shapes, parameter counts and MACs against
hand-computed numbers."""
import pytest

import deepnum as dn
from deepnum import nn
from deepnum.train import summary


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling; ``padding=2`` takes 1×28×28 MNIST to the
    28×28 maps the classic network computes from 1×32×32."""

    def __init__(self, padding: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                        nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


# Hand count. Parameters: conv1 6·(1·5·5)+6 = 156, conv2 16·(6·5·5)+16 = 2,416, fc1 400·120+120 = 48,120,
# fc2 120·84+84 = 10,164, fc3 84·10+10 = 850; total 61,706 (also for the classic 1×32×32 input, padding 0).
# MACs per image: conv1 (6·28·28 outputs)·25 = 117,600, conv2 (16·10·10)·150 = 240,000, fc 48,000 + 10,080 + 840;
# total 416,520.
LENET_PARAMS = [156, 0, 0, 2416, 0, 0, 0, 48120, 0, 10164, 0, 850]
LENET_MACS = [117600, 0, 0, 240000, 0, 0, 0, 48000, 0, 10080, 0, 840]
LENET_SHAPES = [(1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10), (1, 16, 10, 10), (1, 16, 5, 5),
                (1, 400), (1, 120), (1, 120), (1, 84), (1, 84), (1, 10)]


@pytest.mark.parametrize("padding, size", [(2, 28), (0, 32)])
def test_lenet5_counts(padding, size):
    dn.manual_seed(0)
    s = summary(LeNet5(padding), (1, size, size), verbose=False)
    assert [r.params for r in s.rows] == LENET_PARAMS
    assert [r.macs for r in s.rows] == LENET_MACS
    assert [r.output_shape for r in s.rows] == LENET_SHAPES
    assert [r.name for r in s.rows][:4] == ["features.0", "features.1", "features.2", "features.3"]
    assert s.rows[0].type == "Conv2d" and s.rows[-1].type == "Linear"
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (61706, 61706, 0)
    assert s.total_macs == 416520
    assert s.param_bytes == 61706 * 4


def test_frozen_submodule_is_non_trainable_and_table_printed(capsys):
    model = LeNet5()
    model.features.requires_grad_(False)
    result = model.summary((1, 28, 28))
    assert (result.total_params, result.trainable_params, result.non_trainable_params) == (61706, 59134, 2572)
    assert [r.trainable for r in result.rows[:4]] == ["no", "-", "-", "no"]
    assert result.rows[7].trainable == "yes"
    printed = capsys.readouterr().out
    assert printed == str(result) + "\n"
    for text in ("Total params: 61,706 (241.04 KB)", "Trainable params: 59,134", "Non-trainable params: 2,572",
                 "Total MACs: 416,520", "features.0 (Conv2d)", "(1, 6, 28, 28)", "Output Shape"):
        assert text in printed
    model.classifier[1].bias.requires_grad_(False)
    assert summary(model, (1, 28, 28), verbose=False).rows[7].trainable == "partial"


def test_notes_conv_example():
    # 3×3 convolution, 128 → 128 channels, no bias: 128·128·9 = 147,456 weights, and each of the
    # 128·H·W outputs is a 128·9 dot product: MACs = 147,456·H·W.
    conv = nn.Conv2d(128, 128, 3, padding=1, bias=False)
    s = summary(conv, (128, 8, 8), verbose=False)
    assert len(s.rows) == 1 and s.rows[0].name == "Conv2d"
    assert s.total_params == 147456
    assert s.total_macs == 147456 * 8 * 8


def test_grouped_transposed_and_linear_macs():
    # groups=2: each output sums over in/groups·3·3 = 18 inputs; 8·4·4 = 128 outputs → 2,304 MACs
    s = summary(nn.Conv2d(4, 8, 3, groups=2), (4, 6, 6), verbose=False)
    assert (s.total_params, s.total_macs) == (8 * 2 * 9 + 8, 128 * 18)
    # transposed: each of the 4·5·5 inputs is scattered through (2·3·3) weights → 1,800 MACs
    s = summary(nn.ConvTranspose2d(4, 2, 3, stride=2), (4, 5, 5), verbose=False)
    assert s.rows[0].output_shape == (1, 2, 11, 11)
    assert s.total_macs == 100 * 18
    # Linear on (7, 16) rows: 7 · 16·4 MACs; a batch of 3 triples everything
    s = summary(nn.Linear(16, 4), (7, 16), batch_size=3, verbose=False)
    assert s.rows[0].output_shape == (3, 7, 4)
    assert s.total_macs == 3 * 7 * 64


class Shared(nn.Module):
    """One layer used twice, a module with its own parameter, two inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(dn.ones(3))
        self.layer = nn.Linear(3, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, a, b):
        return self.bn(self.layer(self.layer(a) * self.scale + b))


def test_shared_layer_own_parameters_and_two_inputs():
    model = Shared()
    before = model.bn.running_mean.numpy().copy()
    s = summary(model, [(3,), (3,)], verbose=False)
    names = [r.name for r in s.rows]
    assert names == ["layer", "layer", "bn", "Shared"]
    assert [r.params for r in s.rows] == [12, 0, 6, 3]  # the repeated call adds no parameters
    assert [r.macs for r in s.rows] == [9, 9, 0, 0]
    assert s.total_params == 21 == sum(r.params for r in s.rows)
    assert model.training and model.bn.training  # modes restored
    assert (model.bn.running_mean.numpy() == before).all()  # eval mode: running statistics untouched
    assert s.buffer_bytes == (3 + 3) * 4 + 8  # running mean, var and the int64 batch counter


def test_dtype_and_errors():
    model = nn.Sequential(nn.Linear(4, 2)).double()
    s = summary(model, (4,), dtype="float64", verbose=False)
    assert s.param_bytes == 10 * 8
    with pytest.raises(RuntimeError, match=r"forward pass of Sequential failed on zeros of shape \(1, 5\)"):
        summary(model, (5,), dtype="float64", verbose=False)
    assert not model[0]._forward_hooks  # hooks removed after a failure
    with pytest.raises(TypeError, match="input_size must be a shape"):
        summary(model, 4)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        summary(model, (4,), batch_size=0)

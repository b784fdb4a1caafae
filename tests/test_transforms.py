"""deepnum.data.transforms against results written by hand from torchvision's definitions (torchvision
is not a dependency): conversions, crops and padding, flips, rotations (np.rot90, counter-clockwise),
affine shifts/scales/shears with nearest and bilinear sampling, colour adjustments (brightness,
contrast, saturation, hue against colorsys), random erasing, MixUp/CutMix soft targets and the loss
with them; determinism under a seed, batch vs per-sample agreement, dtypes, reprs and errors."""
import colorsys

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn.functional as F
from deepnum.data import transforms as T
from deepnum.data.transforms import functional as TF


def img(*shape, dtype=np.float32, seed=0):
    return dn.tensor(np.random.default_rng(seed).random(shape).astype(dtype))


def arange_img(c, h, w, dtype=np.float32):
    return dn.tensor(np.arange(c * h * w, dtype=dtype).reshape(c, h, w))


def gen(seed):
    return dn.Generator().manual_seed(seed)


# ----------------------------------------------------------------- conversion and composition
def test_to_tensor_uint8_hwc_and_gray():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    out = T.ToTensor()(hwc)
    assert isinstance(out, dn.Tensor) and out.dtype == np.float32 and out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out.numpy(), hwc.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    assert out.numpy().max() <= 1 and T.ToTensor()(np.full((2, 2), 255, np.uint8)).numpy().min() == 1.0
    gray = T.ToTensor()(hwc[:, :, 0])
    assert gray.shape == (1, 4, 5)
    f64 = T.ToTensor()(np.full((2, 3, 1), 7.0))  # other dtypes are not rescaled (torchvision)
    assert f64.dtype == np.float64 and f64.numpy().max() == 7.0


def test_to_tensor_pil():
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    out = T.ToTensor()(Image.fromarray(rgb))
    np.testing.assert_array_equal(out.numpy(), rgb.transpose(2, 0, 1) / np.float32(255))
    gray = T.ToTensor()(Image.fromarray(rgb[:, :, 0])).numpy()[0]
    np.testing.assert_array_equal(gray, rgb[:, :, 0] / np.float32(255))
    binary = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    np.testing.assert_array_equal(T.ToTensor()(binary).numpy()[0], [[0, 1], [1, 0]])
    with pytest.raises(TypeError, match="PIL Image or a NumPy ndarray"):
        T.ToTensor()(dn.zeros(3, 4, 4))


def test_normalize_values_dtype_and_batch():
    x = arange_img(2, 2, 2) / 8
    out = T.Normalize((0.5, 0.25), (0.5, 2.0))(x)
    m, s = np.array([0.5, 0.25], np.float32)[:, None, None], np.array([0.5, 2.0], np.float32)[:, None, None]
    expected = (x.numpy() - m) / s
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy()[0, 0, 0], (0 - 0.5) / 0.5)
    np.testing.assert_allclose(out.numpy()[1, 1, 1], (7 / 8 - 0.25) / 2, rtol=1e-6)
    batch = T.Normalize((0.1307,), (0.3081,))(img(3, 1, 4, 4, dtype=np.float64))
    assert batch.dtype == np.float64 and batch.shape == (3, 1, 4, 4)
    y = x.clone()
    assert T.Normalize((0.5, 0.25), (0.5, 2.0), inplace=True)(y) is y
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize((0.0,), (0.0,))(x)
    with pytest.raises(ValueError, match=r"mean has 3 values, the image has 2 channels \(shape \(2, 2, 2\)\)"):
        T.Normalize((0.1, 0.2, 0.3), (1.0, 1.0, 1.0))(x)
    with pytest.raises(TypeError, match="floating-point"):
        T.Normalize((0.0,), (1.0,))(dn.zeros(1, 2, 2, dtype=dn.int64))


def test_compose_lambda_and_reprs():
    pipe = T.Compose([T.Lambda(lambda t: t * 2), T.Normalize((1.0,), (2.0,))])
    x = arange_img(1, 2, 2)
    np.testing.assert_allclose(pipe(x).numpy(), (x.numpy() * 2 - 1) / 2)
    assert repr(pipe) == "Compose(\n    Lambda()\n    Normalize(mean=(1.0,), std=(2.0,))\n)"
    both = T.Compose([T.Lambda(lambda a, b: (a + 1, b * 3))])
    assert both(1, 2) == (2, 6)
    with pytest.raises(TypeError, match="callable"):
        T.Lambda(3)
    maybe = T.RandomApply([T.Lambda(lambda t: t + 1)], p=0.5, generator=gen(0))
    applied = [float(maybe(dn.zeros(1)).item()) for _ in range(200)]
    assert set(applied) == {0.0, 1.0} and 0.4 < np.mean(applied) < 0.6
    assert repr(T.RandomCrop(32, padding=4)) == "RandomCrop(size=(32, 32), padding=4)"
    assert repr(T.CenterCrop((3, 5))) == "CenterCrop(size=(3, 5))"
    assert repr(T.RandomHorizontalFlip()) == "RandomHorizontalFlip(p=0.5)"
    assert repr(T.RandomVerticalFlip(0.3)) == "RandomVerticalFlip(p=0.3)"
    assert repr(T.RandomRotation(30)) == ("RandomRotation(degrees=[-30.0, 30.0], interpolation=nearest, expand=False, "
                                          "fill=0)")
    assert repr(T.RandomAffine(0, translate=(0.1, 0.1))) == "RandomAffine(degrees=[0.0, 0.0], translate=(0.1, 0.1))"
    assert (repr(T.RandomAffine(5, scale=(0.9, 1.1), shear=3, interpolation="bilinear", fill=1))
            == "RandomAffine(degrees=[-5.0, 5.0], scale=(0.9, 1.1), shear=[-3.0, 3.0], interpolation=bilinear, fill=1)")
    assert repr(T.ColorJitter(brightness=0.5)) == ("ColorJitter(brightness=(0.5, 1.5), contrast=None, saturation=None, "
                                                   "hue=None)")
    assert repr(T.ColorJitter(brightness=2, hue=0.1)) == ("ColorJitter(brightness=(0.0, 3.0), contrast=None, "
                                                         "saturation=None, hue=(-0.1, 0.1))")
    assert repr(T.RandomErasing()) == ("RandomErasing(p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, "
                                       "inplace=False)")
    assert repr(T.ToTensor()) == "ToTensor()"
    assert repr(T.MixUp(num_classes=10)) == "MixUp(alpha=1.0, num_classes=10)"


# ----------------------------------------------------------------- crops and flips
def test_flips_of_arange():
    x = arange_img(2, 3, 4)
    np.testing.assert_array_equal(TF.hflip(x).numpy(), x.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(TF.vflip(x).numpy(), x.numpy()[:, ::-1, :])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x).numpy(), x.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(p=1.0)(x).numpy(), x.numpy()[:, ::-1, :])
    assert T.RandomHorizontalFlip(p=0.0)(x) is x


def test_random_flip_per_sample_in_a_batch():
    batch = dn.tensor(np.random.default_rng(0).random((400, 1, 2, 3)).astype(np.float32))
    out = T.RandomHorizontalFlip(p=0.3, generator=gen(0))(batch).numpy()
    a = batch.numpy()
    flipped = np.all(out == a[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == a, axis=(1, 2, 3))
    assert np.all(flipped ^ kept)
    assert 0.22 < flipped.mean() < 0.38  # one draw per sample with probability p


def test_crop_with_padding_positions():
    x = arange_img(1, 3, 3) + 1
    padded = np.pad(x.numpy(), ((0, 0), (1, 1), (1, 1)))
    seen = set()
    t = T.RandomCrop(3, padding=1, generator=gen(0))
    for _ in range(200):
        out = t(x).numpy()
        hits = [(i, j) for i in range(3) for j in range(3) if np.array_equal(out, padded[:, i:i + 3, j:j + 3])]
        assert len(hits) == 1
        seen.add(hits[0])
    assert seen == {(i, j) for i in range(3) for j in range(3)}  # every offset of the padded image, none other
    full = T.RandomCrop(5, padding=1)(x).numpy()  # the whole padded image: zeros around the original
    np.testing.assert_array_equal(full, padded)
    lrtb = T.RandomCrop((3 + 1 + 3, 3 + 2 + 4), padding=(2, 1, 4, 3), fill=-1)(x).numpy()
    expected = np.pad(x.numpy(), ((0, 0), (1, 3), (2, 4)), constant_values=-1)
    np.testing.assert_array_equal(lrtb, expected)


@pytest.mark.parametrize("mode", ["edge", "reflect", "symmetric"])
def test_crop_padding_modes(mode):
    x = arange_img(2, 3, 4)
    out = T.RandomCrop((3 + 4, 4 + 4), padding=2, padding_mode=mode)(x).numpy()
    np.testing.assert_array_equal(out, np.pad(x.numpy(), ((0, 0), (2, 2), (2, 2)), mode=mode))


def test_crop_pad_if_needed_and_errors():
    x = arange_img(1, 2, 3)
    out = T.RandomCrop((4, 5), pad_if_needed=True, generator=gen(1))(x)
    assert out.shape == (1, 4, 5)
    assert np.isin(x.numpy(), out.numpy()).sum() >= 1
    with pytest.raises(ValueError, match=r"RandomCrop\(size=\(4, 5\), padding=None\): required crop size \(4, 5\) "
                                         r"is larger than the \(padded\) input image size \(2, 3\)"):
        T.RandomCrop((4, 5))(x)
    with pytest.raises(ValueError, match=r"expected an image \(C, H, W\) or a batch \(N, C, H, W\), got \(3, 3\)"):
        T.RandomCrop(2)(dn.zeros(3, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        T.RandomCrop(2, padding=1, padding_mode="wrap")


def test_center_crop():
    x = arange_img(1, 5, 6)
    np.testing.assert_array_equal(T.CenterCrop(3)(x).numpy(), x.numpy()[:, 1:4, 2:5])  # round(1.5) = 2 (half to even)
    np.testing.assert_array_equal(T.CenterCrop((2, 4))(x).numpy(), x.numpy()[:, 2:4, 1:5])  # round(1.5)=2, round(1)=1
    small = arange_img(1, 2, 2) + 1
    big = T.CenterCrop((4, 5))(small).numpy()  # padded (left 1, top 1, right 2, bottom 1)
    np.testing.assert_array_equal(big, np.pad(small.numpy(), ((0, 0), (1, 1), (1, 2))))


def test_functional_crop_and_pad():
    x = arange_img(1, 3, 3)
    np.testing.assert_array_equal(TF.crop(x, 1, 1, 2, 2).numpy(), x.numpy()[:, 1:, 1:])
    np.testing.assert_array_equal(TF.crop(x, -1, 0, 2, 2).numpy()[0], [[0, 0], [0, 1]])
    np.testing.assert_array_equal(TF.pad(x, [1, 2]).numpy(), np.pad(x.numpy(), ((0, 0), (2, 2), (1, 1))))


# ----------------------------------------------------------------- rotations and affine maps
@pytest.mark.parametrize("size", [3, 4, 5])
def test_rotate_right_angles_equal_rot90_counter_clockwise(size):
    x = arange_img(2, size, size)
    for angle, k in ((90, 1), (-90, -1), (180, 2), (270, 3)):
        np.testing.assert_array_equal(TF.rotate(x, angle).numpy(), np.rot90(x.numpy(), k, axes=(1, 2)))
        rot = T.RandomRotation((angle, angle))(x)
        np.testing.assert_array_equal(rot.numpy(), np.rot90(x.numpy(), k, axes=(1, 2)))
    # torchvision's functional.affine and RandomAffine turn the other way: clockwise for a positive angle
    np.testing.assert_array_equal(TF.affine(x, 90, (0, 0), 1.0, 0).numpy(), np.rot90(x.numpy(), -1, axes=(1, 2)))
    np.testing.assert_array_equal(T.RandomAffine((90, 90))(x).numpy(), np.rot90(x.numpy(), -1, axes=(1, 2)))


def test_rotation_pattern_and_fill():
    pattern = dn.tensor(np.array([[[1, 2, 0], [0, 3, 0], [0, 0, 0]]], np.float32))
    out = TF.rotate(pattern, 90).numpy()[0]  # the top row goes to the left column, read upwards
    np.testing.assert_array_equal(out, [[0, 0, 0], [2, 3, 0], [1, 0, 0]])
    x = arange_img(1, 3, 3) + 1
    about_corner = TF.rotate(x, 90, center=(0.5, 0.5), fill=-1).numpy()[0]  # about the centre of pixel (0, 0)
    np.testing.assert_array_equal(about_corner, [[1, 4, 7], [-1, -1, -1], [-1, -1, -1]])
    rgb_fill = T.RandomRotation((45, 45), fill=(0.1, 0.2, 0.3))(dn.ones(3, 5, 5)).numpy()
    np.testing.assert_allclose(rgb_fill[:, 0, 0], [0.1, 0.2, 0.3])  # the corners come from outside
    np.testing.assert_array_equal(rgb_fill[:, 2, 2], [1, 1, 1])


def test_translation_by_one_pixel_shifts_with_fill():
    x = arange_img(1, 3, 4) + 1
    right = TF.affine(x, 0, (1, 0), 1.0, 0, fill=-1).numpy()[0]
    np.testing.assert_array_equal(right, np.c_[[-1, -1, -1], x.numpy()[0, :, :3]])
    down = TF.affine(x, 0, (0, 1), 1.0, 0).numpy()[0]
    np.testing.assert_array_equal(down, np.r_[[[0, 0, 0, 0]], x.numpy()[0, :2]])
    # RandomAffine draws whole-pixel shifts in [-a·W, a·W]: here -1, 0 or 1 columns
    t = T.RandomAffine(0, translate=(0.25, 0), generator=gen(0))
    shifts = set()
    for _ in range(60):
        out = t(x).numpy()[0]
        for s in (-1, 0, 1):
            expected = np.zeros_like(out)
            src = x.numpy()[0]
            if s >= 0:
                expected[:, s:] = src[:, :4 - s]
            else:
                expected[:, :s] = src[:, -s:]
            if np.array_equal(out, expected):
                shifts.add(s)
                break
        else:
            raise AssertionError(f"not a shift by -1, 0 or 1 column: {out}")
    assert shifts == {-1, 0, 1}


def test_scale_and_shear_nearest():
    x = arange_img(1, 5, 5)
    zoom = TF.affine(x, 0, (0, 0), 2.0, 0).numpy()[0]  # source offset d/2 rounded half to even: -1, -0, 0, 0, 1
    idx = [1, 2, 2, 2, 3]
    np.testing.assert_array_equal(zoom, x.numpy()[0][np.ix_(idx, idx)])
    shrink = TF.affine(x, 0, (0, 0), 0.5, 0, fill=-1).numpy()[0]  # source offset 2d: rows/cols -2, 0, 2, 4, 6
    expected = np.full((5, 5), -1.0)
    expected[1:4, 1:4] = x.numpy()[0][np.ix_([0, 2, 4], [0, 2, 4])]
    np.testing.assert_array_equal(shrink, expected)
    x3 = arange_img(1, 3, 3) + 1
    sheared = TF.affine(x3, 0, (0, 0), 1.0, 45).numpy()[0]  # x_source = x + y: rows shift by -y
    np.testing.assert_array_equal(sheared, [[0, 1, 2], [4, 5, 6], [8, 9, 0]])


def test_bilinear_half_pixel_shift_and_identity():
    x = arange_img(1, 2, 3) + 1
    np.testing.assert_allclose(TF.rotate(x, 0, interpolation="bilinear").numpy(), x.numpy())
    half = TF.affine(x, 0, (0.5, 0), 1.0, 0, interpolation=T.InterpolationMode.BILINEAR, fill=3).numpy()[0]
    src = x.numpy()[0]
    expected = np.c_[0.5 * src[:, :1] + 0.5 * 3, 0.5 * (src[:, :2] + src[:, 1:])]
    np.testing.assert_allclose(half, expected, rtol=1e-6)
    assert TF.rotate(x, 30, interpolation="bilinear").dtype == np.float32
    with pytest.raises(ValueError, match="interpolation"):
        T.RandomRotation(10, interpolation="bicubic")
    with pytest.raises(NotImplementedError, match="expand"):
        T.RandomRotation(10, expand=True)


def test_rotation_draws_cover_the_range():
    x = dn.tensor(np.eye(5, dtype=np.float32)[None])
    t = T.RandomRotation((0, 90), generator=gen(3))
    outs = {t(x).numpy().tobytes() for _ in range(40)}
    assert len(outs) > 3  # different angles across calls
    batch = T.RandomRotation((0, 90), generator=gen(3))(dn.tensor(np.repeat(x.numpy()[None], 40, 0)))
    assert len({b.tobytes() for b in batch.numpy()}) > 3  # and across the samples of a batch


# ----------------------------------------------------------------- colour
def test_brightness():
    x = img(3, 4, 4)
    np.testing.assert_array_equal(TF.adjust_brightness(x, 1.0).numpy(), x.numpy())
    np.testing.assert_allclose(TF.adjust_brightness(x, 1.7).numpy(), np.clip(x.numpy() * np.float32(1.7), 0, 1))
    assert TF.adjust_brightness(x, 1.7).numpy().max() == 1.0 and TF.adjust_brightness(x, 1.7).dtype == np.float32
    np.testing.assert_array_equal(T.ColorJitter(brightness=(1, 1))(x).numpy(), x.numpy())  # factor range {1}
    np.testing.assert_allclose(T.ColorJitter(brightness=(0.5, 0.5))(x).numpy(), x.numpy() * 0.5, rtol=1e-6)
    half = dn.full((200, 1, 1, 1), 0.5)
    factors = T.ColorJitter(brightness=0.4, generator=gen(0))(half).numpy().ravel() / 0.5
    assert factors.min() >= 0.6 and factors.max() <= 1.4 and factors.min() < 0.65 and factors.max() > 1.35


def test_contrast_and_saturation_toward_gray():
    x = img(3, 2, 3, seed=1)
    r, g, b = x.numpy()
    gray = 0.2989 * r + 0.587 * g + 0.114 * b
    out = TF.adjust_contrast(x, 0.5).numpy()
    np.testing.assert_allclose(out, np.clip(0.5 * x.numpy() + 0.5 * gray.mean(), 0, 1), rtol=1e-6)
    np.testing.assert_allclose(TF.adjust_contrast(x, 0.0).numpy(), np.full((3, 2, 3), gray.mean()), rtol=1e-6)
    np.testing.assert_allclose(TF.adjust_contrast(x, 1.0).numpy(), x.numpy())
    one = img(1, 3, 3, seed=2)
    np.testing.assert_allclose(TF.adjust_contrast(one, 2.0).numpy(),
                               np.clip(2 * one.numpy() - one.numpy().mean(), 0, 1), rtol=1e-6)
    np.testing.assert_allclose(TF.adjust_saturation(x, 0.0).numpy(), np.broadcast_to(gray, (3, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(TF.rgb_to_grayscale(x, 3).numpy(), np.broadcast_to(gray, (3, 2, 3)), rtol=1e-6)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        TF.adjust_contrast(img(2, 3, 3), 0.5)


def test_hue_against_colorsys():
    x = img(3, 4, 5, seed=3)
    for shift in (0.25, -0.4, 0.5):
        out = TF.adjust_hue(x, shift).numpy()
        expected = np.empty_like(out)
        for i in range(4):
            for j in range(5):
                h, s, v = colorsys.rgb_to_hsv(*x.numpy()[:, i, j].astype(float))
                expected[:, i, j] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
        np.testing.assert_allclose(out, expected, atol=1e-5)
    red = dn.tensor(np.array([1, 0, 0], np.float32).reshape(3, 1, 1))
    np.testing.assert_allclose(TF.adjust_hue(red, 0.5).numpy().ravel(), [0, 1, 1])  # complementary: cyan
    np.testing.assert_allclose(TF.adjust_hue(x, 0.0).numpy(), x.numpy(), atol=1e-6)


def test_color_jitter_random_order_and_checks():
    x = dn.tensor(np.random.default_rng(4).random((300, 3, 2, 2)).astype(np.float32))
    out = T.ColorJitter(brightness=(2, 2), contrast=(0, 0), generator=gen(0))(x).numpy()
    a = x.numpy()
    gray = lambda t: 0.2989 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2]  # noqa: E731
    b_then_c = gray(np.clip(2 * a, 0, 1)).mean(axis=(1, 2))
    c_then_b = np.clip(2 * gray(a).mean(axis=(1, 2)), 0, 1)
    first = np.isclose(out[:, 0, 0, 0], b_then_c, atol=1e-6)
    second = np.isclose(out[:, 0, 0, 0], c_then_b, atol=1e-6)
    assert np.all(first | second) and 0.3 < first.mean() < 0.7  # both orders occur
    assert np.all(out == out[:, :1, :1, :1])  # contrast 0: a uniform image
    with pytest.raises(ValueError, match="non negative"):
        T.ColorJitter(brightness=-1)
    with pytest.raises(ValueError, match="hue values should be between"):
        T.ColorJitter(hue=0.7)
    with pytest.raises(TypeError, match="floating-point image"):
        T.ColorJitter(brightness=0.5)(dn.zeros(3, 2, 2, dtype=dn.uint8))


# ----------------------------------------------------------------- random erasing
def _box(mask):
    rows, cols = np.nonzero(mask)
    return rows.min(), cols.min(), rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min()


def test_random_erasing_rectangle_within_scale_and_ratio():
    H = W = 64
    x = dn.ones(100, 3, H, W)
    scale, ratio = (0.1, 0.2), (0.5, 2.0)
    out = T.RandomErasing(p=1.0, scale=scale, ratio=ratio, value=0.25, generator=gen(0))(x).numpy()
    for sample in out:
        mask = sample[0] == 0.25
        assert np.all((sample == 0.25) == mask[None])  # all channels erased on the same box
        i, j, h, w = _box(mask)
        assert mask.sum() == h * w  # a filled rectangle
        slack = 0.5 * (h + w) + 0.25  # h, w are rounded
        assert scale[0] * H * W - slack <= h * w <= scale[1] * H * W + slack
        assert ratio[0] * 0.8 <= h / w <= ratio[1] * 1.25
    np.testing.assert_array_equal(T.RandomErasing(p=0.0)(x).numpy(), x.numpy())


def test_random_erasing_values_and_no_fit():
    x = dn.ones(3, 16, 16)
    out = T.RandomErasing(p=1.0, value=(0.1, 0.2, 0.3), generator=gen(1))(x).numpy()
    mask = out[0] != 1
    assert mask.any()
    np.testing.assert_allclose(out[:, mask], np.broadcast_to(np.array([[0.1], [0.2], [0.3]], np.float32),
                                                             (3, mask.sum())))
    noise = T.RandomErasing(p=1.0, value="random", generator=gen(2))(x).numpy()
    erased = noise[0] != 1
    assert erased.sum() > 1 and np.std(noise[:, erased]) > 0.5 and noise.dtype == np.float32
    never = T.RandomErasing(p=1.0, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x)  # the box never fits: unchanged
    np.testing.assert_array_equal(never.numpy(), x.numpy())
    y = dn.ones(3, 16, 16)
    assert T.RandomErasing(p=1.0, inplace=True, generator=gen(1))(y) is y
    np.testing.assert_array_equal(y.numpy()[0] != 1, mask)  # same draws, same box, written into y
    np.testing.assert_array_equal(TF.erase(x, 1, 2, 2, 3, 0.0).numpy()[0] == 0,
                                  np.pad(np.ones((2, 3), bool), ((1, 13), (2, 11))))
    with pytest.raises(ValueError, match="'random'"):
        T.RandomErasing(value="noise")
    with pytest.raises(ValueError, match="value has 2 values, the image has 3 channels"):
        T.RandomErasing(p=1.0, value=(0, 1))(x)
    with pytest.raises(ValueError, match="probability p"):
        T.RandomErasing(p=1.5)


# ----------------------------------------------------------------- randomness: seeds, batches, dtypes
RANDOM = {
    "crop": lambda g: T.RandomCrop(6, padding=2, generator=g),
    "hflip": lambda g: T.RandomHorizontalFlip(generator=g),
    "vflip": lambda g: T.RandomVerticalFlip(generator=g),
    "rotation": lambda g: T.RandomRotation(40, interpolation="bilinear", generator=g),
    "affine": lambda g: T.RandomAffine(20, translate=(0.2, 0.1), scale=(0.8, 1.2), shear=(-5, 5, -5, 5),
                                       generator=g),
    "jitter": lambda g: T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=g),
    "erasing": lambda g: T.RandomErasing(p=0.7, value=0.5, generator=g),
}


@pytest.mark.parametrize("name", RANDOM)
def test_batch_agrees_with_per_sample(name):
    x = img(8, 3, 6, 6, seed=5)
    batch = RANDOM[name](gen(11))(x).numpy()
    t = RANDOM[name](gen(11))
    singles = np.stack([t(x[i]).numpy() for i in range(8)])
    np.testing.assert_allclose(batch, singles, rtol=1e-6, atol=1e-7)
    assert len({b.tobytes() for b in batch - x.numpy()}) > 1  # per-sample draws, not one for the batch


@pytest.mark.parametrize("name", RANDOM)
def test_seed_determinism_and_dtypes(name):
    x = img(4, 3, 6, 6, seed=6)
    dn.manual_seed(123)
    t = RANDOM[name](None)
    first, second = t(x), t(x)
    dn.manual_seed(123)
    again = RANDOM[name](None)(x)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.array_equal(first.numpy(), second.numpy())  # later calls draw new numbers
    assert first.dtype == np.float32 and isinstance(first, dn.Tensor)
    assert RANDOM[name](gen(0))(img(3, 6, 6, dtype=np.float64)).dtype == np.float64
    arr = RANDOM[name](gen(0))(x.numpy())  # NumPy arrays in, NumPy arrays out
    assert isinstance(arr, np.ndarray) and arr.shape == (4, 3, 6, 6)


def test_explicit_generator_ignores_global_seed():
    x = img(4, 3, 8, 8)
    dn.manual_seed(0)
    a = T.RandomAffine(30, generator=gen(7))(x).numpy()
    dn.manual_seed(1)
    b = T.RandomAffine(30, generator=gen(7))(x).numpy()
    np.testing.assert_array_equal(a, b)


def test_pipeline_on_uint8_image():
    raw = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    pipe = T.Compose([T.ToTensor(), T.RandomCrop(28, padding=4), T.RandomRotation(10),
                      T.Normalize((0.1307,), (0.3081,))])
    dn.manual_seed(0)
    out = pipe(raw)
    dn.manual_seed(0)
    np.testing.assert_array_equal(pipe(raw).numpy(), out.numpy())
    assert out.shape == (1, 28, 28) and out.dtype == np.float32


# ----------------------------------------------------------------- MixUp and CutMix
def _labelled_batch(n=6, classes=4):
    images = dn.tensor(np.random.default_rng(0).random((n, 2, 8, 8)).astype(np.float32))
    labels = dn.tensor(np.array([0, 1, 2, 3, 1, 2][:n]))
    return images, labels


def test_mixup_images_targets_and_lambda():
    images, labels = _labelled_batch()
    mixed, targets = T.MixUp(alpha=0.4, num_classes=4, generator=gen(5))(images, labels)
    lam = np.random.default_rng(5).beta(0.4, 0.4)  # the generator's first draw
    x, y = images.numpy(), labels.numpy()
    partner = np.roll(np.arange(6), 1)  # sample i is mixed with sample i-1
    np.testing.assert_allclose(mixed.numpy(), lam * x + (1 - lam) * x[partner], rtol=1e-5, atol=1e-6)
    onehot = np.eye(4, dtype=np.float32)[y]
    np.testing.assert_allclose(targets.numpy(), lam * onehot + (1 - lam) * onehot[partner], rtol=1e-5, atol=1e-6)
    assert targets.dtype == np.float32 and mixed.dtype == np.float32 and targets.shape == (6, 4)
    np.testing.assert_allclose(targets.numpy().sum(1), 1, rtol=1e-6)
    pair = T.MixUp(alpha=0.4, num_classes=4, generator=gen(5))((images, labels))  # one tuple argument
    np.testing.assert_array_equal(pair[0].numpy(), mixed.numpy())


def test_cutmix_lambda_is_the_pixel_share():
    n, classes = 5, 5
    images = dn.tensor(np.broadcast_to(np.arange(1, n + 1, dtype=np.float32)[:, None, None, None], (n, 3, 10, 12)))
    labels = dn.tensor(np.arange(n))
    t = T.CutMix(num_classes=classes, generator=gen(0))
    lams = []
    for _ in range(30):
        mixed, targets = t(images, labels)
        out, y = mixed.numpy(), targets.numpy()
        np.testing.assert_allclose(y.sum(1), 1, rtol=1e-6)
        for i in range(n):
            own = out[i] == i + 1
            other = out[i] == (i - 1) % n + 1  # the partner is sample i-1
            assert np.all(own | other)
            lam = own.mean()
            np.testing.assert_allclose(y[i, i], lam, rtol=1e-6)
            np.testing.assert_allclose(y[i, (i - 1) % n], 1 - lam, rtol=1e-6)
            if not own.all():
                i0, j0, h, w = _box(~own[0])
                assert (~own[0]).sum() == h * w  # one box, the same in every sample
        lams.append(lam)
    assert len(set(lams)) > 5 and min(lams) < 0.9


def test_mixup_loss_equals_mixture_of_cross_entropies():
    images, labels = _labelled_batch()
    _, targets = T.MixUp(num_classes=4, generator=gen(2))(images, labels)
    lam = np.random.default_rng(2).beta(1.0, 1.0)
    logits = dn.tensor(np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(logits, targets)
    y = labels.numpy()
    z = logits.detach().numpy().astype(np.float64)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    ce = lambda t: -logp[np.arange(6), t].mean()  # noqa: E731
    np.testing.assert_allclose(float(loss.item()), lam * ce(y) + (1 - lam) * ce(np.roll(y, 1)), rtol=1e-5)
    by_parts = lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(logits, dn.tensor(np.roll(y, 1)))
    np.testing.assert_allclose(loss.item(), by_parts.item(), rtol=1e-5)
    torch_loss = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(targets.numpy(), dtype=torch.float64))
    np.testing.assert_allclose(loss.item(), torch_loss.item(), rtol=1e-5)
    loss.backward()
    assert logits.grad.shape == (6, 4)


def test_random_choice_of_mixup_and_cutmix():
    images, labels = _labelled_batch()
    choice = T.RandomChoice([T.MixUp(num_classes=4, generator=gen(0)), T.CutMix(num_classes=4, generator=gen(0))],
                            generator=gen(1))
    kinds = set()
    for _ in range(20):
        mixed, targets = choice(images, labels)
        np.testing.assert_allclose(targets.numpy().sum(1), 1, rtol=1e-6)
        delta = mixed.numpy() - images.numpy()
        kinds.add("cutmix" if np.mean(delta == 0) > 0.5 else "mixup")
    assert kinds == {"mixup", "cutmix"}
    only = T.RandomChoice([T.MixUp(num_classes=4), T.CutMix(num_classes=4, generator=gen(0))], p=[0, 3])
    assert only.p == [0.0, 1.0]
    cut = T.CutMix(num_classes=4, generator=gen(0))(images, labels)
    np.testing.assert_array_equal(only(images, labels)[0].numpy(), cut[0].numpy())


def test_mix_errors_and_soft_labels():
    images, labels = _labelled_batch()
    with pytest.raises(ValueError, match=r"MixUp\(alpha=1.0, num_classes=None\): num_classes is needed"):
        T.MixUp()(images, labels)
    with pytest.raises(ValueError, match=r"expected a batch of images \(N, C, H, W\), got \(2, 8, 8\)"):
        T.CutMix(num_classes=4)(images[0], labels)
    with pytest.raises(ValueError, match="got 5 labels for a batch of 6 images"):
        T.MixUp(num_classes=4)(images, labels[:5])
    with pytest.raises(ValueError, match=r"labels should be in \[0, 3\)"):
        T.MixUp(num_classes=3)(images, labels)
    with pytest.raises(ValueError, match="alpha should be a positive number"):
        T.CutMix(alpha=0.0, num_classes=3)
    soft = dn.tensor(np.full((6, 4), 0.25, np.float32))
    _, targets = T.MixUp(generator=gen(0))(images, soft)
    np.testing.assert_allclose(targets.numpy(), 0.25)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="must be positive"):
        T.RandomRotation(-5)
    with pytest.raises(ValueError, match=r"translate values should be in \[0.0, 1.0\]"):
        T.RandomAffine(0, translate=(1.5, 0))
    with pytest.raises(ValueError, match="scale values should be in"):
        T.RandomAffine(0, scale=(0, 1))
    with pytest.raises(ValueError, match="probability p"):
        T.RandomHorizontalFlip(p=-0.1)
    with pytest.raises(TypeError, match=r"RandomRotation\(degrees=\[-5.0, 5.0\].*expected an image Tensor"):
        T.RandomRotation(5)([1, 2, 3])

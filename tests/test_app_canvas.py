"""Multi-digit MNIST canvases (deepnum.apps.canvas): masks, boxes and captions agree with each other."""
import numpy as np
import pytest

from deepnum.apps.canvas import CanvasSet, _resize_bilinear, load_canvas_split, make_canvases


def _toy_digits(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Solid rectangles of class-dependent size, so their ink boxes are known exactly."""
    rng = np.random.default_rng(1)
    images = np.zeros((n, 28, 28), np.float32)
    labels = rng.integers(0, 10, n)
    for i, c in enumerate(labels):
        images[i, 4:4 + 6 + int(c), 5:5 + 4 + int(c)] = 1.0
        images[i, 3, 5] = 0.3  # a faint pixel: inside the crop, below the ink threshold
    return images, labels


def test_shapes_dtypes_and_counts():
    images, labels = _toy_digits()
    cs = make_canvases(images, labels, 30, size=48, digits=(1, 3), seed=3)
    assert isinstance(cs, CanvasSet) and len(cs) == 30
    assert cs.images.shape == (30, 1, 48, 48) and cs.images.dtype == np.float32
    assert cs.masks.shape == (30, 48, 48) and cs.masks.dtype == np.int64
    counts = [len(c) for c in cs.classes]
    assert min(counts) >= 1 and max(counts) <= 3 and len(set(counts)) > 1
    for b, c, s in zip(cs.boxes, cs.classes, cs.sources):
        assert b.dtype == np.float32 and b.shape == (len(c), 4) and c.dtype == np.int64
        np.testing.assert_array_equal(labels[s], c)


def test_masks_and_boxes_agree():
    images, labels = _toy_digits()
    cs = make_canvases(images, labels, 25, size=48, digits=(2, 3), seed=0)
    for i in range(len(cs)):
        expect = np.zeros_like(cs.masks[i])
        for (x1, y1, x2, y2), c in zip(cs.boxes[i].astype(int), cs.classes[i]):
            # toy digits are solid rectangles: the box is exactly (4 + c) wide and (6 + c) tall
            assert (x2 - x1, y2 - y1) == (4 + c, 6 + c)
            assert (cs.masks[i, y1:y2, x1:x2] == 1 + c).all()
            expect[y1:y2, x1:x2] = 1 + c
        np.testing.assert_array_equal(cs.masks[i], expect)  # no mask pixel outside a box
        np.testing.assert_array_equal(cs.masks[i] > 0, cs.images[i, 0] > 0.5)


def test_boxes_do_not_overlap_and_stay_inside():
    images, labels = _toy_digits()
    cs = make_canvases(images, labels, 40, size=40, digits=(3, 3), seed=5)
    for b in cs.boxes:
        assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 40).all()
        for i in range(len(b)):
            for j in range(i + 1, len(b)):
                ix = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0])
                iy = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
                assert ix <= 0 or iy <= 0


def test_describe_orders_left_to_right():
    images, labels = _toy_digits()
    cs = make_canvases(images, labels, 20, size=56, digits=(2, 3), seed=7)
    for i in range(len(cs)):
        cx = (cs.boxes[i][:, 0] + cs.boxes[i][:, 2]) / 2
        assert cs.describe(i) == [int(c) for c in cs.classes[i][np.argsort(cx, kind="stable")]] or \
            len(set(cx.tolist())) < len(cx)
    cs.boxes[0] = np.array([[30, 0, 40, 10], [2, 5, 12, 15], [15, 1, 20, 9]], np.float32)
    cs.classes[0] = np.array([7, 3, 9])
    assert cs.describe(0) == [3, 9, 7]


def test_seeded_and_reproducible():
    images, labels = _toy_digits()
    a = make_canvases(images, labels, 10, size=48, seed=11)
    b = make_canvases(images, labels, 10, size=48, seed=11)
    c = make_canvases(images, labels, 10, size=48, seed=12)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_random_scale_changes_digit_size():
    images, labels = _toy_digits()
    cs = make_canvases(images, labels, 20, size=64, digits=(1, 1), seed=2, scale=(1.5, 1.5))
    for b, c in zip(cs.boxes, cs.classes):
        w, h = b[0, 2] - b[0, 0], b[0, 3] - b[0, 1]
        assert abs(w - 1.5 * (4 + c)) <= 2 and abs(h - 1.5 * (6 + c)) <= 2


def test_resize_bilinear_matches_torch():
    import torch

    img = np.random.default_rng(0).random((28, 28), dtype=np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(img)[None, None], size=(35, 21), mode="bilinear",
                                          align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(_resize_bilinear(img, 35, 21), ref, atol=1e-5)


def test_real_mnist_split_uses_only_that_split():
    from deepnum.data.datasets.mnist import mnist_arrays

    cs = load_canvas_split("test", 8, size=64, digits=(1, 3), seed=0)
    test_images, test_labels = mnist_arrays("test")
    assert max(int(s.max()) for s in cs.sources) < len(test_labels)
    for i in range(len(cs)):
        for (x1, y1, x2, y2), s in zip(cs.boxes[i].astype(int), cs.sources[i]):
            patch = cs.images[i, 0, y1:y2, x1:x2]
            assert patch.max() == pytest.approx(test_images[s].max())


@pytest.mark.parametrize("kw, match", [
    (dict(images=np.zeros((3, 27, 28)), labels=np.zeros(3)), "images must be"),
    (dict(images=np.zeros((3, 28, 28)), labels=np.zeros(4)), "labels must be"),
    (dict(images=np.zeros((3, 28, 28)), labels=np.zeros(3), digits=(0, 2)), "digits must be"),
    (dict(images=np.zeros((3, 28, 28)), labels=np.zeros(3), size=20), "size=20"),
])
def test_bad_arguments(kw, match):
    kw = dict(count=2) | kw
    with pytest.raises(ValueError, match=match):
        make_canvases(**kw)

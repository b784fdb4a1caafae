
from tests.helpers import check_op


def test_add_broadcast():
    check_op(lambda a, b: a + b, (3, 4), (4,))


def test_matmul():
    check_op(lambda a, b: a @ b, (3, 4), (4, 5))
    check_op(lambda a, b: a @ b, (2, 3, 4), (4,))
    check_op(lambda a, b: a @ b, (4,), (4,))
    check_op(lambda a, b: a @ b, (2, 1, 3, 4), (5, 4, 2))


def test_chain():
    check_op(lambda x: (x @ x.T).relu().sum(), (3, 4))
    check_op(lambda x: x.exp().log1p().tanh().sigmoid() * x.sin().cos(), (3, 4))
    check_op(lambda x: x.softmax(-1), (3, 4))
    check_op(lambda x: x.log_softmax(0), (3, 4))
    check_op(lambda x: (x.abs() + 0.5).sqrt().rsqrt().pow(3) ** 0.5, (3, 4))
    check_op(lambda x: x.mean(1, keepdim=True) - x.sum(), (3, 4))
    check_op(lambda a, b: a.maximum(b) + a.minimum(b) + a / b - (a ** b.abs()), (3, 4), (3, 1), low=0.5)
    check_op(lambda x: x[1:, None, [0, 0, 2]], (3, 4))

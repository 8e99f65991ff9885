"""Class-prior adjustment (labeler.training.prior): alpha chosen by validation macro-F1, the shift
folded into an ONNX bias exactly."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.training import prior


def _skewed(n=4000, p1=0.1, sep=1.5, seed=0):
    """Two overlapping 1-D Gaussian classes with prior (1 - p1, p1) and the exact Bayes logits (calibrated)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < p1).astype(np.int64)
    x = rng.normal(0, 1, n) + sep * y
    ll = np.stack([-0.5 * x ** 2, -0.5 * (x - sep) ** 2], 1)
    return ll + np.log([1 - p1, p1]), y


def test_class_prior_is_mean_distribution_floored():
    p = prior.class_prior(np.array([[1, 0, 0], [0.5, 0.5, 0], [1, 0, 0]]))
    assert p.sum() == pytest.approx(1.0)
    assert p[0] > p[1] > p[2] > 0  # a class nobody voted for keeps a small floor (log stays finite)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_shift_divides_the_prior_out_to_the_power_alpha(alpha):
    pr = np.array([0.6, 0.3, 0.1])
    z, t = np.array([[1.0, 0.5, -0.2]]), 0.7
    p = np.exp(z / t) / np.exp(z / t).sum()
    q = np.exp((z + prior.shift_for(alpha, pr, t)) / t)
    q /= q.sum()
    expect = p / pr ** alpha
    np.testing.assert_allclose(q, expect / expect.sum(), rtol=1e-9)


def test_overlapping_classes_with_a_rare_one_get_a_positive_alpha():
    z, y = _skewed()
    adj = prior.choose(z, y, np.array([0.9, 0.1]), 1.0)
    f1 = dict((a, f) for a, f, _ in adj.table)
    assert adj.alpha > 0 and f1[adj.alpha] > f1[0.0] + 0.01
    assert adj.alpha == max(f1, key=lambda a: (round(f1[a], 6), -a))
    # the shift is the one for the chosen alpha, the temperature is fitted on the shifted logits
    np.testing.assert_allclose(adj.shift, prior.shift_for(adj.alpha, np.array([0.9, 0.1]), 1.0))
    assert 0.5 < adj.temperature < 2.0


def test_separable_classes_keep_the_model_as_trained():
    z, y = _skewed(sep=12.0)  # every alpha classifies all rows right: ties go to the smallest
    adj = prior.choose(z, y, np.array([0.9, 0.1]), 1.0)
    assert adj.alpha == 0.0 and not adj.shift.any()


def test_unlabeled_rows_are_left_out_and_none_is_an_error():
    z, y = _skewed(n=500)
    y2 = y.copy()
    y2[::2] = -1
    adj = prior.choose(z, y2, np.array([0.9, 0.1]), 1.0)
    assert all(0 <= f <= 1 for _, f, _ in adj.table)
    with pytest.raises(ValueError, match="no labeled"):
        prior.choose(z, np.full(len(y), -1), np.array([0.9, 0.1]), 1.0)


def test_shift_is_folded_into_the_onnx_bias(tmp_path):
    import onnx
    import onnxruntime as ort

    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["embedding", "fc.weight", "fc.bias"], ["logits"], transB=1)], "g",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(w, "fc.weight"), numpy_helper.from_array(b, "fc.bias")])
    src = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    shift = np.array([0.5, -0.25, 1.0])
    assert prior.shift_onnx_bias(src, tmp_path / "out.onnx", shift) == "fc.bias"
    x = rng.normal(size=(5, 4)).astype(np.float32)

    def run(p):
        return ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(["logits"], {"embedding": x})[0]

    np.testing.assert_allclose(run(tmp_path / "out.onnx") - run(src), np.tile(shift, (5, 1)), atol=1e-5)
    # a graph whose logits come from no biased layer is refused in one line
    g2 = helper.make_graph([helper.make_node("Identity", ["embedding"], ["logits"])], "g2",
                           [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, 3])],
                           [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])])
    onnx.save(helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "id.onnx"))
    with pytest.raises(ValueError, match="expected 'logits' to come from a Gemm or Conv with a bias, found Identity"):
        prior.shift_onnx_bias(tmp_path / "id.onnx", tmp_path / "x.onnx", np.zeros(3))

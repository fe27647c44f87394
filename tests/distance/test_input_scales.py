"""Feature scales users really pass: uint8 images, features x1e4, one side in 0..255 and the other
in [0, 1], overflowing features. Each gives the right number or a clear message (issue: bad input)."""

import warnings

import pytest
import torch

from otdata.distance import DatasetDistance, ScaleMismatchWarning
from otdata.flows import DatasetFlow
from otdata.ot import emd2


def _images(n=40, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g)
    y = torch.arange(n) % 2
    return X, y


def test_uint8_images_are_read_as_intensities():
    X1, y1 = _images(seed=0)
    X2, y2 = _images(seed=1)
    as_float = DatasetDistance()(X1, y1, X2, y2)
    as_uint8 = DatasetDistance()((X1 * 255).round().to(torch.uint8), y1, (X2 * 255).round().to(torch.uint8), y2)
    assert as_uint8.value == pytest.approx(as_float.value, rel=2e-2)  # the same images up to 8-bit rounding


def test_features_x1e4_give_the_scaled_distance_and_converge():
    X1, y1 = _images(seed=0)
    X2, y2 = _images(seed=1)
    r1 = DatasetDistance(dtype=torch.float64)(X1, None, X2, None)
    r2 = DatasetDistance(dtype=torch.float64)(X1 * 1e4, None, X2 * 1e4, None)
    assert r1.converged and r2.converged
    assert r2.value == pytest.approx(1e8 * r1.value, rel=1e-6)  # squared costs scale by 1e8
    exact = emd2(torch.cdist(X1.double() * 1e4, X2.double() * 1e4) ** 2)
    assert exact <= r2.value <= r2.cost_scale


def test_one_side_in_0_255_the_other_in_0_1_warns_naming_the_units():
    X1, y1 = _images(seed=0)
    X2, y2 = _images(seed=1)
    with pytest.warns(ScaleMismatchWarning, match="same units"):
        DatasetDistance()(X1 * 255, y1, X2, y2)
    with pytest.warns(ScaleMismatchWarning, match="same units"):
        DatasetFlow(target=(X2, y2), steps=1, progress=False).run(X1 * 255, y1)


def test_similar_scales_do_not_warn():
    X1, y1 = _images(seed=0)
    X2, y2 = _images(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScaleMismatchWarning)
        DatasetDistance()(X1, y1, 2 * X2, y2)


def test_overflowing_features_are_refused_at_once():
    X1, y1 = _images(seed=0)
    X2, y2 = _images(seed=1)
    with pytest.raises(ValueError, match="not finite.*rescale the features"):
        DatasetDistance()(X1 * 1e20, y1, X2 * 1e20, y2)

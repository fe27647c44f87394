"""The crop and rotate feature steps: what they do to an image, their checks, and that the
configs `source.features=crop|rotate` build them."""

from __future__ import annotations

import pytest
import torch

from otdata.data.features import feature_step
from otdata.data.transforms import Crop, Rotate, transform_step


def bar():
    X = torch.zeros(2, 1, 28, 28)
    X[:, :, 5:8, 10:18] = 1.0  # a horizontal bar near the top
    return X


def test_rotate_turns_the_image_counter_clockwise_about_its_centre():
    turned = Rotate(90)(bar())[0, 0]
    rows, cols = turned.nonzero(as_tuple=True)
    assert cols.max() < 14 and rows.min() >= 9 and rows.max() <= 18  # the top bar is now on the left
    assert torch.allclose(Rotate(90)(Rotate(-90)(bar())), bar(), atol=1e-5)
    assert Rotate(360)(bar()).equal(bar())
    assert Rotate(45)(bar()).shape == (2, 1, 28, 28)


def test_crop_zooms_on_the_centre_and_keeps_the_size():
    X = torch.zeros(1, 1, 28, 28)
    X[:, :, 13:15, 13:15] = 1.0
    zoomed = Crop(14)(X)
    assert zoomed.shape == X.shape and zoomed.sum() > 3 * X.sum()  # the centre spot, twice as wide
    assert Crop(28)(X).equal(X) and Crop(40)(X).equal(X)
    flat = Crop(20)(torch.rand(3, 28, 28))
    assert flat.shape == (3, 1, 28, 28) and 0 <= flat.min() and flat.max() <= 1


def test_bad_parameters_are_refused():
    for bad in (1, 2.5, True):
        with pytest.raises(ValueError, match="crop size"):
            Crop(bad)
    with pytest.raises(ValueError, match="finite"):
        Rotate(float("nan"))
    with pytest.raises(ValueError, match="transform must be one of"):
        transform_step("flip")
    with pytest.raises(ValueError, match="not images"):
        Rotate(10)(torch.rand(4, 784))


def test_the_configs_and_names_build_the_steps():
    assert transform_step("none") is None
    assert transform_step("crop", 16.0).describe() == {"step": "Crop", "size": 16}
    assert transform_step("rotate", 45).describe() == {"step": "Rotate", "degrees": 45.0}
    assert feature_step("crop").describe() == {"step": "Crop", "size": 20}
    assert feature_step("rotate").describe() == {"step": "Rotate", "degrees": 30.0}

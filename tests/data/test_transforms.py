"""Image transforms (otdata.data.transforms): seeded, as named, label-keeping, composable, and
refused with the choices when misnamed."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from otdata.config import CONFIG_DIR
from otdata.data import TensorDataModule
from otdata.data.transforms import Transform, transform_names, transform_step
from otdata.instantiate import safe_instantiate


def letter_f(n: int = 4, side: int = 16) -> torch.Tensor:
    """An asymmetric test image (an "F"), repeated ``n`` times: ``(n, 1, side, side)`` in [0, 1]."""
    x = torch.zeros(1, 1, side, side)
    x[0, 0, 2:side - 2, 3:5] = 1.0
    x[0, 0, 2:4, 3:side - 4] = 0.8
    x[0, 0, 7:9, 3:side - 6] = 0.6
    return x.repeat(n, 1, 1, 1)


def module(transform=None, options=None, seed: int = 0) -> TensorDataModule:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(40, 1, 12, 12, generator=g)
    y = torch.arange(40) % 4
    return TensorDataModule("toy", {"train": (X, y), "test": (X[:8], y[:8])}, list("abcd"),
                            transform=transform, transform_options=options, seed=seed)


def test_a_fixed_90_degree_rotation_equals_rot90():
    x = letter_f()
    out = transform_step({"rotate": {"degrees": [90, 90]}})(x)
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)))
    assert not torch.equal(out, x)


def test_flip_and_invert_at_probability_one_are_exact():
    x = letter_f()
    torch.testing.assert_close(transform_step({"flip": {"p": 1.0}})(x), torch.flip(x, dims=[-1]))
    torch.testing.assert_close(transform_step("invert")(x), 1.0 - x)


@pytest.mark.parametrize("name", transform_names())
def test_each_transform_is_seeded_changes_images_and_keeps_shape(name):
    x = letter_f(6)
    step = transform_step(name)
    a, b, c = step(x, seed=3), step(x, seed=3), step(x, seed=4)
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert not torch.equal(a, x), f"{name} left every image unchanged"
    if name not in ("invert",):  # inversion at p=1 draws nothing
        assert not torch.equal(a, c), f"{name} ignores the seed"


def test_each_item_has_its_own_draw_whatever_subsample_it_is_in():
    x = letter_f(6)
    step = transform_step("rotate")
    whole = step(x, seed=1)
    assert not torch.equal(whole[0], whole[1]), "every item got the same angle"
    part = step(x[[4, 2]], seed=1, index=torch.tensor([4, 2]))
    torch.testing.assert_close(part, whole[[4, 2]])


def test_transforms_compose_in_the_order_given():
    x = letter_f()
    both = transform_step([{"rotate": {"degrees": [90, 90]}}, {"flip": {"p": 1.0}}])(x)
    torch.testing.assert_close(both, torch.flip(torch.rot90(x, 1, dims=(-2, -1)), dims=[-1]))
    other = transform_step([{"flip": {"p": 1.0}}, {"rotate": {"degrees": [90, 90]}}])(x)
    assert not torch.equal(both, other)


def test_a_datamodule_transforms_its_items_and_keeps_labels():
    plain, turned = module(), module({"rotate": {"degrees": [90, 90]}})
    X0, y0 = plain.tensors("train", max_samples=20)
    X1, y1 = turned.tensors("train", max_samples=20)
    assert torch.equal(y0, y1)
    torch.testing.assert_close(X1, torch.rot90(X0, 1, dims=(-2, -1)))
    assert turned.settings()["transform"] == [{"transform": "rotate", "degrees": [90, 90]}]
    assert plain.settings()["transform"] is None


def test_options_give_the_parameters_of_a_named_transform():
    turned = module(["rotate"], options={"rotate": {"degrees": [90, 90]}})
    X0, _ = module().tensors("train")
    torch.testing.assert_close(turned.tensors("train")[0], torch.rot90(X0, 1, dims=(-2, -1)))


def test_none_means_no_transform():
    assert transform_step("none") is None and transform_step(None) is None and transform_step([]) is None


@pytest.mark.parametrize("spec, words", [
    ("rotat", ["rotate", "crop", "none"]),
    ({"rotate": {"degree": 30}}, ["degrees"]),
    ({"blur": {"kernel_size": 4}}, ["kernel_size"]),
    ({"flip": {"p": 2.0}}, ["probability"]),
    ({"rotate": {"degrees": float("nan")}}, ["finite"]),
    ({"crop": {"scale": [0.0, 2.0]}}, ["scale"]),
    (7, ["name"]),
])
def test_a_bad_transform_is_refused_naming_the_choices(spec, words):
    with pytest.raises(ValueError) as error:
        transform_step(spec)
    for word in words:
        assert word in str(error.value)


def test_the_command_line_names_transforms_and_sets_their_parameters():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=["task=distance", "source.transform=[rotate,crop]",
                                           "transform.rotate.degrees=[90,90]"])
    assert cfg.target.transform == "none"
    source = safe_instantiate(cfg.source)  # nothing is read before tensors() is asked for
    assert isinstance(source.transform, Transform)
    assert source.transform.describe()[0] == {"transform": "rotate", "degrees": [90, 90]}
    assert source.transform.describe()[1]["transform"] == "crop"


def test_a_dataset_of_vectors_refuses_an_image_transform():
    vectors = TensorDataModule("vectors", {"train": (torch.rand(20, 8), torch.arange(20) % 2)}, ["a", "b"],
                               transform="rotate")
    with pytest.raises(ValueError, match="image datasets only"):
        vectors.tensors("train")

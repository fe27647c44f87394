"""The Classifier: learns a separable toy set, round-trips through its checkpoint, helpers."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from otdata.models import Classifier, LeNet5, SmallCNN, random_shift


def quadrant_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of noisy 28×28 images: class 0 has a bright top-left quadrant, class 1 a bright
    bottom-right one."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    X = 0.3 * torch.rand(n, 1, 28, 28, generator=g)
    X[y == 0, :, :14, :14] += 0.6
    X[y == 1, :, 14:, 14:] += 0.6
    return X.clamp(0, 1), y


def loader(X, y, shuffle=False):
    return DataLoader(TensorDataset(X, y), batch_size=32, shuffle=shuffle)


def small_net(num_classes=2):
    return SmallCNN(num_classes=num_classes, channels=(8, 16), hidden=32)


def fit(model, X, y, **trainer_kwargs):
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, **trainer_kwargs)
    trainer.fit(model, loader(X, y, shuffle=True), loader(X[:64], y[:64]))
    return trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    L.seed_everything(0)
    X, y = quadrant_images(320, seed=0)
    model = Classifier(small_net(), lr=3e-3, augment_shift=1)
    trainer = fit(model, X, y)
    fit_metrics = dict(trainer.callback_metrics)
    path = tmp_path_factory.mktemp("ckpt") / "toy.ckpt"
    trainer.save_checkpoint(path)
    return model, trainer, path, fit_metrics


def test_learns_a_separable_toy_set(trained):
    model, trainer, _, fit_metrics = trained
    assert {"val/acc", "val/loss", "train/loss_epoch", "train/acc"} <= set(fit_metrics)
    Xt, yt = quadrant_images(128, seed=1)
    metrics = trainer.test(model, loader(Xt, yt), verbose=False)[0]
    assert metrics["test/acc"] > 0.9
    assert model.accuracy(Xt, yt) > 0.9


def test_checkpoint_round_trip_gives_identical_predictions(trained):
    model, _, path, _ = trained
    loaded = Classifier.load_from_checkpoint(path, map_location="cpu")
    assert isinstance(loaded.net, SmallCNN)
    assert list(loaded.net.init_args["channels"]) == [8, 16]
    X, _ = quadrant_images(64, seed=2)
    torch.testing.assert_close(loaded.logits(X), model.logits(X))
    assert torch.equal(loaded.predict(X), model.predict(X))
    assert loaded.hparams.lr == 3e-3 and loaded.num_classes == 2


def test_predict_helpers(trained):
    model, _, _, _ = trained
    X, y = quadrant_images(50, seed=3)
    model.train()
    labels = model.predict(X, batch_size=7)
    assert model.training  # restored
    assert labels.shape == (50,) and labels.dtype == torch.int64
    assert torch.equal(labels, model.predict(X.flatten(1)))
    assert 0.0 <= model.accuracy(X, y) <= 1.0


def test_foreign_net_needs_net_again_to_load(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
    model = Classifier(net, num_classes=2, scheduler="none")
    X, y = quadrant_images(64, seed=0)
    trainer = fit(model, X, y)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = Classifier.load_from_checkpoint(
        tmp_path / "m.ckpt", net=nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
    )
    torch.testing.assert_close(loaded.logits(X), model.logits(X))


@pytest.mark.parametrize("optimizer,scheduler", [("sgd", "cosine"), ("adam", "none"),
                                                 ("adamw", "onecycle")])
def test_optimizer_and_schedule_options(optimizer, scheduler):
    X, y = quadrant_images(64, seed=0)
    model = Classifier(LeNet5(num_classes=2), optimizer=optimizer, scheduler=scheduler, lr=1e-2)
    fit(model, X, y, limit_train_batches=2, limit_val_batches=1)


def test_bad_arguments():
    with pytest.raises(ValueError):
        Classifier(small_net(), optimizer="rmsprop")
    with pytest.raises(ValueError):
        Classifier(small_net(), scheduler="step")
    with pytest.raises(ValueError):
        Classifier()
    with pytest.raises(ValueError):
        Classifier(nn.Linear(784, 2))  # no num_classes to read


def test_classifier_from_net_config_only():
    model = Classifier(net_config={"_target_": "otdata.models.LeNet5", "num_classes": 3})
    assert isinstance(model.net, LeNet5) and model.num_classes == 3


def test_random_shift():
    x = torch.zeros(6, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    shifted = random_shift(x, 2)
    assert shifted.shape == x.shape
    assert torch.allclose(shifted.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))  # nothing falls off
    assert random_shift(x, 0) is x

"""Feature steps: resize/grayscale against PIL, a pretrained encoder from local weights against the
same network run by hand, its content-hash cache, and the `features` config hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from otdata.config import CONFIG_DIR
from otdata.data import LabeledDataModule
from otdata.data.features import Resize, feature_step
from otdata.data.image_encoder import ImageEncoder
from otdata.distance import DatasetDistance
from otdata.instantiate import safe_instantiate
from tests.data.conftest_text import tiny_bert  # noqa: F401  (fixture)


def rgb32(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), torch.arange(n) % 3


def gray28(n=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 3


class Tiny(LabeledDataModule):
    name = "tiny"

    def __init__(self, X, y, **kw):
        super().__init__(**kw)
        self.X, self.y = X, y

    def load_split(self, split):
        return self.X, self.y

    @property
    def class_names(self):
        return ["a", "b", "c"]


def test_resize_gray_matches_pil_and_makes_rgb32_comparable_with_gray28():
    X, y = rgb32()
    Xg, yg = gray28()
    with pytest.raises(ValueError, match=r"\(3, 32, 32\) vs \(1, 28, 28\).*resize28_gray"):
        DatasetDistance()(X, y, Xg, yg)
    out = Resize(28, channels=1)(X)
    pil = np.stack([np.asarray(Image.fromarray(x.permute(1, 2, 0).numpy()).convert("L").resize((28, 28), Image.BILINEAR))
                    for x in X]) / 255.0
    assert out.shape == (12, 1, 28, 28) and out.dtype == torch.float32
    assert np.abs(out[:, 0].numpy() - pil).max() < 2 / 255  # PIL rounds to 8 bits at each stage
    res = DatasetDistance()(out, y, Xg, yg)
    assert res.converged and res.n1 == 12 and res.label_distances.shape == (3, 3)


def test_resize_gray_to_rgb_repeats_and_refuses_flat_items():
    Xg, _ = gray28(n=3)
    out = Resize(32, channels=3)(Xg)
    assert out.shape == (3, 3, 32, 32) and torch.equal(out[:, 0], out[:, 2])
    assert torch.equal(Resize(28)(Xg), Xg)  # already the size: untouched
    with pytest.raises(ValueError, match="unflattened"):
        Resize(28)(Xg.flatten(1))


def test_datamodule_applies_its_step_after_subsampling():
    X, y = rgb32()
    dm = Tiny(X.float() / 255, y, features="resize28_gray", max_samples=6)
    Xs, ys = dm.tensors("train", flatten=True)
    ref = Tiny(X.float() / 255, y, max_samples=6).tensors("train")[0]
    assert Xs.shape == (6, 784) and torch.allclose(Xs, Resize(28, channels=1)(ref).flatten(1))
    assert Tiny(X, y, features={}).features is None and Tiny(X, y, features="none").features is None


def test_named_steps_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"not a feature step; use one of \[.*'resize28_gray'"):
        feature_step("resize_27")
    with pytest.raises(ValueError, match=r"refers to other settings.*features@source.features=encoder"):
        feature_step("encoder")


def compose_source(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=["task=distance", *overrides])


def test_config_hook_builds_the_steps(data_root, tmp_path, mobilenet):
    cfg = compose_source([f"paths.data_dir={data_root}", "source.features=resize32_rgb"])
    dm = safe_instantiate(cfg.source, key="source")
    assert dm.tensors("train", max_samples=4)[0].shape == (4, 3, 32, 32)
    cfg = compose_source([f"paths.data_dir={data_root}", f"paths.cache_dir={tmp_path}",
                          "features@target.features=encoder", f"target.features.model={mobilenet}",
                          "target.features.arch=mobilenet_v3_small", "target.features.image_size=32"])
    dm = safe_instantiate(cfg.target, key="target")
    assert isinstance(dm.features, ImageEncoder) and dm.features.cache_dir == tmp_path
    assert dm.tensors("train", max_samples=4, flatten=True)[0].shape == (4, 1024)
    assert safe_instantiate(compose_source([]).source, key="source").features is None


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """A randomly initialised torchvision MobileNetV3-small (4 classes), saved as a state dict."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=4)
    path = tmp_path_factory.mktemp("enc") / "mobilenet.pt"
    torch.save(net.state_dict(), path)
    return path


def test_torchvision_encoder_is_the_penultimate_layer(mobilenet):
    import torchvision

    X, _ = rgb32(n=5)
    got = ImageEncoder(mobilenet, arch="mobilenet_v3_small", image_size=40)(X)
    net = torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=4)
    net.load_state_dict(torch.load(mobilenet, weights_only=True))
    net.classifier[3] = torch.nn.Identity()
    x = torch.nn.functional.interpolate(X.float() / 255, size=(40, 40), mode="bilinear", antialias=True)
    x = (x.clamp(0, 1) - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        want = net.eval()(x)
    assert got.shape == (5, 1024) and torch.allclose(got, want, atol=1e-5)


def test_hf_encoder_from_a_local_folder(tmp_path):
    import transformers
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=32, image_size=16, patch_size=8)
    transformers.ViTModel(config).save_pretrained(tmp_path / "vit")
    Xg, _ = gray28(n=4)
    enc = ImageEncoder(tmp_path / "vit")
    got = enc(Xg)
    model = transformers.ViTModel.from_pretrained(tmp_path / "vit").eval()
    x = torch.nn.functional.interpolate(Xg.expand(-1, 3, -1, -1), size=(16, 16), mode="bilinear", antialias=True)
    x = (x.clamp(0, 1) - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        want = model(pixel_values=x).pooler_output
    assert enc.image_size == 16 and torch.allclose(got, want, atol=1e-5)


def test_encoder_cache_hit_reads_without_loading_the_model(mobilenet, tmp_path, monkeypatch):
    X, _ = rgb32(n=4)
    first = ImageEncoder(mobilenet, arch="mobilenet_v3_small", image_size=32, cache_dir=tmp_path)(X, name="set")
    entries = list((tmp_path / "embeddings").iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".pt"  # no temporary file left behind
    again = ImageEncoder(mobilenet, arch="mobilenet_v3_small", image_size=32, cache_dir=tmp_path)
    monkeypatch.setattr(again, "_load", lambda: pytest.fail("the model was loaded on a cache hit"))
    assert torch.equal(again(X, name="set"), first)
    with pytest.raises(pytest.fail.Exception):  # other images: a miss, which must load the model
        again(X.flip(0), name="set")


def test_encoder_refuses_missing_or_unnamed_weights(tmp_path, mobilenet):
    with pytest.raises(ValueError, match=r"needs its weights: set `source.features.model=/path`"):
        ImageEncoder(None)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        ImageEncoder(tmp_path / "nope.pt", arch="resnet18")
    with pytest.raises(ValueError, match="needs arch="):
        ImageEncoder(mobilenet)
    with pytest.raises(ValueError, match="does not hold resnet18 weights"):
        ImageEncoder(mobilenet, arch="resnet18", image_size=32)(rgb32(n=2)[0])


def test_as_labeled_applies_a_step_or_a_text_encoder(tiny_bert):
    from torch.utils.data import DataLoader, TensorDataset

    from otdata.data import as_labeled
    from otdata.data.embed import TextEncoder

    X, y = rgb32(n=6)
    got = as_labeled(DataLoader(TensorDataset(X, y), batch_size=4), features=Resize(28, channels=1))
    assert got.item_shape == (1, 28, 28) and torch.equal(got.X, Resize(28, channels=1)(X).flatten(1))
    texts = ["a good film", "a bad film", "the match was won", "rain all day"]
    encoder = TextEncoder(tiny_bert, progress=False)
    want = encoder.encode(texts)
    assert torch.allclose(as_labeled(texts, [0, 1, 0, 1], features=encoder).X, want)
    import datasets
    ds = datasets.Dataset.from_dict({"text": texts, "label": [0, 1, 0, 1]},
                                    features=datasets.Features({"text": datasets.Value("string"),
                                                                "label": datasets.ClassLabel(names=["x", "y"])}))
    got = as_labeled(ds, x_column="text", features=encoder)
    assert torch.allclose(got.X, want) and got.class_names == ["x", "y"]
    with pytest.raises(TypeError, match="must be a text encoder"):
        as_labeled(texts, [0, 1, 0, 1], features=Resize(28))

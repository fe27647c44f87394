"""Writes notebooks/your_own_data.ipynb from the cells below (edit here, then run this script).

The notebook reads MNIST from OTDATA_DATA_DIR and a folder of images from YOUR_DATA_FOLDER (when
unset, it first writes USPS's test digits there as PNGs), and its sizes from YOUR_DATA_* variables,
so the test suite can execute it on tiny generated files.
"""

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_notebook

CELLS = [
    new_markdown_cell(
        "# Your own data: from a folder of PNGs to a distance, a flow and a re-purposed classifier\n\n"
        "A folder in torchvision's ImageFolder layout (one sub-folder per class, PNG/JPEG/BMP) is a "
        "dataset for otdata: `ImageFolderDataModule` in Python, `data=image_folder` on the command line.\n\n"
        "1. Read the folder (decoded in parallel, cached after the first read).\n"
        "2. How far is it from MNIST? The OTDD and the class-to-class distances.\n"
        "3. Flow it toward MNIST.\n"
        "4. Re-purpose a classifier trained on MNIST only for it.\n\n"
        "Set `OTDATA_DATA_DIR` to a folder holding `MNIST/raw/`, and `YOUR_DATA_FOLDER` to your images "
        "(when unset, USPS's test digits from `USPS/usps.t.bz2` are written there as PNGs first)."
    ),
    new_code_cell(
        "%matplotlib inline\n"
        "import os\n"
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "import torch\n"
        "from IPython.display import display\n\n"
        "from otdata import plots\n"
        "from otdata.data import ImageFolderDataModule, MNISTDataModule\n"
        "from otdata.distance import DatasetDistance\n"
        "from otdata.flows import DatasetFlow\n"
        "from otdata.models import load_or_train_classifier\n"
        "from otdata.tables import to_markdown\n\n"
        "DATA_DIR = os.environ.get('OTDATA_DATA_DIR', 'data')\n"
        "N = int(os.environ.get('YOUR_DATA_N', 1000))            # items per dataset\n"
        "STEPS = int(os.environ.get('YOUR_DATA_STEPS', 30))      # flow steps\n"
        "EPOCHS = int(os.environ.get('YOUR_DATA_EPOCHS', 2))     # classifier epochs\n"
        "OUT = Path(tempfile.mkdtemp(prefix='otdata-your-data-'))\n"
        "FOLDER = Path(os.environ.get('YOUR_DATA_FOLDER', OUT / 'my_digits'))\n"
        "torch.manual_seed(0)"
    ),
    new_markdown_cell(
        "## 0. A folder of PNGs\nSkipped when `YOUR_DATA_FOLDER` points at your own folder. Otherwise "
        "this writes USPS's test digits (16×16, as stored) as `<folder>/<digit>/<index>.png`."
    ),
    new_code_cell(
        "if not FOLDER.exists():\n"
        "    from PIL import Image as PILImage\n"
        "    from otdata.data import USPSDataModule\n"
        "    X, labels = USPSDataModule(DATA_DIR, image_size=None).tensors('test')   # 16×16 as stored\n"
        "    images = (X[:, 0] * 255).round().byte()\n"
        "    for i, (image, label) in enumerate(zip(images.numpy(), labels.tolist())):\n"
        "        (FOLDER / str(label)).mkdir(parents=True, exist_ok=True)\n"
        "        PILImage.fromarray(image).save(FOLDER / str(label) / f'{i:05d}.png')\n"
        "print(FOLDER, sorted(p.name for p in FOLDER.iterdir()))"
    ),
    new_markdown_cell(
        "## 1. Read it\nEvery image is resized to 28×28 and read as one gray channel, MNIST's feature "
        "space; a seeded, stratified 20 % is the test split (a folder with `train/` and `test/` "
        "sub-folders gives its own)."
    ),
    new_code_cell(
        "mine = ImageFolderDataModule(FOLDER, image_size=28, channels=1, max_samples=N,\n"
        "                             max_test_samples=N, cache_dir=OUT / 'cache')\n"
        "mnist = MNISTDataModule(DATA_DIR, max_samples=N)\n"
        "Xs, ys = mine.tensors('train', flatten=True)\n"
        "Xt, yt = mnist.tensors('train', flatten=True)\n"
        "print(f'{mine.name}: {tuple(Xs.shape)}, classes {mine.class_names}; MNIST {tuple(Xt.shape)}')\n"
        "display(plots.image_rows({mine.name: Xs[ys.argsort()][:: max(1, len(ys) // 12)],\n"
        "                          'MNIST': Xt[yt.argsort()][:: max(1, len(yt) // 12)]}, OUT / 'data.png'))"
    ),
    new_markdown_cell(
        "## 2. Distance\n`value` is the OTDD; `label_distances[i, j]` is the distance between your "
        "class i and MNIST class j."
    ),
    new_code_cell(
        "res = DatasetDistance()(Xs, ys, Xt, yt, class_names1=mine.class_names, class_names2=mnist.class_names)\n"
        "print(f'OTDD({mine.name}, MNIST) = {res.value:.2f}   (converged: {res.converged})')\n"
        "display(plots.label_distance_heatmap(res.label_distances, mine.class_names,\n"
        "                                     mnist.class_names, OUT / 'labels.png',\n"
        "                                     row_label=mine.name, col_label='MNIST'))"
    ),
    new_markdown_cell(
        "## 3. Flow\nYour class c is pushed onto MNIST class c (`correspondence='identity'`, right "
        "for digit folders named 0..9; `'auto'` matches classes from the label distances)."
    ),
    new_code_cell(
        "flow = DatasetFlow(target=(Xt, yt), steps=STEPS, step_size=0.25, clamp=(0, 1),\n"
        "                   correspondence='identity', progress=False, label_update_every=5)\n"
        "result = flow.run(Xs, ys)\n"
        "print(f\"objective {result.history[0]['objective']:.2f} → {result.objective:.2f}\")\n"
        "display(plots.image_rows({'before': result.X0, 'after': result.X}, OUT / 'flow.png'))"
    ),
    new_markdown_cell(
        "## 4. Re-purpose\nA classifier that has only seen MNIST, scored on your images (class c counts "
        "as right when it says digit c): as they are, flowed, and unseen test images moved by the "
        "flow (nearest-neighbour displacement)."
    ),
    new_code_cell(
        "classifier, _ = load_or_train_classifier(MNISTDataModule(DATA_DIR, max_samples=max(N, 5000)),\n"
        "                                         trainer={'max_epochs': EPOCHS}, out_dir=OUT / 'clf')\n"
        "Xq, yq = mine.tensors('test', flatten=True)\n"
        "rows = [{'data': 'train, raw', 'accuracy %': 100 * classifier.accuracy(Xs, ys)},\n"
        "        {'data': 'train, flowed', 'accuracy %': 100 * classifier.accuracy(result.X, ys)},\n"
        "        {'data': 'test, raw', 'accuracy %': 100 * classifier.accuracy(Xq, yq)},\n"
        "        {'data': 'test, moved by the flow', 'accuracy %': 100 * classifier.accuracy(result.extend(Xq, k=1), yq)}]\n"
        "print(to_markdown(rows))"
    ),
    new_markdown_cell(
        "The same from the command line:\n\n"
        "```bash\n"
        "otdata task=distance data@source=image_folder source.root=/path/to/my_digits source.image_size=28 data@target=mnist\n"
        "otdata task=flow data@source=image_folder source.root=/path/to/my_digits source.image_size=28 data@target=mnist\n"
        "```"
    ),
]


def main() -> Path:
    return write_notebook(CELLS, Path(__file__).with_name("your_own_data.ipynb"))


if __name__ == "__main__":
    print(main())

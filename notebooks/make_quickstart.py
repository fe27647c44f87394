"""Writes notebooks/quickstart.ipynb from the cells below (edit here, then run this script).

The notebook reads its data root from OTDATA_DATA_DIR and its sizes from QUICKSTART_* variables, so
the test suite can execute it on tiny generated files.
"""

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_notebook

CELLS = [
    new_markdown_cell(
        "# otdata quickstart: distance → flow → re-purpose\n\n"
        "1. How far is USPS from MNIST? (the OTDD and its class-to-class distances)\n"
        "2. Flow USPS toward MNIST (a gradient flow of the OTDD, labels carried along).\n"
        "3. Re-purpose: a classifier trained on MNIST only, scored on USPS before and after the flow, "
        "and on unseen USPS test digits moved by the learned flow.\n\n"
        "Set `OTDATA_DATA_DIR` to a folder holding `MNIST/raw/` and `USPS/usps.bz2` "
        "(torchvision's layout)."
    ),
    new_code_cell(
        "%matplotlib inline\n"
        "import os\n"
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "import torch\n"
        "from IPython.display import display\n\n"
        "from otdata import plots\n"
        "from otdata.data import MNISTDataModule, USPSDataModule\n"
        "from otdata.distance import DatasetDistance\n"
        "from otdata.flows import DatasetFlow\n"
        "from otdata.tables import to_markdown\n"
        "from otdata.models import load_or_train_classifier\n\n"
        "DATA_DIR = os.environ.get('OTDATA_DATA_DIR', 'data')\n"
        "N = int(os.environ.get('QUICKSTART_N', 1000))          # particles per dataset\n"
        "STEPS = int(os.environ.get('QUICKSTART_STEPS', 40))    # flow steps\n"
        "EPOCHS = int(os.environ.get('QUICKSTART_EPOCHS', 2))   # classifier epochs\n"
        "OUT = Path(tempfile.mkdtemp(prefix='otdata-quickstart-'))\n"
        "torch.manual_seed(0)"
    ),
    new_markdown_cell("## Data\nBoth datasets as `(n, 784)` tensors of pixels in [0, 1]; USPS is resized from 16×16 to 28×28."),
    new_code_cell(
        "usps = USPSDataModule(DATA_DIR, max_samples=N, max_test_samples=N)\n"
        "mnist = MNISTDataModule(DATA_DIR, max_samples=N)\n"
        "Xs, ys = usps.tensors('train', flatten=True)\n"
        "Xt, yt = mnist.tensors('train', flatten=True)\n"
        "print(f'USPS {tuple(Xs.shape)}, MNIST {tuple(Xt.shape)}')\n"
        "display(plots.image_rows({'USPS': Xs[ys.argsort()][:: max(1, N // 12)],\n"
        "                          'MNIST': Xt[yt.argsort()][:: max(1, N // 12)]}, OUT / 'data.png'))"
    ),
    new_markdown_cell(
        "## 1. Distance\n`value` is the OTDD (transport cost of the entropic coupling, p = 2); "
        "`label_distances[i, j]` is W₂² between USPS class i and MNIST class j."
    ),
    new_code_cell(
        "distance = DatasetDistance(label_distance='gaussian', p=2, debiased=True)\n"
        "res = distance(Xs, ys, Xt, yt, class_names1=usps.class_names, class_names2=mnist.class_names)\n"
        "print(f'OTDD(USPS, MNIST) = {res.value:.2f}   ({res.seconds:.1f} s)')\n"
        "display(plots.label_distance_heatmap(res.label_distances, usps.class_names,\n"
        "                                     mnist.class_names, OUT / 'labels.png',\n"
        "                                     row_label='USPS', col_label='MNIST'))"
    ),
    new_markdown_cell(
        "## 2. Flow\nUSPS class c is pushed onto MNIST class c (`correspondence='identity'`); "
        "pixels stay in [0, 1]."
    ),
    new_code_cell(
        "flow = DatasetFlow(target=(Xt, yt), steps=STEPS, step_size=0.25, clamp=(0, 1),\n"
        "                   correspondence='identity', progress=False,\n"
        "                   label_update_every=5)\n"
        "result = flow.run(Xs, ys)\n"
        "print(f\"objective {result.history[0]['objective']:.2f} → {result.objective:.2f}\")\n"
        "display(plots.image_rows({'before': result.X0, 'after': result.X}, OUT / 'flow.png'))"
    ),
    new_markdown_cell(
        "## 3. Re-purpose\nA classifier that has only seen MNIST, scored on USPS (label c counts as right when "
        "it says digit c): raw, flowed, and unseen test digits moved by the learned flow "
        "(k-nearest-neighbour displacement, no labels used)."
    ),
    new_code_cell(
        "classifier, _ = load_or_train_classifier(MNISTDataModule(DATA_DIR, max_samples=max(N, 5000)),\n"
        "                                         trainer={'max_epochs': EPOCHS}, out_dir=OUT / 'clf')\n"
        "Xq, yq = usps.tensors('test', flatten=True)\n"
        "rows = [{'data': 'USPS train, raw', 'accuracy %': 100 * classifier.accuracy(Xs, ys)},\n"
        "        {'data': 'USPS train, flowed', 'accuracy %': 100 * classifier.accuracy(result.X, ys)},\n"
        "        {'data': 'USPS test, raw', 'accuracy %': 100 * classifier.accuracy(Xq, yq)},\n"
        "        {'data': 'USPS test, moved by the flow', 'accuracy %': 100 * classifier.accuracy(result.extend(Xq, k=1), yq)}]\n"
        "print(to_markdown(rows))"
    ),
]


def main() -> Path:
    return write_notebook(CELLS, Path(__file__).with_name("quickstart.ipynb"))


if __name__ == "__main__":
    print(main())

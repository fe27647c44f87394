"""Gradient flows in dataset space (Alvarez-Melis & Fusi, ICML 2021).

A labeled dataset is a cloud of particles ``(x_i, y_i)``. A :class:`DatasetFlow` moves the features
``x_i`` down the (Wasserstein) gradient of an objective ``F(rho)``, by default the debiased entropic
OTDD to a fixed target dataset, optionally plus other terms (MMD, sliced Wasserstein, a class
separation potential, class-mean matching).

Label handling (``labels=``):

* ``"fixed"`` — labels never change; class statistics are recomputed from the moving particles
  (every ``label_update_every`` steps) without gradient through them;
* ``"attached"`` — the same, but the gradient also flows through the class means/covariances;
* ``"joint"`` — class means and covariance factors are free parameters updated together with the
  particles; the label distance uses them (``result.label_params`` holds the final ones).

Class correspondence (``correspondence=``): ``"auto"`` (the default), ``"hungarian"``,
``"balanced"``, ``"nearest"`` (matched from the initial label distances, see
:mod:`otdata.flows.correspondence`), ``"identity"``, a dict ``{source_class: target_class}`` or a list
forces source class ``c`` onto target class ``corr[c]``: every other class pair gets a large
label-cost penalty, and each target class carries the mass of the source classes sent to it, so the
coupling never has to push a class's surplus elsewhere. ``None``/``"free"`` lets OTDD choose freely:
with class proportions that differ between the datasets, a balanced coupling then sends part of the
over-represented classes into other classes, and those particles keep labels that no longer describe
them. Every flow measures this (:mod:`otdata.flows.fidelity`: ``result.class_fidelity``) and warns
(``ClassFidelityWarning``) when a class leaks.

Example::

    from otdata.flows import DatasetFlow, FlowResult
    # images in [0, 1] flattened to (n, 784); defaults that converge for USPS/MNIST-like data
    flow = DatasetFlow(target=(Xt, yt), objective="otdd", labels="fixed", optimizer="euler",
                       step_size=0.25, steps=30, clamp=(0, 1), correspondence="identity",
                       distance={"label_distance": "gaussian"}, label_update_every=5,
                       checkpoint_dir="ckpt", checkpoint_every=10, trajectory_every=2)
    result = flow.run(Xs, ys)            # Xs: (n, d) floats, ys: (n,) ints
    result.X, result.history[-1]["objective"], result.correspondence
    result.class_fidelity.per_class       # share of each class's mass sent to its matched class
    result.save("flow.pt"); FlowResult.load("flow.pt")
    X_new_moved = result.extend(X_new)    # out-of-sample extension (k-NN displacement)

``epsilon`` is the distance's: relative to the cost scale by default (0.01 of the mean ground cost of
the initial source and the target, fixed for the whole flow), so the same default serves pixels and
embeddings; ``{"epsilon": 5.0, "relative": False}`` sets it in cost units.

Objectives compose: ``objective=[{"name": "otdd", "weight": 1.0},
{"name": "separation", "weight": 0.1, "margin": 5.0}]``.
"""

from otdata.flows.correspondence import (correspondence_matrix, match_classes, needs_label_distances,
                                         resolve_correspondence)
from otdata.flows.extension import KNNDisplacement, barycentric_projection, extend
from otdata.flows.flow import LABEL_METHODS, OPTIMIZERS, DatasetFlow, FlowResult
from otdata.flows.functionals import (FUNCTIONALS, ClassMeanMatching, ClassSeparationPotential,
                                      FlowState, Functional, MMDFunctional, OTDDFunctional,
                                      SlicedWassersteinFunctional, build_functional)

__all__ = [
    "DatasetFlow", "FlowResult", "LABEL_METHODS", "OPTIMIZERS",
    "Functional", "FlowState", "OTDDFunctional", "MMDFunctional", "SlicedWassersteinFunctional",
    "ClassSeparationPotential", "ClassMeanMatching", "FUNCTIONALS", "build_functional",
    "match_classes", "needs_label_distances", "resolve_correspondence", "correspondence_matrix",
    "KNNDisplacement", "extend", "barycentric_projection",
]

"""The explorer: a local web page (Gradio) to pick two labeled datasets and a transform for each,
see their OTDD, label-distance heat map, class matching and optimal coupling, and flow one toward
the other. Start it with ``otdata explore [overrides]`` (the same config as every task:
``paths.data_dir=...``, ``distance=...``, ``task.datasets.<name>=...``).

Rooms: :mod:`~otdata.explore.catalog` (what the pickers offer, where the page may read),
:mod:`~otdata.explore.items` (the items a choice stands for), :mod:`~otdata.explore.jobs` (work in
threads, cancelling, the result cache), :mod:`~otdata.explore.distance_page` and
:mod:`~otdata.explore.flow_page` (the two sections' contents), :mod:`~otdata.explore.callbacks`
(what the buttons do), :mod:`~otdata.explore.app` (the page), :mod:`~otdata.explore.task` (serving
it). Gradio is an optional dependency: ``pip install -e ".[explore]"``.
"""

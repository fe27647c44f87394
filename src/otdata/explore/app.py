"""The explorer's page (Gradio Blocks): pick two datasets and their transforms, compute the OTDD with
its heat map, class matching and coupled samples, then flow the source toward the target and play
the frames. The work is done by :class:`otdata.explore.callbacks.Explorer`; this module lays out
the page and wires its events."""

import gradio as gr
from omegaconf import DictConfig

from otdata.explore.callbacks import Explorer
from otdata.explore.distance_page import MATCHING_COLUMNS
from otdata.explore.items import LABEL_DISTANCES

CSS = """
.otdd-box {padding: 10px 14px; border-radius: 8px; border: 1px solid #d0d7de; background: #f6f8fa;}
.otdd-box.ok {border-left: 6px solid #2da44e;}
.otdd-box.bad {border-left: 6px solid #d4a72c; background: #fff8c5;}
.otdd-box.error {border-left: 6px solid #cf222e; background: #ffebe9;}
.otdd-line {font-size: 1.35em; font-weight: 600;}
.otdd-detail {color: #57606a; margin-top: 4px;}
.otdd-message {white-space: pre-wrap; font-size: 0.9em; margin: 6px 0 0 0;}
"""
TRANSFORMS = [("none", "none"), ("crop", "crop"), ("rotate", "rotate")]


def _side_inputs(explorer: Explorer, side: str) -> list:
    """The five inputs of one side: dataset, typed path, transform, crop size, rotation."""
    catalog = explorer.catalog
    with gr.Column(variant="panel"):
        gr.Markdown(f"### {side.capitalize()}")
        dataset = gr.Radio(catalog.choices(), value=catalog.default(side), label=f"{side} dataset",
                           elem_id=f"{side}-dataset")
        path = gr.Textbox(label="… or a folder of class sub-folders / an array file, under the data root",
                          placeholder="e.g. my_digits (relative to the data root)", elem_id=f"{side}-path")
        transform = gr.Radio(TRANSFORMS, value="none", label="transform", elem_id=f"{side}-transform")
        with gr.Row():
            crop = gr.Slider(4, 28, value=20, step=1, label="crop: square kept (px, at a seeded random place)",
                             elem_id=f"{side}-crop")
            degrees = gr.Slider(-180, 180, value=30, step=5, label="rotate: degrees (counter-clockwise)",
                                elem_id=f"{side}-degrees")
    return [dataset, path, transform, crop, degrees]


def build_app(explorer: Explorer):
    """The page as a ``gradio.Blocks`` (not launched)."""
    cfg, catalog = explorer.cfg, explorer.catalog
    roots = ", ".join(f"`{r}`" for r in [cfg.paths.data_dir, *catalog.roots[1:]])  # as configured
    label = cfg.distance.get("label_distance") or "sliced"
    with gr.Blocks(title="otdata explorer", analytics_enabled=False) as app:
        gr.Markdown("# otdata explorer: how far apart are two labeled datasets?\n"
                    f"Datasets are read from {roots} only. Pick a source and a target, a transform for "
                    "each, and press **Compute distance**; then flow the source toward the target.")
        with gr.Row():
            src = _side_inputs(explorer, "source")
            tgt = _side_inputs(explorer, "target")
        with gr.Row():
            per_class = gr.Number(value=int(cfg.task.per_class), precision=0, label="samples per class",
                                  elem_id="per-class")
            label_distance = gr.Radio(list(LABEL_DISTANCES), value=label, label="label distance",
                                      elem_id="label-distance")
            seed = gr.Number(value=int(cfg.seed), precision=0, label="seed", elem_id="seed")
            compute = gr.Button("Compute distance", variant="primary", elem_id="compute")
            stop = gr.Button("Stop", variant="stop", elem_id="stop")
        status = gr.Markdown("", elem_id="stop-status")
        gr.Markdown("## Distance")
        headline = gr.HTML("<div class='otdd-box'>Press <b>Compute distance</b>.</div>", elem_id="otdd")
        with gr.Row():
            heatmap = _image("**Label distances** between the classes (the talk's table)", "heatmap")
            with gr.Column():
                gr.Markdown("**Class matching** the coupling implies: where each source class sends "
                            "most of its mass, and its nearest target class by label distance W")
                matching = gr.Dataframe(headers=MATCHING_COLUMNS, show_label=False, interactive=False,
                                        elem_id="matching")
        gr.Markdown("## Samples and optimal coupling")
        with gr.Row():
            pairs = _image("Each **source item** and the 5 **target items** it is coupled with most", "pairs")
            embedding = _image("Both datasets in **one PCA plane**, coloured by class, with coupling "
                               "lines for 60 pairs", "embedding")
        page_key = gr.State(None)
        _flow_section(explorer, cfg, page_key)

        def on_compute(s_data, s_path, s_transform, s_crop, s_degrees, t_data, t_path, t_transform,
                       t_crop, t_degrees, k, label, seed_value, request: gr.Request,
                       progress=gr.Progress()):
            view = explorer.compute((s_data, s_path, s_transform, s_crop, s_degrees),
                                    (t_data, t_path, t_transform, t_crop, t_degrees), k, label,
                                    seed_value, session=_session(request), progress=_reporter(progress))
            return view.as_tuple()

        compute.click(on_compute, [*src, *tgt, per_class, label_distance, seed],
                      [headline, heatmap, matching, pairs, embedding, page_key], concurrency_limit=2)

        def on_stop(request: gr.Request):
            return explorer.stop(_session(request))

        # the jobs stop themselves (a distance at its next stage, a flow at its next step) and their
        # sections then say "Stopped"; Gradio's own `cancels=` would drop that answer
        stop.click(on_stop, None, status, concurrency_limit=None)
    return app


def _flow_section(explorer: Explorer, cfg: DictConfig, page_key):
    """The flow controls, status, frame and slider."""
    gr.Markdown("## Flow the source toward the target")
    with gr.Row():
        steps = gr.Slider(1, 100, value=int(cfg.task.flow_steps), step=1, label="flow steps",
                          elem_id="flow-steps")
        per_class = gr.Number(value=int(cfg.task.flow_per_class), precision=0,
                              label="particles per class", elem_id="flow-per-class")
        start = gr.Button("Flow", variant="primary", elem_id="flow")
    status = gr.HTML("<div class='otdd-box'>Compute a distance, then press <b>Flow</b>.</div>",
                     elem_id="flow-status")
    frame = _image("**Particles along the flow**: two of each class, the same ones in every frame",
                   "flow-frame")
    slider = gr.Slider(0, 1, value=0, step=1, label="frame (flow step)", elem_id="flow-slider")
    caption = gr.HTML("", elem_id="flow-caption")
    flow_key = gr.State(None)

    def on_flow(key, n_steps, n_per_class, request: gr.Request, progress=gr.Progress()):
        view = explorer.flow(key, n_steps, n_per_class, session=_session(request),
                             progress=_reporter(progress))
        top = max(view.n_frames - 1, 1)
        return (view.status, view.frame, gr.update(minimum=0, maximum=top, value=max(view.n_frames - 1, 0)),
                view.caption, view.key)

    start.click(on_flow, [page_key, steps, per_class], [status, frame, slider, caption, flow_key],
                concurrency_limit=2)
    slider.change(explorer.frame, [flow_key, slider], [frame, caption], show_progress="hidden")


def _image(caption: str, elem_id: str):
    """An output image with its caption above it (a Gradio label would cover the image's top)."""
    with gr.Column():
        gr.Markdown(caption)
        return gr.Image(type="pil", format="png", show_label=False, interactive=False, elem_id=elem_id)


def _session(request) -> str:
    return getattr(request, "session_hash", None) or "local"


def _reporter(progress):
    """A job's ``(fraction, text)`` reports, shown by the page's progress bar."""
    def report(fraction: float, text: str) -> None:
        progress(fraction, desc=text)
    return report


def theme():
    """Gradio's default look with the machine's own fonts (the page fetches nothing from outside)."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])

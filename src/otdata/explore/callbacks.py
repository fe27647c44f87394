"""What the page's buttons and sliders do, as plain methods of :class:`Explorer` (the unit tests call
them directly; :mod:`otdata.explore.app` wires them to the page). Every method returns what the
page shows, an error included: a bad choice never stops the server."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from omegaconf import DictConfig

from otdata.explore.catalog import Catalog
from otdata.explore.distance_page import (DistancePage, compute_page, distance_node,
                                          error_html, settings_key)
from otdata.explore.flow_page import FlowPage, frame_caption, run_flow
from otdata.explore.items import Choice, Side, check_choice
from otdata.explore.jobs import Cancelled, ResultCache, SessionJobs

log = logging.getLogger(__name__)


@dataclass
class DistanceView:
    """The distance section's outputs, in the page's order."""

    headline: str
    heatmap: object = None
    matching: list | None = None
    pairs: object = None
    embedding: object = None
    key: tuple | None = None  # the cache key of the page shown (the flow section's input)

    def as_tuple(self) -> tuple:
        return (self.headline, self.heatmap, self.matching or [], self.pairs, self.embedding, self.key)


@dataclass
class FlowView:
    """The flow section's outputs: status, first frame, the number of frames, caption, cache key."""

    status: str
    frame: object = None
    n_frames: int = 0
    caption: str = ""
    key: tuple | None = None


class Explorer:
    """One explorer: the composed config, its catalog, the caches of pages and flows, and the jobs
    of each browser session."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.catalog = Catalog(cfg)
        size = int(cfg.task.get("cache_size", 32))
        self.pages, self.flows = ResultCache(size), ResultCache(size)
        self.jobs = SessionJobs()
        self.max_per_class = int(cfg.task.get("max_per_class", 1000))

    # -- the distance section ----------------------------------------------------------------
    def choice(self, src: tuple, tgt: tuple, per_class, label_distance: str, seed) -> Choice:
        """A :class:`Choice` from the page's inputs (each side: dataset, path, transform, crop size,
        degrees)."""
        return Choice(_side(*src), _side(*tgt), _whole(per_class, "samples per class"),
                      str(label_distance), _whole(seed, "seed"))

    def compute(self, src: tuple, tgt: tuple, per_class, label_distance, seed, session: str = "",
                progress=None) -> DistanceView:
        """The distance section for the page's inputs: from the cache when this choice was computed
        before, else computed in a job (cancelled by :meth:`stop`)."""
        start = time.perf_counter()
        try:
            choice = self.choice(src, tgt, per_class, label_distance, seed)
            check_choice(choice, self.max_per_class)
            node = distance_node(self.cfg, choice.label_distance, choice.seed)
            key = choice.key(settings_key(node))
            page = self.pages.get(key)
            cached = page is not None
            if page is None:
                job = self.jobs.start(session, lambda report: compute_page(self.catalog, choice, node, report),
                                      name="distance")
                page = job.wait(progress)
                self.pages.put(key, page)
        except Cancelled:
            return DistanceView('<div class="otdd-box error" id="page-error">Stopped: the computation was '
                                "cancelled.</div>")
        except Exception as error:  # shown on the page; the server keeps running
            log.info("explore: %s: %s", type(error).__name__, error)
            return DistanceView(error_html(error))
        clock = datetime.now().strftime("%H:%M:%S.%f")[:-3]  # each answer differs: the page redraws it
        note = (f'<div class="otdd-detail" id="cache-note">shown from the cache at {clock}, in '
                f"{time.perf_counter() - start:.2f} s (computed in {page.seconds:.2f} s)</div>") if cached else ""
        return DistanceView(page.headline + note, page.heatmap, page.matching, page.pairs,
                            page.embedding, key)

    # -- the flow section --------------------------------------------------------------------
    def flow(self, key: tuple | None, steps, per_class, session: str = "", progress=None) -> FlowView:
        """Flow the source of the page shown (``key``) toward its target; the frames are cached."""
        try:
            page: DistancePage | None = self.pages.get(key) if key is not None else None
            if page is None:
                raise ValueError("compute a distance first: the flow moves the source shown above "
                                 "toward its target")
            steps, per_class = _whole(steps, "flow steps"), _whole(per_class, "particles per class")
            flow_key = (key, steps, per_class)
            result: FlowPage | None = self.flows.get(flow_key)
            if result is None:
                job = self.jobs.start(session, lambda report: run_flow(self.cfg, page, page.choice, steps,
                                                                       per_class, report), name="flow")
                result = job.wait(progress)
                self.flows.put(flow_key, result)
        except Cancelled:
            return FlowView('<div class="otdd-box error" id="flow-error">Stopped: the flow was cancelled.</div>')
        except Exception as error:
            log.info("explore flow: %s: %s", type(error).__name__, error)
            return FlowView(error_html(error, "This flow").replace('id="page-error"', 'id="flow-error"'))
        last = len(result.frames) - 1
        return FlowView(result.status, result.frames[last], len(result.frames),
                        frame_caption(result, last), flow_key)

    def frame(self, flow_key: tuple | None, index) -> tuple[object, str]:
        """The frame the slider points at, and its caption."""
        result = self.flows.get(flow_key) if flow_key is not None else None
        if result is None or not result.frames:
            return None, ""
        i = max(0, min(int(index or 0), len(result.frames) - 1))
        return result.frames[i], frame_caption(result, i)

    def stop(self, session: str = "") -> str:
        """Cancel the session's running work (the distance at its next stage, a flow at its next
        step)."""
        n = self.jobs.cancel(session)
        clock = datetime.now().strftime("%H:%M:%S")
        return f"{clock}: stopping the running computation …" if n else f"{clock}: nothing is running."


def _whole(value, what: str) -> int:
    """A page number that must be a whole number (the page sends floats)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return int(number)


def _side(dataset, path, transform, crop, degrees) -> Side:
    return Side(dataset or None, str(path or ""), str(transform or "none").lower(),
                _whole(crop if crop is not None else 20, "crop size"), float(degrees or 0.0))

"""`otdata explore` (= `otdata task=explore`): start the explorer's web app on this machine and
print its address. Stop it with Ctrl-C."""

from __future__ import annotations

import ipaddress
import logging
import os

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def launch(cfg: DictConfig, block: bool = True):
    """Build the page and serve it on ``task.host``:``task.port`` (127.0.0.1 by default; a free port
    from 7860 on when ``task.port`` is null). Returns the Gradio app (once stopped, when ``block``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no update check
    try:
        import gradio  # noqa: F401
    except ModuleNotFoundError:
        raise SystemExit('otdata explore needs Gradio, the `explore` extra: pip install -e ".[explore]"') from None
    from otdata.explore.app import CSS, build_app, theme
    from otdata.explore.callbacks import Explorer

    host = str(cfg.task.host)
    if not _loopback(host):
        log.warning("task.host=%s: the explorer is reachable from other machines, and it reads the "
                    "data root for anyone who can reach it", host)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests
    explorer = Explorer(cfg)
    explorer.catalog.warm([explorer.catalog.default("source"), explorer.catalog.default("target")])
    app = build_app(explorer)
    app.queue(default_concurrency_limit=2)
    blocked = [str(r) for r in explorer.catalog.roots]
    if cfg.paths.get("cache_dir"):
        blocked.append(str(cfg.paths.cache_dir))
    app.launch(server_name=host, server_port=cfg.task.port, prevent_thread_lock=True, quiet=True,
               show_error=False, ssr_mode=False, allowed_paths=[], blocked_paths=blocked,
               inbrowser=bool(cfg.task.open_browser), theme=theme(), css=CSS)
    readable = [label for label, key in explorer.catalog.choices() if not explorer.catalog.entries[key].missing]
    print(f"otdata explorer: {app.local_url}  (data root {explorer.catalog.data_dir}; datasets: "
          f"{', '.join(readable) or 'none found'}; Ctrl-C stops it)", flush=True)
    log.info("explorer serving on %s", app.local_url)
    if block:
        try:
            app.block_thread()
        finally:
            app.close()
    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(cfg: DictConfig) -> dict:
    """The task entry point (:func:`otdata.cli.run_task`)."""
    launch(cfg)
    return {}

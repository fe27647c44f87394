"""The explorer on real data, timed in a real browser, and the README's screenshot.

    python benchmarks/bench_explore.py --data-dir ../shared/data [--shot docs/explore.png]

Starts `otdata explore` twice on the data root and drives Debian's headless chromium through the
page as a person would (the helpers of tests/explore/browser.py):

* **cold**: the explorer started on other datasets (KMNIST, FashionMNIST), so USPS and MNIST are
  read from disk on the click: USPS vs MNIST, 200 per class, gaussian label distances;
* **warm**: the explorer started on USPS → MNIST (its default), which it reads at start-up, then
  the same click;
* **cached**: the same choice again; and a 20-step flow of 20 particles per class toward MNIST.

Times are the browser's, from the click to the number on the page. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.explore.browser import Page, Server, start_chromium  # noqa: E402


def session(data_dir: str, work: Path, defaults: list[str], shot: Path | None, per_class: int) -> dict:
    server = Server([f"paths.data_dir={data_dir}", f"hydra.run.dir={work / 'run'}", "task.per_class=100",
                     *defaults], work / "server.log")
    driver = start_chromium(1400, 1000)
    times = {}
    try:
        time.sleep(8)  # as a person would: the page is open a few seconds before the first click
        page = Page(driver, server.url, work / "shots")
        page.choose("source-dataset", "USPS")
        page.choose("target-dataset", "MNIST")
        page.type_into("#per-class input", per_class)
        kind, times["first compute"] = page.compute()
        assert kind == "value", page.text("#otdd")
        times["value"] = float(page.find("#otdd-value").get_attribute("data-value"))
        kind, times["cached recompute"] = page.compute()
        assert "shown from the cache" in page.text("#otdd")
        if shot is not None:
            start = time.perf_counter()
            page.find("#flow").click()
            page.wait(lambda: page.text("#flow-summary"), timeout=600, what="the flow")
            times["flow"] = time.perf_counter() - start
            times["flow summary"] = page.text("#flow-summary")
            from selenium.webdriver.common.keys import Keys

            slider = page.find("#flow-slider input[type=range]")
            slider.send_keys(Keys.HOME)
            for _ in range(6):
                slider.send_keys(Keys.ARROW_RIGHT)
            page.wait(lambda: "step 6 of" in page.text("#flow-caption"), what="frame 6")
            _save(page, shot)
    finally:
        driver.quit()
        server.stop()
    return times


def in_process(data_dir: str, per_class: int) -> dict:
    """The same computation without a browser or a server: wall-clock and CPU seconds (all threads)
    of a cold USPS vs MNIST (files read in the call) and of the cached repeat."""
    from tests.explore.conftest import explore_config
    from otdata.explore.callbacks import Explorer

    with tempfile.TemporaryDirectory() as tmp:
        explorer = Explorer(explore_config(data_dir, Path(tmp)))
        out = {}
        for name in ("cold", "cached"):
            wall, cpu = time.perf_counter(), time.process_time()
            view = explorer.compute(("usps", "", "none", 20, 30), ("mnist", "", "none", 20, 30), per_class,
                                    "gaussian", 0)
            assert "otdd-value" in view.headline, view.headline
            out[name] = (time.perf_counter() - wall, time.process_time() - cpu)
    return out


def _save(page: Page, shot: Path) -> None:
    from PIL import Image

    path = page.screenshot("page")
    image = Image.open(path).convert("RGB")
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
    shot.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(shot, optimize=True)
    print(f"screenshot: {shot} ({shot.stat().st_size // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--shot", type=Path, default=None, help="write the page's screenshot here (PNG)")
    parser.add_argument("--per-class", type=int, default=200)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-explore-") as tmp:
        cold = session(args.data_dir, Path(tmp) / "cold", ["data@source=kmnist", "data@target=fashion_mnist"],
                       None, args.per_class)
        warm = session(args.data_dir, Path(tmp) / "warm", [], args.shot, args.per_class)
    alone = in_process(args.data_dir, args.per_class)
    load = ", ".join(f"{a:.1f}" for a in (*load_before, *os.getloadavg()))
    print(f"\nmachine: {os.cpu_count()} CPU cores; load average (1, 5, 15 min) before and after: {load}")
    print(f"\nUSPS vs MNIST, {args.per_class} per class (gaussian label distances), times in the browser:\n")
    print("| explorer started on | first compute (s) | cached recompute (s) | OTDD |")
    print("|---|---|---|---|")
    for name, t in (("KMNIST, FashionMNIST (USPS and MNIST read on the click)", cold),
                    ("USPS → MNIST (read at start-up)", warm)):
        print(f"| {name} | {t['first compute']:.2f} | {t['cached recompute']:.2f} | {t['value']:.4f} |")
    print("\nIn one Python process (no browser, no server), `Explorer.compute`:\n")
    print("| call | wall (s) | CPU (s, all threads) |\n|---|---|---|")
    for name, (wall, cpu) in alone.items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    if "flow" in warm:
        print(f"\nflow (20 steps, 20 particles per class): {warm['flow']:.1f} s; {warm['flow summary']}")


if __name__ == "__main__":
    main()

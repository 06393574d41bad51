"""The report renders in a real browser: headless Chromium screenshots it, and the PNG is not blank.

Skips when Chromium is not installed (Debian: ``apt-get install chromium``); CI does not need it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_report import D, read_tables, report_home  # noqa: F401 - report_home is a shared fixture

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name) or (name if Path(name).is_file() else None)
        if path:
            return path
    return None


# Checked at collection, so the report fixture (a pipeline run of its own) is not built just to skip.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]


def screenshot(browser: str, html: Path, png: Path, height: int = 3000) -> None:
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--hide-scrollbars",
        f"--window-size=1280,{height}",
        f"--screenshot={png}",
        html.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file() and png.stat().st_size > 0, f"no screenshot: rc={done.returncode}\n{done.stderr[-2000:]}"


def test_report_renders_in_headless_chromium(spark, report_home, tmp_path):  # noqa: F811
    browser = chromium()
    import numpy as np
    from matplotlib.image import imread

    from custseg.report import ReportInputs, build_report
    from custseg.storage import StorageSettings, Tables

    tables = Tables(spark, StorageSettings(root=str(report_home / "tables"), engine="delta-rs"))
    html = tmp_path / "report.html"
    html.write_text(build_report(ReportInputs(D, read_tables(tables))).html, encoding="utf-8")
    png = tmp_path / "report.png"
    screenshot(browser, html, png)

    pixels = imread(png)[..., :3]  # floats 0..1, RGB
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert pixels.std() > 0.05, "the page is blank (one flat colour)"
    not_white = (pixels < 0.95).any(axis=2)
    assert not_white.mean() > 0.05, "almost nothing was drawn"
    # right of the title, the header band is the report's blue (#2f6690)
    header = pixels[5:40, 900:1250].reshape(-1, 3)
    assert np.allclose(np.median(header, axis=0), [0x2F / 255, 0x66 / 255, 0x90 / 255], atol=0.03)
    distinct = len(np.unique((pixels[::4, ::4] * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert distinct > 200, f"only {distinct} colours: the plots did not render"

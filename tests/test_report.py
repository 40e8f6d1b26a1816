"""The HTML report of the example run: built by snakemake --report, every figure loads."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import pytest

from .conftest import EXAMPLE, REPO, run_workflow

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_html(example_run):
    out = example_run / "results" / "report.html"
    r = run_workflow(
        example_run, "--report", str(out), config={"cohort": str(EXAMPLE), "results": "results"}
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_report_embeds_every_figure(report_html, example_run):
    text = report_html.read_text()
    pngs = re.findall(r"data:image/png;[^,\"]*base64,([A-Za-z0-9+/=]+)", text)
    figures = [p for p in (example_run / "results").rglob("*.png") if "logs" not in p.parts]
    assert len(figures) >= 20
    assert len(pngs) >= len(figures) * 0.9, (len(pngs), len(figures))
    for data in pngs:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("0. Summary", "Signatures", "Cytokines", "Clinical"):
        assert heading in text, heading


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_renders_in_chromium(report_html, tmp_path):
    shot = tmp_path / "report.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
        "--virtual-time-budget=10000",
    ]
    r = subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", report_html.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert shot.exists() and shot.stat().st_size > 20_000, r.stderr[-2000:]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", report_html.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    assert "R-HLH" in dom
    # kept beside the repo's results/ like a CI artifact
    keep = REPO / "results" / "report-screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)

"""The HTML report of the example run: built by snakemake --report, every figure loads."""

from __future__ import annotations

import base64
import csv
import re
import shutil
import subprocess
from html.parser import HTMLParser

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


def chromium_flags(tmp_path) -> list[str]:
    return [
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


class _VisibleText(HTMLParser):
    """The text of a page outside <script> and <style> (what a reader sees, not the data the
    report's scripts carry)."""

    def __init__(self):
        super().__init__()
        self.skip = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible_text(dom: str) -> str:
    p = _VisibleText()
    p.feed(dom)
    return " ".join(" ".join(p.parts).split())


def dump_dom(report_html, tmp_path) -> str:
    """The report's DOM after headless Chromium has run its scripts."""
    return subprocess.run(
        [CHROMIUM, *chromium_flags(tmp_path), "--dump-dom", report_html.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_renders_in_chromium(report_html, tmp_path):
    shot = tmp_path / "report.png"
    flags = chromium_flags(tmp_path)
    r = subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", report_html.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert shot.exists() and shot.stat().st_size > 20_000, r.stderr[-2000:]
    dom = dump_dom(report_html, tmp_path)
    assert "R-HLH" in dom
    # kept beside the repo's results/ like a CI artifact
    keep = REPO / "results" / "report-screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_landing_shows_headline_table(report_html, example_run, tmp_path):
    """The headline table is text on the landing page, not only a download."""
    dom = dump_dom(report_html, tmp_path)
    text = visible_text(dom)
    with open(example_run / "results" / "report" / "headline.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    cohort = next(r for r in rows if r["topic"] == "cohort")
    patients = cohort["value"].split(" / ")[0]
    assert int(patients) > 0
    assert "Headline findings" in text
    assert f"{patients} / " in text, text[:2000]
    for r in rows:  # every finding and its value, as text in the page
        assert r["finding"] in text, r["finding"]
        assert " ".join(r["value"].split()) in text, r["value"]
    assert "does not exist" not in text and "Problems with" not in text


def test_report_tables_are_pages(report_html):
    """Key tables come as HTML pages (shown in the report), every category named on the landing
    page exists."""
    text = report_html.read_text()
    for name in ("headline", "input_summary", "endpoints", "responders", "associations"):
        assert re.search(rf"filename={name}\.html", text), name
    assert "Inputs" in text


def test_report_landing_shows_the_patients(report_html, example_run):
    """The landing text carries the patient flow (every step) and, embedded, the flow diagram
    and the swimmer plot, the same bytes as the Clinical figures; 0. Summary lists the page."""
    text = report_html.read_text()
    start = text.index("<div class='rhlh-patients'")
    landing = text[start : text.index("</div>", start)]
    results = example_run / "results"
    with open(results / "clinical" / "patient_flow.tsv", newline="") as fh:
        steps = [r["step"] for r in csv.DictReader(fh, delimiter="\t")]
    assert "enrolled" in steps and "Simon stage-1 readout" in steps
    for step in steps:
        assert f"<td>{step}</td>" in landing, step
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", landing)
    assert [base64.b64decode(d) for d in images] == [
        (results / "clinical" / "figures" / "patient_flow.png").read_bytes(),
        (results / "clinical" / "figures" / "swimmer.png").read_bytes(),
    ]
    assert re.search(r"filename=patients\.html", text)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_landing_patients_visible_in_chromium(report_html, tmp_path):
    dom = dump_dom(report_html, tmp_path)
    text = visible_text(dom)
    assert "The patients: flow and swimmer plot" in text
    assert "Swimmer plot." in text and "Patient flow." in text
    assert dom.count("data:image/png;base64,") >= 2

"""Names from the input files never escape the results folder when they become file names."""

import os
from pathlib import Path

import pandas as pd
import pytest

from rhlh import tables
from rhlh.io import file_stem, file_stems
from rhlh_dev.simulate import simulate_cohort, write_cohort

from .conftest import REPO, files_under, run_workflow

HOSTILE = [
    "../../../../../../tmp/PWNED_analyte",
    "/etc/passwd",
    "..",
    ".",
    ".hidden",
    "a\x00b",
    "NUL",
    "con.txt",
    "sIL-2R/sCD25",
    "sIL-2R_sCD25",
    "IFN-γ",
    "Interféron γ",
    "星",
    "x" * 300,
    "x" * 300 + "y",
    "CD8 T",
    "CD8/T",
    "IL6",
    "il6",
    "",
]


def test_file_stems_stay_in_their_folder(tmp_path):
    stems = file_stems(HOSTILE)
    assert set(stems) == set(HOSTILE)
    # one-to-one, also on case-insensitive file systems
    assert len({s.lower() for s in stems.values()}) == len(HOSTILE)
    for name, stem in stems.items():
        assert stem and len(stem) <= 80, (name, stem)
        assert not stem.startswith("."), (name, stem)
        assert stem.isascii() and "/" not in stem and "\\" not in stem and "\x00" not in stem
        target = (tmp_path / f"{stem}.png").resolve()
        assert target.parent == tmp_path.resolve(), (name, stem)
        target.write_bytes(b"")  # the OS accepts it
    assert len(list(tmp_path.iterdir())) == len(HOSTILE)
    # names that are already safe keep their name
    assert stems["IL6"] == "IL6" and stems["sIL-2R_sCD25"] == "sIL-2R_sCD25"
    assert file_stem("HALLMARK_INTERFERON_GAMMA_RESPONSE") == "HALLMARK_INTERFERON_GAMMA_RESPONSE"
    # the same set of names gives the same files, whatever their order
    assert file_stems(reversed(HOSTILE)) == stems


@pytest.mark.slow
def test_hostile_names_through_every_stage(tmp_path):
    """Analytes, gene-set names and cell types built to escape: every file written stays under
    the results root (and the run's own .snakemake folder), nothing appears beside it."""
    work = tmp_path / "work"
    cohort = simulate_cohort(n_patients=6, n_genes=300, seed=3)
    cells = ("../../../../T", "NK cells/CD56+")
    write_cohort(cohort, work / "cohort", "h5ad-sc", cells_per_sample=40, cell_types=cells)
    escape_rel = "../" * 8 + str(tmp_path).lstrip("/") + "/PWNED_rel"
    escape_abs = str(tmp_path / "PWNED_abs")
    cyto = work / "cohort" / "cytokines.tsv"
    text = cyto.read_text()
    analytes = sorted({line.split("\t")[1] for line in text.splitlines()[1:]})
    hostile = [escape_rel, escape_abs, "sIL-2R/sCD25", "Ünï\x01code"]
    for old, new in zip(analytes[: len(hostile)], hostile, strict=True):
        text = text.replace(f"\t{old}\t", f"\t{new}\t")
    cyto.write_text(text)
    genes = (REPO / "resources/genesets/small_signatures.gmt").read_text().splitlines()[0]
    genes = genes.split("\t")[2:]
    gmt = work / "hostile.gmt"
    gmt.write_text(
        "".join(
            "\t".join([name, "hostile", *genes]) + "\n"
            for name in ("../../../../../PWNED_sig", str(tmp_path / "PWNED_sig_abs"), "γ" * 200)
        )
    )
    targets = [
        "results/cytokines/figures/spaghetti",
        "results/signatures/figures/spaghetti",
        "results/de/T/lrt_time.tsv",
        "results/de/NK_cells_CD56/lrt_time.tsv",
        "results/de/cell_types_skipped.tsv",
        "results/signatures/cell_types/scores.tsv",
        "results/signatures/cell_types/T/enrichment.tsv",
        "results/signatures/cell_types/NK_cells_CD56/enrichment.tsv",
    ]
    before = sorted(os.listdir(tmp_path))
    r = run_workflow(
        work,
        config={"cohort": "cohort", "results": "results", "genesets": f"[{gmt}]"},
        targets=targets,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == before, "a file was written beside the work folder"
    assert set(os.listdir(work)) <= {"cohort", "hostile.gmt", "results", ".snakemake"}
    written = files_under(work / "results")
    assert written
    for rel in written:
        assert (work / "results" / rel).resolve().is_relative_to((work / "results").resolve())
        # no hidden file but Snakemake's own marker of a directory output
        if Path(rel).name != ".snakemake_timestamp":
            assert all(not part.startswith(".") for part in Path(rel).parts), rel
    # one figure per analyte, the hostile ones included
    kept = set(pd.read_csv(work / "results/cytokines/values.tsv", sep="\t")["analyte"])
    assert {escape_rel, escape_abs, "sIL-2R/sCD25"} <= kept
    spaghetti = [p for p in written if p.startswith("cytokines/figures/spaghetti/")]
    assert len([p for p in spaghetti if p.endswith(".png")]) == len(kept)
    assert "cytokines/figures/spaghetti/sIL-2R_sCD25.png" in spaghetti
    sig = [p for p in written if p.startswith("signatures/figures/spaghetti/")]
    assert "signatures/figures/spaghetti/PWNED_sig.png" in sig
    # per cell type: files by stem, the names as given inside the tables
    scores = tables.read_cell_type_scores(work / "results/signatures/cell_types/scores.tsv")
    assert set(scores["cell_type"]) == set(cells)

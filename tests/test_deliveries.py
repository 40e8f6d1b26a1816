"""Count deliveries as sequencing cores make them (issue 17): nf-core/rnaseq merged tables,
per-sample salmon / kallisto quantifications with tx2gene (against R tximport), featureCounts
on STAR BAMs, Ensembl ids named by a GTF, a table or the shipped map, real counts (DEGreport's
humanGender), and one cohort delivered six ways through the workflow."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rhlh.contract import genes as G
from rhlh.contract import quant as Q
from rhlh.contract.counts import estimator_of, match_sample_columns, read_counts, sample_name
from rhlh.contract.genesets import load_gene_sets
from rhlh.errors import InputError
from rhlh.signatures.scoring import match_gene_sets

from .conftest import EXAMPLE, REPO, run_workflow

TXI = REPO / "tests" / "fixtures" / "tximport"
HG = REPO / "tests" / "fixtures" / "humangender"
SAMPLES = ["S1", "S2", "S3", "S4"]
GMTS = [
    REPO / "resources" / "genesets" / "hallmark_inflammatory_v7.5.1.gmt",
    REPO / "resources" / "genesets" / "small_signatures.gmt",
]


def r_table(name) -> pd.DataFrame:
    return pd.read_csv(TXI / "r" / name, sep="\t", index_col=0)


def rel_diff(ours: np.ndarray, ref: np.ndarray) -> float:
    scale = np.maximum(np.abs(ref), 1e-12)
    return float(np.max(np.where(ref == 0, np.abs(ours), np.abs(ours - ref) / scale)))


# --- per-sample quantifications vs R tximport -------------------------------------------------


@pytest.fixture(scope="module", params=[("salmon", "quant.sf"), ("kallisto", "abundance.tsv")])
def summary(request):
    tool, fname = request.param
    quants = {s: Q.read_quant(TXI / tool / s / fname) for s in SAMPLES}
    tx2gene, _ = Q.read_tx2gene(TXI / "tx2gene.tsv")
    return tool, Q.summarize_to_gene(quants, tx2gene)


@pytest.mark.parametrize("method", Q.COUNTS_FROM_ABUNDANCE)
def test_gene_counts_match_r_tximport(summary, method):
    tool, summ = summary
    ref = r_table(f"{tool}_{method}_counts.tsv")
    ours = Q.counts_from_abundance(summ, method)
    assert list(ours.index) == list(ref.index)
    assert rel_diff(ours[ref.columns].to_numpy(), ref.to_numpy()) < 1e-6


def test_gene_lengths_and_norm_factors_match_r(summary):
    tool, summ = summary
    ref_len = r_table(f"{tool}_length.tsv")
    # genes without abundance in a sample take R's fill-in rule; one is zero everywhere
    assert rel_diff(summ["length"].loc[ref_len.index].to_numpy(), ref_len.to_numpy()) < 1e-6
    ref_nf = r_table(f"{tool}_norm_factors.tsv")
    counts = np.rint(summ["counts"].loc[ref_nf.index].to_numpy())
    nf = Q.tximport_norm_factors(counts, summ["length"].loc[ref_nf.index].to_numpy())
    assert rel_diff(nf, ref_nf.to_numpy()) < 1e-6


def test_quant_folder_reads_as_rounded_length_scaled_counts(caplog):
    with caplog.at_level(logging.INFO, logger="rhlh"):
        out = read_counts(TXI / "salmon", tx2gene=str(TXI / "tx2gene.tsv"))
    ref = r_table("salmon_lengthScaledTPM_counts.tsv")
    assert out["samples"] == SAMPLES
    assert list(out["var"]["gene_id"]) == list(ref.index)
    np.testing.assert_array_equal(out["counts"], np.rint(ref.to_numpy().T).astype(np.int64))
    assert "rounded" in caplog.text and "largest change" in caplog.text
    assert "transcripts missing from tx2gene" in caplog.text


def test_quant_folder_without_tx2gene_says_what_to_set():
    with pytest.raises(InputError, match="counts.tx2gene"):
        read_counts(TXI / "salmon")


def test_quant_ids_absent_from_tx2gene(tmp_path):
    (tmp_path / "t2g.tsv").write_text("ENSTX1\tENSGX\n")
    with pytest.raises(InputError, match="no transcript of the quantifications is in tx2gene"):
        read_counts(TXI / "kallisto", tx2gene=str(tmp_path / "t2g.tsv"))


# --- matrices as pipelines write them ---------------------------------------------------------


def write_matrix(path: Path, ids, names, samples, values, extra=None):
    df = pd.DataFrame(values, columns=samples)
    df.insert(0, "gene_id", ids)
    if names is not None:
        df.insert(1, "gene_name", names)
    if extra:
        df.insert(1, *extra)
    df.to_csv(path, sep="\t", index=False, float_format="%.3f")
    return path


def test_nfcore_salmon_table_is_rounded_plain_matrix_refuses_fractions(tmp_path, caplog):
    values = np.array([[10.4, 0.2], [3.0, 7.6]])
    ids, names = ["ENSG00000115415.20", "ENSG00000096968.14"], ["STAT1", "JAK2"]
    nf = write_matrix(tmp_path / "salmon.merged.gene_counts.tsv", ids, names, ["A", "B"], values)
    assert estimator_of(nf) == "salmon"
    with caplog.at_level(logging.INFO, logger="rhlh"):
        out = read_counts(nf)
    np.testing.assert_array_equal(out["counts"], [[10, 3], [0, 8]])
    assert "rounded 3 of 4" in caplog.text and "largest change 0.4" in caplog.text
    plain = shutil.copy(nf, tmp_path / "counts.tsv")
    with pytest.raises(InputError, match="fractional count.*counts.source") as exc:
        read_counts(plain)
    assert "row 2, column 'A'" in str(exc.value)
    assert read_counts(plain, source="salmon")["counts"].sum() == 21
    rsem = write_matrix(
        tmp_path / "rsem.merged.gene_counts.tsv",
        ids,
        None,
        ["A", "B"],
        values,
        extra=("transcript_id(s)", ["ENST1,ENST2", "ENST3"]),
    )
    assert estimator_of(rsem) == "rsem"
    assert read_counts(rsem)["samples"] == ["A", "B"]
    tpm = shutil.copy(nf, tmp_path / "salmon.merged.gene_tpm.tsv")
    with pytest.raises(InputError, match="TPM table, not counts"):
        read_counts(tpm)


def test_featurecounts_star_bam_columns_match_sample_ids(tmp_path):
    cols = [
        "/data/star/P001_D0.Aligned.sortedByCoord.out.bam",
        "star/P001_D7Aligned.sortedByCoord.out.bam",
        "P002_D0.markdup.sorted.bam",
        "P002_D7_S3_L001.bam",
    ]
    header = "\t".join(["Geneid", "Chr", "Start", "End", "Strand", "Length", *cols])
    body = "\n".join(
        "\t".join([g, "1", "1", "100", "+", "100", "1", "2", "3", "4"]) for g in ("STAT1", "JAK2")
    )
    path = tmp_path / "counts.featurecounts.tsv"
    path.write_text("# Program:featureCounts v2.0.3\n" + header + "\n" + body + "\n")
    ids = ["P001_D0", "P001_D7", "P002_D0", "P002_D7"]
    assert read_counts(path, sample_ids=ids)["samples"] == ids
    assert sample_name(cols[0]) == "P001_D0"


def test_sample_column_matching_rules():
    assert match_sample_columns(["P1_D0.bam", "P1_D7"], ["P1_D0", "P1_D7"]) == ["P1_D0", "P1_D7"]
    # the longest sample id that prefixes the column wins (P1_D1 vs P1_D14)
    assert match_sample_columns(["P1_D14_S2"], ["P1_D1", "P1_D14"]) == ["P1_D14"]
    with pytest.raises(InputError, match="all stand for sample P1_D0"):
        match_sample_columns(["P1_D0_run1", "P1_D0_run2"], ["P1_D0"])


def test_transposed_matrix_is_named(tmp_path):
    path = tmp_path / "counts.tsv"
    path.write_text("sample_id\tENSG00000115415\tENSG00000096968\nP001_D0\t4\t5\nP001_D7\t1\t2\n")
    with pytest.raises(InputError, match="looks transposed") as exc:
        read_counts(path)
    assert str(path) in str(exc.value)
    path.write_text("id\tSTAT1\tJAK2\nP001_D0\t4\t5\nP001_D7\t1\t2\n")
    with pytest.raises(InputError, match="first column holds sample ids"):
        read_counts(path, sample_ids=["P001_D0", "P001_D7"])


# --- gene identifiers ---------------------------------------------------------------------------


def test_versions_and_par_copies():
    assert G.strip_version("ENSG00000111640.15") == "ENSG00000111640"
    assert G.strip_version("ENSG00000182378.14_PAR_Y") == "ENSG00000182378"
    assert G.strip_version("STAT1") == "STAT1"
    assert G.looks_ensembl(["ENSG00000111640.1", "ENSMUSG00000000001", "x"])


def test_builtin_map_names_known_ids_and_every_shipped_set_gene():
    names = G.builtin_names()
    known = {  # Ensembl / HGNC
        "ENSG00000111537": "IFNG",
        "ENSG00000115415": "STAT1",
        "ENSG00000096968": "JAK2",
        "ENSG00000162434": "JAK1",
        "ENSG00000168610": "STAT3",
        "ENSG00000138755": "CXCL9",
        "ENSG00000169245": "CXCL10",
    }
    assert {k: names.get(k) for k in known} == known
    sets, _ = load_gene_sets(GMTS)
    set_genes = {g for v in sets.values() for g in v}
    assert set_genes <= set(names.values())


def test_gtf_and_table_annotations(tmp_path):
    gtf = tmp_path / "genes.gtf.gz"
    lines = [
        "#!genome-build GRCh38",
        '1\tHAVANA\tgene\t1\t9\t.\t+\t.\tgene_id "ENSG00000000001.3"; gene_name "GENEONE";',
        '1\tHAVANA\texon\t1\t9\t.\t+\t.\tgene_id "ENSG00000000001.3"; gene_name "WRONG";',
        '1\tHAVANA\texon\t1\t9\t.\t+\t.\tgene_id "ENSG00000000002.1"; gene_name "GENETWO";',
    ]
    with gzip.open(gtf, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    assert G.read_annotation(gtf) == {"ENSG00000000001": "GENEONE", "ENSG00000000002": "GENETWO"}
    table = tmp_path / "names.tsv"
    table.write_text("gene_id\tgene_name\nENSG00000000001.9\tGENEONE\n")
    var = pd.DataFrame({"gene_id": ["ENSG00000000001.3", "ENSG00000115415.2", "X"]})
    var["gene_name"] = var["gene_id"]
    named, report = G.name_genes(var, table, builtin=True)
    assert list(named["gene_name"]) == ["GENEONE", "STAT1", "X"]
    assert report["annotation"] == 1 and report["builtin map"] == 1 and report["unnamed"] == 1
    bad = tmp_path / "bad.gtf"
    bad.write_text("1\tsrc\tgene\t1\t9\n")
    with pytest.raises(InputError, match="9 tab-separated fields") as exc:
        G.read_annotation(bad)
    assert "row 1" in str(exc.value)
    other = tmp_path / "other.tsv"
    other.write_text("gene_id\tgene_name\nENSMUSG00000000001\tGnai3\n")
    with pytest.raises(InputError, match="does not belong to these counts"):
        G.name_genes(var, other, builtin=False)


def test_spreadsheet_dates_are_reported(tmp_path):
    path = write_matrix(
        tmp_path / "counts.tsv",
        ["g1", "g2", "g3", "g4"],
        ["7-Sep", "1-Mar", "STAT1", "2023-09-07"],
        ["A"],
        np.array([[1], [2], [3], [4]]),
    )
    out = read_counts(path)
    assert [n for _, n in out["gene_naming"]["excel_dates"]] == ["7-Sep", "1-Mar", "2023-09-07"]
    assert "look like dates" in out["notes"][0] and "7-Sep (gene 1)" in out["notes"][0]


def test_real_ensembl_counts_find_the_signature_genes():
    """humanGender (DEGreport): real counts named by Ensembl id only."""
    out = read_counts(HG / "counts.tsv.gz")
    assert out["counts"].shape == (24, 2006)
    assert out["gene_naming"]["builtin map"] > 1900
    names = dict(zip(out["var"]["gene_id"], out["var"]["gene_name"], strict=True))
    assert names["ENSG00000115415"] == "STAT1" and names["ENSG00000096968"] == "JAK2"
    sets, sources = load_gene_sets(GMTS)
    kept, report = match_gene_sets(sets, out["var"]["gene_name"], min_genes=5)
    assert "HALLMARK_INTERFERON_GAMMA_RESPONSE" in kept
    # the fraction of each hallmark set present is that of the 2,000 random genes (~1/6 of
    # humanGender's 10,101), not zero as before the Ensembl path
    hall = report[report["signature"].str.startswith("HALLMARK")]
    assert (hall["n_present"] >= 10).all()


# --- one cohort delivered six ways --------------------------------------------------------------


def _deliveries(root: Path) -> dict[str, dict]:
    """The example cohort's counts written as six deliveries: {name: config overrides}."""
    counts = pd.read_csv(EXAMPLE / "counts.tsv.gz", sep="\t")
    names = counts["gene_name"].to_numpy()
    gmap = pd.read_csv(G.BUILTIN_MAP, sep="\t", dtype=str)
    # one id per symbol (the first of those the map names so), as a GTF would carry it
    unique = gmap.drop_duplicates("gene_name").set_index("gene_name")["gene_id"]
    ens = np.array([unique.get(n, g) for n, g in zip(names, counts["gene_id"], strict=True)])
    covered = np.isin(names, unique.index)
    samples = [c for c in counts.columns if c not in ("gene_id", "gene_name")]
    values = counts[samples].to_numpy()
    out = {}

    def cohort(name, counts_file=None):
        d = root / name
        shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns("counts*"))
        return d

    cohort("symbols")
    shutil.copy(EXAMPLE / "counts.tsv.gz", root / "symbols" / "counts.tsv.gz")
    out["symbols"] = {}

    d = cohort("nfcore_salmon")
    rng = np.random.default_rng(1)
    frac = np.clip(values + rng.uniform(-0.45, 0.45, values.shape), 0, None)
    versioned = [
        f"{g}.{i % 7 + 1}" if c else g for i, (g, c) in enumerate(zip(ens, covered, strict=True))
    ]
    write_matrix(d / "salmon.merged.gene_counts.tsv", versioned, names, samples, frac)
    out["nfcore_salmon"] = {}

    d = cohort("quant")
    tx_len = 500 + (np.arange(len(ens)) * 37) % 4000
    for j, s in enumerate(samples):
        (d / "quant" / s).mkdir(parents=True)
        rate = values[:, j] / tx_len
        tpm = rate / rate.sum() * 1e6
        q = pd.DataFrame(
            {
                "Name": [f"TX{i}" for i in range(len(ens))],
                "Length": tx_len + 200,
                "EffectiveLength": tx_len.astype(float),
                "TPM": tpm,
                "NumReads": values[:, j].astype(float),
            }
        )
        q.to_csv(d / "quant" / s / "quant.sf", sep="\t", index=False)
    pd.DataFrame({"tx": [f"TX{i}" for i in range(len(ens))], "gene": ens, "name": names}).to_csv(
        d / "tx2gene.tsv", sep="\t", index=False, header=False
    )
    out["quant"] = {
        "inputs": {"counts": str(d / "quant")},
        "counts": {"tx2gene": str(d / "tx2gene.tsv")},
    }

    d = cohort("featurecounts_star")
    fc = pd.DataFrame(values, columns=[f"star/{s}.Aligned.sortedByCoord.out.bam" for s in samples])
    for k, col in enumerate(["Geneid", "Chr", "Start", "End", "Strand", "Length"]):
        fc.insert(k, col, names if k == 0 else (1000 if k == 5 else "1"))
    fc.to_csv(d / "counts.featurecounts.tsv", sep="\t", index=False)
    out["featurecounts_star"] = {}

    d = cohort("ensembl_gtf")
    write_matrix(d / "counts.tsv", ens, None, samples, values)
    gtf_lines = [
        f'1\tsrc\tgene\t1\t9\t.\t+\t.\tgene_id "{g}.2"; gene_name "{n}";'
        for g, n, c in zip(ens, names, covered, strict=True)
        if c
    ]
    (d / "genes.gtf").write_text("\n".join(gtf_lines) + "\n")
    out["ensembl_gtf"] = {
        "counts": {"gene_annotation": str(d / "genes.gtf"), "builtin_gene_map": False}
    }

    d = cohort("ensembl_only")
    write_matrix(d / "counts.tsv", ens, None, samples, values)
    out["ensembl_only"] = {}
    return out


def run_with(tmp: Path, settings: dict, *args, targets=()):
    """Run the workflow with these config settings (a config file: typed values, sections)."""
    path = tmp / f"config_{abs(hash(str(settings)))}.yaml"
    path.write_text(
        yaml.safe_dump({k: v if isinstance(v, dict) else str(v) for k, v in settings.items()})
    )
    return run_workflow(tmp, "--configfile", str(path), *args, targets=targets)


@pytest.fixture(scope="module")
def six_deliveries(tmp_path_factory):
    root = tmp_path_factory.mktemp("deliveries")
    deliveries = _deliveries(root)
    scores = {}
    for name, extra in deliveries.items():
        results = root / f"results_{name}"
        settings = {"cohort": root / name, "results": results, **extra}
        # the Ensembl-only delivery runs the whole workflow, the others up to the scores
        target = [] if name == "ensembl_only" else [str(results / "signatures" / "scores.tsv")]
        r = run_with(root, settings, targets=target)
        assert r.returncode == 0, f"{name}:\n{r.stderr[-3000:]}"
        scores[name] = pd.read_csv(results / "signatures" / "scores.tsv", sep="\t")
    scores["ensembl_only_lrt"] = pd.read_csv(
        root / "results_ensembl_only" / "de" / "lrt_time.tsv", sep="\t"
    )
    return scores


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["nfcore_salmon", "quant", "featurecounts_star", "ensembl_gtf", "ensembl_only"]
)
def test_six_deliveries_give_the_symbol_delivery_scores(six_deliveries, name):
    ref, got = six_deliveries["symbols"], six_deliveries[name]
    keys = ["sample_id", "signature", "method"]
    merged = ref.merge(got, on=keys, suffixes=("_ref", "_got"), validate="one_to_one")
    assert len(merged) == len(ref) == len(got)
    np.testing.assert_allclose(merged["score_got"], merged["score_ref"], rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_unmatched_gene_sets_stop_only_the_signature_stage(tmp_path):
    """Ensembl ids with the shipped map switched off: no GMT matches; the run goes on without
    the signature stage and says why."""
    d = tmp_path / "cohort"
    shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns("counts*"))
    counts = pd.read_csv(EXAMPLE / "counts.tsv.gz", sep="\t")
    counts["gene_id"] = [f"ENSG{i:011d}" for i in range(len(counts))]
    counts.drop(columns="gene_name").to_csv(d / "counts.tsv", sep="\t", index=False)
    results = tmp_path / "results"
    settings = {"cohort": d, "results": results, "counts": {"builtin_gene_map": False}}
    r = run_with(tmp_path, settings, "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "no gene of any set in this GMT is in the counts" in r.stderr
    assert "signatures_score" not in r.stdout
    assert "de_fit" in r.stdout and "clinical_endpoints" in r.stdout
    assert "report_summary" in r.stdout and "response_associations" in r.stdout
    why = (results / "logs" / "validate" / "signatures_off.txt").read_text()
    assert "hallmark_inflammatory_v7.5.1.gmt" in why


@pytest.mark.slow
def test_ensembl_only_delivery_runs_end_to_end_with_named_genes(six_deliveries):
    lrt = six_deliveries["ensembl_only_lrt"]
    assert lrt["gene_id"].str.startswith("ENSG").sum() > 600
    named = lrt.set_index("gene_id")["gene_name"]
    assert named.get("ENSG00000115415") == "STAT1"

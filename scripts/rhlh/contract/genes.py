"""Gene identifiers of a count delivery: Ensembl ids (with or without versions), their names.

Counts arrive with symbols, with Ensembl ids and names (nf-core/rnaseq), or with Ensembl ids
alone (featureCounts on a GENCODE/Ensembl GTF). Names are taken, first source first:

1. the delivery's own ``gene_name`` column, where a row has one;
2. the user's annotation (``counts.gene_annotation``): a GTF (the ``gene_name`` attribute of
   its ``gene`` lines, or of any line when there are no gene lines) or a two-column table
   ``gene_id``, ``gene_name``;
3. the shipped human map (``resources/gene_map``, NCBI Gene via org.Hs.eg.db) when
   ``counts.builtin_gene_map`` is on;
4. the id itself.

Ids are matched without their version suffix (``ENSG00000111640.15`` = ``ENSG00000111640``);
GENCODE's ``_PAR_Y`` copies keep the name of their X copy. ``gene_id`` always stays as
delivered: DE tables are per id. Several ids may share a name (paralog loci, PAR copies,
retired ids): they stay separate genes for DE, and the signature scores sum them.
"""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rhlh.errors import InputError
from rhlh.io import read_table

log = logging.getLogger("rhlh")

BUILTIN_MAP = (
    Path(__file__).resolve().parents[3] / "resources" / "gene_map" / "human_ensembl_symbols.tsv.gz"
)
ENSEMBL_RE = re.compile(r"^ENS[A-Z]*G\d{11}(\.\d+)?(_PAR_Y)?$")
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# what a spreadsheet makes of SEPT7, MARCH1, DEC1...: 7-Sep, 1-Mar, 2023-09-07, 9/7/2023
EXCEL_DATE_RE = re.compile(
    rf"^(\d{{1,2}}-({_MONTHS})|({_MONTHS})-\d{{1,4}}|\d{{4}}-\d{{2}}-\d{{2}}([ T]00:00:00)?"
    r"|\d{1,2}/\d{1,2}/\d{2,4})$",
    re.IGNORECASE,
)
_GTF_ATTR = re.compile(r'(gene_id|gene_name)\s+"([^"]*)"')


def strip_version(gene_id: str) -> str:
    """The Ensembl id without its version (and without GENCODE's ``_PAR_Y`` tag)."""
    gid = str(gene_id)
    if ENSEMBL_RE.match(gid):
        return gid.split(".")[0].split("_PAR_Y")[0]
    return gid


def looks_ensembl(ids) -> bool:
    """Whether most identifiers are Ensembl gene ids."""
    ids = [str(i) for i in ids]
    return bool(ids) and np.mean([bool(ENSEMBL_RE.match(i)) for i in ids]) > 0.5


def excel_mangled(names) -> list[tuple[int, str]]:
    """(position, name) of the names that a spreadsheet turned into dates."""
    return [(i, str(n)) for i, n in enumerate(names) if EXCEL_DATE_RE.match(str(n).strip())]


def read_gtf_names(path) -> dict[str, str]:
    """{gene id without version: gene_name} from a GTF's attributes (streamed, gzip or not)."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    names: dict[str, str] = {}
    any_line: dict[str, str] = {}
    n_lines = 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.startswith("#") or not line.strip():
                    continue
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 9:
                    raise InputError(
                        path,
                        f"a GTF line has 9 tab-separated fields, this one {len(fields)}",
                        row=lineno,
                    )
                n_lines += 1
                attrs = dict(_GTF_ATTR.findall(fields[8]))
                gid, name = attrs.get("gene_id"), attrs.get("gene_name")
                if not gid or not name:
                    continue
                key = strip_version(gid)
                target = names if fields[2] == "gene" else any_line
                target.setdefault(key, name)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(path, f"cannot read the GTF: {exc}") from None
    for key, name in any_line.items():
        names.setdefault(key, name)
    if not names:
        raise InputError(
            path,
            f"no gene_id / gene_name attribute pair in {n_lines} GTF lines: this annotation "
            "cannot name the genes (use a GTF with gene_name, or a gene_id/gene_name table)",
        )
    return names


def read_name_table(path) -> dict[str, str]:
    """{gene id without version: gene_name} from a table with columns gene_id, gene_name."""
    df = read_table(path, required=["gene_id", "gene_name"])
    df = df.astype({"gene_id": str, "gene_name": str})
    df = df[(df["gene_id"].str.strip() != "") & (df["gene_name"].str.strip() != "")]
    if df.empty:
        raise InputError(path, "no row with both gene_id and gene_name")
    keys = df["gene_id"].str.strip().map(strip_version)
    return dict(zip(keys, df["gene_name"].str.strip(), strict=True))


def read_annotation(path) -> dict[str, str]:
    """A user's gene annotation: a GTF (``.gtf``, ``.gtf.gz``) or a gene_id/gene_name table."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "gene annotation file does not exist (counts.gene_annotation)")
    if re.search(r"\.gtf(\.gz)?$", path.name, re.IGNORECASE):
        return read_gtf_names(path)
    return read_name_table(path)


def builtin_names() -> dict[str, str]:
    """The shipped human Ensembl id -> symbol map (NCBI Gene, see resources/gene_map)."""
    df = pd.read_csv(BUILTIN_MAP, sep="\t", dtype=str, keep_default_na=False)
    return dict(zip(df["gene_id"], df["gene_name"], strict=True))


def name_genes(
    var: pd.DataFrame, annotation=None, builtin: bool = True, source="counts"
) -> tuple[pd.DataFrame, dict]:
    """Fill ``gene_name`` where the delivery has none (a name equal to the id counts as none).

    Returns (var, report) with report = {source of names: number of genes} plus the
    Excel-mangled names found (as {"excel_dates": [(row, name), ...]}).
    """
    var = var.copy()
    ids = var["gene_id"].astype(str).to_numpy()
    names = var["gene_name"].astype(str).str.strip().to_numpy().copy()
    unnamed = (names == "") | (names == ids) | (names.astype(str) == "nan")
    report = {"delivery": int((~unnamed).sum())}
    sources = []
    if annotation:
        sources.append(("annotation", lambda: read_annotation(annotation)))
    if builtin and any(ENSEMBL_RE.match(i) for i in ids[unnamed]):
        sources.append(("builtin map", builtin_names))
    keys = np.array([strip_version(i) for i in ids], dtype=object)
    for label, load in sources:
        if not unnamed.any():
            break
        table = load()
        found = pd.Series(keys[unnamed]).map(table)
        hit = found.notna().to_numpy()
        where = np.flatnonzero(unnamed)[hit]
        names[where] = found[hit].to_numpy()
        unnamed[where] = False
        report[label] = int(hit.sum())
        log.info("%s: %d gene names from the %s", source, int(hit.sum()), label)
    names[unnamed] = ids[unnamed]
    report["unnamed"] = int(unnamed.sum())
    if annotation and report.get("annotation", 0) == 0 and report["delivery"] == 0:
        raise InputError(
            annotation,
            "no gene id of the counts is in this annotation: it does not belong to these counts "
            f"(first counts id {ids[0]!r})",
        )
    var["gene_name"] = names
    report["excel_dates"] = excel_mangled(names)
    return var, report

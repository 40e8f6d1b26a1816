"""Raw counts in the forms of the data contract, read into one samples x genes AnnData.

Forms: a genes x samples matrix (TSV/CSV, optionally gzipped, optional ``gene_name`` column;
nf-core/rnaseq's merged gene tables are such matrices), a featureCounts table, a folder of
per-sample salmon / kallisto quantifications (rhlh.contract.quant), and an ``.h5ad`` (bulk:
one observation per sample; single-cell: one observation per cell with ``obs["sample_id"]``,
summed into pseudobulk profiles in chunks).

Estimated counts (salmon, RSEM, kallisto) are rounded to integers, with what changed logged;
in any other matrix a fraction is an error. Sample columns named after BAM files
(``P001_D0.Aligned.sortedByCoord.out.bam``, a path) are matched to the sample ids; gene names
come from rhlh.contract.genes.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rhlh.errors import InputError
from rhlh.io import _delimiter, read_head, read_text

FEATURECOUNTS_COLUMNS = ["Geneid", "Chr", "Start", "End", "Strand", "Length"]
# leading annotation columns of a gene matrix (nf-core: gene_id, gene_name; RSEM merged:
# gene_id, transcript_id(s)); the first column may carry one of the id spellings
ID_COLUMNS = ("gene_id", "Geneid", "GeneID", "ensembl_gene_id")
ANNOTATION_COLUMNS = ("gene_name", "transcript_id(s)", "transcript_id", "gene_biotype")
# quantifiers whose counts are estimates (fractions are rounded, not refused)
ESTIMATORS = ("salmon", "rsem", "kallisto")
SOURCES = ("auto", "matrix", "featurecounts", "h5ad", *ESTIMATORS)
# nf-core/rnaseq's merged tables: <quantifier>.merged.gene_<kind>.tsv
NFCORE_RE = re.compile(r"^(salmon|rsem|star_salmon|star_rsem|kallisto)\.merged\.gene_(\w+)\.tsv$")
# what aligners and BAM tools append to a sample's name
_BAM_SUFFIX = re.compile(
    r"([._]?Aligned(\.sortedByCoord)?(\.out)?|[._](sorted|sortedByCoord|markdup|dedup|primary|"
    r"filtered|out))*\.(bam|sam|cram)$",
    re.IGNORECASE,
)
log = logging.getLogger("rhlh")


def count_format(path) -> str:
    """Which of the contract's count forms a path is: 'h5ad', 'quant' (a folder of per-sample
    quantifications), 'featurecounts' or 'matrix'."""
    if Path(path).is_dir():
        return "quant"
    name = str(path).lower()
    if name.endswith(".h5ad"):
        return "h5ad"
    text_head = _head_line(path)
    cols = text_head.split(_delimiter(path))
    if [c.strip() for c in cols[:6]] == FEATURECOUNTS_COLUMNS:
        return "featurecounts"
    return "matrix"


def estimator_of(path, source: str = "auto") -> str | None:
    """The quantifier whose estimates a count file holds (None for plain counts): named in
    ``counts.source``, or read off nf-core/rnaseq's file names."""
    if source in ESTIMATORS:
        return source
    if source != "auto":
        return None
    if Path(path).is_dir():
        return "salmon"
    m = NFCORE_RE.match(Path(str(path)).name.removesuffix(".gz"))
    if not m:
        return None
    kind = m.group(2)
    if kind.startswith("tpm"):
        raise InputError(
            path,
            "this is nf-core's TPM table, not counts: give salmon.merged.gene_counts.tsv (or "
            "its _length_scaled version) instead",
        )
    return "rsem" if "rsem" in m.group(1) else m.group(1).removeprefix("star_")


def sample_name(column: str) -> str:
    """A count column's sample name: the file name of a BAM path without aligner suffixes
    (``out/P001_D0.Aligned.sortedByCoord.out.bam`` -> ``P001_D0``)."""
    name = Path(str(column).strip()).name
    return _BAM_SUFFIX.sub("", name) or name


def match_sample_columns(columns, sample_ids, path=None) -> list[str]:
    """Count columns renamed to the sample ids they stand for: the id itself, the BAM-derived
    name, or a unique sample id followed by '.', '_' or '-' (``P001_D0_S12_L001``)."""
    ids = [str(i) for i in sample_ids]
    known = set(ids)
    out = []
    renamed = []
    for col in columns:
        if col in known:
            out.append(col)
            continue
        name = sample_name(col)
        if name not in known:
            hits = [i for i in ids if any(name.startswith(i + sep) for sep in "._-")]
            longest = max((len(h) for h in hits), default=0)
            hits = [h for h in hits if len(h) == longest]
            name = hits[0] if len(hits) == 1 else name
        if name != col:
            renamed.append((col, name))
        out.append(name)
    dup = sorted({c for c in out if out.count(c) > 1})
    if dup:
        cols = [c for c, o in zip(columns, out, strict=True) if o == dup[0]]
        raise InputError(
            path or "counts",
            "duplicated sample column"
            + (
                f": columns {', '.join(cols)} all stand for sample {dup[0]}"
                if cols[0] != cols[1]
                else ""
            ),
            row=1,
            column=cols[1],
        )
    if renamed:
        log.info(
            "%d count columns matched to sample ids, e.g. %s -> %s",
            len(renamed),
            renamed[0][0],
            renamed[0][1],
        )
    return out


HEAD_BYTES = 1 << 20  # a header line is looked for in the first MiB (the whole file if longer)


def _head_line(path) -> str:
    """The first line that is not a comment, read from the start of the file only."""

    def first(lines):
        return next((ln for ln in lines if ln.strip() and not ln.startswith("#")), None)

    head = read_head(path, HEAD_BYTES)
    truncated = len(head.encode("utf-8")) >= HEAD_BYTES - 4
    lines = head.splitlines()
    line = first(lines[:-1] if truncated else lines)
    if line is None and truncated:  # a header longer than the head
        line = first(read_text(path).splitlines())
    if line is not None:
        return line.lstrip("\ufeff")
    raise InputError(path, "file has no header line")


def _locate_bad_cell(path, frame: pd.DataFrame, sample_cols, gene_ids, hint=""):
    """Find the first cell that is not a non-negative integer and raise an InputError for it."""
    for col in sample_cols:
        values = frame[col].astype(str).str.strip()
        num = pd.to_numeric(values, errors="coerce")
        bad = num.isna() | ~np.isfinite(num) | (num < 0) | (num != np.floor(num))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raw = values.iloc[i]
            if np.isnan(num.iloc[i]):
                what = "missing value" if raw in ("", "NA", "nan", "NaN") else "not a number"
            elif not np.isfinite(num.iloc[i]):
                what = "not a finite number"
            elif num.iloc[i] < 0:
                what = "negative count"
            else:
                what = "fractional count"
            raise InputError(
                path,
                f"{what}: counts must be non-negative integers (gene {gene_ids[i]})"
                + (hint if what == "fractional count" else ""),
                row=int(frame.index[i]),
                column=col,
                value=raw,
            )


def _transposed_hint(header, lines, sep, sample_ids) -> str:
    """Why a matrix whose first column is not gene_id looks transposed ('' when it does not)."""
    first = [ln.split(sep, 1)[0].strip().strip('"') for ln in lines[1:200]]
    from rhlh.contract.genes import looks_ensembl

    if header[0].strip().lower() in ("sample_id", "sample", "samples", "sampleid"):
        why = f"its first column is {header[0]!r}"
    elif (
        sample_ids is not None
        and sum(v in set(map(str, sample_ids)) for v in first) > len(first) / 2
    ):
        why = "its first column holds sample ids"
    elif looks_ensembl(header[1:]):
        why = "its header holds Ensembl gene ids"
    else:
        return ""
    return (
        f"the matrix looks transposed ({why}): the contract wants genes as rows, first column "
        "gene_id, and one column per sample; transpose it (e.g. pandas df.T) and write it again"
    )


def read_count_table(
    path, fmt: str | None = None, estimator: str | None = None, sample_ids=None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a genes x samples matrix or featureCounts table.

    Returns (var, counts) where var has gene_id/gene_name and counts is samples x genes int64,
    with the sample ids as ``var.attrs['samples']``. ``estimator`` (salmon, rsem, kallisto)
    says the values are estimated counts, rounded here; ``sample_ids`` lets columns named
    after BAM files be matched to them.
    """
    fmt = fmt or count_format(path)
    text = read_text(path)
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    sep = _delimiter(path)
    if len(lines) < 2:
        raise InputError(path, "counts file has a header but no gene rows (truncated?)")
    header = [h.strip().strip('"') for h in lines[0].split(sep)]
    if len(header) < 2:
        raise InputError(
            path, "header has a single column: expected tab-separated (or .csv comma) values", row=1
        )
    if fmt == "featurecounts":
        id_col, annot = "Geneid", FEATURECOUNTS_COLUMNS
    else:
        id_col = header[0]
        if id_col not in ID_COLUMNS:
            hint = _transposed_hint(header, lines, sep, sample_ids)
            raise InputError(
                path, hint or "first column must be 'gene_id'", row=1, column=id_col or "(empty)"
            )
        annot = [id_col]
        while len(annot) < len(header) and header[len(annot)] in ANNOTATION_COLUMNS:
            annot.append(header[len(annot)])
    sample_cols = header[len(annot) :]
    if not sample_cols:
        raise InputError(path, "no sample columns after the gene annotation columns", row=1)
    if fmt == "featurecounts" or sample_ids is not None:
        # featureCounts names columns after BAM paths; other tools after FASTQ or BAM names
        sample_cols = (
            match_sample_columns(sample_cols, sample_ids, path)
            if sample_ids is not None
            else [sample_name(c) for c in sample_cols]
        )
    dup = sorted({c for c in sample_cols if sample_cols.count(c) > 1})
    if dup:
        raise InputError(path, "duplicated sample column", row=1, column=dup[0])
    for i, line in enumerate(lines[1:], start=2):
        n = line.count(sep) + 1
        if n != len(header) and line.strip():
            raise InputError(
                path,
                f"row has {n} fields but the header has {len(header)} (truncated file?)",
                row=i,
            )
    names = annot + sample_cols
    body = "\n".join(lines[1:])
    try:
        frame = pd.read_csv(
            io.StringIO(body),
            sep=sep,
            header=None,
            names=names,
            dtype={c: str for c in annot},
            keep_default_na=False,
            na_values=[],
            engine="c",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(path, f"cannot be parsed as a table: {exc}") from None
    frame.index = pd.RangeIndex(2, 2 + len(frame))
    gene_ids = frame[annot[0]].astype(str).str.strip().to_numpy()
    if (gene_ids == "").any():
        i = int(np.flatnonzero(gene_ids == "")[0])
        raise InputError(path, "empty gene id", row=int(frame.index[i]), column=annot[0])
    dup_genes = pd.Index(gene_ids)[pd.Index(gene_ids).duplicated()]
    if len(dup_genes):
        i = int(np.flatnonzero(gene_ids == dup_genes[0])[1])
        raise InputError(
            path, "duplicated gene id", row=int(frame.index[i]), column=annot[0], value=dup_genes[0]
        )
    values = frame[sample_cols]
    hint = (
        "; if these are estimated counts (salmon, RSEM, kallisto), set counts.source in the "
        "config to that quantifier and they are rounded"
    )
    if not all(np.issubdtype(dt, np.number) for dt in values.dtypes):
        _locate_bad_cell(path, values, sample_cols, gene_ids, hint)
    arr = values.to_numpy(dtype=np.float64)
    huge = np.isfinite(arr) & (arr >= 2.0**63)
    if huge.any():
        r, c = (int(x[0]) for x in np.nonzero(huge))
        raise InputError(
            path,
            "count too large for a 64-bit integer (a corrupted or mis-scaled matrix?)",
            row=int(frame.index[r]),
            column=sample_cols[c],
            value=values.iloc[r, c],
        )
    if estimator:
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            _locate_bad_cell(path, values, sample_cols, gene_ids)
        from rhlh.contract.quant import round_estimates

        arr = round_estimates(arr, f"{Path(path).name} ({estimator})")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr != np.floor(arr))
    if bad.any():
        _locate_bad_cell(path, values, sample_cols, gene_ids, hint)
    var = pd.DataFrame({"gene_id": gene_ids})
    gene_names = frame["gene_name"].astype(str).str.strip() if "gene_name" in annot else None
    var["gene_name"] = gene_names.to_numpy() if gene_names is not None else gene_ids
    var.index = pd.Index(gene_ids, name=None)
    var.attrs["samples"] = list(sample_cols)
    return var, arr.T.astype(np.int64)


def _h5ad_matrix(f):
    """The raw-count matrix of an open h5ad: layers/counts if present, else X."""
    import anndata.io as aio

    if "layers" in f and "counts" in f["layers"]:
        node = f["layers"]["counts"]
    elif "X" in f:
        node = f["X"]
    else:
        return None
    enc = node.attrs.get("encoding-type", "array") if hasattr(node, "attrs") else "array"
    if enc in ("csr_matrix", "csc_matrix"):
        return aio.sparse_dataset(node)
    return node


def _check_chunk(path, block, row0, obs_names, var_names):
    data = block.data if sp.issparse(block) else np.asarray(block)
    bad = ~np.isfinite(data) | (data < 0) | (data != np.floor(data))
    if not bad.any():
        return
    dense = block.toarray() if sp.issparse(block) else np.asarray(block)
    badm = ~np.isfinite(dense) | (dense < 0) | (dense != np.floor(dense))
    r, c = (int(x[0]) for x in np.nonzero(badm))
    raise InputError(
        path,
        "counts must be non-negative integers (layers['counts'] or X)",
        row=f"observation {obs_names[row0 + r]}",
        column=f"gene {var_names[c]}",
        value=float(dense[r, c]),
    )


def read_h5ad_counts(path, chunk_size: int = 50_000, progress=None, cell_qc=None):
    """Read an h5ad's raw counts as per-sample (and per sample x cell type) sums, streaming.

    Returns a dict: var, samples, counts, single_cell, ct_index, ct_counts, n_cells (cells
    summed per sample), ct_n_cells (per sample x cell type) and n_cells_in (cells read per
    sample). Bulk files (one observation per sample) give one profile per observation. The
    file is single-cell only when obs has a ``sample_id`` column and more rows than distinct
    sample ids: a bulk file whose obs carries its own ``sample_id`` stays bulk. Memory stays
    bounded by one chunk of rows plus the output profiles.

    ``cell_qc`` (single-cell only; e.g. ``rhlh.singlecell.CellQC``) decides which cells are
    summed: ``cell_qc.start(obs, var)`` once, ``cell_qc.measure(block, start, stop)`` on every
    chunk, then ``cell_qc.keep(start, stop)`` (a boolean mask of the chunk's rows). When
    ``cell_qc.two_pass`` is true (per-sample thresholds), every chunk is measured first, then
    ``cell_qc.decide()`` runs and a second pass sums the kept cells.
    """
    import anndata.io as aio
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable h5ad (HDF5) file: {exc}") from None
    with f:
        if "obs" not in f or "var" not in f:
            raise InputError(path, "not an AnnData file: no 'obs' or 'var' group")
        obs = aio.read_elem(f["obs"])
        var_df = aio.read_elem(f["var"])
        mat = _h5ad_matrix(f)
        if mat is None:
            raise InputError(path, "no count matrix: neither layers['counts'] nor X")
        n_obs, n_var = mat.shape
        if n_obs == 0 or n_var == 0:
            raise InputError(path, f"empty count matrix ({n_obs} x {n_var})")
        obs_names = obs.index.astype(str).to_numpy()
        single_cell = _is_single_cell(obs)
        if single_cell:
            sample_of = obs["sample_id"].astype(str).to_numpy()
            if (obs["sample_id"].isna()).any():
                i = int(np.flatnonzero(obs["sample_id"].isna().to_numpy())[0])
                raise InputError(
                    path, "missing sample_id", row=f"cell {obs_names[i]}", column="obs['sample_id']"
                )
        else:
            cell_qc = None
            # bulk: one row per sample, named by obs['sample_id'] when obs has one
            sample_of = (
                obs["sample_id"].astype(str).to_numpy() if "sample_id" in obs.columns else obs_names
            )
            if pd.Index(sample_of).duplicated().any():
                d = pd.Index(sample_of)[pd.Index(sample_of).duplicated()][0]
                raise InputError(
                    path, "duplicated observation name (sample_id)", row=d, column="obs_names"
                )
        var_names = var_df.index.astype(str).to_numpy()
        samples = pd.Index(pd.unique(sample_of))
        s_code = samples.get_indexer(sample_of)
        has_ct = single_cell and "cell_type" in obs.columns
        if has_ct:
            ct = obs["cell_type"].astype(str).to_numpy()
            pair = pd.MultiIndex.from_arrays([sample_of, ct])
            ct_index = pd.MultiIndex.from_tuples(pd.unique(pair), names=["sample_id", "cell_type"])
            c_code = ct_index.get_indexer(pair)
        sample_counts = np.zeros((len(samples), n_var), dtype=np.int64)
        ct_counts = np.zeros((len(ct_index), n_var), dtype=np.int64) if has_ct else None
        kept = np.ones(n_obs, dtype=bool)

        def chunks():
            for start in range(0, n_obs, chunk_size):
                stop = min(start + chunk_size, n_obs)
                block = mat[start:stop]
                _check_chunk(path, block, start, obs_names, var_names)
                block = sp.csr_matrix(block) if not sp.issparse(block) else block.tocsr()
                yield start, stop, block

        if cell_qc is not None:
            cell_qc.start(obs, var_df)
            if cell_qc.two_pass:
                for start, stop, block in chunks():
                    cell_qc.measure(block, start, stop)
                cell_qc.decide()
        for start, stop, block in chunks():
            if cell_qc is not None:
                if not cell_qc.two_pass:
                    cell_qc.measure(block, start, stop)
                kept[start:stop] = cell_qc.keep(start, stop)
            w = kept[start:stop].astype(np.float64)
            rows = np.arange(stop - start)
            g = sp.csr_matrix(
                (w, (s_code[start:stop], rows)),
                shape=(len(samples), stop - start),
            )
            sample_counts += np.rint((g @ block).toarray()).astype(np.int64)
            if has_ct:
                gc = sp.csr_matrix(
                    (w, (c_code[start:stop], rows)),
                    shape=(len(ct_index), stop - start),
                )
                ct_counts += np.rint((gc @ block).toarray()).astype(np.int64)
            if progress:
                progress(stop, n_obs)
    var = pd.DataFrame(index=pd.Index(var_names))
    var["gene_id"] = (
        var_df["gene_id"].astype(str).to_numpy() if "gene_id" in var_df.columns else var_names
    )
    var["gene_name"] = (
        var_df["gene_name"].astype(str).to_numpy() if "gene_name" in var_df.columns else var_names
    )
    var.index = pd.Index(var["gene_id"].to_numpy())
    n_cells = pd.Series(np.bincount(s_code[kept], minlength=len(samples)), index=samples)
    n_cells_in = pd.Series(np.bincount(s_code, minlength=len(samples)), index=samples)
    ct_n_cells = (
        pd.Series(np.bincount(c_code[kept], minlength=len(ct_index)), index=ct_index)
        if has_ct
        else None
    )
    return {
        "var": var,
        "samples": list(samples),
        "counts": sample_counts,
        "single_cell": single_cell,
        "ct_index": ct_index if has_ct else None,
        "ct_counts": ct_counts,
        "n_cells": n_cells,
        "n_cells_in": n_cells_in,
        "ct_n_cells": ct_n_cells,
    }


def _is_single_cell(obs: pd.DataFrame) -> bool:
    """One observation per cell: obs names a sample per row and has more rows than samples.

    A bulk h5ad whose obs also carries a ``sample_id`` column (one row per sample) is bulk.
    """
    if "sample_id" not in obs.columns:
        return False
    return bool(obs["sample_id"].nunique(dropna=False) < len(obs))


def read_counts(
    path,
    progress=None,
    chunk_size=50_000,
    sample_ids=None,
    *,
    source: str = "auto",
    tx2gene: str = "",
    counts_from_abundance: str = "lengthScaledTPM",
    gene_annotation: str = "",
    builtin_gene_map: bool = True,
    cell_qc=None,
) -> dict:
    """Read raw counts in any contract form into samples x genes int64 plus gene annotation.

    The keyword options are the config's ``counts`` section (pass it as ``**config["counts"]``);
    ``sample_ids`` (of samples.tsv) lets count columns named after BAM or FASTQ files be
    matched; ``cell_qc`` (rhlh.singlecell.CellQC) filters the cells of a single-cell h5ad
    while they are streamed. The result's ``notes`` are warnings for the validation log
    (spreadsheet-mangled gene names).
    """
    from rhlh.contract.genes import name_genes

    if source not in SOURCES:
        raise InputError("config", f"counts.source must be one of {', '.join(SOURCES)}")
    fmt = count_format(path)
    if fmt == "h5ad":
        out = read_h5ad_counts(path, chunk_size=chunk_size, progress=progress, cell_qc=cell_qc)
        out["format"] = "h5ad-sc" if out["single_cell"] else "h5ad"
    elif fmt == "quant":
        from rhlh.contract.quant import read_quant_folder

        var, samples, counts, _ = read_quant_folder(path, tx2gene, counts_from_abundance)
        if sample_ids is not None:
            samples = match_sample_columns(samples, sample_ids, path)
        out = {"var": var, "samples": samples, "counts": counts, "format": "quant"}
    else:
        estimator = estimator_of(path, source)
        var, counts = read_count_table(path, fmt, estimator=estimator, sample_ids=sample_ids)
        out = {
            "var": var,
            "samples": var.attrs.pop("samples"),
            "counts": counts,
            "format": f"{fmt} ({estimator} estimates)" if estimator else fmt,
        }
    for key in ("single_cell", "ct_index", "ct_counts", "n_cells"):
        out.setdefault(key, False if key == "single_cell" else None)
    out["var"], naming = name_genes(
        out["var"], gene_annotation or None, builtin_gene_map, source=path
    )
    out["gene_naming"] = naming
    out["notes"] = []
    if naming["excel_dates"]:
        rows = ", ".join(f"{n} (gene {i + 1})" for i, n in naming["excel_dates"][:5])
        out["notes"].append(
            f"{Path(path).name}: {len(naming['excel_dates'])} gene names look like dates a "
            f"spreadsheet made of gene symbols (SEPT7 -> 7-Sep, MARCH1 -> 1-Mar): {rows}; they "
            "match no gene set; fix them at the source"
        )
    names = pd.Series(out["var"]["gene_name"].astype(str).to_numpy())
    shared = names[names.duplicated(keep=False)]
    if len(shared):
        listed = ", ".join(
            f"{n} (genes {', '.join(str(i + 1) for i in shared.index[shared == n][:4])})"
            for n in sorted(set(shared))[:10]
        )
        out["notes"].append(
            f"{Path(path).name}: {shared.nunique()} gene names are shared by several gene ids: "
            f"{listed}; DE keeps them apart, signature scores sum their counts"
        )
    return out


def count_input_files(path, tx2gene: str = "", gene_annotation: str = "", **_) -> list[str]:
    """Every file a count delivery is read from (the quantifications of a folder, tx2gene,
    the gene annotation; keywords as read_counts): the inputs of the rules that read it, and
    what keys the validation cache."""
    if count_format(path) == "quant":
        from rhlh.contract.quant import quant_files

        files = [str(p) for p in quant_files(path).values()]
    else:
        files = [str(path)]
    return files + [str(p) for p in (tx2gene, gene_annotation) if p]


def to_anndata(counts: np.ndarray, obs: pd.DataFrame, var: pd.DataFrame):
    """Build the samples x genes AnnData with raw counts in X and layers['counts']."""
    import anndata as ad

    var = var.copy()
    var.attrs = {}
    x = counts.astype(np.int64)
    sparse = x.size and (x == 0).mean() > 0.5
    mat = sp.csr_matrix(x) if sparse else x
    adata = ad.AnnData(X=mat, obs=obs.copy(), var=var)
    adata.layers["counts"] = mat.copy()
    return adata


def build_count_objects(raw: dict, samples: pd.DataFrame, patients: pd.DataFrame):
    """AnnData of per-sample counts (obs = sheet + patient covariates), by-cell-type AnnData.

    Samples present in only one of counts and sheet are dropped (validation has already
    decided whether that is allowed); returns (adata, by_cell_type or None, dropped ids).
    """
    sheet = samples.set_index("sample_id", drop=False)
    in_counts = [s for s in raw["samples"] if s in sheet.index]
    dropped = [s for s in raw["samples"] if s not in sheet.index]
    dropped += [s for s in sheet.index if s not in set(raw["samples"])]
    pos = pd.Index(raw["samples"]).get_indexer(in_counts)
    covars = patients.drop(
        columns=[c for c in patients.columns if c.endswith("_day") and c != "patient_id"],
        errors="ignore",
    )
    obs = sheet.loc[in_counts].merge(covars, on="patient_id", how="left", suffixes=("", "_patient"))
    obs.index = pd.Index(in_counts)
    obs = obs.astype({c: str for c in obs.columns if obs[c].dtype == object})
    if raw.get("n_cells") is not None:
        obs["n_cells"] = raw["n_cells"].reindex(in_counts).to_numpy()
    adata = to_anndata(raw["counts"][pos], obs, raw["var"])
    by_ct = None
    if raw.get("ct_index") is not None:
        idx = raw["ct_index"]
        keep = np.flatnonzero(idx.get_level_values(0).isin(in_counts))
        sub = idx[keep]
        ct_obs = sheet.loc[sub.get_level_values(0)].reset_index(drop=True)
        ct_obs["cell_type"] = sub.get_level_values(1).astype(str)
        ct_obs.index = [f"{s}|{c}" for s, c in sub]
        ct_obs = ct_obs.merge(covars, on="patient_id", how="left").set_index(ct_obs.index)
        by_ct = to_anndata(raw["ct_counts"][keep], ct_obs, raw["var"])
    return adata, by_ct, dropped

"""Glue between the Snakefile and the library: the parse-time input check and its cache."""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from pathlib import Path

from rhlh.errors import InputError
from rhlh.io import file_stems

LIB = Path(__file__).resolve().parent
# library files whose change invalidates a cached validation
# library files whose change invalidates a cached validation: the input-contract wing (which
# validation depends on alone) and the two base modules it uses
VALIDATION_CODE = ("io.py", "errors.py", "workflow_support.py")


def validation_code_files() -> list[Path]:
    """The files whose content keys the validation cache."""
    return [LIB / n for n in VALIDATION_CODE] + sorted((LIB / "contract").glob("*.py"))


def _code_version() -> str:
    h = hashlib.sha256()
    for p in validation_code_files():
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def has_cell_types(counts_path) -> bool:
    """Whether a counts file is a single-cell h5ad with obs['cell_type'] (cheap: reads keys)."""
    if not str(counts_path).lower().endswith(".h5ad"):
        return False
    import h5py

    try:
        with h5py.File(counts_path, "r") as f:
            obs = f.get("obs")
            return obs is not None and "sample_id" in obs and "cell_type" in obs
    except OSError:
        return False


def cell_types(counts_path) -> dict[str, str]:
    """Cell types of a single-cell h5ad as {file-safe name: name} (empty for bulk input)."""
    if not has_cell_types(counts_path):
        return {}
    import anndata.io as aio
    import h5py

    with h5py.File(counts_path, "r") as f:
        values = aio.read_elem(f["obs"]["cell_type"])
    return {stem: name for name, stem in file_stems(values).items()}


SIGNATURES_OFF = "signatures_off.txt"


def check_genesets(config: dict, base: Path, gene_symbols) -> str | None:
    """Each GMT must parse (else InputError); returns why the signature stage cannot run
    (a GMT that shares no gene with the data), or None."""
    from rhlh.contract.genesets import read_gmt

    symbols = {str(s).upper() for s in gene_symbols}
    for gmt in config.get("genesets", []):
        path = Path(gmt) if Path(gmt).is_absolute() else base / gmt
        sets = read_gmt(path)
        if not any(symbols.intersection(g.upper() for g in genes) for genes in sets.values()):
            return str(
                InputError(
                    path,
                    "no gene of any set in this GMT is in the counts (gene_name or gene_id): "
                    "check the gene identifiers, or name Ensembl ids with counts.gene_annotation "
                    "(your GTF or a gene_id/gene_name table); the signature stage and what "
                    "needs its scores are left out of this run",
                )
            )
    return None


def signatures_off(results: str) -> str | None:
    """Why the last passing validation left the signature stage out (None: it runs)."""
    path = Path(results) / "logs" / "validate" / SIGNATURES_OFF
    return path.read_text().strip() if path.exists() else None


def check_inputs_once(
    config: dict, results: str, main_process: bool = True, base: Path | str = "."
) -> dict:
    """Validate the whole cohort unless an identical validation already passed; exit on error.

    The stamp lives under ``<results>/logs/validate/``; on failure the message goes to stderr and
    to ``<results>/logs/validate/error.log`` and the process exits with status 1.
    """
    from rhlh.contract.validate import input_fingerprint, resolve_inputs, validate_cohort

    base = Path(base)
    logdir = Path(results) / "logs" / "validate"
    try:
        paths = resolve_inputs(config, base)
        if not main_process:
            return paths
        key = input_fingerprint(paths, config, _code_version())
        stamp = logdir / f"passed-{key}.txt"
        if stamp.exists():
            return paths
        t0 = time.time()
        logger = logging.getLogger("rhlh")
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("validation %(levelname)s: %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        genes = {}

        def counts_reader(path, **options):
            from rhlh.contract.counts import read_counts

            out = read_counts(path, **options)
            genes["symbols"] = list(out["var"]["gene_name"]) + list(out["var"]["gene_id"])
            return out

        cohort = validate_cohort(config, base, read_counts_fn=counts_reader)
        no_signatures = check_genesets(config, base, genes["symbols"])
    except InputError as exc:
        logdir.mkdir(parents=True, exist_ok=True)
        (logdir / "error.log").write_text(str(exc) + "\n")
        print(
            f"\n{exc}\n\nThe run stopped before any analysis; nothing was written under "
            f"{results}/ except {logdir}/error.log.",
            file=sys.stderr,
        )
        sys.exit(1)
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob("passed-*.txt"):
        old.unlink()
    (logdir / "error.log").unlink(missing_ok=True)
    (logdir / SIGNATURES_OFF).unlink(missing_ok=True)
    if no_signatures:
        (logdir / SIGNATURES_OFF).write_text(no_signatures + "\n")
        print(f"\nwarning: {no_signatures}\n", file=sys.stderr)
        cohort.warnings.append(no_signatures)
    lines = [f"validated in {time.time() - t0:.1f} s"]
    lines += [f"{t}: {p}" for t, p in paths.items() if p]
    lines += [
        f"samples: {len(cohort.samples)}, patients: {len(cohort.patients)}, genes: {cohort.n_genes}"
    ]
    lines += [f"warning: {w}" for w in cohort.warnings]
    stamp.write_text("\n".join(lines) + "\n")
    return paths

"""Compare two results folders: every TSV byte for byte, every h5ad matrix and annotation exactly.

    python tools/compare_results.py RESULTS_A RESULTS_B [--figures]

Prints one line per difference and exits 1 if there is any (0 when identical). Logs and
Snakemake's own files are not compared; figures (PNG, byte for byte) only with --figures.
Used to prove that a refactor changes no result: run the example before and after
(``--config results=...``), then compare the two roots.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path


def _tables(root: Path, pattern: str) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob(pattern))
        if "logs" not in p.relative_to(root).parts
    }


def _h5ad_parts(path: Path) -> dict[str, str]:
    """sha256 of each matrix (X, layers, obsm, varm) and annotation table (obs, var) of an h5ad."""
    import anndata as ad
    import numpy as np
    import scipy.sparse as sp

    a = ad.read_h5ad(path)

    def digest(m) -> str:
        if sp.issparse(m):
            m = m.toarray()
        m = np.ascontiguousarray(np.asarray(m))
        return hashlib.sha256(str((m.dtype, m.shape)).encode() + m.tobytes()).hexdigest()

    parts = {"X": digest(a.X), "obs": _frame_digest(a.obs), "var": _frame_digest(a.var)}
    for kind in ("layers", "obsm", "varm"):
        for key, m in getattr(a, kind).items():
            parts[f"{kind}/{key}"] = digest(m)
    return parts


def _frame_digest(df) -> str:
    text = df.to_csv(sep="\t", float_format="%.17g", lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


def compare(a: Path, b: Path, figures=False) -> list[str]:
    """Differences between two results roots, one line each (empty when identical)."""
    out = []
    kinds = (("*.tsv", "tsv"), ("*.h5ad", "h5ad")) + ((("*.png", "png"),) if figures else ())
    for pattern, kind in kinds:
        ta, tb = _tables(a, pattern), _tables(b, pattern)
        out += [f"only in {a}: {k}" for k in sorted(set(ta) - set(tb))]
        out += [f"only in {b}: {k}" for k in sorted(set(tb) - set(ta))]
        for k in sorted(set(ta) & set(tb)):
            if kind in ("tsv", "png"):
                if ta[k].read_bytes() != tb[k].read_bytes():
                    out.append(f"differs: {k}")
            else:
                pa, pb = _h5ad_parts(ta[k]), _h5ad_parts(tb[k])
                diff = sorted(p for p in set(pa) | set(pb) if pa.get(p) != pb.get(p))
                if diff:
                    out.append(f"differs: {k} ({', '.join(diff)})")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--figures", action="store_true", help="also compare every PNG")
    args = ap.parse_args(argv)
    diffs = compare(args.a, args.b, figures=args.figures)
    n_tsv = len(_tables(args.a, "*.tsv"))
    n_h5ad = len(_tables(args.a, "*.h5ad"))
    n_png = f", {len(_tables(args.a, '*.png'))} PNG" if args.figures else ""
    for line in diffs:
        print(line)
    print(f"{n_tsv} TSV, {n_h5ad} h5ad{n_png} compared: {len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())

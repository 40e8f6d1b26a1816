"""Gene-set files: GMT reading and writing (MSigDB layout), with a clear error for each
malformed line, and the long (source, target) table form."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from rhlh.errors import InputError
from rhlh.io import read_table, read_text

log = logging.getLogger("rhlh")

_NAME_RE = re.compile(r"^\S+$")


# --------------------------------------------------------------------------------------------
# GMT files
# --------------------------------------------------------------------------------------------


def read_gmt(path) -> dict[str, list[str]]:
    """Read a GMT file into {set name: genes}; malformed lines raise InputError."""
    return _read_gmt(path)[0]


def read_gmt_descriptions(path) -> dict[str, str]:
    """Read the description (second) field of every set of a GMT file."""
    return _read_gmt(path)[1]


def _read_gmt(path):
    text = read_text(path)
    sets: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
        if len(fields) < 3:
            raise InputError(
                path,
                f"a GMT line needs at least 3 tab-separated fields (name, description, genes); "
                f"found {len(fields)}",
                row=lineno,
                column=f"field {len(fields) + 1}",
            )
        name, desc, genes = fields[0], fields[1], fields[2:]
        if not name or not _NAME_RE.match(name):
            raise InputError(
                path,
                "gene-set name is empty or contains whitespace",
                row=lineno,
                column="field 1 (name)",
                value=name,
            )
        if name in sets:
            raise InputError(
                path,
                f"duplicated gene-set name (first on line {first_line[name]})",
                row=lineno,
                column="field 1 (name)",
                value=name,
            )
        # trailing tabs are common in exported GMTs; empty fields inside the list are not
        while genes and genes[-1] == "":
            genes.pop()
        if not genes:
            raise InputError(path, "gene set has no genes", row=lineno, column="field 3")
        for j, g in enumerate(genes, start=3):
            if not g:
                raise InputError(path, "empty gene name", row=lineno, column=f"field {j}")
        seen = set()
        unique = []
        for g in genes:
            if g not in seen:
                seen.add(g)
                unique.append(g)
        if len(unique) < len(genes):
            log.warning(
                "%s line %d: %s lists %d duplicated gene(s); kept once",
                path,
                lineno,
                name,
                len(genes) - len(unique),
            )
        sets[name] = unique
        descriptions[name] = desc
        first_line[name] = lineno
    if not sets:
        raise InputError(path, "no gene set in the file")
    return sets, descriptions


def write_gmt(sets: dict[str, list[str]], path, descriptions: dict[str, str] | None = None):
    """Write {set name: genes} as a GMT file (tab-separated, one set per line)."""
    descriptions = descriptions or {}
    lines = []
    for name, genes in sets.items():
        desc = str(descriptions.get(name, "")).replace("\t", " ") or "NA"
        lines.append("\t".join([name, desc, *genes]))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def long_table_to_gmt(long_path, gmt_path, description="{provenance}") -> dict[str, list[str]]:
    """Convert a long table (source, target, provenance) into a GMT file; returns the sets."""
    df = read_table(long_path, required=("source", "target"))
    prov_col = next((c for c in df.columns if c not in ("source", "target")), None)
    sets: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    for row, rec in df.iterrows():
        if not rec["source"] or not rec["target"]:
            raise InputError(long_path, "empty set name or gene", row=row)
        genes = sets.setdefault(rec["source"], [])
        if rec["target"] not in genes:
            genes.append(rec["target"])
        prov = rec[prov_col] if prov_col else ""
        descriptions.setdefault(
            rec["source"], description.format(name=rec["source"], provenance=prov)
        )
    write_gmt(sets, gmt_path, descriptions)
    return sets


def load_gene_sets(paths) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Read several GMT files: ({set: genes}, {set: GMT path}); names must be unique overall."""
    sets: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    for path in paths:
        for name, genes in read_gmt(path).items():
            if name in sets:
                raise InputError(
                    path,
                    f"gene-set name already defined in {sources[name]}",
                    column="field 1 (name)",
                    value=name,
                )
            sets[name] = genes
            sources[name] = str(path)
    return sets, sources

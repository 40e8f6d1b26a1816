"""The package versions a rule's script actually ran with, recorded by the script itself.

Under ``--sdm conda`` every rule runs in its own environment (``envs/<stage>.yaml``), whose
versions may differ from the driver's; so each rule that matters writes, at the end of its
script, the distributions it has imported and their versions (:func:`write_versions`), and
the methods page collects those tables (:func:`collect_versions`).
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys

import pandas as pd

from rhlh import __version__
from rhlh.io import write_tsv
from rhlh.tables import VERSION_COLUMNS

# distributions of the workflow itself (its version is rhlh.__version__, shown on its own)
OWN = {"rhlh", "rhlh-workflow", "rhlh_workflow"}
# the packages the analysis calls directly (listed first on the methods page; any other
# recorded distribution is a dependency of these, listed after them)
PRIMARY = [
    "python",
    "snakemake",
    "pydeseq2",
    "scanpy",
    "anndata",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "scikit-learn",
    "formulaic",
    "threadpoolctl",
    "h5py",
    "matplotlib",
    "seaborn",
]


def imported_versions(modules=None) -> dict[str, str]:
    """{distribution: version} of the third-party distributions whose top-level modules are
    imported (``modules``: names of imported modules, default ``sys.modules``), with
    ``python``; standard library and the workflow's own package left out. A module whose
    distribution has no metadata in this environment is left out too."""
    names = list(sys.modules) if modules is None else modules
    tops = {m.split(".")[0] for m in names}
    tops = {t for t in tops if t and not t.startswith("_") and t not in sys.stdlib_module_names}
    owners = md.packages_distributions()
    out = {}
    for top in sorted(tops - OWN):
        for dist in owners.get(top, []):
            try:
                meta = md.distribution(dist)
            except md.PackageNotFoundError:
                continue
            name = meta.metadata["Name"] or dist
            if name.lower() in OWN:
                continue
            out[name.lower()] = meta.version
    return {"python": platform.python_version(), **dict(sorted(out.items()))}


def versions_table(rule: str, versions: dict[str, str]) -> pd.DataFrame:
    """One rule's versions as rows of rule, package, version."""
    return pd.DataFrame([(rule, k, str(v)) for k, v in versions.items()], columns=VERSION_COLUMNS)


def write_versions(path, rule: str, modules=None) -> pd.DataFrame:
    """Write the versions of what this process has imported, for ``rule``, to ``path`` (TSV);
    call it at the end of a rule script, once every import (lazy ones too) has happened."""
    df = versions_table(rule, imported_versions(modules))
    write_tsv(df, path)
    return df


def collect_versions(tables) -> pd.DataFrame:
    """Versions of many rules (frames of :data:`VERSION_COLUMNS`) as one row per package and
    version: package, version, rules (comma-separated, sorted), primary (one of
    :data:`PRIMARY`); the :data:`PRIMARY` packages first, in that order, then the others by
    name. A package recorded at two versions by two rules' environments gets two rows."""
    frames = [t for t in tables if len(t)]
    if not frames:
        return pd.DataFrame(columns=["package", "version", "rules", "primary"])
    df = pd.concat(frames, ignore_index=True).astype(str).drop_duplicates()
    out = (
        df.groupby(["package", "version"], sort=True)["rule"]
        .agg(lambda r: ", ".join(sorted(set(r))))
        .rename("rules")
        .reset_index()
    )
    rank = {p: i for i, p in enumerate(PRIMARY)}
    out["primary"] = out["package"].isin(rank)
    out["_o"] = out["package"].map(rank).fillna(len(rank))
    out = out.sort_values(["_o", "package", "version"]).drop(columns="_o")
    return out[["package", "version", "rules", "primary"]].reset_index(drop=True)


def workflow_version() -> str:
    """The workflow's version (``rhlh.__version__``; the release tag is ``v`` + it)."""
    return __version__

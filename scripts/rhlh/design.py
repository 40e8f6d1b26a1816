"""Model designs: a safe formula parser, hand-built treatment-coded model matrices, rank checks.

Formulas are parsed here, never evaluated: a formula is ``~ term + term + ...``; a term is a
column name, an interaction ``a:b`` (any number of parts), or a natural-spline basis
``ns(day, df=3)`` (also allowed inside an interaction). Column names must match
``^[A-Za-z_][A-Za-z0-9_.]*$`` and exist in the sample table.

Coding rules (documented because they decide what every coefficient means):

- An intercept is always included.
- Categorical columns (strings, booleans, pandas categoricals) are treatment-coded: one
  indicator column per level except the reference level. The reference is the level given in
  ``reference``, else the first of ``levels[column]`` (the config visit order, so the baseline
  visit), else False for booleans, else the first level in sorted order. Levels that no sample
  has are left out. Column names follow R: ``visitD7``, ``responderTrue``.
- Numeric columns are continuous (one column, the value itself).
- Interactions are the products of the parts' columns (``responderTrue:visitD7``), the same
  treatment coding being used inside interactions whether or not the main effects are in the
  formula. This is the hand-built matrix the DESeq2 vignette uses for a group-specific effect
  with individuals nested in groups.
- Non-estimable columns are removed and reported: all-zero columns first; then whole terms that
  add nothing to the column space of the others (the earliest such term in the formula is
  dropped first, e.g. ``batch`` when batches are nested within patients); then any remaining
  column that is a linear combination of the columns before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.interpolate import BSpline

from rhlh.errors import InputError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
SPLINE_RE = re.compile(r"^ns\(\s*([^,()\s]+)\s*,\s*df\s*=\s*([0-9]+)\s*\)$")
MAX_SPLINE_DF = 10


@dataclass(frozen=True)
class Part:
    """One factor of a term: a column, or a natural-spline basis of a numeric column."""

    column: str
    spline_df: int | None = None

    @property
    def label(self) -> str:
        """Text form of this part as written in a formula."""
        if self.spline_df is None:
            return self.column
        return f"ns({self.column}, df={self.spline_df})"


@dataclass(frozen=True)
class Term:
    """A formula term: one part (main effect) or several (interaction)."""

    parts: tuple[Part, ...]

    @property
    def label(self) -> str:
        """Text form of this term as written in a formula."""
        return ":".join(p.label for p in self.parts)

    @property
    def columns(self) -> tuple[str, ...]:
        """Sample-table columns this term uses."""
        return tuple(p.column for p in self.parts)


@dataclass
class Design:
    """A model matrix with the bookkeeping needed to explain it."""

    formula: str
    terms: list[Term]
    matrix: pd.DataFrame  # samples x estimable columns, float, first column "Intercept"
    column_term: dict[str, str]  # model-matrix column -> term label ("Intercept" for it)
    factor_columns: dict[tuple[str, str], str]  # (column, level) -> model-matrix column
    references: dict[str, str]  # categorical column -> reference level
    levels: dict[str, list[str]]  # categorical column -> levels present, reference first
    dropped: list[str] = field(default_factory=list)  # non-estimable columns removed
    dropped_terms: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def rank(self) -> int:
        """Number of estimable columns."""
        return self.matrix.shape[1]


def parse_formula(formula: str, columns=None, source="config") -> list[Term]:
    """Parse ``~ a + b + a:b + ns(day, df=3)`` into terms without evaluating anything."""
    if not isinstance(formula, str) or not formula.strip():
        raise InputError(source, "design formula is empty", value=formula)
    text = formula.strip()
    if text.startswith("~"):
        text = text[1:]
    if "~" in text:
        raise InputError(
            source, "a design formula has one '~' and no left-hand side", value=formula
        )
    for bad, hint in (
        ("*", "write a + b + a:b"),
        ("-", "terms cannot be removed"),
        ("/", "write nested terms as a + a:b"),
        ("^", "write interactions out"),
    ):
        if bad in text:
            raise InputError(source, f"operator '{bad}' is not supported ({hint})", value=formula)
    terms: list[Term] = []
    for raw in _split_plus(text, formula, source):
        raw = raw.strip()
        if raw == "1":
            continue  # the intercept is always there
        if raw == "0":
            raise InputError(source, "models without intercept are not supported", value=formula)
        parts = tuple(_parse_part(p.strip(), formula, columns, source) for p in raw.split(":"))
        if len({p.column for p in parts}) != len(parts):
            raise InputError(source, f"term '{raw}' repeats a column", value=formula)
        term = Term(parts)
        if any(set(t.parts) == set(parts) for t in terms):
            raise InputError(source, f"term '{raw}' appears twice", value=formula)
        terms.append(term)
    return terms


def _split_plus(text, formula, source):
    pieces, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise InputError(source, "unbalanced parentheses", value=formula)
        if ch == "+" and depth == 0:
            pieces.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise InputError(source, "unbalanced parentheses", value=formula)
    pieces.append("".join(cur))
    if any(not p.strip() for p in pieces):
        raise InputError(source, "empty term (two '+' in a row or a trailing '+')", value=formula)
    return pieces


def _parse_part(text, formula, columns, source) -> Part:
    m = SPLINE_RE.match(text)
    if m:
        name, df = m.group(1), int(m.group(2))
        if not 1 <= df <= MAX_SPLINE_DF:
            raise InputError(
                source, f"ns() df must be between 1 and {MAX_SPLINE_DF}", value=formula
            )
        part = Part(name, df)
    else:
        name = text
        part = Part(name)
    if not NAME_RE.match(name):
        raise InputError(
            source,
            f"'{text}' is not a column name (allowed: letters, digits, '_' and '.', "
            "not starting with a digit; functions other than ns(x, df=k) are not allowed)",
            value=formula,
        )
    if columns is not None and name not in set(columns):
        raise InputError(
            source, f"design column '{name}' is not in the sample table", column=name, value=formula
        )
    return part


def ns_basis(x, df: int, knots=None, boundary=None) -> np.ndarray:
    """Natural cubic spline basis without intercept, the same numbers as R's splines::ns."""
    x = np.asarray(x, dtype=float)
    lo, hi = (float(np.min(x)), float(np.max(x))) if boundary is None else map(float, boundary)
    if hi <= lo:
        raise ValueError("ns(): the variable is constant, no spline can be fitted")
    if knots is None:
        n_inner = df - 1
        # R's quantile type 7 is numpy's default 'linear' method
        knots = np.quantile(x, np.linspace(0.0, 1.0, n_inner + 2)[1:-1]) if n_inner else []
    knots = np.asarray(knots, dtype=float)
    t = np.r_[[lo] * 4, knots, [hi] * 4]
    n_basis = len(t) - 4
    inside = (x >= lo) & (x <= hi)
    if not inside.all():
        raise ValueError("ns(): values outside the boundary knots are not supported")
    basis = np.column_stack([BSpline(t, np.eye(n_basis)[k], 3)(x) for k in range(n_basis)])
    # B-spline evaluation at the right boundary gives 0 for the last basis function
    basis[x == hi] = np.eye(n_basis)[-1]
    const = np.column_stack(
        [
            BSpline(t, np.eye(n_basis)[k], 3).derivative(2)(np.array([lo, hi]))
            for k in range(n_basis)
        ]
    )
    basis, const = basis[:, 1:], const[:, 1:]
    # project onto the functions with zero second derivative at both ends (natural spline):
    # the complement of the first two Householder directions of const^T, as R does
    q, _ = np.linalg.qr(const.T, mode="complete")
    return (basis @ q)[:, 2:]


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _levels_of(series: pd.Series, column, levels, reference, source) -> list[str]:
    values = series.map(str)
    present = list(dict.fromkeys(values))
    if levels and column in levels:
        order = [str(v) for v in levels[column]]
        unknown = [v for v in present if v not in order]
        if unknown:
            raise InputError(
                source,
                f"value not among the configured levels of '{column}' ({', '.join(order)})",
                column=column,
                value=unknown[0],
            )
        out = [v for v in order if v in present]
    elif isinstance(series.dtype, pd.CategoricalDtype):
        out = [str(v) for v in series.cat.categories if str(v) in present]
    elif pd.api.types.is_bool_dtype(series) or set(present) <= {"True", "False"}:
        out = [v for v in ("False", "True") if v in present]
    else:
        out = sorted(present)
    if reference and column in reference:
        ref = str(reference[column])
        if ref not in out:
            raise InputError(
                source, f"reference level of '{column}' has no sample", column=column, value=ref
            )
        out = [ref] + [v for v in out if v != ref]
    return out


def build_design(
    samples: pd.DataFrame, formula: str, levels=None, reference=None, source="config"
) -> Design:
    """Treatment-coded model matrix for ``formula``; drops and explains non-estimable columns."""
    terms = parse_formula(formula, samples.columns, source)
    n = len(samples)
    index = samples.index
    cat_levels: dict[str, list[str]] = {}
    part_cols: dict[Part, dict[str, np.ndarray]] = {}
    factor_columns: dict[tuple[str, str], str] = {}
    for term in terms:
        for part in term.parts:
            if part in part_cols:
                continue
            s = samples[part.column]
            if s.isna().any() or (s.map(str) == "").any():
                bad = s.index[s.isna() | (s.map(str) == "")][0]
                raise InputError(
                    source,
                    f"design column '{part.column}' has a missing value",
                    row=bad,
                    column=part.column,
                )
            if part.spline_df is not None:
                if _is_categorical(s):
                    raise InputError(source, "ns() needs a numeric column", column=part.column)
                basis = ns_basis(s.to_numpy(float), part.spline_df)
                part_cols[part] = {
                    f"{part.label}[{k + 1}]": basis[:, k] for k in range(basis.shape[1])
                }
            elif _is_categorical(s):
                lv = _levels_of(s, part.column, levels, reference, source)
                cat_levels[part.column] = lv
                values = s.map(str).to_numpy()
                cols = {}
                for level in lv[1:]:
                    name = f"{part.column}{level}"
                    cols[name] = (values == level).astype(float)
                    factor_columns[(part.column, level)] = name
                part_cols[part] = cols
            else:
                part_cols[part] = {part.column: s.to_numpy(float)}

    columns = {"Intercept": np.ones(n)}
    column_term = {"Intercept": "Intercept"}
    term_columns: dict[str, list[str]] = {}
    for term in terms:
        combos = [("", np.ones(n))]
        for part in term.parts:
            combos = [
                (f"{a}:{b}" if a else b, va * vb)
                for a, va in combos
                for b, vb in part_cols[part].items()
            ]
        term_columns[term.label] = []
        for name, values in combos:
            columns[name] = values
            column_term[name] = term.label
            term_columns[term.label].append(name)

    messages, dropped, dropped_terms = [], [], []
    zero = [c for c, v in columns.items() if not np.any(v)]
    if zero:
        dropped.extend(zero)
        messages.append(
            f"{formula}: dropped {len(zero)} all-zero column(s) (no sample has that level "
            f"combination): {', '.join(zero)}"
        )
    keep = [c for c in columns if c not in zero]

    def rank(cols):
        return np.linalg.matrix_rank(np.column_stack([columns[c] for c in cols])) if cols else 0

    while True:
        full = rank(keep)
        redundant = None
        for term in terms:
            mine = [c for c in term_columns[term.label] if c in keep]
            if mine and rank([c for c in keep if c not in mine]) == full:
                redundant = term
                break
        if redundant is None:
            break
        mine = [c for c in term_columns[redundant.label] if c in keep]
        keep = [c for c in keep if c not in mine]
        dropped.extend(mine)
        dropped_terms.append(redundant.label)
        why = _explain_nesting(samples, redundant, terms, cat_levels)
        messages.append(
            f"{formula}: term '{redundant.label}' is not estimable together with the other "
            f"terms{why}; it was dropped from the design"
        )

    final: list[str] = []
    partial = []
    for c in keep:
        if rank(final + [c]) > len(final):
            final.append(c)
        else:
            partial.append(c)
    if partial:
        dropped.extend(partial)
        messages.append(
            f"{formula}: dropped {len(partial)} non-estimable column(s) (linear combinations "
            f"of earlier columns): {', '.join(partial)}"
        )
    matrix = pd.DataFrame({c: columns[c] for c in final}, index=index)
    factor_columns = {k: v for k, v in factor_columns.items() if v in final}
    return Design(
        formula=formula,
        terms=terms,
        matrix=matrix,
        column_term={c: column_term[c] for c in final},
        factor_columns=factor_columns,
        references={c: lv[0] for c, lv in cat_levels.items()},
        levels=cat_levels,
        dropped=dropped,
        dropped_terms=dropped_terms,
        messages=messages,
    )


def _explain_nesting(samples, term, terms, cat_levels) -> str:
    if len(term.parts) != 1 or term.parts[0].column not in cat_levels:
        return " (its columns are linear combinations of the other terms' columns)"
    col = term.parts[0].column
    for other in terms:
        if other is term or len(other.parts) != 1:
            continue
        ocol = other.parts[0].column
        if ocol not in cat_levels:
            continue
        if samples.groupby(samples[ocol].map(str))[col].nunique().max() == 1:
            return (
                f" ('{col}' is nested within '{ocol}': every {ocol} has a single {col}, "
                f"so {ocol} already absorbs it)"
            )
    return " (its columns are linear combinations of the other terms' columns)"


def contrast_vector(design: Design, factor: str, level: str, ref: str) -> np.ndarray:
    """Weights over the model-matrix columns for ``factor`` level vs ref (treatment coding)."""
    if factor not in design.levels:
        raise ValueError(f"'{factor}' is not a categorical term of {design.formula}")
    vec = pd.Series(0.0, index=design.matrix.columns)
    for lv, sign in ((str(level), 1.0), (str(ref), -1.0)):
        if lv not in design.levels[factor]:
            raise ValueError(f"level '{lv}' of '{factor}' has no sample in this design")
        if lv == design.references[factor]:
            continue
        col = design.factor_columns.get((factor, lv))
        if col is None:
            raise ValueError(f"level '{lv}' of '{factor}' is not estimable in {design.formula}")
        vec[col] += sign
    if not vec.any():
        raise ValueError(f"contrast {factor} {level} vs {ref} is empty")
    return vec.to_numpy()


def is_nested(full: Design, reduced: Design, tol: float = 1e-8) -> bool:
    """True when the reduced model's columns lie in the full model's column space."""
    a = full.matrix.to_numpy()
    b = reduced.matrix.loc[full.matrix.index].to_numpy()
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return bool(np.abs(a @ coef - b).max() <= tol * max(1.0, np.abs(b).max()))


# ---------------------------------------------------------------- config schema


@dataclass
class Contrast:
    """A Wald contrast: ``factor`` level vs ref, or explicit weights on model columns."""

    id: str
    factor: str | None = None
    level: str | None = None
    ref: str | None = None
    weights: dict[str, float] | None = None


@dataclass
class DesignSpec:
    """One entry of ``config['de']['designs']``."""

    id: str
    formula: str
    contrasts: list = field(default_factory=list)  # Contrast, or a bare factor name
    reduced: dict[str, str] = field(default_factory=dict)  # test id -> reduced formula
    exclude_samples: list[str] = field(default_factory=list)


def parse_design_specs(entries, source="config") -> list[DesignSpec]:
    """Validate the designs list of the config (id, formula, reduced and/or contrasts)."""
    if not isinstance(entries, list) or not entries:
        raise InputError(source, "de.designs must be a non-empty list")
    specs, seen = [], set()
    for i, e in enumerate(entries):
        where = f"de.designs[{i}]"
        if not isinstance(e, dict):
            raise InputError(source, f"{where} must be a mapping", value=e)
        unknown = set(e) - {"id", "formula", "reduced", "contrasts", "exclude_samples"}
        if unknown:
            raise InputError(source, f"{where}: unknown key", column=sorted(unknown)[0])
        did = e.get("id")
        if not isinstance(did, str) or not NAME_RE.match(did):
            raise InputError(source, f"{where}: id must be a name", column="id", value=did)
        if did in seen:
            raise InputError(source, f"{where}: duplicated design id", column="id", value=did)
        seen.add(did)
        formula = e.get("formula")
        parse_formula(formula, None, source)
        reduced = e.get("reduced") or {}
        if isinstance(reduced, str):
            reduced = {did: reduced}
        if not isinstance(reduced, dict):
            raise InputError(
                source,
                f"{where}: reduced must be a formula or a mapping test id -> formula",
                column="reduced",
                value=reduced,
            )
        for rid, rf in reduced.items():
            if not NAME_RE.match(str(rid)):
                raise InputError(
                    source, f"{where}: test id must be a name", column="reduced", value=rid
                )
            parse_formula(rf, None, source)
        contrasts = [_parse_contrast(c, where, source) for c in (e.get("contrasts") or [])]
        if not contrasts and not reduced:
            raise InputError(source, f"{where}: give contrasts (Wald) and/or reduced (LRT)")
        excl = e.get("exclude_samples") or []
        if not isinstance(excl, list):
            raise InputError(
                source,
                f"{where}: exclude_samples must be a list",
                column="exclude_samples",
                value=excl,
            )
        specs.append(DesignSpec(did, formula, contrasts, dict(reduced), [str(s) for s in excl]))
    return specs


def _parse_contrast(c, where, source):
    if isinstance(c, str):
        if not NAME_RE.match(c):
            raise InputError(
                source, f"{where}: contrast must be a factor name", column="contrasts", value=c
            )
        return c  # every level of that factor vs its reference
    if isinstance(c, list | tuple) and len(c) == 3 and all(isinstance(x, str | int) for x in c):
        f, a, b = (str(x) for x in c)
        if not NAME_RE.match(f):
            raise InputError(
                source, f"{where}: contrast factor must be a name", column="contrasts", value=c
            )
        return Contrast(f"{a}_vs_{b}", f, a, b)
    if isinstance(c, dict) and set(c) == {"id", "weights"} and isinstance(c["weights"], dict):
        if not NAME_RE.match(str(c["id"])):
            raise InputError(
                source, f"{where}: contrast id must be a name", column="contrasts", value=c
            )
        try:
            w = {str(k): float(v) for k, v in c["weights"].items()}
        except (TypeError, ValueError):
            raise InputError(
                source, f"{where}: contrast weights must be numbers", column="contrasts", value=c
            ) from None
        return Contrast(str(c["id"]), weights=w)
    raise InputError(
        source,
        f"{where}: a contrast is a factor name, [factor, level, "
        "reference] or {id:, weights: {column: weight}}",
        column="contrasts",
        value=c,
    )


def workflow_table_keys(specs, visits, baseline, visit_col="visit") -> list[str]:
    """Output table keys of the DE stage: ``<design>/<contrast id>`` and ``lrt_<test id>``."""
    keys = []
    for spec in specs:
        for c in spec.contrasts:
            if isinstance(c, Contrast):
                keys.append(f"{spec.id}/{c.id}")
            elif c == visit_col:
                keys += [f"{spec.id}/{v}_vs_{baseline}" for v in visits if v != baseline]
            else:
                # other factors' levels are only known from the data, after parsing
                raise InputError(
                    "config (de.designs)",
                    f"design {spec.id}: only '{visit_col}' may be a bare-factor contrast in "
                    f"the workflow; write [factor, level, reference] for '{c}'",
                    column="contrasts",
                    value=c,
                )
        keys += [f"lrt_{t}" for t in spec.reduced]
    return keys

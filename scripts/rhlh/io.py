"""Reading and writing tables: delimiter by extension, gzip, atomic deterministic writes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tempfile
import unicodedata
from pathlib import Path

import pandas as pd

from rhlh.errors import InputError

FLOAT_FORMAT = "%.10g"

# Names from the input files (analytes, gene sets, cell types) become file names only through
# file_stems: ASCII letters, digits, '_', '.', '-', no leading dot, bounded length.
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_STEM = 80
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{d}{i}" for d in ("com", "lpt") for i in range(10)}


def file_stem(name) -> str:
    """A file name (without extension) made from ``name``: it cannot leave its folder, hide
    itself (leading dot), or be a device name; accents are dropped, other characters become '_'."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    stem = _UNSAFE_CHARS.sub("_", ascii_name).strip("._")[:_MAX_STEM].rstrip("._")
    if not stem:
        stem = "unnamed"
    if stem.lower().split(".")[0] in _RESERVED:
        stem = "_" + stem
    return stem


def file_stems(names) -> dict[str, str]:
    """{name: unique file stem} for a set of names: file_stem of each; where names would share
    a file (even only by case, as on macOS), all but one that is already safe get a short hash
    of their own text, so the mapping is one-to-one and the same for the same set of names."""
    names = sorted({str(n) for n in names})
    stems = {n: file_stem(n) for n in names}
    groups: dict[str, list[str]] = {}
    for n, s in stems.items():
        groups.setdefault(s.lower(), []).append(n)
    for members in groups.values():
        if len(members) > 1:
            keep = next((n for n in members if stems[n] == n), None)
            for n in members:
                if n != keep:
                    digest = hashlib.sha1(n.encode("utf-8", "surrogatepass")).hexdigest()[:8]
                    stems[n] = f"{stems[n][: _MAX_STEM - 9]}-{digest}"
    return stems


def _delimiter(path) -> str:
    name = str(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return "," if name.endswith(".csv") else "\t"


def read_text(path) -> str:
    """Whole file as text: gunzips by extension, strips a UTF-8 BOM, checks it is not empty."""
    path = Path(path)
    check_file(path)
    raw = path.read_bytes()
    if str(path).lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(path, f"not a valid gzip file ({exc})") from None
    elif raw[:2] == b"\x1f\x8b":
        raise _gzip_without_suffix(path)
    return _decode(path, raw)


def read_head(path, max_bytes: int = 1 << 20) -> str:
    """The first ``max_bytes`` (decompressed) of a file as text, with the checks of
    ``read_text``, without reading the rest: enough for a header line."""
    path = Path(path)
    check_file(path)
    gz = str(path).lower().endswith(".gz")
    try:
        with (gzip.open if gz else open)(path, "rb") as fh:
            raw = fh.read(max_bytes)
    except (OSError, EOFError) as exc:
        raise InputError(path, f"not a valid gzip file ({exc})") from None
    if not gz and raw[:2] == b"\x1f\x8b":
        raise _gzip_without_suffix(path)
    return _decode(path, raw, partial=len(raw) == max_bytes)


def _gzip_without_suffix(path) -> InputError:
    return InputError(
        path,
        "gzip-compressed data in a file whose name does not end in .gz: "
        "add .gz to the name, or decompress it (gunzip)",
    )


def _decode(path, raw: bytes, partial: bool = False) -> str:
    """UTF-8 text of a file's bytes (``partial``: the bytes may end inside a character)."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(raw) > 1 and b"\x00" in raw[:200]):
        raise InputError(
            path,
            "UTF-16 text (as Excel's 'Unicode text' export writes): save it as UTF-8 "
            "(Excel: 'CSV UTF-8'; or iconv -f UTF-16 -t UTF-8)",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (partial and exc.start >= len(raw) - 3):
            raise _not_utf8(path, raw, exc) from None
        text = raw[: exc.start].decode("utf-8")
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise InputError(path, "file is empty")
    return text


def check_file(path) -> None:
    """InputError unless ``path`` is a readable file: names a folder, a dangling link or a
    link loop for what it is."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise InputError(
            path,
            f"symbolic link whose target does not exist, or a loop of links (points to {target})",
        )
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder, not a file: give the table file itself")


def _not_utf8(path, raw: bytes, exc: UnicodeDecodeError) -> InputError:
    """The message for a file that is not UTF-8: line, column name and byte, and what to do."""
    pos = exc.start
    line_no = raw.count(b"\n", 0, pos) + 1
    start = raw.rfind(b"\n", 0, pos) + 1
    sep = _delimiter(path).encode()
    field = raw[start:pos].count(sep)
    header = raw.split(b"\n", 1)[0].decode("latin-1").rstrip("\r").split(sep.decode())
    column = header[field].strip().lstrip("\ufeff") if field < len(header) else f"#{field + 1}"
    end = raw.find(b"\n", pos)
    cell = raw[start : end if end >= 0 else len(raw)].split(sep)[field].decode("latin-1")
    return InputError(
        path,
        f"not UTF-8 text: byte 0x{raw[pos]:02X} at byte {pos} of the file (read as Latin-1 / "
        f"Windows-1252 this cell is {cell.strip()!r}); save the file as UTF-8 (Excel: "
        "'CSV UTF-8'; or iconv -f latin1 -t utf-8)",
        row=line_no,
        column=column,
    )


def read_table(path, required=(), dtype=str) -> pd.DataFrame:
    """Read a contract table as strings; checks the header, required columns and row widths."""
    text = read_text(path)
    sep = _delimiter(path)
    lines = text.splitlines()
    header = lines[0].split(sep)
    if len(header) == 1 and sep == "\t" and ("," in lines[0] or ";" in lines[0]):
        raise InputError(
            path, "the header has a single column: expected tab-separated values", row=1
        )
    header = [h.strip().strip('"') for h in header]
    if "" in header:
        k = len(header) - 1 - header[::-1].index("")
        if k == len(header) - 1:
            raise InputError(
                path,
                "the header ends with an empty column name: a trailing delimiter at the end "
                "of the lines (a spreadsheet export often writes one); remove it",
                row=1,
                column=f"#{k + 1} (empty name)",
            )
        raise InputError(path, "empty column name in the header", row=1, column=f"#{k + 1}")
    dup = {h for h in header if header.count(h) > 1}
    if dup:
        raise InputError(path, "duplicated column name in the header", row=1, column=sorted(dup)[0])
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            path, f"required column missing (columns found: {', '.join(header)})", column=missing[0]
        )
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        n = len(line.split(sep)) if '"' not in line else None
        if n is not None and n != len(header):
            trailing = n == len(header) + 1 and line.endswith(sep)
            raise InputError(
                path,
                f"row has {n} fields but the header has {len(header)}"
                + (
                    ": the line ends with a trailing delimiter; remove it"
                    if trailing
                    else " (truncated file?)"
                ),
                row=i,
                column=f"#{n} (empty)" if trailing else None,
            )
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=dtype,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(path, f"cannot be parsed as a table: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    if dtype is str:
        df = df.apply(lambda s: s.str.strip())
    # file row numbers (header = row 1) for error messages
    df.index = pd.RangeIndex(2, 2 + len(df))
    return df


def atomic_path(path, suffix=".tmp"):
    """A temporary sibling path (ending in ``suffix``); rename it onto ``path`` when written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


# a cell a spreadsheet would run as a formula: '=', '+', '@' first, or '-' and a letter
_FORMULA_START = re.compile(r"^(?:[=+@]|-[A-Za-z])")
# identifiers join tables: never rewritten (the contract lets none start like a formula
# but for '-' and a letter, which a spreadsheet does not run when no '(' follows)
_NOT_GUARDED = ("sample_id", "patient_id", "visit")


def formula_safe(df: pd.DataFrame, keep=_NOT_GUARDED) -> pd.DataFrame:
    """A copy of ``df`` in which every text cell a spreadsheet would take for a formula
    (``=cmd|...``, ``+1``, ``@SUM``, ``-A1``) starts with a ``'``, so that the file can be opened
    in Excel or LibreOffice safely; numbers and the identifier columns ``keep`` are left alone.
    Used for the tables built from user input (inputs/validated/)."""
    out = df.copy()
    for col in out.columns:
        if col in keep or not (out[col].dtype == object or pd.api.types.is_string_dtype(out[col])):
            continue
        text = out[col].astype(str)
        hit = out[col].map(lambda v: isinstance(v, str)) & text.str.match(_FORMULA_START)
        if hit.any():
            out.loc[hit, col] = "'" + text[hit]
    return out


def write_tsv(df: pd.DataFrame, path, index=False) -> None:
    """Write a TSV deterministically and atomically (temp file, then rename)."""
    tmp = atomic_path(path)
    try:
        df.to_csv(tmp, sep="\t", index=index, float_format=FLOAT_FORMAT, lineterminator="\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_h5ad(adata, path) -> None:
    """Write an AnnData atomically."""
    tmp = atomic_path(path, suffix=".h5ad")
    try:
        adata.write_h5ad(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_figure(fig, png_path, formats=("pdf",)) -> None:
    """Save a figure as PNG (for the report) and sibling PDF, atomically; closes it."""
    import matplotlib.pyplot as plt

    png_path = Path(png_path)
    for ext in ("png", *formats):
        target = png_path.with_suffix("." + ext)
        tmp = atomic_path(target, suffix="." + ext)
        try:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=_fig_metadata(ext))
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
    plt.close(fig)


def _fig_metadata(ext):
    # no timestamps, so reruns give identical files
    if ext == "pdf":
        return {"CreationDate": None, "ModDate": None}
    if ext == "png":
        return {"Software": None}
    if ext == "svg":
        return {"Date": None}
    return None

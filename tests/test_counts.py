"""The three count forms (four with single-cell) read into identical per-sample counts."""

import gzip

import numpy as np
import pytest

from rhlh.contract.counts import read_counts
from rhlh.errors import InputError
from rhlh_dev.simulate import simulate_cohort, write_cohort


@pytest.fixture(scope="module")
def small_cohort():
    return simulate_cohort(n_patients=5, n_genes=400, seed=11)


@pytest.mark.parametrize("fmt", ["featurecounts", "h5ad", "h5ad-sc"])
def test_forms_agree(tmp_path, small_cohort, fmt):
    ref = read_counts(write_cohort(small_cohort, tmp_path / "tsv", "tsv")["counts"])
    other = read_counts(
        write_cohort(small_cohort, tmp_path / fmt, fmt, cells_per_sample=30)["counts"],
        chunk_size=37,
    )
    assert other["samples"] == ref["samples"]
    np.testing.assert_array_equal(other["counts"], ref["counts"])
    np.testing.assert_array_equal(other["counts"], small_cohort["counts"])
    if fmt == "h5ad-sc":
        # per cell type profiles sum back to the sample
        ct = other["ct_counts"]
        samples = other["ct_index"].get_level_values(0)
        for k, s in enumerate(ref["samples"][:3]):
            np.testing.assert_array_equal(ct[np.asarray(samples == s)].sum(0), ref["counts"][k])


def _write_matrix(path, rows):
    path.write_text("\n".join("\t".join(map(str, r)) for r in rows) + "\n")


@pytest.mark.parametrize(
    "value,needle",
    [
        ("-1", "negative count"),
        ("2.5", "fractional count"),
        ("abc", "not a number"),
        ("", "missing value"),
        ("inf", "not a finite number"),
    ],
)
def test_bad_count_is_located(tmp_path, value, needle):
    p = tmp_path / "counts.tsv"
    _write_matrix(
        p, [["gene_id", "gene_name", "S1", "S2"], ["G1", "A", 1, 2], ["G2", "B", 3, value]]
    )
    with pytest.raises(InputError) as e:
        read_counts(p)
    msg = str(e.value)
    assert needle in msg and "row 3" in msg and "column 'S2'" in msg and "counts.tsv" in msg


def test_empty_and_not_gzip(tmp_path):
    empty = tmp_path / "counts.tsv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_counts(empty)
    fake = tmp_path / "counts.tsv.gz"
    fake.write_text("gene_id\tS1\nG1\t3\n")
    with pytest.raises(InputError, match="gzip"):
        read_counts(fake)


def test_truncated_row(tmp_path):
    p = tmp_path / "counts.tsv.gz"
    p.write_bytes(gzip.compress(b"gene_id\tS1\tS2\nG1\t1\t2\nG2\t3\n"))
    with pytest.raises(InputError, match="row 3.*truncated"):
        read_counts(p)


def test_crlf_and_bom_accepted(tmp_path):
    p = tmp_path / "counts.tsv"
    p.write_bytes("\ufeffgene_id\tS1\tS2\r\nG1\t1\t2\r\nG2\t3\t4\r\n".encode())
    out = read_counts(p)
    assert out["samples"] == ["S1", "S2"]
    np.testing.assert_array_equal(out["counts"], [[1, 3], [2, 4]])

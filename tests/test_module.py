"""The workflow can be imported as a Snakemake module (as snakedeploy does)."""

import subprocess

from .conftest import EXAMPLE, REPO, SNAKEMAKE


def test_import_as_module(tmp_path):
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{REPO}/config/config.yaml"\n\n\n'
        f'module rhlh:\n    snakefile:\n        "{REPO}/workflow/Snakefile"\n'
        "    config:\n        config\n\n\nuse rule * from rhlh as rhlh_*\n"
    )
    r = subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "--cores",
            "1",
            "rhlh_all",
            "--config",
            f"cohort={EXAMPLE}",
            "results=results",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    for rule in ("rhlh_validated_table", "rhlh_de_fit", "rhlh_report_summary"):
        assert rule in out

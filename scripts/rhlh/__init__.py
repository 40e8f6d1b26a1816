"""R-HLH analysis library: pure functions used by the Snakemake rule scripts."""

# The workflow's one version: pyproject.toml reads it (dynamic version), the methods page and
# the deployment docs show it, and a release is tagged v<__version__> (tests/test_version.py).
__version__ = "0.1.0"

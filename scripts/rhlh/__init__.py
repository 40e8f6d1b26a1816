"""R-HLH analysis library: pure functions used by the Snakemake rule scripts."""

__version__ = "0.1.0"

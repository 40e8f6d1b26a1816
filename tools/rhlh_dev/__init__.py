"""Developer tools of the R-HLH workflow, not run by any rule: the cohort simulator
(``python -m rhlh_dev.simulate``) and the benchmark harness (``python -m rhlh_dev.benchmark``).

The analysis library ``rhlh`` never imports this package."""

"""The input contract: everything validation needs, and nothing else. Readers and checks of
the delivered files (count matrices, sample and clinical sheets, lab exports, gene-set files)
raising rhlh.errors.InputError with file, row and column. Validation depends on this package
alone (with rhlh.io and rhlh.errors), so its cache hashes only these files."""

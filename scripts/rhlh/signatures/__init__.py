"""Gene-set signatures, one module per job: per-sample scores (scoring), competitive tests on DE
tables (enrichment), scores over time and by response (models); GMT reading is in
rhlh.contract.genesets, figures in rhlh.figures.signatures."""

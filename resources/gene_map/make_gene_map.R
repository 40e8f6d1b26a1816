#!/usr/bin/env Rscript
# Builds resources/gene_map/human_ensembl_symbols.tsv.gz: human Ensembl gene id -> gene symbol,
# the map the workflow uses offline when counts carry Ensembl ids without names.
# Source: NCBI Gene (Entrez Gene) as assembled by Bioconductor's org.Hs.eg.db, Debian package
# r-bioc-org.hs.eg.db (apt-get install r-bioc-org.hs.eg.db). Run from the repository root:
#   Rscript resources/gene_map/make_gene_map.R
# Rule for an Ensembl id with several NCBI genes: the symbol of the lowest Entrez id is kept
# (n_symbols says how many there were), so that every id has one name. A gene that the
# shipped gene sets spell by a previous symbol (DDX58 for today's RIGI) is named as the sets
# spell it, so that they match; ncbi_symbol keeps today's symbol.
suppressMessages(library(org.Hs.eg.db))
ids <- keys(org.Hs.eg.db, keytype = "ENSEMBL")
m <- suppressMessages(AnnotationDbi::select(org.Hs.eg.db, keys = ids,
                                            columns = c("SYMBOL", "ENTREZID"),
                                            keytype = "ENSEMBL"))
m <- m[!is.na(m$SYMBOL) & !is.na(m$ENSEMBL), ]
m <- m[order(m$ENSEMBL, as.integer(m$ENTREZID)), ]
n <- table(m$ENSEMBL)
m <- m[!duplicated(m$ENSEMBL), ]
out <- data.frame(gene_id = m$ENSEMBL, gene_name = m$SYMBOL, entrez_id = m$ENTREZID,
                  n_symbols = as.integer(n[m$ENSEMBL]), ncbi_symbol = m$SYMBOL)
gmt <- unique(unlist(lapply(list.files("resources/genesets", "\\.gmt$", full.names = TRUE),
                            function(f) unlist(lapply(strsplit(readLines(f), "\t"), `[`, -(1:2))))))
old <- setdiff(gmt, out$gene_name)
if (length(old)) {
  a <- suppressMessages(AnnotationDbi::select(org.Hs.eg.db, keys = old, columns = "ENTREZID",
                                              keytype = "ALIAS"))
  a <- a[!is.na(a$ENTREZID) & !duplicated(a$ALIAS), ]
  hit <- match(out$entrez_id, a$ENTREZID)
  out$gene_name[!is.na(hit)] <- a$ALIAS[hit[!is.na(hit)]]
  message("named by the gene sets' spelling: ", paste(a$ALIAS, collapse = " "))
}
path <- "resources/gene_map/human_ensembl_symbols.tsv.gz"
con <- gzfile(path, "w")
write.table(out, con, sep = "\t", quote = FALSE, row.names = FALSE)
close(con)
meta <- metadata(org.Hs.eg.db)
info <- c(
  paste("org.Hs.eg.db", as.character(packageVersion("org.Hs.eg.db"))),
  paste("EGSOURCEDATE", meta$value[meta$name == "EGSOURCEDATE"]),
  paste("ENSOURCEDATE", meta$value[meta$name == "ENSOURCEDATE"]),
  paste("rows", nrow(out))
)
writeLines(info, "resources/gene_map/versions.txt")

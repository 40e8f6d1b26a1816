# Time R DESeq2 on the same counts and tests as the workflow's DE stage (benchmark, issue 11).
#
# Usage: Rscript tools/bench_deseq2.R COUNTS SAMPLES RESPONDERS CORES OUT.tsv [BASELINE [COVARS]]
#   COUNTS      genes x samples matrix (gene_id, optional gene_name, one column per sample)
#   SAMPLES     the cohort's samples.tsv (sample_id, patient_id, visit, ...)
#   RESPONDERS  patient_id + responder (True/False), e.g. results/clinical/responders.tsv
#   CORES       BiocParallel MulticoreParam workers (1 = serial)
#   COVARS      comma list of samples.tsv columns added to every design (default "batch", as
#               the workflow's default DE config); one with a single level is left out
# Writes one row per step (step, wall_s, cpu_s, n_tests, n_padj_05) and a "total" row that
# excludes R start-up and package loading (those are in the process time the harness measures).
# With the environment variable RHLH_R_TABLES set to a folder, each step's results table
# (gene_id, baseMean, log2FoldChange, stat, pvalue, padj) is written there as <step>.tsv (the calibration harness,
# tools/rhlh_dev/calibration.py --r, reads them).
#
# Tests, as in rhlh.de (C = the covariates): one dispersion fit for ~ C + patient_id + visit
# serving the Wald test of every visit against the baseline and the LRT against
# ~ C + patient_id; a second fit for the responder-specific trajectory, full = ~ C +
# patient_id + visit + responder:visit (built by hand: responder is constant within patient),
# reduced = ~ C + patient_id + visit.

suppressPackageStartupMessages({
  library(DESeq2)
  library(BiocParallel)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 5) {
  stop("usage: bench_deseq2.R COUNTS SAMPLES RESPONDERS CORES OUT.tsv [BASELINE]")
}
cores <- as.integer(args[4])
baseline <- if (length(args) >= 6) args[6] else "D0"
covars <- if (length(args) >= 7) strsplit(args[7], ",")[[1]] else "batch"
planned <- c("D0", "D7", "D14", "D21", "D28", "D35", "D42", "D49", "D56", "PRECOND8", "PRECOND1")
parallel <- cores > 1
if (parallel) register(MulticoreParam(workers = cores)) else register(SerialParam())

steps <- data.frame()
clock <- NULL
start <- function() clock <<- proc.time()
tables_dir <- Sys.getenv("RHLH_R_TABLES", "")
write_result <- function(step, res) {
  if (nzchar(tables_dir) && !is.null(res)) {
    out <- data.frame(gene_id = rownames(res), baseMean = res$baseMean,
                      log2FoldChange = res$log2FoldChange, stat = res$stat,
                      pvalue = res$pvalue, padj = res$padj)
    write.table(out, file.path(tables_dir, paste0(step, ".tsv")), sep = "\t", quote = FALSE,
                row.names = FALSE, na = "")
  }
}
stop_step <- function(step, res = NULL) {
  d <- proc.time() - clock
  write_result(step, res)  # not timed
  cpu <- sum(d[c("user.self", "sys.self", "user.child", "sys.child")], na.rm = TRUE)
  n <- if (is.null(res)) NA else sum(!is.na(res$pvalue))
  sig <- if (is.null(res)) NA else sum(res$padj < 0.05, na.rm = TRUE)
  steps <<- rbind(steps, data.frame(
    step = step, wall_s = d[["elapsed"]], cpu_s = cpu, n_tests = n, n_padj_05 = sig
  ))
}

start()
read_tsv <- function(path) {
  if (requireNamespace("data.table", quietly = TRUE)) {
    as.data.frame(data.table::fread(path, sep = "\t", check.names = FALSE))
  } else {
    read.delim(path, check.names = FALSE, stringsAsFactors = FALSE)
  }
}
tab <- read_tsv(args[1])
ann <- intersect(c("gene_id", "gene_name"), colnames(tab))
counts <- as.matrix(tab[, setdiff(colnames(tab), ann), drop = FALSE])
rownames(counts) <- tab$gene_id
rm(tab)
samples <- read.delim(args[2], stringsAsFactors = FALSE, colClasses = "character")
resp <- read.delim(args[3], stringsAsFactors = FALSE, colClasses = "character")
coldata <- samples[samples$sample_id %in% colnames(counts), ]
coldata$responder <- resp$responder[match(coldata$patient_id, resp$patient_id)] == "True"
coldata <- coldata[!is.na(coldata$responder), ]
# patients with a single sample carry no within-patient information (rhlh.de drops them too)
n_per <- table(coldata$patient_id)
coldata <- coldata[coldata$patient_id %in% names(n_per)[n_per >= 2], ]
visits <- planned[planned %in% coldata$visit]
coldata$visit <- factor(coldata$visit, levels = c(baseline, setdiff(visits, baseline)))
coldata$patient_id <- factor(coldata$patient_id)
rownames(coldata) <- coldata$sample_id
counts <- counts[, coldata$sample_id]
storage.mode(counts) <- "integer"
covars <- covars[covars %in% colnames(coldata)]
covars <- covars[vapply(covars, function(v) length(unique(coldata[[v]])) > 1, logical(1))]
for (v in covars) coldata[[v]] <- factor(coldata[[v]])
design_of <- function(covars) {
  lhs <- paste(c("~", paste(c(covars, "patient_id"), collapse = " + ")), collapse = " ")
  list(patient = as.formula(lhs), visit = as.formula(paste(lhs, "+ visit")))
}
f <- design_of(covars)
mm <- model.matrix(f$visit, coldata)
if (qr(mm)$rank < ncol(mm)) {
  # a covariate confounded with patient or visit (small cohorts): leave it out, as rhlh.de does
  message("covariates ", paste(covars, collapse = ", "), " not estimable: left out")
  f <- design_of(character(0))
}
f_patient <- f$patient
f_visit <- f$visit
stop_step("read")

start()
dds <- DESeqDataSetFromMatrix(counts, coldata, design = f_visit)
dds <- DESeq(dds, test = "Wald", parallel = parallel, quiet = TRUE)
stop_step("fit_patient_visit")

for (v in levels(coldata$visit)[-1]) {
  start()
  res <- results(dds, contrast = c("visit", v, baseline), alpha = 0.05)
  stop_step(paste0("wald_", v), res)
}

start()
dds_time <- nbinomLRT(dds, reduced = f_patient, quiet = TRUE)
res <- results(dds_time, alpha = 0.05)
stop_step("lrt_time", res)

start()
mm_reduced <- model.matrix(f_visit, coldata)
later <- levels(coldata$visit)[-1]
inter <- sapply(later, function(v) as.numeric(coldata$responder & coldata$visit == v))
inter <- matrix(inter, nrow = nrow(coldata), dimnames = list(NULL, paste0("responder:", later)))
mm_full <- cbind(mm_reduced, inter)
# a visit without responders (or with only responders) gives no estimable interaction
keep <- colSums(abs(mm_full)) > 0
for (j in which(startsWith(colnames(mm_full), "responder:"))) {
  v <- sub("responder:", "", colnames(mm_full)[j])
  at <- coldata$visit == v
  if (all(coldata$responder[at]) || !any(coldata$responder[at])) keep[j] <- FALSE
}
mm_full <- mm_full[, keep, drop = FALSE]
stopifnot(qr(mm_full)$rank == ncol(mm_full))
dds_int <- DESeqDataSetFromMatrix(counts, coldata, design = ~1)
dds_int <- DESeq(
  dds_int, full = mm_full, reduced = mm_reduced, test = "LRT", parallel = parallel, quiet = TRUE
)
res <- results(dds_int, alpha = 0.05)
stop_step("lrt_time_by_response", res)

total <- data.frame(
  step = "total", wall_s = sum(steps$wall_s), cpu_s = sum(steps$cpu_s), n_tests = NA,
  n_padj_05 = NA
)
steps <- rbind(steps, total)
steps$wall_s <- signif(steps$wall_s, 6)
steps$cpu_s <- signif(steps$cpu_s, 6)
write.table(steps, args[5], sep = "\t", quote = FALSE, row.names = FALSE, na = "")
cat(sprintf(
  "DESeq2 %s, %d samples x %d genes, %d cores, design %s: %.1f s\n",
  packageVersion("DESeq2"), ncol(counts), nrow(counts), cores, deparse(f_visit), total$wall_s
))

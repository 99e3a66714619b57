# mmicl: regenerate the figures of "Dissecting Multimodal In-Context Learning" (arXiv 2601.20796).
#   snakemake --cores all                          # default tier (laptop): every figure
#   snakemake --cores all --config tier=smoke      # the whole DAG in minutes (tests, CI)
#   snakemake --cores all results/figures/fig2c.pdf
#   snakemake --profile slurm                      # on a Slurm cluster (see slurm/config.yaml)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        figure_targets(),

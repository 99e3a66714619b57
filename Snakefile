# mmicl: regenerate the figures of "Dissecting Multimodal In-Context Learning" (arXiv 2601.20796).
#   snakemake --cores all                          # default tier (laptop): every figure
#   snakemake --cores all --config tier=smoke      # the whole DAG in minutes (tests, CI)
#   snakemake --cores all fig2c                    # one figure: results/laptop/figures/fig2c.*
#   snakemake --profile slurm                      # on a Slurm cluster (see slurm/config.yaml)
import sys

from snakemake.utils import min_version

min_version("9.0")
# The workflow plans with, and its jobs run, the library of this checkout (src/), whatever else
# is installed: jobs get it through PYTHONPATH (workflow/rules/common.smk), also in conda envs.
sys.path.insert(0, f"{workflow.basedir}/src")

from mmicl.plan.config import deep_merge, read_config_file  # noqa: E402

# The repository's config.yaml, read here rather than by `configfile:` so that a malformed file
# is reported with its line; --configfile and --config values are merged over it.
config.update(deep_merge(read_config_file(f"{workflow.basedir}/config.yaml"), config))


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/vlm.smk"  # paper Section 5 (fig7, table3, fig8): docs/vlm.md
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        figure_targets(),
        vlm_targets(),

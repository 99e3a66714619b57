# Section 5 (workflow/rules/vlm.smk): the plan, paths and helpers its rules use.
from mmicl.figures import VLM_FIGURES, VLM_FINDINGS_FILES, VLM_SOURCES, VLM_TABLES
from mmicl.vlm.plan import skip_line, vlm_plan

VLM = vlm_plan(config, TIER_NAME, RESULTS)
VLM_DIR = VLM["dir"]
VLM_SET = VLM["settings"]
VLM_TINY_CAPTION = " Made from a TINY RANDOM MODEL (smoke tier): not Qwen2.5-VL results."
if not VLM["enabled"] and workflow.is_main_process and not workflow.remote_exec:
    print(skip_line(VLM), file=sys.stderr)


def vlm_file(name):
    return f"{VLM_DIR}/{name}"


VLM_TABLE_FILES = {
    "heads_mllm": vlm_file("heads_mllm.parquet"),
    "heads_llm": vlm_file("heads_llm.parquet"),
    "knockout": vlm_file("knockout.parquet"),
    "lora": vlm_file("lora/lora.parquet"),
}


def vlm_findings_tables():
    """The Section-5 tables the findings read (none when Section 5 is skipped)."""
    if not VLM["enabled"]:
        return {}
    return {name: vlm_file(rel) for name, rel in VLM_FINDINGS_FILES.items()}


def vlm_figure_outputs(name):
    exts = ("pdf", "png", "csv", "md") if name in VLM_TABLES else ("pdf", "png")
    return {ext: paths.figure(RESULTS, TIER_NAME, name, ext) for ext in exts}


def vlm_targets():
    """The Section-5 figures `all` builds: every one, or none (and the skip line)."""
    if not VLM["enabled"]:
        return []
    return [f for name in VLM_FIGURES for f in vlm_figure_outputs(name).values()] + [
        vlm_file("overlap.parquet")
    ]


def vlm_resources(kind):
    """Slurm resources of a Section-5 job: a GPU for the model-reading jobs when vlm.device is
    cuda (or auto while the workflow's device is cuda)."""
    res = {k: v for k, v in job_resources(kind).items() if k != "gpu"}
    device = VLM_SET["device"]
    if device.startswith("cuda") or (device == "auto" and DEVICE.startswith("cuda")):
        res["gpu"] = 1
    return res


def vlm_figure_inputs(name):
    if not VLM["enabled"]:
        raise WorkflowError(skip_line(VLM))
    return [VLM_TABLE_FILES[source] for source in VLM_SOURCES[name]]


# Model, data and run settings every model-reading job gets (params: a change reruns it).
VLM_ARGS = (
    f"--n-shot {VLM_SET['n_shot']} --seed {VLM_SET['seed']} --device {VLM_SET['device']} "
    f"--dtype {VLM_SET['dtype']} --threads {THREADS} "
    f"--data-root {shlex.quote(str(VLM.get('data_root', '')))}"
)



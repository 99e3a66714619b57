# The paper's Section 5 on a real MLLM (Fig. 7, Table 3, Fig. 8): Qwen2.5-VL and its text
# backbone on VL-ICL Open-MI (docs/vlm.md). Built when config `vlm` names two local checkpoints
# and a data root holding open_mi/ and the vlm extra is installed; in the smoke tier on a tiny
# random model pair and an Open-MI fixture made by vlm_setup. Otherwise one line says why and
# `all` leaves the three figures out; asking for one of them stops with the same reason.


include: "vlm_common.smk"


if VLM["enabled"]:
    # The smoke tier's inputs: tiny random checkpoints (36 x 16 heads) and an Open-MI fixture.
    VLM_INPUTS = {}
    if VLM["tiny"]:
        VLM_INPUTS = {"models": vlm_file("inputs/models"), "data": vlm_file("inputs/VL-ICL")}

        rule vlm_setup:
            output:
                models=directory(VLM_INPUTS["models"]),
                data=directory(VLM_INPUTS["data"]),
            params:
                threads=THREADS,
                code=code_param("vlm"),
            resources:
                **job_resources("default"),
            log:
                paths.log(RESULTS, TIER_NAME, "vlm", "setup"),
            conda:
                "../../envs/mmicl.yaml"
            shell:
                "python -m mmicl.cli vlm-setup --models {output.models} --data {output.data} "
                "--threads {params.threads} 2> {log}"

    rule vlm_heads:
        """PH and IH scores of every head: the MLLM on image prompts, the LLM on text."""
        input:
            **VLM_INPUTS,
        output:
            table=vlm_file("heads_{model}.parquet"),
            top=vlm_file("top_heads_{model}.json"),
        wildcard_constraints:
            model="mllm|llm",
        params:
            model=lambda wc: shlex.quote(VLM[wc.model]),
            n=lambda wc: VLM_SET["n_examples" if wc.model == "mllm" else "n_examples_llm"],
            args=VLM_ARGS,
            code=code_param("vlm"),
        resources:
            **vlm_resources("analysis"),
        log:
            paths.log(RESULTS, TIER_NAME, "vlm", "heads_{model}"),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, "vlm", "heads_{model}")
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "python -m mmicl.cli vlm-heads --name {wildcards.model} --model {params.model} "
            "--n-examples {params.n} {params.args} --out {output.table} --top-json {output.top} "
            "2> {log}"

    rule vlm_compare:
        """Top-k overlaps (k = 5, 10, 20) of the two models' rankings."""
        input:
            mllm=vlm_file("top_heads_mllm.json"),
            llm=vlm_file("top_heads_llm.json"),
        output:
            vlm_file("overlap.parquet"),
        params:
            code=code_param("vlm"),
        resources:
            **job_resources("default"),
        log:
            paths.log(RESULTS, TIER_NAME, "vlm", "overlap"),
        localrule: True
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "python -m mmicl.cli vlm-compare --mllm-json {input.mllm} --llm-json {input.llm} "
            "--out {output} 2> {log}"

    rule vlm_knockout:
        """Table 3: baseline, top-k PH / IH / both knocked out and a random-heads control."""
        input:
            **VLM_INPUTS,
            heads=vlm_file("top_heads_mllm.json"),
        output:
            table=VLM_TABLE_FILES["knockout"],
            examples=vlm_file("knockout_examples.parquet"),
            authors=[
                vlm_file(f"knockout_{c}_results.json") for c in ("ph", "ih", "both", "random")
            ],
        params:
            model=shlex.quote(VLM["mllm"]),
            n=VLM_SET["n_eval"],
            top_k=VLM_SET["top_k"],
            random_seed=VLM_SET["random_seed"],
            args=VLM_ARGS,
            code=code_param("vlm"),
        resources:
            **vlm_resources("analysis"),
        log:
            paths.log(RESULTS, TIER_NAME, "vlm", "knockout"),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, "vlm", "knockout")
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "python -m mmicl.cli vlm-knockout --model {params.model} --heads-json {input.heads} "
            "--n-eval {params.n} --top-k {params.top_k} --random-seed {params.random_seed} "
            "{params.args} --out {output.table} --examples {output.examples} 2> {log}"

    rule vlm_finetune:
        """Fig. 8: LoRA fine-tuning with evaluations; a killed job resumes from lora/resume.pt."""
        input:
            **VLM_INPUTS,
            heads=vlm_file("top_heads_mllm.json"),
        output:
            table=VLM_TABLE_FILES["lora"],
            adapter=directory(vlm_file("lora/adapter")),
        params:
            model=shlex.quote(VLM["mllm"]),
            top_k=VLM_SET["top_k"],
            lora=quoted_json(VLM_SET["lora"]),
            tiny="--tiny" if VLM["tiny"] else "",
            args=VLM_ARGS,
            code=code_param("vlm"),
        resources:
            **vlm_resources("train"),
        log:
            paths.log(RESULTS, TIER_NAME, "vlm", "finetune"),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, "vlm", "finetune")
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "python -m mmicl.cli vlm-finetune --model {params.model} --heads-json {input.heads} "
            "--top-k {params.top_k} --lora {params.lora} {params.tiny} {params.args} "
            "--out {output.table} --adapter {output.adapter} 2> {log}"


for name in VLM_FIGURES:
    outputs = vlm_figure_outputs(name)

    # `snakemake fig7` builds results/<tier>/figures/fig7.* (or says why it cannot)
    rule:
        name:
            name
        input:
            list(outputs.values()) + ([vlm_file("overlap.parquet")] if name == "fig7" else []),
        localrule: True

    rule:
        name:
            f"vlm_figure_{name}"
        input:
            lambda wc, name=name: vlm_figure_inputs(name),
        output:
            pdf=outputs["pdf"],
            png=report(
                outputs["png"],
                caption="../report/figure.rst",
                category="Figures",
                labels={"figure": name},
            ),
            **{ext: outputs[ext] for ext in ("csv", "md") if ext in outputs},
        params:
            name=name,
            caption=CAPTIONS[name] + (VLM_TINY_CAPTION if VLM["tiny"] else ""),
            rows=(
                f"--csv {shlex.quote(outputs['csv'])} --md {shlex.quote(outputs['md'])}"
                if name in VLM_TABLES
                else ""
            ),
            code=code_param(f"figure:{name}"),
        log:
            paths.log(RESULTS, TIER_NAME, "figures", name),
        localrule: True
        resources:
            **job_resources("default"),
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "python -m mmicl.cli vlm-figure {params.name} --tables {input} "
            "--pdf {output.pdf} --png {output.png} {params.rows} 2> {log}"

# Per-run analyses (Stage-2 interventions and alignment; each run's circuit indicators are
# written by its training job, train.smk), the tables of every run's indicators per family, and
# the regression (Table 1).


localrules:
    collect_indicators,


STAGE2_DIR = paths.stage2_dir_pattern(RESULTS, TIER_NAME)


rule analyze_stage2:
    input:
        [f"{STAGE2_DIR}/{name}" for name in ("model.pt", "testsets.pt", "config.json")],
    output:
        interventions=f"{STAGE2_DIR}/interventions.parquet",
        alignment=f"{STAGE2_DIR}/alignment.parquet",
    params:
        run_dir=lambda wc: STAGE2_DIR.format(**wc),
        readings=quoted_json(TIER["interventions"]),
        code=code_param("interventions"),
    log:
        paths.log(RESULTS, TIER_NAME, "analysis", "{stage1_run}", "{run}", "seed={seed}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "analysis", "{stage1_run}", "{run}", "seed={seed}")
    threads: THREADS
    resources:
        **job_resources("analysis"),
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "python -m mmicl.cli analyze-stage2 --run-dir {params.run_dir} --readings {params.readings} "
        "--interventions {output.interventions} --alignment {output.alignment} "
        "--threads {threads} 2> {log}"


rule collect_indicators:
    input:
        lambda wc: [run_file(s, paths.INDICATORS_FILE) for s in plan.all_runs(TIER)
                    if s.stage == (1 if wc.family == "unimodal" else 2)],
    output:
        paths.table(RESULTS, TIER_NAME, "indicators_{family}"),
    wildcard_constraints:
        family="unimodal|multimodal",
    params:
        code=code_param("tables"),
    resources:
        **job_resources("default"),
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "indicators_{family}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "indicators_{family}")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "python -m mmicl.cli collect --out {output} {input} 2> {log}"


rule regression:
    input:
        unimodal=paths.table(RESULTS, TIER_NAME, "indicators_unimodal"),
        multimodal=paths.table(RESULTS, TIER_NAME, "indicators_multimodal"),
    output:
        paths.table(RESULTS, TIER_NAME, "regression"),
    params:
        settings=quoted_json(TIER["regression"]),
        code=code_param("regression"),
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "regression"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "regression")
    # the last job of a tier, alone: its forests use up to 4 cores (Snakemake caps threads at
    # --cores); the numbers do not depend on the thread count
    threads: 4
    resources:
        **job_resources("analysis"),
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "python -m mmicl.cli regression --unimodal {input.unimodal} --multimodal {input.multimodal} "
        "--settings {params.settings} --out {output} --threads {threads} 2> {log}"

# Circuit indicators through training (per run, from its weight snapshots), the tables of every
# run's indicators per family, and the correlation / random-forest regression (Table 1).


localrules:
    collect_indicators,


rule indicators_stage1:
    input:
        snapshots=paths.stage1_file(RESULTS, TIER_NAME, "{run}", "{seed}", "snapshots.pt"),
        testsets=paths.stage1_file(RESULTS, TIER_NAME, "{run}", "{seed}", "testsets.pt"),
        config=paths.stage1_file(RESULTS, TIER_NAME, "{run}", "{seed}", "config.json"),
    output:
        paths.stage1_file(RESULTS, TIER_NAME, "{run}", "{seed}", paths.INDICATORS_FILE),
    params:
        run_dir=lambda wc: paths.stage1_dir(RESULTS, TIER_NAME, wc.run, wc.seed),
        split=TIER["eval"]["indicator_split"],
    log:
        paths.log(RESULTS, TIER_NAME, "indicators", "stage1", "{run}", "seed={seed}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "indicators", "stage1", "{run}", "seed={seed}")
    threads: THREADS
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl indicators --run-dir {params.run_dir} --split {params.split} --out {output} "
        "--threads {threads} 2> {log}"


rule indicators_stage2:
    input:
        snapshots=paths.stage2_file(
            RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", "snapshots.pt"
        ),
        testsets=paths.stage2_file(
            RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", "testsets.pt"
        ),
        config=paths.stage2_file(
            RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", "config.json"
        ),
    output:
        paths.stage2_file(
            RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", paths.INDICATORS_FILE
        ),
    params:
        run_dir=lambda wc: paths.stage2_dir(RESULTS, TIER_NAME, wc.stage1_run, wc.run, wc.seed),
        split=TIER["eval"]["indicator_split"],
    log:
        paths.log(RESULTS, TIER_NAME, "indicators", "stage2", "{stage1_run}", "{run}",
                  "seed={seed}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "indicators", "stage2", "{stage1_run}", "{run}",
                        "seed={seed}")
    threads: THREADS
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl indicators --run-dir {params.run_dir} --split {params.split} --out {output} "
        "--threads {threads} 2> {log}"


rule collect_indicators:
    input:
        lambda wc: family_indicator_inputs(wc.family),
    output:
        paths.table(RESULTS, TIER_NAME, "indicators_{family}"),
    wildcard_constraints:
        family="unimodal|multimodal",
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "indicators_{family}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "indicators_{family}")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl collect --out {output} {input} 2> {log}"


rule regression:
    input:
        unimodal=paths.table(RESULTS, TIER_NAME, "indicators_unimodal"),
        multimodal=paths.table(RESULTS, TIER_NAME, "indicators_multimodal"),
    output:
        paths.table(RESULTS, TIER_NAME, "regression"),
    params:
        settings=quoted_json(TIER["regression"]),
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "regression"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "regression")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl regression --unimodal {input.unimodal} --multimodal {input.multimodal} "
        "--settings {params.settings} --out {output} 2> {log}"

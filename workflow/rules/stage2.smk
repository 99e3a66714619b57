# Stage 2 (multimodal fusion): multimodal worlds, training from the Stage-1 checkpoint of the same
# seed (or from scratch for early fusion), and the per-run interventions / alignment analysis.


rule multimodal_world:
    input:
        # the M1 half must be the Stage-1 world; drawing both from one seed guarantees it and
        # train_stage2 checks it bit for bit
        stage1_world=paths.world(RESULTS, "{seed}", "{K1}", "{L1}", "{D1}"),
    output:
        paths.multimodal_world(RESULTS, "{seed}", "{K1}", "{L1}", "{D1}", "{K2}", "{L2}", "{D2}"),
    log:
        paths.log(RESULTS, TIER_NAME, "worlds", "mm_seed={seed}_{K1}_{L1}_{D1}_{K2}_{L2}_{D2}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "worlds", "mm_seed={seed}_{K1}_{L1}_{D1}_{K2}_{L2}_{D2}")
    wildcard_constraints:
        K1=r"\d+",
        L1=r"\d+",
        D1=r"\d+",
        K2=r"\d+",
        L2=r"\d+",
        D2=r"\d+",
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl multimodal-world --seed {wildcards.seed} --K1 {wildcards.K1} --L1 {wildcards.L1} "
        "--D1 {wildcards.D1} --K2 {wildcards.K2} --L2 {wildcards.L2} --D2 {wildcards.D2} "
        "--out {output} 2> {log}"


STAGE2_COHORTS = mcfg.stage2_cohorts(TIER)

for cohort in STAGE2_COHORTS:

    rule:
        name:
            f"train_stage2_{cohort.name}"
        input:
            [path for member in cohort.members for path in stage2_inputs(*member).values()],
        output:
            [
                update(paths.stage2_file(RESULTS, TIER_NAME, s1, s2, seed, name))
                for s1, s2, seed in cohort.members
                for name in paths.RUN_FILES
            ],
        params:
            command=cohort_command(
                [stage2_entry(*member) for member in cohort.members],
                paths.cohort_checkpoint(RESULTS, TIER_NAME, "stage2", cohort.name),
            ),
        log:
            paths.log(RESULTS, TIER_NAME, "stage2", "cohorts", cohort.name),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, "stage2", "cohorts", cohort.name)
        threads: THREADS
        resources:
            **cohort_resources(cohort),
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "{params.command} --threads {threads} 2> {log}"


rule analyze_stage2:
    input:
        model=paths.stage2_file(RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", "model.pt"),
        testsets=paths.stage2_file(
            RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", "testsets.pt"
        ),
        config=paths.stage2_file(
            RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", "config.json"
        ),
    output:
        interventions=paths.stage2_file(
            RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", "interventions.parquet"
        ),
        alignment=paths.stage2_file(
            RESULTS, TIER_NAME, "{stage1_run}", "{run}", "{seed}", "alignment.parquet"
        ),
    params:
        run_dir=lambda wc: paths.stage2_dir(RESULTS, TIER_NAME, wc.stage1_run, wc.run, wc.seed),
    log:
        paths.log(RESULTS, TIER_NAME, "analysis", "{stage1_run}", "{run}", "seed={seed}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "analysis", "{stage1_run}", "{run}", "seed={seed}")
    threads: THREADS
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl analyze-stage2 --run-dir {params.run_dir} --interventions {output.interventions} "
        "--alignment {output.alignment} --threads {threads} 2> {log}"

# Worlds and training. One job per cohort (mmicl.plan.cohorts): runs of one model shape needed
# by the same figures, trained in one process; each run is trained once, whatever uses it.


rule world:
    output:
        paths.world(RESULTS, WorldKey("{seed}", "{K}", "{L}", "{D}")),
    log:
        paths.log(RESULTS, TIER_NAME, "worlds", "seed={seed}_K={K}_L={L}_D={D}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "worlds", "seed={seed}_K={K}_L={L}_D={D}")
    wildcard_constraints:
        K=r"\d+",
        L=r"\d+",
        D=r"\d+",
    # every training job waits for its worlds: Snakemake does not pass a job's priority on to
    # what it depends on, so at priority 0 worlds would wait behind every ready training job
    priority: PREREQUISITE_PRIORITY
    resources:
        **job_resources("default"),
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "python -m mmicl.cli world --seed {wildcards.seed} --K {wildcards.K} --L {wildcards.L} "
        "--D {wildcards.D} --out {output} 2> {log}"


rule multimodal_world:
    input:
        # the M1 half must be the Stage-1 world; drawing both from one seed guarantees it and
        # training checks it bit for bit
        stage1_world=paths.world(RESULTS, WorldKey("{seed}", "{K1}", "{L1}", "{D1}")),
    output:
        paths.world(RESULTS, WorldKey("{seed}", "{K1}", "{L1}", "{D1}", "{K2}", "{L2}", "{D2}")),
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
    priority: PREREQUISITE_PRIORITY
    resources:
        **job_resources("default"),
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "python -m mmicl.cli world --seed {wildcards.seed} --K {wildcards.K1} --L {wildcards.L1} "
        "--D {wildcards.D1} --K2 {wildcards.K2} --L2 {wildcards.L2} --D2 {wildcards.D2} "
        "--out {output} 2> {log}"


# Stage-1 cohorts holding a checkpoint some Stage-2 run starts from go first (Stage 2 waits),
# then the longest jobs first (mmicl.plan.costs.job_priority).
PARENT_KEYS = {p.key for p in (plan.parent(TIER, s) for s in plan.all_runs(TIER)) if p}

for cohort in COHORTS:

    rule:
        name:
            f"train_stage{cohort.stage}_{cohort.name}"
        input:
            [path for m in cohort.members for path in run_inputs(m).values()],
        output:
            # update(): Snakemake keeps the files, so members already up to date are not retrained
            [update(run_file(m, name)) for m in cohort.members for name in paths.RUN_FILES]
            # and each member's circuit indicators, from its snapshots, in the same process
            + [update(run_file(m, paths.INDICATORS_FILE)) for m in cohort.members],
        params:
            command=(
                f"python -m mmicl.cli train --members {quoted_json(cohort_entries(cohort))} "
                f"--backend {COHORT_BACKEND} --checkpoint "
                + shlex.quote(paths.cohort_checkpoint(RESULTS, TIER_NAME, cohort.stage, cohort.name))
                + ("" if TIER["cohorts"]["reuse"] else " --no-reuse")
                + " --indicators"
            ),
            code=training_code(cohort),
            indicators=code_param("indicators"),
        log:
            paths.log(RESULTS, TIER_NAME, f"stage{cohort.stage}", "cohorts", cohort.name),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, f"stage{cohort.stage}", "cohorts", cohort.name)
        priority: job_priority(cohort.members, any(m.key in PARENT_KEYS for m in cohort.members))
        threads: THREADS
        resources:
            **cohort_resources(cohort),
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "{params.command} --threads {threads} 2> {log}"

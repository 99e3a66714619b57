# Worlds and Stage-1 (unimodal) training. One job per (run, seed); shared by every figure using it.


rule world:
    output:
        paths.world(RESULTS, "{seed}", "{K}", "{L}", "{D}"),
    log:
        paths.log(RESULTS, TIER_NAME, "worlds", "seed={seed}_K={K}_L={L}_D={D}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "worlds", "seed={seed}_K={K}_L={L}_D={D}")
    wildcard_constraints:
        K=r"\d+",
        L=r"\d+",
        D=r"\d+",
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl world --seed {wildcards.seed} --K {wildcards.K} --L {wildcards.L} "
        "--D {wildcards.D} --out {output} 2> {log}"


STAGE1_COHORTS = mcfg.stage1_cohorts(TIER)
# Stage-1 cohorts holding a checkpoint some Stage-2 run starts from go first (Stage 2 waits on them)
STAGE2_CHECKPOINTS = {(s1, seed) for s1, _, seed in mcfg.all_stage2_runs(TIER)}

for cohort in STAGE1_COHORTS:

    rule:
        name:
            f"train_stage1_{cohort.name}"
        input:
            worlds=[world_of(run, seed) for run, seed in cohort.members],
        output:
            # update(): Snakemake keeps the files, so members already up to date are not retrained
            [
                update(paths.stage1_file(RESULTS, TIER_NAME, run, seed, name))
                for run, seed in cohort.members
                for name in paths.RUN_FILES
            ],
        params:
            command=cohort_command(
                [stage1_entry(run, seed) for run, seed in cohort.members],
                paths.cohort_checkpoint(RESULTS, TIER_NAME, "stage1", cohort.name),
            ),
        log:
            paths.log(RESULTS, TIER_NAME, "stage1", "cohorts", cohort.name),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, "stage1", "cohorts", cohort.name)
        priority: 1 if STAGE2_CHECKPOINTS.intersection(cohort.members) else 0
        threads: THREADS
        resources:
            **cohort_resources(cohort),
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "{params.command} --threads {threads} 2> {log}"

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


rule train_stage1:
    input:
        world=lambda wc: world_of(wc.run, wc.seed),
    output:
        **{
            name.split(".")[0]: paths.stage1_file(RESULTS, TIER_NAME, "{run}", "{seed}", name)
            for name in paths.RUN_FILES
        },
    params:
        spec=lambda wc: quoted_json(stage1_spec(wc.run, wc.seed)),
        out_dir=lambda wc: paths.stage1_dir(RESULTS, TIER_NAME, wc.run, wc.seed),
    log:
        paths.log(RESULTS, TIER_NAME, "stage1", "{run}", "seed={seed}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "stage1", "{run}", "seed={seed}")
    threads: THREADS
    resources:
        mem_mb=SLURM.get("mem_mb", 2000),
        runtime=SLURM.get("runtime_minutes", 120),
        gpu=GPUS,
        **SLURM_PLACEMENT,
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl train-stage1 --spec {params.spec} --world {input.world} "
        "--out-dir {params.out_dir} --threads {threads} 2> {log}"

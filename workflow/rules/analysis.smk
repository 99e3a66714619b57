# Circuit indicators through training (per run, from its weight snapshots), the tables of every
# run's indicators per family, and the correlation / random-forest regression (Table 1).


localrules:
    collect_indicators,


# One indicator job per training cohort (same members): one process start for the whole cohort.
# Each member is a function name -> path of that file in the member's run folder.
INDICATOR_JOBS = [
    ("stage1", c.name, [partial(paths.stage1_file, RESULTS, TIER_NAME, *m) for m in c.members])
    for c in STAGE1_COHORTS
] + [
    ("stage2", c.name, [partial(paths.stage2_file, RESULTS, TIER_NAME, *m) for m in c.members])
    for c in STAGE2_COHORTS
]

for stage, name, members in INDICATOR_JOBS:

    rule:
        name:
            f"indicators_{stage}_{name}"
        input:
            snapshots=[file("snapshots.pt") for file in members],
            testsets=[file("testsets.pt") for file in members],
            config=[file("config.json") for file in members],
        output:
            [file(paths.INDICATORS_FILE) for file in members],
        params:
            run_dirs=lambda wc, input: " ".join(
                shlex.quote(os.path.dirname(f)) for f in input.snapshots
            ),
            split=TIER["eval"]["indicator_split"],
        log:
            paths.log(RESULTS, TIER_NAME, "indicators", stage, name),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, "indicators", stage, name)
        threads: THREADS
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "mmicl indicators --split {params.split} --run-dir {params.run_dirs} --out {output} "
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

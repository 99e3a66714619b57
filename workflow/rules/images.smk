# M2 encoders and images (docs/images.md): the offline glyph set, one pretraining job per
# encoder run (mmicl.plan.images; shared by every Stage-2 run that loads it, trained once), and
# the extra inputs of Stage-2 runs with an encoder or images (functions in common.smk).
if workflow.is_main_process and not workflow.remote_exec:
    for line in TIER.get("skipped_figures", []):
        print(f"mmicl: {line}", file=sys.stderr)

ENCODER_RUNS = plan_images.all_encoder_runs(TIER)
IMAGES = TIER.get("images", {})


rule render_glyphs:
    output:
        plan_images.glyph_manifest(TIER),
    params:
        root=lambda wc, output: os.path.dirname(os.path.dirname(output[0])),
        letters=IMAGES.get("glyph_letters", "all"),
        seed=IMAGES.get("glyph_seed", 0),
        code=code_param("glyphs"),
    log:
        paths.log(RESULTS, TIER_NAME, "data", "glyphs"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "data", "glyphs")
    priority: PREREQUISITE_PRIORITY  # the image runs wait for it
    resources:
        **job_resources("default"),
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "python -m mmicl.cli render-glyphs --root {params.root} --letters {params.letters} "
        "--seed {params.seed} 2> {log}"


for i, enc in enumerate(ENCODER_RUNS):

    rule:
        name:
            f"pretrain_encoder_{i:03d}_{enc.encoder['kind']}"
        input:
            ([paths.world(RESULTS, WorldKey(*enc.world))] if enc.world else [])
            + ([plan_images.glyph_manifest(TIER)] if enc.m2_data == "glyphs" else []),
        output:
            [encoder_file(enc, name) for name in plan_images.ENCODER_FILES],
        params:
            command=(
                f"python -m mmicl.cli pretrain-encoder --run {quoted_json(enc.to_dict())} "
                f"--out-dir {shlex.quote(plan_images.encoder_dir(RESULTS, enc))}"
                + (f" --world {shlex.quote(paths.world(RESULTS, WorldKey(*enc.world)))}"
                   if enc.world else "")
                + (f" --images {shlex.quote(plan_images.data_root(TIER, enc.m2_data))}"
                   if not enc.world else "")
            ),
            code=code_param("training"),
        log:
            paths.log(RESULTS, TIER_NAME, "encoders", f"{enc.run}_seed={enc.seed}"),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, "encoders", f"{enc.run}_seed={enc.seed}")
        priority: PREREQUISITE_PRIORITY  # image Stage-2 runs wait for it
        threads: THREADS
        resources:
            **job_resources("train"),
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "{params.command} --threads {threads} 2> {log}"

# Per-figure tables (all runs of a figure, tidy) and the figures drawn from them.


localrules:
    collect,
    figure,


rule collect:
    input:
        lambda wc: stage1_outputs(wc.figure),
    output:
        paths.table(RESULTS, TIER_NAME, "{figure}"),
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "{figure}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "{figure}")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl collect --out {output} {input} 2> {log}"


rule figure:
    input:
        table=paths.table(RESULTS, TIER_NAME, "{figure}"),
    output:
        pdf=paths.figure(RESULTS, "{figure}", "pdf"),
        png=paths.figure(RESULTS, "{figure}", "png"),
    params:
        context=lambda wc: quoted_json(
            {"sweep": TIER["figures"][wc.figure], "defaults": DEFAULTS}
        ),
    log:
        paths.log(RESULTS, TIER_NAME, "figures", "{figure}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "figures", "{figure}")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl figure {wildcards.figure} --table {input.table} --context {params.context} "
        "--pdf {output.pdf} --png {output.png} 2> {log}"

# Per-figure tables (all runs of a figure, tidy) and the figures drawn from them.


localrules:
    collect,
    figure,
    table,


rule collect:
    input:
        lambda wc: figure_inputs(wc.figure),
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
        table=lambda wc: figure_table(wc.figure),
    output:
        pdf=paths.figure(RESULTS, "{figure}", "pdf"),
        png=paths.figure(RESULTS, "{figure}", "png"),
    params:
        context=lambda wc: figure_context(wc.figure),
    log:
        paths.log(RESULTS, TIER_NAME, "figures", "{figure}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "figures", "{figure}")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl figure {wildcards.figure} --table {input.table} --context {params.context} "
        "--pdf {output.pdf} --png {output.png} 2> {log}"


rule table:
    input:
        table=lambda wc: figure_table(wc.table),
    output:
        csv=paths.figure(RESULTS, "{table}", "csv"),
        md=paths.figure(RESULTS, "{table}", "md"),
    params:
        context=lambda wc: figure_context(wc.table),
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "{table}-rows"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "{table}-rows")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl table {wildcards.table} --table {input.table} --context {params.context} "
        "--csv {output.csv} --md {output.md} 2> {log}"

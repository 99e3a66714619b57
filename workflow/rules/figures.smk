# Per-figure tables (all runs of a figure, tidy) and the figures drawn from them.


localrules:
    collect,
    figure,
    table,
    findings,


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
        png=report(
            paths.figure(RESULTS, "{figure}", "png"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
    params:
        context=lambda wc: figure_context(wc.figure),
        caption=lambda wc: CAPTIONS[wc.figure],
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


rule findings:
    input:
        unpack(findings_tables),
    output:
        table=paths.findings(RESULTS, "parquet"),
        md=report(
            paths.findings(RESULTS, "md"),
            caption="../report/findings.rst",
            category="Findings",
        ),
    params:
        tables=lambda wc, input: " ".join(f"{name}={path}" for name, path in input.items()),
        context=findings_context(),
        settings=quoted_json(TIER["findings"]),
        tier=TIER_NAME,
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "findings"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "findings")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "mmicl findings --tables {params.tables} --context {params.context} "
        "--settings {params.settings} --tier {params.tier} --out {output.table} "
        "--md {output.md} 2> {log}"


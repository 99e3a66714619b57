# Per-figure tables (all runs of a figure, tidy) and one rule per figure drawing it; a figure
# rule's params carry the fingerprint of its own module and the shared plotting code, so editing
# a figure's code rebuilds that figure and nothing else.


localrules:
    collect,
    findings,


rule collect:
    input:
        lambda wc: figure_inputs(wc.figure),
    output:
        paths.table(RESULTS, TIER_NAME, "{figure}"),
    wildcard_constraints:
        figure="|".join(name for name in FIGURES if SOURCES[name] != "regression"),
    params:
        code=code_param("tables"),
    resources:
        **job_resources("default"),
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "{figure}"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "{figure}")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "python -m mmicl.cli collect --out {output} {input} 2> {log}"


for name in TIER["figures"]:
    outputs = figure_outputs(name)

    # `snakemake fig2c` builds results/<tier>/figures/fig2c.* (a short target for every figure)
    rule:
        name:
            name
        input:
            list(outputs.values()),
        localrule: True

    rule:
        name:
            f"figure_{name}"
        input:
            table=figure_table(name),
        output:
            pdf=outputs["pdf"],
            png=report(
                outputs["png"],
                caption="../report/figure.rst",
                category="Figures",
                labels={"figure": name},
            ),
            **{ext: outputs[ext] for ext in ("csv", "md") if ext in outputs},
        params:
            # (shell commands are formatted when the job runs, after this loop: values go here)
            name=name,
            context=figure_context(name),
            caption=CAPTIONS[name],
            rows=(
                f"--csv {shlex.quote(outputs['csv'])} --md {shlex.quote(outputs['md'])}"
                if name in TABLES
                else ""
            ),
            code=code_param(f"figure:{name}"),
        log:
            paths.log(RESULTS, TIER_NAME, "figures", name),
        benchmark:
            paths.benchmark(RESULTS, TIER_NAME, "figures", name)
        localrule: True
        resources:
            **job_resources("default"),
        conda:
            "../../envs/mmicl.yaml"
        shell:
            "python -m mmicl.cli figure {params.name} --table {input.table} --context {params.context} "
            "--pdf {output.pdf} --png {output.png} {params.rows} 2> {log}"


rule findings:
    input:
        unpack(findings_tables),
    output:
        table=paths.findings(RESULTS, TIER_NAME, "parquet"),
        md=report(
            paths.findings(RESULTS, TIER_NAME, "md"),
            caption="../report/findings.rst",
            category="Findings",
        ),
    params:
        tables=lambda wc, input: " ".join(f"{name}={path}" for name, path in input.items()),
        context=findings_context(),
        settings=quoted_json(TIER["findings"]),
        tier=TIER_NAME,
        code=code_param("findings"),
    resources:
        **job_resources("default"),
    log:
        paths.log(RESULTS, TIER_NAME, "tables", "findings"),
    benchmark:
        paths.benchmark(RESULTS, TIER_NAME, "tables", "findings")
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "python -m mmicl.cli findings --tables {params.tables} --context {params.context} "
        "--settings {params.settings} --tier {params.tier} --out {output.table} "
        "--md {output.md} 2> {log}"


rule unknown_figure:
    """A figure path of this tier that no figure makes: stop with the list of figures."""
    output:
        paths.figure(RESULTS, TIER_NAME, "{unknown}", "{ext}"),
    wildcard_constraints:
        unknown=r"(?!(?:" + "|".join([*TIER["figures"], *VLM_FIGURES]) + r")\.)[^/]+",
    input:
        lambda wc: unknown_figure(wc.unknown),
    log:
        paths.log(RESULTS, TIER_NAME, "figures", "unknown_{unknown}.{ext}"),
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "false"


rule moved_figure:
    """Figures used to live in results/figures/: say where they are now."""
    output:
        f"{RESULTS}/figures/{{name}}.{{ext}}",
    input:
        lambda wc: moved_figure(wc.name, wc.ext),
    log:
        paths.log(RESULTS, TIER_NAME, "figures", "moved_{name}.{ext}"),
    conda:
        "../../envs/mmicl.yaml"
    shell:
        "false"

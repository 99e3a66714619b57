"""Command line: the entry points the Snakemake rules call (`mmicl <command> --help`).
Each command parses its arguments and calls the library; nothing else happens here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mmicl.vlm import commands as vlm_commands

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def _json_arg(text: str, what: str):
    """JSON given inline or as @file."""
    try:
        return json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{what}: not JSON or an unreadable @file ({exc})") from None


def cmd_world(args) -> None:
    from mmicl.data.worlds import make_multimodal_world, make_world, save_world

    m2 = (args.K2, args.L2, args.D2)
    if any(v is None for v in m2) and any(v is not None for v in m2):
        raise SystemExit("--K2, --L2 and --D2 are given together (a multimodal world)")
    world = (make_world(args.seed, args.K, args.L, args.D) if args.K2 is None
             else make_multimodal_world(args.seed, args.K, args.L, args.D, *m2))
    save_world(world, args.out)


def cmd_train(args) -> None:
    from mmicl.train.cohort import Entry, train_cohort

    _threads(args.threads)
    entries = _json_arg(args.members, "--members")
    if not isinstance(entries, list) or not entries:
        raise SystemExit("--members: expected a non-empty JSON list of run entries")
    try:
        members = [Entry.from_dict(e, f"--members[{i}]") for i, e in enumerate(entries)]
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    done = train_cohort(members, backend=args.backend, progress=not args.no_progress,
                        checkpoint=args.checkpoint or None, reuse=not args.no_reuse,
                        accept_code=args.accept_code
                        or os.environ.get("MMICL_ON_CODE_CHANGE") == "keep")
    print(f"cohort of {len(members)}: {len(done['trained'])} trained, {len(done['reused'])} "
          f"already up to date", file=sys.stderr)
    if args.indicators:  # in the process that has the code loaded: no second job per cohort
        from mmicl import paths

        _write_indicators([m.out_dir for m in members],
                          [str(Path(m.out_dir) / paths.INDICATORS_FILE) for m in members])
        print(f"indicators of {len(members)} run(s) written", file=sys.stderr)


def cmd_pretrain_encoder(args) -> None:
    from mmicl.plan.images import EncoderRun
    from mmicl.train.images import pretrain_encoder

    _threads(args.threads)
    run = EncoderRun.from_dict(_json_arg(args.run, "--run"))
    pretrain_encoder(run, args.out_dir, args.world or None, args.images or None, run.device)


def cmd_render_glyphs(args) -> None:
    from mmicl.data.images.glyphs import render_glyph_omniglot, smoke_codepoints

    report = render_glyph_omniglot(args.root, seed=args.seed, overwrite=True,
                                   codepoints=smoke_codepoints() if args.letters == "smoke"
                                   else None)
    print(f"{args.root}: {report.n_classes} classes from {report.n_letters} letters "
          f"({report.seconds:.1f} s)", file=sys.stderr)


def _write_indicators(run_dirs, outs) -> None:
    from mmicl.analysis.indicators import run_indicators
    from mmicl.io import write_parquet

    if len(run_dirs) != len(outs):
        raise SystemExit(f"--run-dir lists {len(run_dirs)} runs but --out {len(outs)} "
                         f"files; give one output per run")
    for run_dir, out in zip(run_dirs, outs):
        try:
            table = run_indicators(run_dir)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        write_parquet(table, out)


def cmd_indicators(args) -> None:
    _threads(args.threads)
    _write_indicators(args.run_dir, args.out)


def cmd_analyze_stage2(args) -> None:
    """Interventions (knockout, modality zeroing) and M1/M2 alignment of a trained Stage-2 run."""
    import pandas as pd

    from mmicl.analysis.alignment import modality_alignment
    from mmicl.analysis.interventions import run_interventions
    from mmicl.analysis.runs import load_run
    from mmicl.io import write_parquet

    _threads(args.threads)
    run = load_run(args.run_dir)
    if run.spec.stage != 2:
        raise SystemExit(f"{args.run_dir}: analyze-stage2 needs a Stage-2 run")
    readings = _json_arg(args.readings, "--readings") if args.readings else None
    table = run_interventions(run.adapter, run.test_sets, run.modulus, ("IC", "IW"), readings)
    write_parquet(table, args.interventions)
    full_ic = table.query("intervention == 'full' and split == 'IC'").accuracy.item()
    rows = [{"split": name, **modality_alignment(run.adapter, run.test_sets[name]),
             "ic_accuracy": full_ic} for name in ("IC", "Test")]
    write_parquet(pd.DataFrame(rows), args.alignment)


def cmd_regression(args) -> None:
    import joblib

    from mmicl.analysis.regression import RegressionConfig, regression_tables
    from mmicl.io import read_parquet, write_parquet

    cfg = RegressionConfig(**_json_arg(args.settings, "--settings"))
    tables = {family: read_parquet(path) for family, path in
              (("unimodal", args.unimodal), ("multimodal", args.multimodal))}
    with joblib.parallel_config(n_jobs=args.threads):  # the forests' threads; same numbers
        result = regression_tables(tables, cfg)
    write_parquet(result, args.out)


def cmd_findings(args) -> None:
    from mmicl.analysis.findings import Settings, evaluate_findings, markdown
    from mmicl.io import atomic_write, read_parquet, write_parquet

    tables = {}
    for item in args.tables:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--tables expects name=path, got {item!r}")
        tables[name] = read_parquet(path)
    findings = evaluate_findings(tables, _json_arg(args.context, "--context"),
                                 Settings(**_json_arg(args.settings, "--settings")), args.tier)
    write_parquet(findings, args.out)
    text = markdown(findings)
    atomic_write(args.md, lambda tmp: tmp.write_text(text))


def cmd_collect(args) -> None:
    from mmicl.analysis.tables import collect
    from mmicl.io import write_parquet

    write_parquet(collect(args.inputs), args.out)


def cmd_figure(args) -> None:
    from mmicl.figures import figure_module
    from mmicl.figures.common import save
    from mmicl.io import atomic_write, read_parquet

    context = _json_arg(args.context, "--context")
    module = figure_module(args.name)
    df = read_parquet(args.table)
    if args.csv:  # a table figure: its rows as CSV and Markdown too
        rows = module.table(df, context["sweep"], context["defaults"])
        atomic_write(args.csv, lambda tmp: rows.to_csv(tmp, index=False))
        text = module.markdown(rows)
        atomic_write(args.md, lambda tmp: tmp.write_text(text))
    save(module.make(df, context["sweep"], context["defaults"]), args.pdf, args.png)


def _tiers(args) -> list[dict]:
    """The resolved tiers named by --tier (default: every tier of the config file)."""
    from mmicl import plan

    try:
        cfg = plan.read_config_file(args.config)
        for extra in args.configfile or []:
            cfg = plan.deep_merge(cfg, plan.read_config_file(extra))
        names = args.tier or list(cfg.get("tiers", {}))
        out = []
        for name in names:
            plan.validate_schema({**cfg, "tier": name}, args.schema)
            out.append(plan.tier_config({**cfg, "tier": name}))
        return out
    except plan.ConfigError as exc:
        raise SystemExit(str(exc)) from None


def cmd_plan(args) -> None:
    """Per tier: runs, steps, jobs, and the CPU-/GPU-hours estimate, before anything runs."""
    from mmicl.plan.costs import table

    print(table(_tiers(args), args.cores))


def cmd_progress(args) -> None:
    """Runs of a tier: done / running / stopped / waiting, step, latest IC and IW, ETA."""
    from mmicl.monitor import progress_table

    for tier in _tiers(args):
        if args.results:
            tier["results"] = args.results
        print(progress_table(tier, show_all=args.all))


def cmd_stale(args) -> None:
    """Outputs of a tier made by code that has changed since, grouped by rule."""
    from mmicl.monitor import stale_table

    for tier in _tiers(args):
        if args.results:
            tier["results"] = args.results
        print(stale_table(tier, args.workdir))


def cmd_check_config(args) -> None:
    """Parse and validate config files; errors name the file and line, or the key."""
    tiers = _tiers(args)
    print(f"{args.config}: valid ({', '.join(t['tier'] for t in tiers)})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmicl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("world", help="draw a world (unimodal, or multimodal with --K2 --L2 --D2)")
    for key in ("seed", "K", "L", "D"):
        p.add_argument(f"--{key}", type=int, required=True)
    for key in ("K2", "L2", "D2"):
        p.add_argument(f"--{key}", type=int)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_world)

    for name, func, text in (("plan", cmd_plan, "what each tier trains and costs, before it runs"),
                             ("progress", cmd_progress, "runs done / running / waiting, IC, ETA"),
                             ("stale", cmd_stale, "outputs made by code that changed since"),
                             ("check-config", cmd_check_config,
                              "validate config files (errors name the file and line)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", default="config.yaml", help="the workflow's config.yaml")
        p.add_argument("--configfile", action="append",
                       help="override file(s) merged over --config, as snakemake --configfile")
        p.add_argument("--tier", action="append", help="tier(s) to show (default: all)")
        p.add_argument("--schema", default=str(SCHEMA), help="the config schema")
        p.add_argument("--cores", type=int, default=None, help="cores, for a wall-time estimate")
        if name in ("progress", "stale"):
            p.add_argument("--results", default="", help="results folder (default: config's)")
        if name == "progress":
            p.add_argument("--all", action="store_true", help="list every run, not only running")
        if name == "stale":
            p.add_argument("--workdir", default=".", help="Snakemake's working directory")
        p.set_defaults(func=func)

    p = sub.add_parser("train", help="train the runs of one cohort in one process")
    p.add_argument("--members", required=True, help="JSON list of run entries, or @file")
    p.add_argument("--backend", default="auto",
                   help="auto | sequential | vmap (auto: sequential on CPU, vmap otherwise)")
    p.add_argument("--checkpoint", default="", help="resume file of a stacked cohort")
    p.add_argument("--no-reuse", action="store_true",
                   help="retrain members even if their outputs are up to date")
    p.add_argument("--accept-code", action="store_true",
                   help="keep members trained by other training code (on_code_change=keep)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--indicators", action="store_true",
                   help="then write every member's indicators.parquet (from its snapshots)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain-encoder", help="pretrain one M2 encoder (docs/images.md)")
    p.add_argument("--run", required=True, help="JSON of the encoder run (mmicl.plan.images)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--world", default="", help="Gaussian data: the multimodal world")
    p.add_argument("--images", default="", help="image data: the image root")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_pretrain_encoder)

    p = sub.add_parser("render-glyphs", help="render the offline glyph set (Omniglot layout)")
    p.add_argument("--root", required=True, help="writes <root>/omniglot-py")
    p.add_argument("--letters", choices=("smoke", "all"), default="all")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_render_glyphs)

    p = sub.add_parser("analyze-stage2", help="knockouts, modality zeroing, alignment of a run")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--interventions", required=True)
    p.add_argument("--alignment", required=True)
    p.add_argument("--readings", default="", help="JSON {knockout: [...], zeroing: [...]}")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_analyze_stage2)

    p = sub.add_parser("indicators", help="circuit indicators of every weight snapshot of runs")
    p.add_argument("--run-dir", required=True, nargs="+", help="one or more run folders")
    p.add_argument("--out", required=True, nargs="+", help="one Parquet file per run folder")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_indicators)

    p = sub.add_parser("regression", help="correlations and random forest of IC on indicators")
    p.add_argument("--unimodal", required=True, help="collected Stage-1 indicator table")
    p.add_argument("--multimodal", required=True, help="collected Stage-2 indicator table")
    p.add_argument("--settings", required=True, help="the config's regression section as JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1, help="threads of the random forests")
    p.set_defaults(func=cmd_regression)

    p = sub.add_parser("findings", help="test every finding of the paper on the tables")
    p.add_argument("--tables", nargs="+", required=True, help="name=path of collected tables")
    p.add_argument("--context", required=True, help="JSON: figures (sweeps) and defaults")
    p.add_argument("--settings", required=True, help="the config's findings section as JSON")
    p.add_argument("--tier", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--md", required=True)
    p.set_defaults(func=cmd_findings)

    p = sub.add_parser("collect", help="concatenate per-run tables with run parameters attached")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("figure", help="draw one figure (and a table figure's rows)")
    p.add_argument("name")
    p.add_argument("--table", required=True)
    p.add_argument("--context", required=True, help="JSON with the figure's sweep and defaults")
    p.add_argument("--pdf", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--csv", default="", help="table figures: rows as CSV")
    p.add_argument("--md", default="", help="table figures: rows as Markdown")
    p.set_defaults(func=cmd_figure)

    vlm_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())

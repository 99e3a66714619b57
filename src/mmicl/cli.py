"""Command line: the entry points the Snakemake rules call (`mmicl <command> --help`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def cmd_world(args) -> None:
    from mmicl.data.worlds import make_world, save_world

    save_world(make_world(args.seed, args.K, args.L, args.D), args.out)


def _stage1_member(entry: dict):
    """The Member of a Stage-1 run entry {spec, world, out_dir}, after checking its world."""
    from mmicl.config import TrainConfig, stage1_specs
    from mmicl.data.worlds import load_world
    from mmicl.train import stage1_member

    spec = entry["spec"]
    world_spec, seq, model_cfg = stage1_specs(spec["params"])
    world = load_world(entry["world"])
    expected = (spec["seed"], world_spec["K"], world_spec["L"], world_spec["D"])
    if (world.seed, world.K, world.L, world.D) != expected:
        raise SystemExit(
            f"{entry['world']}: world (seed, K, L, D) = {(world.seed, world.K, world.L, world.D)} "
            f"does not match the run's {expected}"
        )
    return stage1_member(
        world, seq, model_cfg, TrainConfig(**spec["train"]), entry["out_dir"], seed=spec["seed"],
        test_set_size=spec["eval"]["test_set_size"], device=spec.get("device", "cpu"), meta=spec,
    )


def cmd_train_stage1(args) -> None:
    """Train one Stage-1 run from a resolved spec (JSON: run, seed, params, train, eval, device)."""
    from mmicl.train import fit_member

    _set_threads(args.threads)
    spec = json.loads(args.spec)
    member = _stage1_member({"spec": spec, "world": args.world, "out_dir": args.out_dir})
    fit_member(member, spec.get("device", "cpu"),
               spec["eval"]["attention_sequences"], progress=not args.no_progress)


def cmd_multimodal_world(args) -> None:
    from mmicl.data.worlds import make_multimodal_world, save_world

    save_world(make_multimodal_world(args.seed, args.K1, args.L1, args.D1, args.K2, args.L2,
                                     args.D2), args.out)


def _checked_stage2_inputs(entry: dict):
    """The multimodal world and the Stage-1 state, after checking they belong together."""
    from mmicl.config import stage2_specs
    from mmicl.data.worlds import load_world
    from mmicl.io import load_torch

    spec = entry["spec"]
    world_spec, seq, model_cfg = stage2_specs(spec["params1"], spec["params2"])
    world = load_world(entry["world"])
    got = (world.seed, world.m1.K, world.m1.L, world.m1.D, world.K2, world.L2, world.D2)
    want = (spec["seed"], *world_spec.values())
    if got != want:
        raise SystemExit(
            f"{entry['world']}: multimodal world {got} does not match the run's {want}"
        )
    stage1_world = load_world(entry["stage1_world"])
    if not world.m1.equals(stage1_world):
        raise SystemExit(
            f"{entry['world']}: its M1 prototypes/labels differ from the Stage-1 world "
            f"{entry['stage1_world']}; Stage 2 must see exactly the M1 world its checkpoint "
            f"learned"
        )
    state, model_path = None, entry.get("stage1_model")
    if model_path:
        state = load_torch(model_path)
        expected = {k: tuple(v.shape) for k, v in _fresh_decoder_state(model_cfg).items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if expected != found:
            raise SystemExit(
                f"{model_path}: Stage-1 checkpoint does not fit the Stage-2 decoder "
                f"(parameters differ: {sorted(set(expected.items()) ^ set(found.items()))[:4]})"
            )
    return world, seq, model_cfg, state


def _fresh_decoder_state(model_cfg):
    from mmicl.models.decoder import Decoder

    return Decoder(model_cfg.decoder).state_dict()


def _stage2_member(entry: dict):
    """The Member of a Stage-2 run entry {spec, world, stage1_world, stage1_model, out_dir}."""
    from mmicl.config import TrainConfig
    from mmicl.train import stage2_member

    spec = entry["spec"]
    world, seq, model_cfg, state = _checked_stage2_inputs(entry)
    p2 = spec["params2"]
    if p2["early_fusion"] != (state is None):
        raise SystemExit("early-fusion runs take no --stage1-model; two-stage runs need one")
    return stage2_member(
        world, seq, model_cfg, TrainConfig(**spec["train"]), entry["out_dir"], seed=spec["seed"],
        stage1_state=state, freeze_decoder=p2["freeze_decoder"], freeze_head=p2["freeze_head"],
        test_set_size=spec["eval"]["test_set_size"], device=spec.get("device", "cpu"), meta=spec,
        joint_G2=p2["G2"] if p2["label_mode"] == "joint" else None,
    )


def cmd_train_stage2(args) -> None:
    from mmicl.train import fit_member

    _set_threads(args.threads)
    spec = json.loads(args.spec)
    member = _stage2_member({"spec": spec, "world": args.world, "stage1_world": args.stage1_world,
                             "stage1_model": args.stage1_model, "out_dir": args.out_dir})
    fit_member(member, spec.get("device", "cpu"),
               spec["eval"]["attention_sequences"], progress=not args.no_progress)


MEMBER_KEYS = {1: ("spec", "world", "out_dir"),
               2: ("spec", "world", "stage1_world", "stage1_model", "out_dir")}


def cmd_train_cohort(args) -> None:
    """Train a cohort: runs listed as JSON entries (Stage 1: spec, world, out_dir; Stage 2 also
    stage1_world and stage1_model), trained in one process; up-to-date members are kept."""
    from mmicl.cohort import train_cohort

    _set_threads(args.threads)
    entries = json.loads(Path(args.members[1:]).read_text() if args.members.startswith("@")
                         else args.members)
    if not isinstance(entries, list) or not entries:
        raise SystemExit("--members: expected a non-empty JSON list of run entries")
    builders, shared = [], set()
    for i, entry in enumerate(entries):
        stage = 2 if "params2" in entry.get("spec", {}) else 1
        missing = [key for key in MEMBER_KEYS[stage] if key not in entry]
        if missing:
            raise SystemExit(f"--members[{i}]: Stage-{stage} entry lacks {', '.join(missing)}")
        spec = entry["spec"]
        shared.add((spec.get("device", "cpu"), spec["eval"]["attention_sequences"]))
        builders.append(lambda e=entry, s=stage: (_stage2_member if s == 2 else _stage1_member)(e))
    if len(shared) > 1:
        raise SystemExit(f"--members: a cohort shares one device and attention_sequences, got "
                         f"{sorted(shared)}")
    device, attention_sequences = shared.pop()
    done = train_cohort(builders, backend=args.backend, device=device,
                        attention_sequences=attention_sequences, progress=not args.no_progress,
                        checkpoint=args.checkpoint or None, reuse=not args.no_reuse)
    print(f"cohort of {len(entries)}: {len(done['trained'])} trained, {len(done['reused'])} "
          f"already up to date", file=sys.stderr)


def cmd_analyze_stage2(args) -> None:
    """Interventions (knockout, modality zeroing) and M1/M2 alignment of a trained Stage-2 run."""
    from mmicl.analysis.alignment import modality_alignment
    from mmicl.interventions import run_interventions
    from mmicl.io import write_parquet
    from mmicl.runs import load_run

    _set_threads(args.threads)
    run = load_run(args.run_dir)
    if run.stage != 2:
        raise SystemExit(f"{args.run_dir}: analyze-stage2 needs a Stage-2 run")
    interventions = run_interventions(run.model, run.test_sets, run.modulus, splits=("IC", "IW"))
    write_parquet(interventions, args.interventions)
    full_ic = interventions.query("intervention == 'full' and split == 'IC'").accuracy.item()
    rows = [{"split": name, **modality_alignment(run.model, run.test_sets[name]),
             "ic_accuracy": full_ic} for name in ("IC", "Test")]
    write_parquet(pd.DataFrame(rows), args.alignment)


def cmd_indicators(args) -> None:
    """Circuit indicators of every weight snapshot of one or more runs (Stage 1 or Stage 2)."""
    from mmicl.indicators import snapshot_indicators
    from mmicl.io import write_parquet
    from mmicl.runs import load_run
    from mmicl.train import Snapshots

    _set_threads(args.threads)
    if len(args.run_dir) != len(args.out):
        raise SystemExit(f"--run-dir lists {len(args.run_dir)} runs but --out {len(args.out)} "
                         f"files; give one output per run")
    for run_dir, out in zip(args.run_dir, args.out):
        run = load_run(run_dir, weights="")
        path = Path(run_dir) / "snapshots.pt"
        snapshots = Snapshots.load(path)
        states = ((it, snapshots.state(it)) for it in snapshots.iterations)
        try:
            table = snapshot_indicators(run.model, states, run.test_sets, run.layout, run.modulus,
                                        split=args.split)
        except RuntimeError as exc:  # load_state_dict: the snapshots belong to another model
            raise SystemExit(f"{path}: snapshot does not fit the run's model ({exc})") from None
        table.insert(0, "family", run.family)
        write_parquet(table, out)


def cmd_regression(args) -> None:
    """Pearson correlations and random-forest regression of IC accuracy on the indicators."""
    from mmicl.analysis.regression import RegressionConfig, regression_tables
    from mmicl.io import read_parquet, write_parquet

    cfg = RegressionConfig(**json.loads(args.settings))
    tables = {family: read_parquet(path) for family, path in
              (("unimodal", args.unimodal), ("multimodal", args.multimodal))}
    write_parquet(regression_tables(tables, cfg), args.out)


def cmd_findings(args) -> None:
    """Evaluate every finding of the paper on the collected tables."""
    from mmicl.analysis.findings import Settings, evaluate_findings, markdown
    from mmicl.io import atomic_write, read_parquet, write_parquet

    tables = {}
    for item in args.tables:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--tables expects name=path, got {item!r}")
        tables[name] = read_parquet(path)
    findings = evaluate_findings(tables, json.loads(args.context),
                                 Settings(**json.loads(args.settings)), args.tier)
    write_parquet(findings, args.out)
    text = markdown(findings)
    atomic_write(args.md, lambda tmp: tmp.write_text(text))


def cmd_table(args) -> None:
    from mmicl.figures import figure_module
    from mmicl.io import atomic_write, read_parquet

    context = json.loads(args.context)
    module = figure_module(args.name)
    rows = module.table(read_parquet(args.table), context["sweep"], context["defaults"])
    atomic_write(args.csv, lambda tmp: rows.to_csv(tmp, index=False))
    text = module.markdown(rows)
    atomic_write(args.md, lambda tmp: tmp.write_text(text))


def run_table(path: str | Path) -> pd.DataFrame:
    """A per-run table with the run's id, seed and parameters attached as columns."""
    from mmicl.config import content_dim
    from mmicl.io import read_parquet

    from mmicl.runs import read_spec

    path = Path(path)
    df = read_parquet(path)
    meta = read_spec(path.parent)
    if "params2" in meta:  # Stage 2: own parameters plus the Stage-1 ones as stage1.<key>
        p1 = dict(meta["params1"])
        p1["D"] = content_dim(p1)
        columns = {"run": meta["run"], "stage1_run": meta["stage1_run"], "seed": meta["seed"],
                   **meta["params2"], **{f"stage1.{k}": v for k, v in p1.items()}}
    else:
        params = dict(meta["params"])
        params["D"] = content_dim(params)
        columns = {"run": meta["run"], "seed": meta["seed"], **params}
    return df.assign(**columns)


def cmd_collect(args) -> None:
    from mmicl.io import write_parquet

    frames = [run_table(p) for p in args.inputs]
    write_parquet(pd.concat(frames, ignore_index=True), args.out)


def cmd_figure(args) -> None:
    from mmicl.figures import figure_module
    from mmicl.figures.common import save
    from mmicl.io import read_parquet

    context = json.loads(args.context)
    fig = figure_module(args.name).make(read_parquet(args.table), context["sweep"],
                                        context["defaults"])
    save(fig, args.pdf, args.png)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmicl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("world", help="draw a unimodal world and write it as Parquet")
    for key in ("seed", "K", "L", "D"):
        p.add_argument(f"--{key}", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_world)

    p = sub.add_parser("train-stage1", help="train one Stage-1 run")
    p.add_argument("--spec", required=True, help="resolved run spec as JSON")
    p.add_argument("--world", required=True, help="world Parquet file")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train_stage1)

    p = sub.add_parser("multimodal-world", help="draw a multimodal world (M1 + M2) as Parquet")
    for key in ("seed", "K1", "L1", "D1", "K2", "L2", "D2"):
        p.add_argument(f"--{key}", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_multimodal_world)

    p = sub.add_parser("train-stage2", help="train one Stage-2 (multimodal) run")
    p.add_argument("--spec", required=True, help="resolved run spec as JSON")
    p.add_argument("--world", required=True, help="multimodal world Parquet file")
    p.add_argument("--stage1-world", required=True, help="the Stage-1 world (M1 must match)")
    p.add_argument("--stage1-model", default="", help="Stage-1 model.pt (omit for early fusion)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train_stage2)

    p = sub.add_parser("train-cohort", help="train several runs in one process (a cohort)")
    p.add_argument("--members", required=True,
                   help="JSON list of run entries, or @file holding it")
    p.add_argument("--backend", default="auto",
                   help="auto | sequential | bmm | vmap (auto: sequential on CPU, bmm otherwise)")
    p.add_argument("--checkpoint", default="", help="resume file of a stacked (bmm/vmap) cohort")
    p.add_argument("--no-reuse", action="store_true",
                   help="retrain members even if their outputs are up to date")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train_cohort)

    p = sub.add_parser("analyze-stage2", help="knockouts, modality zeroing, alignment of a run")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--interventions", required=True)
    p.add_argument("--alignment", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_analyze_stage2)

    p = sub.add_parser("indicators", help="circuit indicators of every weight snapshot of a run")
    p.add_argument("--run-dir", required=True, nargs="+", help="one or more run folders")
    p.add_argument("--out", required=True, nargs="+", help="one Parquet file per run folder")
    p.add_argument("--split", default="IC", help="evaluation set the indicators use")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_indicators)

    p = sub.add_parser("regression", help="correlations and random forest of IC on indicators")
    p.add_argument("--unimodal", required=True, help="collected Stage-1 indicator table")
    p.add_argument("--multimodal", required=True, help="collected Stage-2 indicator table")
    p.add_argument("--settings", required=True, help="the config's regression section as JSON")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_regression)

    p = sub.add_parser("findings", help="test every finding of the paper on the tables")
    p.add_argument("--tables", nargs="+", required=True, help="name=path of collected tables")
    p.add_argument("--context", required=True, help="JSON: figures (sweeps) and defaults")
    p.add_argument("--settings", required=True, help="the config's findings section as JSON")
    p.add_argument("--tier", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--md", required=True)
    p.set_defaults(func=cmd_findings)

    p = sub.add_parser("table", help="write a table figure's rows as CSV and Markdown")
    p.add_argument("name")
    p.add_argument("--table", required=True)
    p.add_argument("--context", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("collect", help="concatenate per-run tables with run parameters attached")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("figure", help="draw one figure from its collected table")
    p.add_argument("name")
    p.add_argument("--table", required=True)
    p.add_argument("--context", required=True, help="JSON with the figure's sweep and defaults")
    p.add_argument("--pdf", required=True)
    p.add_argument("--png", required=True)
    p.set_defaults(func=cmd_figure)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())

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


def cmd_train_stage1(args) -> None:
    """Train one Stage-1 run from a resolved spec (JSON: run, seed, params, train, eval, device)."""
    from mmicl.config import TrainConfig, stage1_specs
    from mmicl.data.worlds import load_world
    from mmicl.train import train_run

    _set_threads(args.threads)
    spec = json.loads(args.spec)
    world_spec, seq, model_cfg = stage1_specs(spec["params"])
    world = load_world(args.world)
    expected = (spec["seed"], world_spec["K"], world_spec["L"], world_spec["D"])
    if (world.seed, world.K, world.L, world.D) != expected:
        raise SystemExit(
            f"{args.world}: world (seed, K, L, D) = {(world.seed, world.K, world.L, world.D)} "
            f"does not match the run's {expected}"
        )
    train_run(
        world, seq, model_cfg, TrainConfig(**spec["train"]), args.out_dir, seed=spec["seed"],
        test_set_size=spec["eval"]["test_set_size"],
        attention_sequences=spec["eval"]["attention_sequences"],
        device=spec.get("device", "cpu"), meta=spec, progress=not args.no_progress,
    )


def run_table(path: str | Path) -> pd.DataFrame:
    """A per-run table with the run's id, seed and parameters attached as columns."""
    from mmicl.config import content_dim
    from mmicl.io import read_parquet

    path = Path(path)
    df = read_parquet(path)
    try:
        meta = json.loads((path.parent / "config.json").read_text())["meta"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path.parent / 'config.json'}: missing or unreadable run config ({exc})")
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

"""Re-score a finished tier's findings as if its runs had been trained for fewer steps.

    python benchmarks/rescore.py results/laptop --map stage1:1000=800 --map stage2:750=400 \\
        [--map early_fusion:1500=800] [--config config.yaml --tier laptop] [--out DIR]

How the laptop tier's step counts were chosen (benchmarks/README.md, "Laptop tier"): the
training runs use a constant learning rate and one data stream, so a run stopped at step s is
the run trained for s steps, and its evaluation at s (`curve.parquet`; between evaluations, the
accuracies stored with every weight snapshot in `indicators.parquet`) is what the shorter run
would report. `--map KIND:FROM=TO` re-reads every run of KIND whose final step is FROM at step
TO; KIND is stage1, stage2 (Stage 2 from a Stage-1 decoder) or early_fusion. Fig. 6's Stage-2
indicators are cut at TO too. The findings are then evaluated with the sweeps and settings of
`--config` (the grids there may be coarser than the results': only their rows are read).

Not re-scored, and said so in the output: Table 2 (its knockouts need the model at that step),
the random-forest regression (it would have to be refitted on the cut indicators) and Section 5
(the real MLLM, not trained by the tier). Writes
the re-scored tables and findings under --out and prints old vs re-scored findings.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from mmicl import paths
from mmicl.analysis.findings import Settings, evaluate_findings, markdown
from mmicl.figures import VLM_FINDINGS_FILES, findings_context
from mmicl.plan.config import read_config_file, tier_config

KINDS = ("stage1", "stage2", "early_fusion")
NOT_RESCORED = ("table2", "regression")
SPLITS = ("Test", "IC", "IC2", "IW")


def parse_map(text: str) -> tuple[str, int, int]:
    """'stage2:750=400' -> ('stage2', 750, 400)."""
    try:
        kind, steps = text.split(":")
        old, new = (int(v) for v in steps.split("="))
    except ValueError:
        raise SystemExit(f"--map {text!r}: expected KIND:FROM=TO, e.g. stage2:750=400") from None
    if kind not in KINDS:
        raise SystemExit(f"--map {text!r}: KIND must be one of {', '.join(KINDS)}")
    if not 0 <= new <= old:
        raise SystemExit(f"--map {text!r}: TO must be between 0 and FROM")
    return kind, old, new


def run_dir(results: Path, row) -> Path:
    """The run folder of a table row (paths.run_dir; `results` is results/<tier>)."""
    stage1_run = getattr(row, "stage1_run", None)
    spec = SimpleNamespace(stage=2 if isinstance(stage1_run, str) else 1, tier=results.name,
                           run=row.run, stage1_run=stage1_run, seed=row.seed)
    return Path(paths.run_dir(str(results.parent), spec))


def row_kind(row) -> str:
    if not isinstance(getattr(row, "stage1_run", None), str):
        return "stage1"
    return "early_fusion" if bool(getattr(row, "early_fusion", False)) else "stage2"


class Curves:
    """Accuracy and loss of one run at any evaluated or snapshotted step."""

    def __init__(self, results: Path):
        self.results = results
        self._cache: dict[Path, tuple[pd.DataFrame, pd.DataFrame | None]] = {}

    def _load(self, folder: Path):
        if folder not in self._cache:
            curve = pd.read_parquet(folder / "curve.parquet")
            ind_path = folder / "indicators.parquet"
            snaps = None
            if ind_path.exists():
                snaps = (pd.read_parquet(ind_path, columns=["iteration", *[f"acc_{s}" for s in SPLITS]])
                         .drop_duplicates("iteration").set_index("iteration"))
            self._cache[folder] = (curve, snaps)
        return self._cache[folder]

    def last_step(self, folder: Path) -> int:
        curve, _ = self._load(folder)
        return int(curve.iteration.max())

    def at(self, folder: Path, split: str, step: int) -> tuple[float, float]:
        """(accuracy, loss) at `step`; loss is NaN when only a snapshot has the step."""
        curve, snaps = self._load(folder)
        hit = curve[(curve.iteration == step) & (curve.split == split)]
        if len(hit):
            return float(hit.accuracy.iloc[0]), float(hit.loss.iloc[0])
        if snaps is not None and step in snaps.index:
            return float(snaps.loc[step, f"acc_{split}"]), float("nan")
        steps = sorted(set(curve.iteration) | (set(snaps.index) if snaps is not None else set()))
        raise SystemExit(f"{folder}: no evaluation or snapshot at step {step} (has {steps}); "
                         "choose a TO the run evaluated or snapshotted")


def rescore_table(name: str, table: pd.DataFrame, results: Path, maps: dict, curves: Curves
                  ) -> tuple[pd.DataFrame, int]:
    """The table with every mapped run's rows read at the new step; (table, rows changed).
    A mapped run's training-accuracy rows (split `train`, the mean since the last evaluation)
    are dropped: between evaluations there is none to read, and no finding reads them."""
    if name in NOT_RESCORED or not {"run", "seed", "split", "accuracy", "iteration"} <= set(table):
        return table, 0
    table = table.copy()
    changed, dropped = 0, []
    for i, row in enumerate(table.itertuples(index=False)):
        new = maps.get((row_kind(row), int(row.iteration)))
        if new is None:
            continue
        if row.split not in SPLITS:
            dropped.append(i)
            continue
        acc, loss = curves.at(run_dir(results, row), row.split, new)
        table.iloc[i, table.columns.get_loc("accuracy")] = acc
        table.iloc[i, table.columns.get_loc("loss")] = loss
        table.iloc[i, table.columns.get_loc("iteration")] = new
        changed += 1
    return table.drop(index=table.index[dropped]), changed


def cut_dynamics(table: pd.DataFrame, maps: dict) -> pd.DataFrame:
    """Fig. 6: the Stage-2 indicator trajectory up to the new final step."""
    if "family" not in table:
        return table
    stage2 = table.family == "multimodal"
    last = int(table[stage2].iteration.max()) if stage2.any() else None
    new = maps.get(("stage2", last))
    if new is None:
        return table
    return table[~stage2 | (table.iteration <= new)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a finished tier's folder, e.g. results/laptop")
    parser.add_argument("--map", action="append", default=[], metavar="KIND:FROM=TO",
                        help="re-read runs of KIND ending at step FROM at step TO (repeatable)")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--tier", default=None, help="default: the results folder's name")
    parser.add_argument("--out", default=None, help="default: <results>/rescored")
    args = parser.parse_args(argv)

    results = Path(args.results)
    tables_dir = results / "tables"
    if not tables_dir.is_dir():
        raise SystemExit(f"{tables_dir}: no such folder (run the tier first)")
    maps = {}
    for text in args.map:
        kind, old, new = parse_map(text)
        maps[(kind, old)] = new
    config = read_config_file(args.config)
    config["tier"] = args.tier or results.name
    tier = tier_config(config)
    out = Path(args.out or results / "rescored")
    (out / "tables").mkdir(parents=True, exist_ok=True)

    curves = Curves(results)
    tables, changed = {}, {}
    for path in sorted(tables_dir.glob("*.parquet")):
        name = path.stem
        table, n = rescore_table(name, pd.read_parquet(path), results, maps, curves)
        if name == "fig6":
            table = cut_dynamics(table, maps)
        tables[name] = table
        changed[name] = n
        table.to_parquet(out / "tables" / path.name)
    for name, rel in VLM_FINDINGS_FILES.items():  # Section 5 (real MLLM): read as built
        if (results / "vlm" / rel).exists():
            tables[name] = pd.read_parquet(results / "vlm" / rel)
    findings = evaluate_findings(tables, findings_context(tier), Settings(**tier["findings"]),
                                 tier["tier"])
    findings.to_parquet(out / "findings.parquet")
    (out / "findings.md").write_text(markdown(findings))

    old_path = results / "findings.parquet"
    old = pd.read_parquet(old_path).set_index("id") if old_path.exists() else None
    print(f"re-scored {sum(changed.values())} rows: "
          + ", ".join(f"{k} {v}" for k, v in changed.items() if v)
          + f"; kept as built: {', '.join(NOT_RESCORED)}")
    print("| finding | built | re-scored |\n|---|---|---|")
    for r in findings.itertuples():
        if r.verdict == "n/a":
            continue
        before = (f"{old.loc[r.id, 'ours']:.3f} ± {old.loc[r.id, 'std']:.3f} "
                  f"{old.loc[r.id, 'verdict'].split(':')[0]}"
                  if old is not None and r.id in old.index else "-")
        print(f"| {r.id} | {before} | {r.ours:.3f} ± {r.std:.3f} {r.verdict.split(':')[0]} |")
    print(findings.verdict.str.split(":").str[0].value_counts().to_dict())


if __name__ == "__main__":
    main()

"""What a tier is doing: `mmicl progress` (runs done / running / waiting, step, latest IC and IW,
ETA) and `mmicl stale` (outputs made by code that has changed since). Reads only files in the
results folder (config.json, progress.json), so it works while Snakemake runs, locally or on a
cluster with a shared filesystem. Torch-free."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from mmicl import paths
from mmicl.plan.runs import all_runs
from mmicl.specs import RunSpec

PROGRESS_FILE = "progress.json"  # written by mmicl.train.loop at every evaluation
STALLED_AFTER_S = 600  # a running run updates progress.json every evaluation


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_status(results: str, spec: RunSpec, now: float | None = None) -> dict:
    """status: done | running | stopped (killed; resumes from resume.pt) | waiting."""
    now = time.time() if now is None else now
    run_dir = Path(paths.run_dir(results, spec))
    row = {"stage": spec.stage, "run": spec.run if spec.stage == 1 else
           f"{spec.stage1_run}/{spec.run}", "seed": spec.seed, "total": spec.train.iterations,
           "step": 0, "IC": None, "IW": None, "eta_s": None}
    progress = _read(run_dir / PROGRESS_FILE)
    if progress:
        row.update(step=progress["step"], IC=progress.get("IC"), IW=progress.get("IW"))
    if (run_dir / "config.json").exists() and (run_dir / "model.pt").exists():
        return {**row, "status": "done", "step": row["total"]}
    if not progress:
        return {**row, "status": "waiting"}
    if now - progress["updated"] > STALLED_AFTER_S:
        return {**row, "status": "stopped"}
    speed = progress.get("steps_per_s")
    eta = (row["total"] - row["step"]) / speed if speed else None
    return {**row, "status": "running", "eta_s": eta, "steps_per_s": speed}


def progress_rows(tier: Mapping, now: float | None = None) -> list[dict]:
    return [run_status(tier["results"], spec, now) for spec in all_runs(tier)]


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


def progress_table(tier: Mapping, show_all: bool = False, now: float | None = None) -> str:
    """Counts per status, an ETA, and one line per running (and stopped) run, or every run."""
    rows = progress_rows(tier, now)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "running", "stopped",
                                                             "waiting")}
    running = [r for r in rows if r["status"] == "running"]
    speed = sum(r.get("steps_per_s") or 0 for r in running)
    left = sum(r["total"] - r["step"] for r in rows if r["status"] != "done")
    eta = left / speed if speed else None
    lines = [f"tier {tier['tier']}: {len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in
                                                                    counts.items())
             + f"; {left:,} steps left, ETA {_fmt(eta)} at the current speed"]
    shown = rows if show_all else [r for r in rows if r["status"] in ("running", "stopped")]
    if shown:
        lines.append(f"{'status':8} {'step':>13} {'IC':>5} {'IW':>5} {'ETA':>7}  stage run (seed)")
        for r in shown:
            acc = [f"{r[k]:.2f}" if r[k] is not None else "-" for k in ("IC", "IW")]
            lines.append(f"{r['status']:8} {r['step']:>6}/{r['total']:<6} {acc[0]:>5} "
                         f"{acc[1]:>5} {_fmt(r['eta_s']):>7}  {r['stage']} {r['run']} "
                         f"(seed {r['seed']})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# outputs made by older code


def recorded_code(results: str, spec: RunSpec) -> str | None:
    """The training-code fingerprint a trained run's config.json records (None: not trained)."""
    config = _read(Path(paths.run_dir(results, spec)) / "config.json")
    return None if config is None else config.get("code_version")


def stale_runs(tier: Mapping) -> list[tuple[RunSpec, str]]:
    """(run, recorded code version) of every trained run of the tier made by other training
    code than this checkout's."""
    from mmicl.fingerprint import code_version

    current = code_version("training")
    out = []
    for spec in all_runs(tier):
        recorded = recorded_code(tier["results"], spec)
        if recorded is not None and recorded != current:
            out.append((spec, recorded))
    return out


def stale_message(tier: Mapping, stale: Mapping, cohorts) -> str:
    """Why the workflow stops, which runs, and the two ways on."""
    from mmicl.fingerprint import code_version

    jobs = [f"train_stage{c.stage}_{c.name}" for c in cohorts
            if any(m.key in stale for m in c.members)]
    runs = [spec for c in cohorts for spec in c.members if spec.key in stale]
    listed = "\n  ".join(paths.run_dir(tier["results"], s) for s in runs[:10])
    more = f"\n  ... and {len(runs) - 10} more" if len(runs) > 10 else ""
    return (f"{len(runs)} trained run(s) of tier {tier['tier']!r} were made by other training "
            f"code than this checkout's ({code_version('training')}; they record "
            f"{', '.join(sorted(set(stale.values())))}), in {len(jobs)} training job(s):\n  "
            f"{listed}{more}\nChoose: --config on_code_change=retrain (retrain them and "
            f"everything downstream) or --config on_code_change=keep (keep their outputs as "
            f"they are). `mmicl stale` lists every output made by older code.")


def stale_outputs(tier: Mapping, workdir: str | Path = ".") -> dict[str, list[str]]:
    """rule -> outputs of this tier whose code changed since Snakemake made them, read from
    Snakemake's own records (.snakemake/metadata: each rule's params carry `<group>@<code
    fingerprint>`, mmicl.fingerprint.code_param), plus trained runs whose config.json records
    older training code."""
    import base64

    from mmicl.fingerprint import code_version, parse_code_param

    out: dict[str, list[str]] = {}
    prefix = f"{tier['results']}/{tier['tier']}/"
    root = Path(workdir) / ".snakemake" / "metadata"
    for record in sorted(p for p in root.rglob("*") if p.is_file()):
        # Snakemake names a record by the urlsafe base64 of the output path, split into
        # "@"-prefixed directories when longer than a file name may be
        encoded = "".join(part.lstrip("@") for part in record.relative_to(root).parts)
        try:
            path = base64.urlsafe_b64decode(encoded).decode()
        except ValueError:
            continue
        meta = _read(record)
        if not meta or not path.startswith(prefix) or not Path(workdir, path).exists():
            continue
        for value in meta.get("params") or []:
            parsed = parse_code_param(value)
            if parsed and parsed[1] != code_version(parsed[0]):
                out.setdefault(meta.get("rule", "?"), []).append(path)
    for spec, _ in stale_runs(tier):
        path = paths.run_file(tier["results"], spec, "model.pt")
        rules = out.setdefault("training (config.json records older training code)", [])
        if path not in rules:
            rules.append(path)
    return out


def stale_table(tier: Mapping, workdir: str | Path = ".") -> str:
    found = stale_outputs(tier, workdir)
    if not found:
        return f"tier {tier['tier']}: every output was made by the current code"
    lines = [f"tier {tier['tier']}: outputs made by code that has changed since, by rule:"]
    for rule, files in sorted(found.items()):
        lines.append(f"  {rule}: {len(files)} file(s), e.g. {files[0]}")
    lines.append("Snakemake reruns them (params carry each rule's code fingerprint); training "
                 "waits for --config on_code_change=retrain|keep.")
    return "\n".join(lines)

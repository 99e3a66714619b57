"""Command line of Section 5 (paper Fig. 7, Table 3, Fig. 8): thin wrappers of
`mmicl.vlm.pipeline`, registered on `mmicl`'s parser by `add_parsers` (`mmicl vlm-* --help`).
Nothing heavy is imported until a command runs."""

from __future__ import annotations

import os
from pathlib import Path


def _vlm_common(args) -> dict:
    from mmicl.cli import _threads

    _threads(args.threads)
    return {"device": args.device, "dtype": args.dtype}


def cmd_vlm_setup(args) -> None:
    """The smoke tier's inputs: a tiny random Qwen2.5-VL + Qwen2.5 pair and an Open-MI fixture,
    each written into a temporary sibling and renamed into place."""
    import shutil
    import tempfile

    from mmicl.cli import _threads
    from mmicl.vlm.openmi import write_fixture
    from mmicl.vlm.tiny import save_tiny_pair

    _threads(args.threads)
    for out, write in ((args.models, save_tiny_pair),
                       (args.data, lambda d: write_fixture(d, n_queries=args.n_queries))):
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            write(tmp)
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def cmd_vlm_heads(args) -> None:
    from mmicl.vlm.pipeline import score_heads

    score_heads(model_path=args.model, data_root=args.data_root, model_name=args.name,
                out_parquet=args.out, out_json=args.top_json, n_shot=args.n_shot,
                n_examples=args.n_examples, seed=args.seed, **_vlm_common(args))


def cmd_vlm_compare(args) -> None:
    from mmicl.vlm.pipeline import compare_heads

    compare_heads(mllm_json=args.mllm_json, llm_json=args.llm_json, out_parquet=args.out)


def cmd_vlm_knockout(args) -> None:
    from mmicl.vlm.pipeline import run_knockout

    run_knockout(model_path=args.model, heads_json=args.heads_json, data_root=args.data_root,
                 out_parquet=args.out, out_examples=args.examples, n_shot=args.n_shot,
                 n_eval=args.n_eval, seed=args.seed, top_k=args.top_k,
                 random_seed=args.random_seed, **_vlm_common(args))


def cmd_vlm_finetune(args) -> None:
    from mmicl.cli import _json_arg
    from mmicl.vlm.pipeline import finetune

    lora = _json_arg(args.lora, "--lora")
    finetune(model_path=args.model, heads_json=args.heads_json, data_root=args.data_root,
             out_parquet=args.out, out_adapter=args.adapter, n_shot=args.n_shot,
             seed=args.seed, top_k=args.top_k, n_train=lora["n_train"], n_eval=lora["n_eval"],
             steps=lora["steps"], eval_every=lora["eval_every"],
             checkpoint_every=lora["eval_every"], lr=lora["lr"], lora_rank=lora["rank"],
             lora_alpha=lora["alpha"], gradient_checkpointing=not args.tiny,
             **_vlm_common(args))


def cmd_vlm_figure(args) -> None:
    """Fig. 7 / Table 3 / Fig. 8 from the Section-5 tables (concatenated)."""
    import pandas as pd

    from mmicl.figures import figure_module
    from mmicl.figures.common import save
    from mmicl.io import atomic_write, read_parquet

    module = figure_module(args.name)
    df = pd.concat([read_parquet(t) for t in args.tables], ignore_index=True)
    if args.csv:
        rows = module.table(df, {}, {})
        atomic_write(args.csv, lambda tmp: rows.to_csv(tmp, index=False))
        text = module.markdown(rows)
        atomic_write(args.md, lambda tmp: tmp.write_text(text))
    save(module.make(df, {}, {}), args.pdf, args.png)


def add_parsers(sub) -> None:
    """The vlm-* subcommands on `mmicl`'s subparsers."""
    p = sub.add_parser("vlm-setup", help="Section 5, smoke tier: tiny model pair + Open-MI fixture")
    p.add_argument("--models", required=True, help="folder for mllm/ and llm/")
    p.add_argument("--data", required=True, help="folder for open_mi/")
    p.add_argument("--n-queries", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_vlm_setup)

    def vlm_parser(name, text, func, model=True):
        p = sub.add_parser(name, help=text)
        if model:
            p.add_argument("--model", required=True, help="local checkpoint directory")
            p.add_argument("--data-root", default=None, help="VL-ICL root (else $VL_ICL_DATA_ROOT)")
            p.add_argument("--n-shot", type=int, default=2)
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--device", default="auto")
            p.add_argument("--dtype", default="auto")
            p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", required=True)
        p.set_defaults(func=func)
        return p

    p = vlm_parser("vlm-heads", "Section 5: PH/IH scores of every head (Fig. 7)", cmd_vlm_heads)
    p.add_argument("--name", required=True, choices=["mllm", "llm"])
    p.add_argument("--top-json", required=True)
    p.add_argument("--n-examples", type=int, default=None)
    p = vlm_parser("vlm-compare", "Section 5: top-k overlaps of two top_heads.json",
                   cmd_vlm_compare, model=False)
    p.add_argument("--mllm-json", required=True)
    p.add_argument("--llm-json", required=True)
    p = vlm_parser("vlm-knockout", "Section 5: top-head knockout (Table 3)", cmd_vlm_knockout)
    p.add_argument("--heads-json", required=True)
    p.add_argument("--examples", default=None, help="per-example Parquet")
    p.add_argument("--n-eval", type=int, default=50)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--random-seed", type=int, default=0)
    p = vlm_parser("vlm-finetune", "Section 5: LoRA dynamics (Fig. 8)", cmd_vlm_finetune)
    p.add_argument("--heads-json", required=True)
    p.add_argument("--adapter", required=True, help="output folder of the LoRA adapter")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--lora", required=True, help="JSON: rank alpha lr steps eval_every "
                   "n_train n_eval")
    p.add_argument("--tiny", action="store_true", help="no gradient checkpointing")

    p = sub.add_parser("vlm-figure", help="draw fig7 / table3 / fig8 from Section-5 tables")
    p.add_argument("name", choices=["fig7", "table3", "fig8"])
    p.add_argument("--tables", nargs="+", required=True)
    p.add_argument("--pdf", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--csv", default="")
    p.add_argument("--md", default="")
    p.set_defaults(func=cmd_vlm_figure)

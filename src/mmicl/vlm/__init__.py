"""The paper's Section 5 on a real MLLM: Qwen2.5-VL and its text backbone on VL-ICL Open-MI.

Head scores (Fig. 7), head knockout (Table 3) and LoRA dynamics (Fig. 8), reached through the same
model adapter as our synthetic decoders (`mmicl.analysis.adapter`). Nothing here downloads: the
models are local Hugging Face checkpoint directories and the data a local VL-ICL folder. Offline,
`mmicl.vlm.tiny` writes tiny random checkpoints with the real 36 x 16 head grid and
`mmicl.vlm.openmi.write_fixture` an Open-MI folder in the published layout, so the real loading
path runs in tests.

Hugging Face `transformers` and `peft` are an optional extra (`vlm`): the rest of the package never
imports them. Modules here call `require()` before the first import, so a missing extra fails with
the command that fixes it instead of a bare ModuleNotFoundError deep inside a job. torchvision is
deliberately absent: PyPI's build breaks beside the CPU torch wheel, and nothing here needs it (the
Qwen2-VL image processor has a PIL path).
"""

from __future__ import annotations

import importlib

EXTRA_PACKAGES = ("transformers", "peft")
INSTALL_HINT = 'pip install -e ".[vlm]"'


def require(*packages: str) -> None:
    """Import each package (default: every package of the `vlm` extra) or raise an ImportError
    that names the missing one and the pip command installing the extra."""
    for name in packages or EXTRA_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(
                f"mmicl.vlm needs the optional package {name!r}, which is not importable "
                f"({exc}). Install the extra with: {INSTALL_HINT}  (it installs transformers and "
                f"peft; do not install torchvision, see MLLM_OFFLINE.md G1)") from exc

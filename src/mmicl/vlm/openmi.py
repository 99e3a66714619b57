"""VL-ICL Open-MI (fast open-ended mini-ImageNet): loader, demonstration selection, test fixture.

The data is the Hugging Face dataset `ys-zong/VL-ICL` (git-lfs, then its `unzip.sh`); we never
download it. Published layout, paths inside the JSON files relative to the dataset root:

    <root>/open_mi/query.json      list of {image: [path], question, answer, classes,
                                            support: {class: {images: [paths], real_name}},
                                            real_name, ...}
    <root>/open_mi/support.json    (not read)
    <root>/open_mi/query/, support/  the images
    <root>/open_mi/{n}-shot.json   optional, the authors' prebuilt demonstrations:
        [{query: {image, answer, ...}, support: {"{n}-shot": [{image, answer}]}}]

Demonstrations are rebuilt exactly as the authors' `mllm_head_analysis.py` does (PAPER_PROTOCOL
§5.1), itself a copy of VL-ICL's `select_demonstration`: one `random.Random(seed)` shared by the
examples in file order; per example the query class and one other class drawn from `classes`,
their order swapped with probability 0.5, then `n_shot` rounds adding the i-th support image of
each class, so 2 * n_shot demonstrations. Answers are nonce words, so a 2-way task: chance 0.5.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

TASK = "open_mi"
ENV_ROOT = "VL_ICL_DATA_ROOT"
QUERY_FIELDS = ("image", "question", "answer", "classes", "support")
SOURCES = ("auto", "query", "prebuilt")
DATA_HINT = ("the Hugging Face dataset ys-zong/VL-ICL (fetch it with git-lfs, run its unzip.sh, "
             f"and pass its folder or set {ENV_ROOT})")

# Fixture vocabulary: the fork's artificial labels (and more for n_classes > 5), and real classes
# each drawn as a distinct procedural picture (colour, shape).
NONCE_NAMES = ("blicket", "dax", "shously", "perpo", "slation", "tufa", "gazzer", "zorb")
REAL_CLASSES = {  # real_name -> (RGB colour, shape)
    "dog": ((200, 40, 40), "ellipse"), "cat": ((40, 160, 40), "rectangle"),
    "ship": ((40, 60, 200), "triangle"), "bird": ((220, 180, 30), "cross"),
    "tree": ((150, 40, 170), "ellipse"), "house": ((30, 170, 170), "triangle"),
    "fish": ((240, 120, 30), "rectangle"), "car": ((110, 110, 110), "cross"),
}


@dataclass(frozen=True)
class Shot:
    image: str  # as stored: relative to the dataset root (e.g. "open_mi/support/x.png")
    answer: str  # the artificial class name
    real_name: str | None = None  # the true class (needed by the text-only prompt only)


@dataclass(frozen=True)
class Example:
    """One Open-MI query with its demonstrations. `question` is the query's own question from
    query.json; None on the prebuilt path (the prompt's demo question is used)."""

    index: int  # position in the source file
    root: Path  # dataset root; image paths are joined to it, as VL-ICL's load_image does
    image: str
    question: str | None
    answer: str
    real_name: str | None
    shots: tuple[Shot, ...]

    def path(self, image: str) -> Path:
        return self.root / image

    @property
    def images(self) -> list[Path]:
        """Demo images then the query image, in prompt order."""
        return [self.path(s.image) for s in self.shots] + [self.path(self.image)]


def data_root(root: str | Path | None = None) -> Path:
    """The VL-ICL root from the argument, else from $VL_ICL_DATA_ROOT; it must hold open_mi/."""
    if root is None:
        root = os.environ.get(ENV_ROOT)
        if not root:
            raise FileNotFoundError(f"no VL-ICL data root given and ${ENV_ROOT} is not set; "
                                    f"expected a folder holding {TASK}/ from {DATA_HINT}")
    root = Path(root)
    if not (root / TASK).is_dir():
        raise FileNotFoundError(
            f"{root}: no '{TASK}' folder; expected the VL-ICL layout <root>/{TASK}/{{query.json, "
            f"support.json, query/, support/}} from {DATA_HINT}")
    return root


def load_open_mi(root: str | Path | None = None, n_shot: int = 2, n_examples: int | None = None,
                 seed: int = 0, source: str = "auto", need_real_names: bool = False,
                 check_images: bool = True) -> list[Example]:
    """The first `n_examples` Open-MI queries with their demonstrations.

    source: "auto" = the prebuilt `{n_shot}-shot.json` when present, else query.json (the
    reference's order); "query" or "prebuilt" force one. need_real_names: the text-only (LLM)
    prompt needs `real_name` of the query and of every demo class; the prebuilt file may lack them.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}; expected one of {', '.join(SOURCES)}")
    if n_shot < 1:
        raise ValueError(f"n_shot={n_shot} must be >= 1")
    root = data_root(root)
    prebuilt = root / TASK / f"{n_shot}-shot.json"
    if source == "prebuilt" or (source == "auto" and prebuilt.is_file()):
        examples = _load_prebuilt(root, prebuilt, n_shot, n_examples)
    else:
        examples = _load_query_json(root, root / TASK / "query.json", n_shot, n_examples, seed)
    for ex in examples:
        if need_real_names and (ex.real_name is None or any(s.real_name is None for s in ex.shots)):
            raise ValueError(f"{root / TASK}: example {ex.index} lacks a real_name (query or demo "
                             f"class); the text-only prompt needs them (query.json has them)")
        if check_images:
            for image in ex.images:
                if not image.is_file():
                    raise FileNotFoundError(f"{image}: image of Open-MI example {ex.index} not "
                                            f"found; expected the unzipped query/ and support/ "
                                            f"folders of {DATA_HINT}")
    return examples


def select_demonstrations(entry: dict, n_shot: int, rng: random.Random) -> list[Shot]:
    """VL-ICL's select_demonstration for open_mi (consumes rng exactly like the reference)."""
    query_class = entry["answer"]
    other = rng.choice([c for c in entry["classes"] if c != query_class])
    order = [query_class, other]
    if rng.random() < 0.5:
        order = order[::-1]
    support = entry["support"]
    return [Shot(support[c]["images"][i], c, support[c].get("real_name"))
            for i in range(n_shot) for c in order]


def _read_json(path: Path) -> list:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected the {TASK} files of {DATA_HINT}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of entries, got {type(data).__name__}")
    return data


def _check_entry(path: Path, i: int, entry: dict, n_shot: int) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: entry {i} is a {type(entry).__name__}, expected an object")
    for key in QUERY_FIELDS:
        if key not in entry:
            raise ValueError(f"{path}: entry {i} has no field {key!r}; every query entry needs "
                             f"{', '.join(QUERY_FIELDS)}")
    if not entry["image"]:
        raise ValueError(f"{path}: entry {i} field 'image' is empty; expected a list of 1 path")
    classes = entry["classes"]
    if entry["answer"] not in classes or len(classes) < 2:
        raise ValueError(f"{path}: entry {i}: answer {entry['answer']!r} must be one of at least "
                         f"2 classes, got classes={classes}")
    for c in classes:
        images = entry["support"].get(c, {}).get("images")
        if images is None or len(images) < n_shot:
            raise ValueError(f"{path}: entry {i}: support[{c!r}]['images'] needs >= {n_shot} "
                             f"paths (n_shot), got {images!r}")


def _load_query_json(root: Path, path: Path, n_shot: int, n_examples: int | None,
                     seed: int) -> list[Example]:
    entries = _read_json(path)[:n_examples]
    rng = random.Random(seed)
    out = []
    for i, entry in enumerate(entries):
        _check_entry(path, i, entry, n_shot)
        shots = select_demonstrations(entry, n_shot, rng)
        out.append(Example(i, root, entry["image"][0], entry["question"], entry["answer"],
                           entry.get("real_name"), tuple(shots)))
    return out


def _load_prebuilt(root: Path, path: Path, n_shot: int, n_examples: int | None) -> list[Example]:
    key = f"{n_shot}-shot"
    out = []
    for i, entry in enumerate(_read_json(path)[:n_examples]):
        try:
            query, support = entry["query"], entry["support"][key]
            shots = tuple(Shot(s["image"][0], s["answer"], s.get("real_name")) for s in support)
            out.append(Example(i, root, query["image"][0], None, query["answer"],
                               query.get("real_name"), shots))
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"{path}: entry {i} lacks {exc}; expected {{query: {{image: [path], "
                             f"answer}}, support: {{{key!r}: [{{image: [path], answer}}]}}}}"
                             ) from exc
    return out


# --- fixture -------------------------------------------------------------------------------------

def write_fixture(root: str | Path, n_queries: int = 24, seed: int = 0, n_classes: int = 5,
                  images_per_class: int = 5, image_size: int = 56,
                  prebuilt_shots: tuple[int, ...] = (2,)) -> Path:
    """Write a small Open-MI folder in the real layout under `root` and return `root`.

    Each query draws `n_classes` real classes, names them with shuffled nonce words and gets its
    own support images (as in Open-MI, where every query carries its supports); images are
    procedural PIL pictures, one colour and shape per real class with jittered position and size.
    `prebuilt_shots` also writes authors-style `{n}-shot.json` files, built with the same
    demonstration selection and seed, so both loader paths give the same examples.
    """
    from PIL import Image, ImageDraw  # pillow comes with matplotlib

    if not 2 <= n_classes <= min(len(NONCE_NAMES), len(REAL_CLASSES)):
        raise ValueError(f"n_classes={n_classes}: expected 2..{len(NONCE_NAMES)}")
    root = Path(root)
    task = root / TASK
    for sub in ("query", "support"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    def draw(real: str, path: str) -> str:
        colour, shape = REAL_CLASSES[real]
        img = Image.new("RGB", (image_size, image_size), tuple(rng.randrange(200, 256)
                                                               for _ in range(3)))
        d = ImageDraw.Draw(img)
        s = image_size
        r = rng.uniform(0.22, 0.34) * s
        cx, cy = (rng.uniform(0.4, 0.6) * s for _ in range(2))
        box = (cx - r, cy - r, cx + r, cy + r)
        if shape == "ellipse":
            d.ellipse(box, fill=colour)
        elif shape == "rectangle":
            d.rectangle(box, fill=colour)
        elif shape == "triangle":
            d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
        else:
            d.rectangle((cx - r, cy - r / 3, cx + r, cy + r / 3), fill=colour)
            d.rectangle((cx - r / 3, cy - r, cx + r / 3, cy + r), fill=colour)
        img.save(root / path)
        return path

    entries, support_list = [], []
    for q in range(n_queries):
        reals = rng.sample(sorted(REAL_CLASSES), n_classes)
        names = rng.sample(NONCE_NAMES[:n_classes], n_classes)
        target = rng.randrange(n_classes)
        support = {}
        for name, real in zip(names, reals):
            paths = [draw(real, f"{TASK}/support/q{q:04d}_{name}_{k}.png")
                     for k in range(images_per_class)]
            support[name] = {"images": paths, "real_name": real}
            support_list += [{"image": [p], "answer": name, "real_name": real} for p in paths]
        entries.append({"id": q, "image": [draw(reals[target], f"{TASK}/query/q{q:04d}.png")],
                        "question": "This is a", "answer": names[target],
                        "real_name": reals[target], "classes": list(names), "support": support})
    (task / "query.json").write_text(json.dumps(entries, indent=1))
    (task / "support.json").write_text(json.dumps(support_list, indent=1))
    for n in prebuilt_shots:
        demo_rng = random.Random(seed)
        prebuilt = [{"query": {k: e[k] for k in ("id", "image", "answer", "real_name")},
                     "support": {f"{n}-shot": [{"image": [s.image], "answer": s.answer}
                                               for s in select_demonstrations(e, n, demo_rng)]}}
                    for e in entries]
        (task / f"{n}-shot.json").write_text(json.dumps(prebuilt, indent=1))
    return root

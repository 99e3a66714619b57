"""An offline "glyph Omniglot": the letters of the fonts matplotlib ships, rendered into the
Omniglot layout so that the smoke and laptop tiers run the image appendix through the same loader
as real Omniglot (which this machine cannot download). It is a stand-in: report its results as
"glyph Omniglot", never as Omniglot.

What it renders (`render_glyph_omniglot(root, seed)`):

* **Letters**: every code point of Unicode category Lu/Ll/Lt/Lo that a font's cmap maps to a
  glyph with ink (empty renders are dropped), in the scripts of `SCRIPTS` (the script is the
  prefix of `unicodedata.name`: LATIN, GREEK, ..., CANADIAN SYLLABICS, OLD ITALIC). Left out:
  modifier letters (Lm, superscript copies), ligatures, and the styled copies of Latin/Greek
  (MATHEMATICAL, DOUBLE-STRUCK, SCRIPT, BLACK-LETTER, ...). About 3,000 letters from 15 scripts.
* **Fonts** (`FONTS`): DejaVu Sans, Serif and Sans Mono in four styles each, STIX General in
  four, Computer Modern (cmr, cmb, cmss, cmti, cmtt, cmmi). The Computer Modern files use the
  BaKoMa encoding, where only ASCII letters sit at their Unicode code points, so only A-Z, a-z
  are taken from them; LastResort, the STIX size/non-Unicode variants and the Display subsets are
  not letter fonts.
* **One class per look**: letters whose canonical renders (the first font of `FONTS` that has
  them, ink cropped, fitted into 32 x 32, gray levels) lie within RMS distance `MERGE_THRESHOLD`
  = 0.02 (pixel values in [0, 1]) are one class (union-find, so the rule is transitive). The
  distances are bimodal: identical outlines (Latin A, Greek Alpha, Cyrillic A; Latin l, Arabic
  alef, Cyrillic palochka) fall below 0.01, the closest distinct letters (one diacritic apart) lie
  above 0.05. A class sits in the alphabet of its smallest code point and its drawings come from
  all its members' fonts.
* **20 drawings per class, like Omniglot's 20 drawers**: each a (member, font) style drawn at
  random (without repetition while styles last), fitted to 50-75 % of the 105-pixel box, with a
  random affine map (rotation +-10 deg, shear +-0.15, aspect +-10 %, shift +-6 px) and stroke jitter
  (one 3x3 erosion or dilation, or none), then binarised: strokes 0, background 255, 1-bit PNG.
  The randomness of a class comes from numpy's default_rng([seed, code point]), so a class
  renders the same whatever else is rendered, and a seed gives byte-identical PNGs (for the same
  Pillow/FreeType build; their versions go into the manifest).
* **Split**: alphabets in `EVALUATION_SCRIPTS` (Arabic, Canadian syllabics, Coptic, Lisu, N'Ko,
  Ogham, Old Italic, Tifinagh) go to images_evaluation, the rest (Armenian, Cyrillic, Georgian,
  Greek, Hebrew, Lao, Latin) to images_background. That puts about 40 % of the classes in
  evaluation, as Omniglot (659 of 1623), and makes the last 128 sorted classes (the novel classes
  of the IC test) letters of four scripts that training never sees (Tifinagh, Old Italic, Ogham
  and N'Ko).

The tree is written to a hidden temporary directory beside `<root>/omniglot-py` and renamed into
place at the end, so a killed render leaves no `omniglot-py` that looks complete. A manifest
`omniglot-py/glyphs.json` lists every class with its code points and the counts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageDraw, ImageFont, features

from mmicl.data.images.omniglot import DRAWINGS, OMNIGLOT_DIR, SPLITS
from mmicl.io import write_json

FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf", "STIXGeneral.ttf",
    "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf", "cmmi10.ttf",
)
ASCII_ONLY_PREFIX = "cm"  # BaKoMa-encoded Computer Modern: only ASCII letters are trustworthy
SCRIPTS = (  # unicodedata.name prefix -> alphabet folder; two-word prefixes first
    ("CANADIAN SYLLABICS", "Canadian_Syllabics"), ("OLD ITALIC", "Old_Italic"),
    ("LATIN", "Latin"), ("GREEK", "Greek"), ("CYRILLIC", "Cyrillic"), ("ARMENIAN", "Armenian"),
    ("GEORGIAN", "Georgian"), ("HEBREW", "Hebrew"), ("ARABIC", "Arabic"),
    ("TIFINAGH", "Tifinagh"), ("OGHAM", "Ogham"), ("NKO", "NKo"), ("LISU", "Lisu"),
    ("COPTIC", "Coptic"), ("LAO", "Lao"),
)
EVALUATION_SCRIPTS = frozenset({"Arabic", "Canadian_Syllabics", "Coptic", "Lisu", "NKo", "Ogham",
                                "Old_Italic", "Tifinagh"})
LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lo"})
MERGE_THRESHOLD = 0.02  # RMS distance of canonical 32x32 renders (values in [0, 1])
CANON_SIZE = 32
FONT_PX = 96  # master renders: glyphs ~70 px, drawn into the box at scale ~0.7-1.1
IMAGE_SIZE = 105
MIN_INK = 10  # pixels of ink below which a master render counts as empty (.notdef-free blanks)
# A small subset for the smoke tier (~320 classes: 154 background, 166 evaluation, ~6 s CPU):
# Basic Latin + Latin-1 and Greek letters (background), the first 128 Canadian syllabics and
# Tifinagh (evaluation), so K2 <= 192 with the 128 novel classes.
SMOKE_BLOCKS = ((0x0000, 0x00FF), (0x0391, 0x03C9), (0x1401, 0x1480), (0x2D30, 0x2D7F))


def font_dir() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def script_of(cp: int) -> str | None:
    """The alphabet of a letter code point, or None if it is not a letter of SCRIPTS."""
    ch = chr(cp)
    if unicodedata.category(ch) not in LETTER_CATEGORIES:
        return None
    name = unicodedata.name(ch, "")
    if "LIGATURE" in name:
        return None
    for prefix, alphabet in SCRIPTS:
        if name.startswith(prefix + " "):
            return alphabet
    return None


def smoke_codepoints() -> list[int]:
    """The code points of SMOKE_BLOCKS (pass as `codepoints` to render the smoke subset)."""
    return [cp for lo, hi in SMOKE_BLOCKS for cp in range(lo, hi + 1)]


def letter_inventory(codepoints=None, fonts=FONTS) -> dict[int, list[str]]:
    """code point -> the fonts (in `fonts` order) whose cmap holds it."""
    wanted = None if codepoints is None else set(codepoints)
    inventory: dict[int, list[str]] = {}
    for font in fonts:
        path = font_dir() / font
        if not path.exists():
            continue
        for cp in sorted(FT2Font(str(path)).get_charmap()):
            if font.startswith(ASCII_ONLY_PREFIX) and cp >= 0x80:
                continue
            if (wanted is None or cp in wanted) and script_of(cp) is not None:
                inventory.setdefault(cp, []).append(font)
    return dict(sorted(inventory.items()))


class _Masters:
    """Cropped gray renders (ink = 255) at FONT_PX, one per (code point, font), memoised."""

    def __init__(self):
        self._fonts, self._cache = {}, {}

    def __call__(self, cp: int, font: str) -> Image.Image | None:
        key = (cp, font)
        if key not in self._cache:
            if font not in self._fonts:
                self._fonts[font] = ImageFont.truetype(str(font_dir() / font), FONT_PX)
            face, ch = self._fonts[font], chr(cp)
            left, top, right, bottom = face.getbbox(ch)
            canvas = Image.new("L", (max(right - left, 1) + 8, max(bottom - top, 1) + 8), 0)
            ImageDraw.Draw(canvas).text((4 - left, 4 - top), ch, font=face, fill=255)
            box = canvas.getbbox()
            ink = 0 if box is None else int((np.asarray(canvas) > 127).sum())
            self._cache[key] = canvas.crop(box) if ink >= MIN_INK else None
        return self._cache[key]


def canonical(master: Image.Image, size: int = CANON_SIZE) -> np.ndarray:
    """The ink box fitted into size x size (aspect kept, centred), float in [0, 1]."""
    w, h = master.size
    scale = size / max(w, h)
    small = master.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                          Image.Resampling.BOX)
    out = Image.new("L", (size, size), 0)
    out.paste(small, ((size - small.size[0]) // 2, (size - small.size[1]) // 2))
    return np.asarray(out, dtype=np.float32) / 255.0


def merge_lookalikes(bitmaps: np.ndarray, threshold: float = MERGE_THRESHOLD) -> list[list[int]]:
    """Groups (lists of row indices, ascending) of bitmaps (n, ...) joined by RMS distance
    <= threshold, transitively; groups ordered by their first index."""
    x = bitmaps.reshape(len(bitmaps), -1).astype(np.float64)
    sq = (x * x).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0) / x.shape[1])
    parent = list(range(len(x)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(dist <= threshold, 1))):
        a, b = find(int(i)), find(int(j))
        parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(x)):
        groups.setdefault(find(i), []).append(i)
    return [groups[k] for k in sorted(groups)]


def render_drawing(master: Image.Image, rng: np.random.Generator, size: int = IMAGE_SIZE):
    """One binary drawing (mode "1": strokes 0, background 1) of a master under a random affine
    map and stroke jitter (after binarising). Draws exactly 7 numbers from rng."""
    side, aspect, angle, shear, dx, dy = (rng.uniform(0.5, 0.75) * size, rng.uniform(-0.1, 0.1),
                                          rng.uniform(-10, 10), rng.uniform(-0.15, 0.15),
                                          rng.uniform(-6, 6), rng.uniform(-6, 6))
    stroke = int(rng.integers(-1, 2))  # -1 erode, 0 none, +1 dilate
    w, h = master.size
    scale = side / max(w, h)
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    forward = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(
        [scale * np.exp(aspect), scale * np.exp(-aspect)])
    inverse = np.linalg.inv(forward)
    # PIL maps each output pixel p to the input point inverse @ (p - centre - shift) + centre_in.
    offset = np.array([w / 2, h / 2]) - inverse @ np.array([size / 2 + dx, size / 2 + dy])
    img = master.transform((size, size), Image.Transform.AFFINE,
                           (inverse[0, 0], inverse[0, 1], offset[0],
                            inverse[1, 0], inverse[1, 1], offset[1]),
                           resample=Image.Resampling.BILINEAR, fillcolor=0)
    ink = np.asarray(img) >= 128
    if stroke:
        jittered = _morph(ink, dilate=stroke > 0)
        if jittered.sum() >= MIN_INK:  # never erode a glyph away
            ink = jittered
    return Image.fromarray(~ink)  # True = background (white), strokes False (black), as Omniglot


def _morph(ink: np.ndarray, dilate: bool) -> np.ndarray:
    """3x3 binary dilation (any ink in the neighbourhood) or erosion (all ink)."""
    padded = np.pad(ink, 1, constant_values=False)
    h, w = ink.shape
    shifts = [padded[i:i + h, j:j + w] for i in range(3) for j in range(3)]
    return np.logical_or.reduce(shifts) if dilate else np.logical_and.reduce(shifts)


@dataclass(frozen=True)
class GlyphClass:
    split: str
    alphabet: str
    folder: str
    codepoints: tuple[int, ...]  # members, ascending; the first is the representative
    styles: tuple[tuple[int, str], ...]  # (code point, font) pairs with ink


@dataclass(frozen=True)
class GlyphReport:
    root: Path
    n_letters: int  # letters with ink before merging
    n_classes: int
    n_merged_letters: int  # letters absorbed into another letter's class
    n_merge_groups: int  # classes with more than one letter
    alphabets: dict  # alphabet -> (split, classes)
    seconds: float  # wall time of the render
    cpu_seconds: float  # CPU time of this process (the wall time is inflated on a busy host)


def plan_classes(codepoints=None, threshold: float = MERGE_THRESHOLD):
    """(classes in loader order, number of letters with ink, masters): the merge and the split."""
    masters = _Masters()
    styles = {cp: [(cp, f) for f in fonts if masters(cp, f) is not None]
              for cp, fonts in letter_inventory(codepoints).items()}
    letters = [cp for cp, s in styles.items() if s]
    canon = np.stack([canonical(masters(*styles[cp][0])) for cp in letters]) if letters else \
        np.zeros((0, CANON_SIZE, CANON_SIZE), np.float32)
    groups = [[letters[i] for i in g] for g in merge_lookalikes(canon, threshold)]
    by_alphabet: dict[str, list[list[int]]] = {}
    for members in groups:
        by_alphabet.setdefault(script_of(members[0]), []).append(members)
    classes = []
    for split in SPLITS:
        evaluation = split == SPLITS[1]
        for alphabet in sorted(a for a in by_alphabet if (a in EVALUATION_SCRIPTS) == evaluation):
            for i, members in enumerate(sorted(by_alphabet[alphabet])):
                folder = f"character{i + 1:04d}_U+{members[0]:04X}"
                classes.append(GlyphClass(split, alphabet, folder, tuple(members),
                                          tuple(s for cp in members for s in styles[cp])))
    return classes, len(letters), masters


def _render_class(cls: GlyphClass, global_id: int, folder: Path, masters, seed: int,
                  drawings: int, size: int) -> None:
    rng = np.random.default_rng([seed, cls.codepoints[0]])
    n = len(cls.styles)
    order = rng.permutation(n)
    picks = [order[i % n] for i in range(drawings)]  # every style once before any repeats
    folder.mkdir(parents=True)
    for j, k in enumerate(picks):
        drawing = render_drawing(masters(*cls.styles[k]), rng, size)
        drawing.save(folder / f"{global_id:04d}_{j + 1:02d}.png", compress_level=1)


def render_glyph_omniglot(root: str | os.PathLike, seed: int = 0, drawings: int = DRAWINGS,
                          size: int = IMAGE_SIZE, codepoints=None,
                          threshold: float = MERGE_THRESHOLD,
                          overwrite: bool = False) -> GlyphReport:
    """Render the glyph set into <root>/omniglot-py (see the module docstring); `codepoints`
    restricts the letters (tests). An existing tree is kept unless overwrite=True."""
    start, cpu_start = time.perf_counter(), time.process_time()
    root = Path(root)
    target = root / OMNIGLOT_DIR
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to render it again")
    classes, n_letters, masters = plan_classes(codepoints, threshold)
    if {c.split for c in classes} != set(SPLITS):
        raise ValueError(f"the letters asked for fill only one of {SPLITS}; the Omniglot layout "
                         f"needs both (evaluation alphabets: {sorted(EVALUATION_SCRIPTS)})")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{OMNIGLOT_DIR}.", dir=root))
    try:
        for gid, cls in enumerate(classes, start=1):
            _render_class(cls, gid, tmp / cls.split / cls.alphabet / cls.folder, masters, seed,
                          drawings, size)
        alphabets = {}
        for cls in classes:
            alphabets.setdefault(cls.alphabet, [cls.split, 0])[1] += 1
        report = GlyphReport(root, n_letters, len(classes), n_letters - len(classes),
                             sum(len(c.codepoints) > 1 for c in classes),
                             {a: tuple(v) for a, v in alphabets.items()}, 0.0, 0.0)
        write_json(_manifest(report, classes, seed, drawings, size, threshold), tmp / "glyphs.json")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return GlyphReport(**{**report.__dict__, "seconds": time.perf_counter() - start,
                          "cpu_seconds": time.process_time() - cpu_start})


def _manifest(report: GlyphReport, classes, seed, drawings, size, threshold) -> dict:
    """Everything that determines the PNGs, and the class list; no timings, so that the whole
    tree is byte-identical for a seed."""
    return {
        "format": "mmicl-glyph-omniglot-v1", "seed": seed, "drawings": drawings,
        "image_size": size, "merge_threshold": threshold, "fonts": list(FONTS),
        "versions": {"matplotlib": matplotlib.__version__, "pillow": Image.__version__,
                     "freetype": features.version("freetype2")},
        "n_letters": report.n_letters, "n_classes": report.n_classes,
        "n_merged_letters": report.n_merged_letters, "n_merge_groups": report.n_merge_groups,
        "alphabets": {a: {"split": s, "classes": n}
                      for a, (s, n) in sorted(report.alphabets.items())},
        "classes": [{"split": c.split, "alphabet": c.alphabet, "folder": c.folder,
                     "codepoints": [f"U+{cp:04X}" for cp in c.codepoints],
                     "names": [unicodedata.name(chr(cp)) for cp in c.codepoints]}
                    for c in classes],
    }

"""From a run's parameters to the typed specs the library trains with (torch-free).

`resolve(spec)` is the one place where config keys become a world, a sequence spec and a model
config; adding a run option means a config key, its schema entry, and a line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mmicl.data.specs import MultimodalSpec, SequenceSpec
from mmicl.models.specs import PE_KINDS, DecoderConfig, MultimodalConfig
from mmicl.specs.images import IMAGE_SOURCES, encoder_spec, image_keys
from mmicl.specs.run import RunSpec, WorldKey


@dataclass(frozen=True)
class Resolved:
    world: WorldKey
    sequences: SequenceSpec | MultimodalSpec
    model: DecoderConfig | MultimodalConfig
    modulus: int  # label modulus of the swapped-label (IC2) targets
    joint_G2: int | None = None  # joint-label Stage 2: M2 groups (labels need both modalities)
    encoder: object = None  # Stage 2 with an M2 encoder: its EncoderConfig (mmicl.specs.images)
    m2_data: str = "gaussian"  # M2 items: Gaussian vectors or an image source


def content_dim(params: Mapping) -> int:
    """D of a run: an int, or a per-PE mapping (APE 63 and hybrid 62 keep the width at 128)."""
    D = params["D"]
    if isinstance(D, Mapping):
        if params["pe"] not in D:
            raise ValueError(f"D has no entry for pe={params['pe']!r}; got keys {sorted(D)}")
        return int(D[params["pe"]])
    return int(D)


def stage1_specs(params: Mapping, seed: int = 0) -> Resolved:
    """World, training-sequence spec and decoder config of one Stage-1 parameter dict."""
    if params["pe"] not in PE_KINDS:
        raise ValueError(f"pe={params['pe']!r} is not a known position encoding; expected one "
                         f"of: {', '.join(PE_KINDS)}")
    K, L = int(params["K"]), int(params["L"])
    if K % L:
        raise ValueError(f"K={K} must be a multiple of L={L} (every label owns K/L classes)")
    D = content_dim(params)
    seq = SequenceSpec(N=params["N"], B=params["B"], p_bursty=params["p_bursty"],
                       p_novel=params["p_novel"], eps=params["eps"], alpha=params["alpha"],
                       no_repeats=params["no_repeats"])
    model = DecoderConfig(content_dim=D, n_labels=L, n_layers=params["n_layers"],
                          n_heads=params["n_heads"], pe=params["pe"],
                          rope_impl=params["rope_impl"], rope_theta=float(params["rope_theta"]),
                          rms_norm=params["rms_norm"], mlp_variant=params["mlp_variant"])
    return Resolved(WorldKey(seed, K, L, D), seq, model, L)


def stage2_specs(p1: Mapping, p2: Mapping, seed: int = 0) -> Resolved:
    """Multimodal world, triplet-sequence spec and model config of one Stage-2 run."""
    s1 = stage1_specs(p1, seed)
    m1 = s1.world
    K2, L2, D2 = int(p2["K2"]), int(p2["L2"]), int(p2["D2"])
    joint = p2["label_mode"] == "joint"
    if joint:
        # joint labels g1*G2 + g2 over the whole M1 vocabulary: G1 = L1 / G2, and the world's
        # M2 grouping is k mod G2 (so the world is the multimodal one with L2 = G2)
        if m1.L1 % p2["G2"]:
            raise ValueError(f"G2={p2['G2']} must divide L1={m1.L1} (G1 = L1 / G2)")
        L2 = int(p2["G2"])
    if L2 > m1.L1:
        raise ValueError(f"L2={L2} exceeds L1={m1.L1}: M2 labels are a subset of M1's")
    if K2 % L2:
        raise ValueError(f"K2={K2} must be a multiple of L2={L2} (every label owns K2/L2 classes)")
    seq = MultimodalSpec(N=p2["N"], B=p2["B"], p_bursty=p2["p_bursty"], p_novel=p2["p_novel"],
                         eps1=p2["eps1"], eps2=p2["eps2"], alpha1=p2["alpha1"],
                         alpha2=p2["alpha2"], no_repeats=p2["no_repeats"],
                         n_novel2=p2["n_novel2"] or None)
    encoder = encoder_spec(m1.D1, p2)
    m2_data = image_keys(p2)["m2_data"]
    if m2_data in IMAGE_SOURCES and joint:
        raise ValueError(f"m2_data={m2_data!r}: image M2 runs use standard labels")
    # the projector reads the encoder's features; an image run's world has a placeholder M2
    # dimension of 1 (images replace its M2 items; mmicl.data.images.stream.image_world)
    model = MultimodalConfig(decoder=s1.model, m2_dim=encoder.out_dim if encoder else D2,
                             projector=p2["projector"])
    world = WorldKey(seed, m1.K1, m1.L1, m1.D1, K2, L2, 1 if m2_data in IMAGE_SOURCES else D2)
    return Resolved(world, seq, model, m1.L1 if joint else L2, int(p2["G2"]) if joint else None,
                    encoder, m2_data)


def resolve(spec: RunSpec) -> Resolved:
    if spec.stage == 1:
        return stage1_specs(spec.params1, spec.seed)
    return stage2_specs(spec.params1, spec.params2, spec.seed)

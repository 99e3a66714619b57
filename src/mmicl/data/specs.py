"""The sequence specifications (how training and test sequences are drawn), free of torch so
that planning the workflow (mmicl.config, the Snakefile) does not import it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SequenceSpec:
    """How sequences are drawn; defaults are the reference's Stage-1 settings except p_novel."""

    N: int = 8  # context (item, label) pairs; sequence length 2N+1
    B: int = 4  # burstiness: a bursty context holds N/B classes, each B times; 0 => B=N/2, p_bursty=0
    p_bursty: float = 1.0  # probability that an in-distribution sequence is bursty
    p_novel: float = 0.0  # probability that a sequence uses fresh novel classes (always bursty)
    eps: float = 0.1  # within-class noise; exemplars keep E||x||^2 = 1 for every eps
    alpha: float = 0.0  # Zipf exponent over class index; 0 = uniform
    no_repeats: bool = False  # bursty slots carry N/B distinct labels (uniform classes, ignores Zipf)
    flip_labels: bool = False  # swapped-label ICL: in-distribution context labels show (label+1) % L
    n_novel: int = 128  # novel (OOD) prototypes drawn fresh per call; L must divide it
    n_max: int = 32  # APE shift range: offset ~ U{0..2*n_max-2N}

    def __post_init__(self) -> None:
        self._check_lengths()
        self._check_burstiness()
        for key in ("p_bursty", "p_novel"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key}={value} must lie in [0, 1]")
        for key in ("eps", "alpha"):
            value = getattr(self, key)
            if not value >= 0.0:
                raise ValueError(f"{key}={value} must be >= 0")

    def _check_lengths(self) -> None:
        for key in ("N", "n_novel", "n_max"):
            value = getattr(self, key)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{key}={value!r} must be a positive integer")
        if self.N > self.n_max:
            raise ValueError(
                f"N={self.N} exceeds n_max={self.n_max}: the 2N+1 tokens must fit the "
                f"2*n_max+1 APE position columns"
            )

    def _check_burstiness(self) -> None:
        N, B = self.N, self.B
        if not isinstance(B, int) or B < 0:
            raise ValueError(f"B={B!r} must be a non-negative integer (0 means non-bursty)")
        if B == 0 and N % 2 != 0:
            raise ValueError(f"B=0 means B=N/2 for novel contexts, but N={N} is odd")
        if B > 0 and N % B != 0:
            raise ValueError(f"N={N} is not divisible by B={B} (a bursty context repeats N/B classes B times)")
        if B >= N:
            raise ValueError(f"B={B} must be smaller than N={N}")

    @property
    def burst(self) -> int:
        """Effective B: the reference's B=0 convention uses N/2 for the (always bursty) novel branch."""
        return self.B if self.B > 0 else self.N // 2

    @property
    def bursty_prob(self) -> float:
        """Effective p_bursty: B=0 makes every in-distribution sequence non-bursty."""
        return self.p_bursty if self.B > 0 else 0.0

    @property
    def n_slots(self) -> int:
        """Distinct classes drawn for a bursty context."""
        return self.N // self.burst

    @property
    def max_offset(self) -> int:
        return 2 * self.n_max - 2 * self.N


@dataclass(frozen=True)
class MultimodalSpec:
    N: int = 8
    B: int = 4  # 0 => B = N/2 for novel contexts and every in-distribution sequence non-bursty
    p_bursty: float = 1.0
    p_novel: float = 0.0
    eps1: float = 0.1
    eps2: float = 0.1
    alpha1: float = 0.0
    alpha2: float = 0.0
    no_repeats: bool = False
    flip_labels: bool = False
    n_novel1: int = 128
    n_novel2: int | None = None  # None: the reference's K_c2 (one novel M2 class per label, §9.10)
    n_max: int = 32  # APE block of 2*n_max+1 = 65 columns, as Stage 1, so checkpoints load

    def __post_init__(self):
        for key in ("eps1", "eps2", "alpha1", "alpha2"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")
        if not isinstance(self.n_novel1, int) or self.n_novel1 <= 0:
            raise ValueError(f"n_novel1={self.n_novel1!r} must be a positive integer")
        # The remaining shared checks (N, B, probabilities) through the unimodal spec.
        self.as_unimodal()
        if 3 * self.N + 2 > 2 * self.n_max + 1:
            raise ValueError(f"N={self.N}: 3N+2 tokens exceed the {2 * self.n_max + 1} APE columns")
        if self.n_novel2 is not None and self.n_novel2 <= 0:
            raise ValueError(f"n_novel2={self.n_novel2} must be positive")

    def as_unimodal(self) -> SequenceSpec:
        return SequenceSpec(N=self.N, B=self.B, p_bursty=self.p_bursty, p_novel=self.p_novel,
                            eps=self.eps1, alpha=self.alpha1, no_repeats=self.no_repeats,
                            n_novel=self.n_novel1, n_max=self.n_max)

    def novel_m2_count(self, K1: int, K2: int, L2: int) -> int:
        if self.n_novel2 is not None:
            return self.n_novel2
        return max(L2, (128 * K2 // K1) // L2 * L2)

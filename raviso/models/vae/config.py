"""`VAEConfig`: the VAE's shape (torch-free, so the CLI can build its options without torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ...core.config import OptionError, option

PAPER_HIDDEN = (4096, 2048, 1024, 512)
PAPER_GENES = 18965


@dataclass
class VAEConfig:
    """Plain values only, so it round-trips through JSON (RUN/config.json) unchanged."""

    n_genes: int = option(PAPER_GENES, cli=False)
    hidden: tuple[int, ...] = option(help="Encoder widths, comma list; the decoder mirrors them.",
                                     factory=lambda: PAPER_HIDDEN)
    latent_dim: int = option(256, "Latent size.")
    beta: float = option(1.0, "KL weight; 0 = plain deterministic autoencoder.")
    learned_variance: bool = option(False, "Per-gene observation variance [unit].",
                                    flag="--learned-variance/--unit-variance", show_default=False)

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.latent_dim < 1:
            raise OptionError("latent_dim", "must be >= 1")
        if not self.hidden or min(self.hidden) < 1:
            raise OptionError("hidden", f"must be positive widths (got {self.hidden})")
        if self.n_genes < 1:
            raise OptionError("n_genes", "must be >= 1")
        if self.beta < 0:
            raise OptionError("beta", f"must be >= 0, got {self.beta}")

    @property
    def deterministic(self) -> bool:
        return self.beta == 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

"""What a Hot-Ham network configuration amounts to: the configuration, its parameter count part
by part, and the warnings building it gives (``hotham model info``)."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import HothamError

PARTS = ("embedding", "layers", "last", "onsite", "hopping", "soc_onsite", "soc_hopping")   # soc_*: spin="soc"


@dataclass
class ModelInfo:
    """A network's configuration (:class:`hotham.nn.model.HotHamConfig`), parameter count,
    parameters per part and the warnings its construction gave."""

    config: object
    parameters: int
    parts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """``{"config", "parameters"}`` as indented JSON."""
        return json.dumps({"config": json.loads(self.config.model_dump_json()), "parameters": self.parameters},
                          indent=2)

    def text(self) -> str:
        return "\n".join(["Hot-Ham model configuration:", self.config.to_json(), f"parameters: {self.parameters:,}",
                          *(f"  {part:10s} {n:>10,}" for part, n in self.parts.items())])


def species_shells(basis: Mapping[str, str]) -> dict[str, tuple[int, ...]]:
    """Element -> shell l's of OpenMX basis labels; the PAO part may be left out
    (``{"C": "s2p2d1"}`` reads as ``C-s2p2d1``)."""
    from ..basis import parse_openmx_basis
    return {sym: parse_openmx_basis(label if "-" in label else f"{sym}-{label}") for sym, label in basis.items()}


def model_info(basis: Mapping[str, str] | None = None, **config) -> ModelInfo:
    """Build the network of ``config`` (fields of HotHamConfig) for the elements and OpenMX
    basis labels of ``basis`` (default: HotHamConfig's species) and describe it."""
    from pydantic import ValidationError

    from .model import HotHam, HotHamConfig
    if basis:
        config["species"] = species_shells(basis)
    try:
        cfg = HotHamConfig(**config)
    except ValidationError as exc:
        raise HothamError(f"invalid model configuration: {exc}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = HotHam(cfg)
    parts = {part: sum(p.numel() for p in getattr(model, part).parameters()) for part in PARTS if hasattr(model, part)}
    return ModelInfo(cfg, model.n_parameters, parts, [str(w.message) for w in caught])

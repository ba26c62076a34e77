"""The frozen pretrained language model: texts in, unit vectors out."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from workers.config import EncoderConfig
from workers.pooling import POOLERS, l2_normalize

log = logging.getLogger(__name__)


def pick_device(num_gpus: float) -> torch.device:
    """CUDA when GPUs were requested and one is visible, CPU otherwise."""
    if num_gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


class TextEncoder:
    """Loads any Hugging Face encoder directory offline and embeds texts in batches.

    ``encode(texts)``: n texts -> (n, dim) float32, rows L2-normalised.
    """

    def __init__(self, config: EncoderConfig) -> None:
        # Nothing may be downloaded at run time: load strictly from the directory.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        # Ray pins OMP_NUM_THREADS to the actor's CPU reservation; the encoder is the
        # one CPU-heavy actor, so give it the threads asked for (0 = every core).
        torch.set_num_threads(config.torch_threads or os.cpu_count() or 1)
        path = config.resolved_model_path()
        self.config = config
        self.device = pick_device(config.num_gpus)
        # Weights from safetensors only (never a pickle), no code from the model folder.
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=False
        )
        self.model = AutoModel.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, trust_remote_code=False
        )
        self.model.eval().to(self.device)
        self.pool = POOLERS[config.pooling]
        self.dim = int(self.model.config.hidden_size)
        log.info("encoder %s loaded on %s (dim %d)", path, self.device, self.dim)

    def dimension(self) -> int:
        return self.dim

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """n texts -> (n, dim) float32 unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out: list[torch.Tensor] = []
        step = self.config.batch_size
        for start in range(0, len(texts), step):
            chunk = [t if t.strip() else " " for t in texts[start : start + step]]
            tokens = self.tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=self.config.max_length,
                return_tensors="pt",
            ).to(self.device)
            states = self.model(**tokens).last_hidden_state
            pooled = self.pool(states, tokens["attention_mask"])
            out.append(l2_normalize(pooled.float()).cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)


class LazyEncoder:
    """A `TextEncoder` of this process, loaded on the first text: a recommender embeds
    its events' texts itself (no shared encoder on the per-event path), and one that
    never sees event text never loads the model."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.encoder: TextEncoder | None = None

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.encoder is None:
            self.encoder = TextEncoder(self.config)
        return self.encoder.encode(texts)

"""Online training of the adapters from the live event stream (pure torch + numpy).

`Sample` (history -> next item) goes into a bounded `ReplayBuffer`; `OnlineTrainer`
caches the items' frozen base vectors and, when `due`, runs a bounded `train_round`
of contrastive (InfoNCE) steps with in-batch and sampled catalog negatives, then bumps
the adapter's version; `TrainingConfig` holds its settings. No Ray, Kafka or Qdrant.
"""

from workers.training.buffer import ReplayBuffer, Sample
from workers.training.config import TrainingConfig
from workers.training.trainer import OnlineTrainer, RoundReport

__all__ = ["OnlineTrainer", "ReplayBuffer", "RoundReport", "Sample", "TrainingConfig"]

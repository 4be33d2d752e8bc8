"""Which training clips an epoch visits: every labelled clip, plus a share of the unlabeled ones.

With thousands of unlabeled clips (no known label: they feed only the teacher terms), visiting
all of them every epoch makes each epoch several times longer. ``distill.unlabeled_per_epoch``
= ``k`` visits a fresh random subset of ``k`` unlabeled clips per epoch instead, next to all
labelled clips, shuffled together. The epoch length is the same every epoch (the OneCycle
schedule counts its steps up front), and the order follows from the loader's generator, which
the trainer reseeds from ``(seed, epoch)``, so a resumed run repeats an epoch exactly.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from pipeline.errors import ConfigError
from pipeline.manifests import Clip, is_unlabeled


class UnlabeledSubsetSampler(Sampler[int]):
    """All ``labelled`` indices plus ``per_epoch`` of the ``unlabeled`` ones, in a random order.

    Each ``iter()`` draws the unlabeled subset and the order from ``generator`` (the
    DataLoader's, reseeded per epoch by the trainer), so equal generator states give equal
    epochs.

    Args:
        labelled: dataset indices visited every epoch.
        unlabeled: dataset indices of which ``per_epoch`` are drawn each epoch.
        per_epoch: unlabeled indices per epoch (capped at ``len(unlabeled)``), >= 0.
        generator: the random source.

    Raises:
        ConfigError: ``per_epoch`` < 0.
    """

    def __init__(self, labelled: Sequence[int], unlabeled: Sequence[int], per_epoch: int,
                 generator: torch.Generator) -> None:
        if per_epoch < 0:
            raise ConfigError(f"distill.unlabeled_per_epoch must be >= 0 or null, got {per_epoch}")
        self.labelled = torch.as_tensor(list(labelled), dtype=torch.int64)
        self.unlabeled = torch.as_tensor(list(unlabeled), dtype=torch.int64)
        self.per_epoch = min(int(per_epoch), len(self.unlabeled))
        self.generator = generator

    def __len__(self) -> int:
        return len(self.labelled) + self.per_epoch

    def __iter__(self) -> Iterator[int]:
        picked = self.unlabeled[torch.randperm(len(self.unlabeled), generator=self.generator)[: self.per_epoch]]
        pool = torch.cat([self.labelled, picked])
        yield from pool[torch.randperm(len(pool), generator=self.generator)].tolist()


def unlabeled_sampler(clips: Sequence[Clip] | None, per_epoch: int | None, generator: torch.Generator, *,
                      distributed: bool = False) -> UnlabeledSubsetSampler | None:
    """The epoch sampler for ``distill.unlabeled_per_epoch``, or None for plain shuffling.

    Args:
        clips: the training dataset's clips, in dataset order (None: a dataset without clips).
        per_epoch: ``distill.unlabeled_per_epoch``; None visits every clip every epoch.
        generator: the DataLoader's generator.
        distributed: True under torchrun (DistributedSampler shards the clips).

    Returns:
        None when ``per_epoch`` is None, else an :class:`UnlabeledSubsetSampler`.

    Raises:
        ConfigError: ``per_epoch`` set under torchrun, or negative.
    """
    if per_epoch is None:
        return None
    if distributed:
        raise ConfigError(f"distill.unlabeled_per_epoch={per_epoch} is not supported under torchrun; set it to "
                          "null (every unlabeled clip each epoch) or train on one process")
    flags = [is_unlabeled(c) for c in clips or ()]
    return UnlabeledSubsetSampler([i for i, u in enumerate(flags) if not u], [i for i, u in enumerate(flags) if u],
                                  per_epoch, generator)

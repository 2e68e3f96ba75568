"""Run trainings under ``torchrun`` and check after every epoch that all ranks hold the same state.

Used by ``tests/test_distributed.py``::

    torchrun --standalone --nproc_per_node=2 tests/ddp_check.py OUT_DIR CONFIG_JSON [OUT_DIR CONFIG_JSON ...]

Each ``CONFIG_JSON`` is a :class:`~simlabel_ext.train.TrainConfig` as a JSON object; the runs are trained one
after the other in the same process group (one launch: the start-up of the processes is most of the cost).
After every epoch each rank hashes its imputation store (classes, confidence, epoch, step, revisions), its
similarity matrix, its engine's labels and kappa and its model parameters; the hashes are all-gathered and must
be identical on every rank (every rank raises otherwise, so none is left waiting in a collective).

Rank 0 writes ``OUT_DIR/ddp_epochs.json``: one record per epoch with the hashes, the number of imputed entries
and each rank's item count per step of that epoch; and ``OUT_DIR/final_state.pt``: the final store state,
similarity and model parameters (loaded by the test with ``weights_only=True`` to compare against a one-process
run).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as tdist

from simlabel_ext.train import (
    TrainConfig,
    Trainer,
    init_distributed,
    shutdown_distributed,
)

STORE_FIELDS = ("classes", "confidence", "epoch", "step", "revisions")


def digest(tensor: torch.Tensor) -> str:
    t = tensor.detach().cpu().contiguous()
    return hashlib.sha256(str((t.dtype, tuple(t.shape))).encode() + t.numpy().tobytes()).hexdigest()


def state_digests(trainer: Trainer) -> dict[str, str]:
    out = {f"store.{name}": digest(getattr(trainer.store, name)) for name in STORE_FIELDS}
    out["similarity"] = digest(trainer.similarity)
    out["kappa"] = digest(trainer.engine.kappa())
    out["engine_labels"] = digest(trainer.engine.labels())
    out["model"] = hashlib.sha256(b"".join(digest(p).encode() for p in trainer.model.state_dict().values())).hexdigest()
    return out


def train_and_check(dist, out_dir: Path, config: TrainConfig) -> None:
    records: list[dict] = []

    def on_epoch_end(trainer: Trainer, record: dict) -> None:
        mine = state_digests(trainer)
        # this rank's shard size at every step of the epoch just finished (the sampler is deterministic)
        shard_sizes = [len(items) for items in trainer.batches.epoch(record["epoch"] - 1)]  # records count from 1
        gathered: list = [None] * dist.world_size
        tdist.all_gather_object(gathered, {"rank": dist.rank, "digests": mine, "shard_sizes": shard_sizes,
                                           "imputed": len(trainer.store)})
        assert [g["rank"] for g in gathered] == list(range(dist.world_size))
        for other in gathered[1:]:
            differ = sorted(k for k in mine if other["digests"][k] != gathered[0]["digests"][k])
            assert not differ, f"epoch {record['epoch']}: rank {other['rank']} differs from rank 0 in {differ}"
            assert other["imputed"] == gathered[0]["imputed"]
        records.append({"epoch": record["epoch"], "imputed": record["imputed"], "digests": gathered[0]["digests"],
                        "shard_sizes": [g["shard_sizes"] for g in gathered]})
        if dist.is_main:
            (out_dir / "ddp_epochs.json").write_text(json.dumps(records, indent=1))

    trainer = Trainer(config, out_dir, dist=dist, on_epoch_end=on_epoch_end)
    trainer.fit()
    if dist.is_main:
        store = {name: getattr(trainer.store, name).clone() for name in ("classes", "confidence", "epoch", "step",
                                                                         "revisions")}  # dense [N, A], to compare
        torch.save({"store": store, "similarity": trainer.similarity.cpu().clone(),
                    "model": trainer.model.state_dict()}, out_dir / "final_state.pt")


def main() -> int:
    runs = sys.argv[1:]
    assert runs and len(runs) % 2 == 0, "usage: ddp_check.py OUT_DIR CONFIG_JSON [OUT_DIR CONFIG_JSON ...]"
    configs = [(Path(runs[k]), TrainConfig.from_dict(json.loads(runs[k + 1]), "ddp_check"))
               for k in range(0, len(runs), 2)]
    dist = init_distributed(configs[0][1].device)
    assert dist.world_size > 1 and tdist.is_initialized(), "run me under torchrun with --nproc_per_node >= 2"
    try:
        for out_dir, config in configs:
            train_and_check(dist, out_dir, config)
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Data-parallel training under torchrun (Gloo on CPU): ranks stay in sync, rank 0 writes."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import os, sys, torch
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.stage2_fixtures import make_fake_data, distill_config, small_student
from pipeline.data import ClipDataset
from pipeline.audio_source import AudioSource
from pipeline.losses import EAsTObjective
from pipeline.train import Trainer

torch.set_num_threads(1)
# Each process builds the same (seeded) data in its own folder.
data = make_fake_data(Path({data!r} + os.environ["RANK"]), [4.0] * 16, seed=1)
audio = AudioSource(data.audio_root, data.sample_rate, data.cache)
train = ClipDataset(data.clips, audio, clip_seconds=4.0, teacher_store=data.store, random_crop=True)
valid = ClipDataset(data.clips[:8], audio, clip_seconds=4.0, teacher_store=data.store)
torch.manual_seed(0)
model = small_student(4, data.sample_rate)
cfg = distill_config(epochs=2, batch_size=4, variant="east-final", lam=0.3)
trainer = Trainer(model, EAsTObjective(variant="east-final", lam=0.3), cfg, Path({run!r}), device="cpu")
result = trainer.fit(train, valid, progress=False)
torch.save(model.state_dict(), Path({run!r}) / f"rank{{os.environ['RANK']}}.pt")
# one string, one write: the two ranks share the pipe and print's separate pieces could interleave
sys.stdout.write(f"epochs {{result.epochs_run}} world {{trainer.dist.world}}\\n")
sys.stdout.flush()
"""


@pytest.mark.slow
def test_torchrun_two_processes_train_in_sync(tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    run = tmp_path / "run"
    script.write_text(textwrap.dedent(SCRIPT.format(root=str(ROOT), data=str(tmp_path / "data"), run=str(run))))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=1800, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("epochs 2 world 2") == 2
    import torch

    rank0 = torch.load(run / "rank0.pt", weights_only=True)
    rank1 = torch.load(run / "rank1.pt", weights_only=True)
    weights = [name for name in rank0 if "running_" not in name and "num_batches" not in name]
    assert len(weights) > 10
    for name in weights:  # DDP averages gradients: both replicas end with the same weights
        torch.testing.assert_close(rank0[name], rank1[name])
    # (BatchNorm running statistics are per process between DDP's broadcasts; rank 0's are saved.)
    history = (run / "history.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + 2 epochs, written once (rank 0 only)
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()

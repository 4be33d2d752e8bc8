"""SIGTERM during training: ``last.pt`` is saved at the step reached, and the rerun resumes from it.

Three real processes train the same small run: one straight through, one that gets a real
SIGTERM from this test in the middle of its second epoch, and the rerun of the second. The
rerun must end with exactly the weights of the straight run (CPU is deterministic).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, time, torch
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.stage2_fixtures import make_fake_data, distill_config, small_student
from pipeline.data import AudioSource, ClipDataset
from pipeline.errors import TrainingInterrupted
from pipeline.losses import EAsTObjective
from pipeline.train import Trainer

slow = sys.argv[2] == "slow"
torch.set_num_threads(1)
data = make_fake_data(Path({data!r}), [4.0] * 16, seed=1)
audio = AudioSource(data.audio_root, data.sample_rate, data.cache)
train = ClipDataset(data.clips, audio, clip_seconds=4.0, teacher_store=data.store, random_crop=True)
valid = ClipDataset(data.clips[:8], audio, clip_seconds=4.0, teacher_store=data.store)
model = small_student(4, data.sample_rate, dropout=0.2)
cfg = distill_config(epochs=3, batch_size=4, variant="east-final", lam=0.3, mixup_alpha=0.4)

class Announcing(Trainer):
    def _step(self, run, batch):
        super()._step(run, batch)
        print("step", run.state.epoch + 1, run.state.step, flush=True)
        if slow:
            time.sleep(0.3)

trainer = Announcing(model, EAsTObjective(variant="east-final", lam=0.3), cfg, Path(sys.argv[1]),
                     teacher_times=train.teacher_times(), teacher_window=data.window)
try:
    result = trainer.fit(train, valid, progress=False)
except TrainingInterrupted as exc:
    print("interrupted", exc, flush=True)
    sys.exit(143)
print("done", result.epochs_run, flush=True)
"""


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(root=str(ROOT), data=str(tmp_path / "data"))))

    def train(run: Path, mode: str = "fast") -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(run), mode], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    straight = train(tmp_path / "straight")
    out, err = straight.communicate(timeout=1800)
    assert straight.returncode == 0 and "done 3" in out, err[-3000:]

    run = tmp_path / "resumed"
    child = train(run, "slow")
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("step 2 2"):  # the middle of the second epoch (4 steps per epoch)
            child.send_signal(signal.SIGTERM)
            break
    out, err = child.communicate(timeout=1800)
    assert child.returncode == 143, err[-3000:]
    assert "interrupted stopped by SIGTERM in epoch 2" in out
    saved = torch.load(run / "last.pt", weights_only=True)
    assert int(saved["epoch"]) == 1 and int(saved["step"]) in (2, 3)
    assert len((run / "history.csv").read_text().strip().splitlines()) == 2  # header + epoch 1

    rerun = train(run)
    out, err = rerun.communicate(timeout=1800)
    assert rerun.returncode == 0 and "done 3" in out, err[-3000:]
    assert out.startswith(f"step 2 {int(saved['step']) + 1}\n")  # no step trained twice
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(run / "last.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (run / "history.csv").read_text().count("\n") == 4


def test_the_cli_reports_an_interruption_in_one_line_with_status_143(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Through the real group and ``main``: not a user error (exit 1), not a traceback."""
    import click

    from pipeline import cli as cli_module
    from pipeline.errors import TrainingInterrupted

    @click.command()
    def boom() -> None:
        raise TrainingInterrupted("stopped by SIGTERM in epoch 2, step 1; runs/x/last.pt holds the state")

    monkeypatch.setattr(cli_module.LazyGroup, "get_command", lambda self, ctx, name: boom)
    with pytest.raises(SystemExit) as stopped:
        cli_module.main(["boom"])
    assert stopped.value.code == 143
    err = capsys.readouterr().err
    assert err.strip() == "interrupted: stopped by SIGTERM in epoch 2, step 1; runs/x/last.pt holds the state"

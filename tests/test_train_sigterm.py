"""Ctrl-C, SIGTERM or SIGHUP during training: ``last.pt`` is saved at the step reached, and the rerun resumes.

Three real processes train the same small run: one straight through, one that gets a real
signal from this test in the middle of its second epoch, and the rerun of the second. The
rerun must end with exactly the weights of the straight run (CPU is deterministic).

No timing: the interrupted process holds its step until the test has seen, on its stderr,
that the signal was received (a handshake), so the signal always lands in step 2 of epoch 2.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline

tiny_pipeline = stage2_fixtures.tiny_pipeline

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.stage2_fixtures import make_fake_data, distill_config, small_student
from pipeline.data import ClipDataset
from pipeline.audio_source import AudioSource
from pipeline.errors import TrainingInterrupted
from pipeline.losses import EAsTObjective
from pipeline.train import Trainer

hold = sys.argv[2] == "hold"
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
        if hold and (run.state.epoch, run.state.step) == (1, 2):
            sys.stdin.readline()  # the test releases the step once the signal was received

trainer = Announcing(model, EAsTObjective(variant="east-final", lam=0.3), cfg, Path(sys.argv[1]))
try:
    result = trainer.fit(train, valid, progress=False)
except TrainingInterrupted as exc:
    print("interrupted", exc, flush=True)
    sys.exit(128 + exc.signum)
print("done", result.epochs_run, flush=True)
"""


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def _train(script: Path, run: Path, mode: str = "fast") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(run), mode], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The training script and the last.pt of the run trained straight through (shared by the signals)."""
    root = tmp_path_factory.mktemp("train-signals")
    script = root / "train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(root=str(ROOT), data=str(root / "data"))))
    proc = _train(script, root / "straight")
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0 and "done 3" in out, err[-3000:]
    return script, root / "straight" / "last.pt"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_saves_a_checkpoint_and_the_rerun_resumes(tmp_path: Path, straight: tuple[Path, Path],
                                                           sig: signal.Signals) -> None:
    script, straight_last = straight

    def train(run: Path, mode: str = "fast") -> subprocess.Popen:
        return _train(script, run, mode)

    run = tmp_path / "resumed"
    child = train(run, "hold")
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    for line in child.stdout:
        if line.startswith("step 2 2"):  # the middle of the second epoch (4 steps per epoch); the step is held
            child.send_signal(sig)
            break
    received = next((line for line in child.stderr if line.startswith(("received ", "Traceback"))), "")
    assert received.startswith(f"received {sig.name}: saving"), received
    child.stdin.write("\n")  # the handshake is done: release the held step
    child.stdin.close()
    out = child.stdout.read()
    child.wait(timeout=1800)
    assert child.returncode == 128 + sig, child.stderr.read()[-3000:]
    assert f"interrupted stopped by {sig.name} in epoch 2, step 2;" in out
    saved = torch.load(run / "last.pt", weights_only=True)
    assert int(saved["epoch"]) == 1 and int(saved["step"]) == 2
    assert len((run / "history.csv").read_text().strip().splitlines()) == 2  # header + epoch 1

    rerun = train(run)
    out, err = rerun.communicate(timeout=1800)
    assert rerun.returncode == 0 and "done 3" in out, err[-3000:]
    assert out.startswith("step 2 3\n")  # no step trained twice
    a, b = _weights(straight_last), _weights(run / "last.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (run / "history.csv").read_text().count("\n") == 4


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_the_cli_reports_an_interruption_in_one_line_with_128_plus_the_signal(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sig: signal.Signals, code: int) -> None:
    """Through the real group and ``main``: not a user error (exit 1), not a traceback."""
    import click

    from pipeline import cli as cli_module
    from pipeline.errors import TrainingInterrupted

    message = f"stopped by {sig.name} in epoch 2, step 1; runs/x/last.pt holds the state"

    @click.command()
    def boom() -> None:
        raise TrainingInterrupted(message, signum=sig)

    monkeypatch.setattr(cli_module.LazyGroup, "get_command", lambda self, ctx, name: boom)
    with pytest.raises(SystemExit) as stopped:
        cli_module.main(["boom"])
    assert stopped.value.code == code
    err = capsys.readouterr().err
    assert err.strip() == f"interrupted: {message}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_pipeline_distill_saves_the_step_on_ctrl_c_and_resumes(
        tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], sig: signal.Signals) -> None:
    """The real command: the signal is sent to this process from inside step 1 (deterministic, no timing)."""
    import os

    from pipeline import cli as cli_module
    from pipeline.train import Trainer

    run = tmp_path / "run"
    argv = ["--params", str(tiny_pipeline.params), "distill", "--variant", "east-final", "--epochs", "2",
            "--run-dir", str(run), "--no-progress"]
    real_step = Trainer._step

    def step_then_signal(self: Trainer, state, batch) -> None:  # noqa: ANN001
        real_step(self, state, batch)
        if (state.state.epoch, state.state.step) == (0, 1):
            os.kill(os.getpid(), sig)  # as the terminal sends it, during the first epoch

    monkeypatch.setattr(Trainer, "_step", step_then_signal)
    with pytest.raises(SystemExit) as stopped:
        cli_module.main(argv)
    assert stopped.value.code == 128 + sig
    err = capsys.readouterr().err
    assert f"received {sig.name}: saving {run / 'last.pt'} after this step" in err
    assert f"interrupted: stopped by {sig.name} in epoch 1, step 1; {run / 'last.pt'} holds the state" in err
    saved = torch.load(run / "last.pt", weights_only=True)
    assert (int(saved["epoch"]), int(saved["step"])) == (0, 1)
    monkeypatch.setattr(Trainer, "_step", real_step)
    cli_module.main(argv)  # the same command resumes and finishes
    assert "best valid mAP" in capsys.readouterr().out
    assert int(torch.load(run / "last.pt", weights_only=True)["epoch"]) == 2

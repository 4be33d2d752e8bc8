"""A user with the official OpenL3 weight file runs stage one by naming it (--weights)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.stores import open_store
from tests.extract_fixtures import make_dataset

pytest.importorskip("tensorflow", reason="the official-format .h5 is written with tf-keras")


@pytest.mark.slow
@pytest.mark.tf
def test_extract_openl3_from_an_official_h5(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.fixtures_tf_teachers import reference_dir

    h5 = reference_dir(tmp_path_factory.getbasetemp()) / "openl3_audio_mel128_music.h5"
    params = make_dataset(tmp_path, n_clips=2, seconds=2.5)
    result = CliRunner().invoke(cli, ["--params", str(params), "extract", "--teacher", "openl3",
                                      "--weights", str(h5), "--no-progress"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "stores" / "openl3")
    assert store.spec.dim == 512 and store.spec.sample_rate == 48000
    # centered 0.96 s hop on 2.5 s: openl3 pads 0.5 s in front and the tail to a full hop
    assert store.entry("clip000").n_frames == 1 + int(np.ceil((2.5 + 0.5 - 1.0) / 0.96))
    np.testing.assert_allclose(store.frame_times("clip000")[:3], [0.0, 0.96, 1.92], atol=1e-9)
    assert np.isfinite(store.read("clip000").astype(np.float32)).all()
    # The audio cache holds the students' rate, not the teacher's 48 kHz.
    assert open_store(tmp_path / "stores" / "openl3" / "audio").spec.sample_rate == 16000

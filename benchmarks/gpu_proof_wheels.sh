#!/usr/bin/env bash
# Download into .whl/ (git-ignored) the wheels that benchmarks/gpu_proof.py needs on the lent GPU
# machine and that its image lacks or has at other versions (diffusers, pydantic and its parts are
# missing there; transformers, peft and regex are pinned to ours). The versions are the ones
# installed in the Python that runs this script, so the device runs what the tiny test ran here.
# The device is Python 3.12 on x86-64. Run once, from the repository root, with the venv active:
#   bash benchmarks/gpu_proof_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(diffusers transformers peft pydantic pydantic_core annotated-types typing-inspection
          typing_extensions platformdirs regex)
pins=()
for package in "${packages[@]}"; do
  pins+=("$package==$(python -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$package")")
done
rm -rf .whl && mkdir -p .whl
python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
ls .whl && du -sh .whl

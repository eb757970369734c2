#!/usr/bin/env bash
# Wheels for the GPU check (benchmarks/bench_gpu.py): the packages meddata needs that the
# device machine's image (Python 3.12, torch, torchvision, pyarrow, pandas, pillow, rich,
# click, fsspec...) does not have. They go to .whl/ (git-ignored via .git/info/exclude) and
# travel with `carry: [".whl"]`; see benchmarks/README.md, "GPU check". Left out, to stay under
# the 64 MiB a device call may carry (polars alone is 54 MB): the JPEG plugins for compressed
# DICOM, nibabel (never imported by meddata) and zstandard (only zstd cells need it; the check
# uses PNG and JPEG cells).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  polars==2.1.0 polars-runtime-32==2.1.0 pydantic==2.14.4 pydantic-core==2.50.5 \
  annotated-types==0.8.0 typing-inspection==0.4.5 pydicom==3.0.2 \
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
du -sh .whl

#!/usr/bin/env bash
# Installs stgvcodec into ./.venv: `bash install.sh` for users, `bash install.sh --dev` adds the test tools.
#
# torch: a Python that already has torch (for example a CUDA build) lends it to the venv, which is
# then made with --system-site-packages; otherwise torch $STGV_TORCH_VERSION is installed, from
# $STGV_TORCH_INDEX when set (PyTorch's CPU wheel index keeps a CPU-only machine from downloading
# a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
torch_version=${STGV_TORCH_VERSION:-2.13.0}
extras=""
case "${1:-}" in
  --dev) extras="[dev]" ;;
  "") ;;
  *) echo "usage: bash install.sh [--dev]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  if "$python" -c "import torch" 2>/dev/null; then
    echo "install.sh: using the torch of $("$python" -c 'import sys; print(sys.executable)')" >&2
    "$python" -m venv --system-site-packages .venv
  else
    "$python" -m venv .venv
  fi
fi

pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "install.sh: installing torch==$torch_version" >&2
  "${pip[@]}" install "torch==$torch_version" ${STGV_TORCH_INDEX:+--index-url "$STGV_TORCH_INDEX"}
fi
echo "install.sh: installing stgvcodec$extras" >&2
"${pip[@]}" install -e ".$extras"

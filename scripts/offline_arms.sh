#!/usr/bin/env bash
# Run an experiment's arms one by one with core calls only (python -m cli.offline) and pack
# each finished arm's folders (no weights, no datasets) into $OUT/arm-<name>.tgz, so that a run cut
# off at its time limit still returns every arm it finished. Meant for a lent GPU machine that has
# PyTorch but not Prefect, Ray or MLflow; back here, unpack the archives at the repo root and run
#   metacot experiment <experiment.yaml> --record-offline
#
#   OUT=/tmp/out scripts/offline_arms.sh configs/countdown/sos-vs-solution-gpu-lease.yaml search solution
#
# Pydantic wheels in .whl/ (if present) are installed to /tmp/site first: the GPU image lacks pydantic.
set -uo pipefail
config=$1; shift
: "${OUT:?set OUT to the folder that collects the archives}"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
python3 -c "import torch, transformers, tokenizers, pyarrow, pydantic, yaml
print('torch', torch.__version__, 'transformers', transformers.__version__, 'pydantic', pydantic.VERSION)
print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" || exit 1
name=$(python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$config") || exit 1
root=$(python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get('output_dir', 'runs/experiments'))" \
  "$config")
for arm in "$@"; do
  start=$(date +%s)
  # shellcheck disable=SC2086  # OVERRIDES: extra a.b=value overrides, split on spaces
  python3 -m cli.offline "$config" --only "$arm" ${OVERRIDES:-} 2>&1 \
    | tee -a "$OUT/offline.log"
  status=${PIPESTATUS[0]}
  echo "arm $arm: exit $status after $(( $(date +%s) - start )) s" | tee -a "$OUT/offline.log"
  [ "$status" -eq 0 ] || exit "$status"
  tar czf "$OUT/arm-$arm.tgz" --exclude='*.safetensors' --exclude='checkpoints' --exclude='data-*' \
    "$root/$name/arms/$name-$arm"
done

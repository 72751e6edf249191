#!/usr/bin/env bash
# Reproduce the H100 baselines: bash baselines/h100/run.sh STAGE... [-- extra `harness run` options]
#
# Stages (run in the order given; each writes under $HARNESS_OUT, default baselines/h100/):
#   env        the GPU, driver and the versions of torch, CUDA, Triton, mamba_ssm, causal_conv1d
#   layers     one process: our mamba/mamba2 layers beside mamba_ssm's modules at L = 1K/4K/16K, forward and
#              train step (layers.csv), then kernel conformance (conformance.csv): the single device call of
#              baselines/h100/README.md; options after -- go to the script (a CPU dry run:
#              -- --device cpu --lengths 64,128 --d-model 64 --batch-size 2)
#   check      env, conformance with the harness timer vs triton do_bench (conformance.csv, timer.csv), the
#              layers (layers.csv), the GPU-marked tests
#   scaling    suites/scaling.yaml (mixers across L = 1K..64K, d_model 768, bf16) and its report
#   standard   suites/standard.yaml (every family, 3 seeds, HARNESS_JOBS=8 runs side by side) and its
#              report; options after -- go to `harness run` (e.g. -- --seeds 0 to run one seed first;
#              finished runs are resumed)
# HARNESS_DEADLINE (seconds since the epoch) stops a long stage cleanly in time (SIGINT: finished runs
# are kept, the one in flight is dropped and reruns next time; the layers and checks start nothing after
# it and keep the rows they finished). Set HARNESS_PY to the Python to use.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
out=${HARNESS_OUT:-$here}
mkdir -p "$out"
py=${HARNESS_PY:-python3}
stages=()
while (($#)) && [[ $1 != -- ]]; do stages+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
extra=("$@")

# Seconds left before HARNESS_DEADLINE (a day when unset).
left() { echo $(( ${HARNESS_DEADLINE:-$(( $(date +%s) + 86400 ))} - $(date +%s) )); }

# `harness run` of one suite into $out/<name>, stopped by SIGINT at the deadline.
run_suite() {
  local suite=$1 name=$2; shift 2
  local budget; budget=$(left)
  if ((budget < 30)); then echo "== $name: skipped, deadline reached"; return; fi
  echo "== $name ($budget s left)"
  timeout -s INT -k 30 "$budget" "$py" -m harness run "$suite" --device cuda --out "$out/$name" "$@"
  echo "== $name: harness run exit $?"
}

environment() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$py" - <<'PY'
import importlib.metadata as meta, torch
def version(name):
    try:
        return meta.version(name)
    except meta.PackageNotFoundError:
        return "absent"
print("torch", torch.__version__, "cuda", torch.version.cuda, *(f"{p} {version(p)}" for p in ("triton", "mamba_ssm", "causal_conv1d")))
PY
}

report() {
  [[ -f $out/$1/results.parquet ]] || return 0
  "$py" -m harness report "$out/$1" --format html >/dev/null && "$py" -m harness report "$out/$1" --format md
}

for stage in "${stages[@]}"; do
  case $stage in
    env) environment ;;
    layers) "$py" -m harness.benchmarks.conformance --layers-out "$out/layers.csv" --out "$out/conformance.csv" "${extra[@]}" ;;
    check)
      environment
      "$py" -m harness.benchmarks.conformance --layers-out "$out/layers.csv" --out "$out/conformance.csv" \
        --timer-out "$out/timer.csv"
      "$py" -m pytest -q -m gpu -p no:cacheprovider --tb=short tests/kernels tests/modules tests/measure tests/families
      ;;
    # Mamba-2's Triton kernels compile and autotune on first use (minutes on a fresh machine): the other
    # mixers go first so that a deadline never costs their rows; a stuck run is an error row after 300 s.
    scaling) run_suite suites/scaling.yaml scaling --only mamba,attention,gated_cnn --timeout 300
             run_suite suites/scaling.yaml scaling --timeout 300
             report scaling ;;
    standard) run_suite suites/standard.yaml standard --jobs "${HARNESS_JOBS:-8}" "${extra[@]}"
              report standard ;;
    *) echo "unknown stage $stage (env, layers, check, scaling, standard)" >&2; exit 2 ;;
  esac
done

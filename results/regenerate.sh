#!/usr/bin/env bash
# Regenerates every table of the README and results/ from the code as it is, then writes
# results/manifest.json: the commit, the machine and library versions, and each table's script
# and wall time. Hours on this 2-core CPU (nav2d alone ≈ 4 hours); benchmarks/RESULTS.md has
# its own commands (`metaq bench`, `python -m metaq_jax.bench.population`).
set -euo pipefail
cd "$(dirname "$0")/.."
times=$(mktemp)
for script in results/default/regenerate.sh results/bandit/regenerate.sh results/nav2d/regenerate.sh \
              results/rl2/regenerate.sh results/families/regenerate.sh results/latent/regenerate.sh \
              results/anil/regenerate.sh results/locomotion/regenerate.sh; do
  start=$(date +%s)
  bash "$script"
  echo "$script $(( $(date +%s) - start ))" >> "$times"
done
python results/manifest.py "$times" > results/manifest.json
cat results/manifest.json

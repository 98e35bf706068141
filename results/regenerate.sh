#!/usr/bin/env bash
# Regenerates every table of the README and results/ from the code as it is, then writes
# results/manifest.json: the commit, and for each output its command, the library and commit it
# ran on, the machine and library versions, its wall time, and whether it is current. Outputs that
# results/provenance.json records as made by today's library and command are not rerun (FORCE=1
# reruns them; ONLY=GLOB picks outputs: results/produce.sh), so a killed run continues where it
# stopped. Hours on this 2-core CPU (nav2d alone ≈ 4 hours); benchmarks/RESULTS.md has its own
# commands (`metaq bench`, `python -m metaq_jax.bench.population`).
set -euo pipefail
cd "$(dirname "$0")/.."
for script in results/default/regenerate.sh results/bandit/regenerate.sh results/nav2d/regenerate.sh \
              results/rl2/regenerate.sh results/families/regenerate.sh results/latent/regenerate.sh \
              results/anil/regenerate.sh results/locomotion/regenerate.sh; do
  bash "$script"
done
python results/manifest.py > results/manifest.json
python -c 'import json; m = json.load(open("results/manifest.json")); print("stale:", m["stale"], "unrecorded:", m["unrecorded"])'

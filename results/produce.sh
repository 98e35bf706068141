# Sourced by results/*/regenerate.sh, from the repository root.
# `produce OUT CMD...` runs CMD, which writes OUT (a folder or file under results/), unless
# results/provenance.json records that CMD made OUT on the library as it is; after a run it records
# OUT's provenance (python results/manifest.py). So a regeneration killed or spread over several
# sittings continues where it stopped. FORCE=1 reruns every OUT; ONLY=GLOB (e.g. ONLY='results/rl2/pearl-*')
# runs only the OUTs it matches.
produce() {
  local out=$1 start
  shift
  # shellcheck disable=SC2053  # ONLY is a glob
  if [ -n "${ONLY:-}" ] && [[ $out != $ONLY ]]; then return 0; fi
  if [ -z "${FORCE:-}" ] && python results/manifest.py current "$out" -- "$@"; then
    echo "current, not rerun: $out"
    return 0
  fi
  start=$(date +%s)
  "$@"
  python results/manifest.py record "$out" $(( $(date +%s) - start )) -- "$@"
}

# Sourced by results/*/regenerate.sh, from the repository root.
# `produce OUT CMD...` runs CMD, which writes OUT (a folder or file under results/), unless
# results/provenance.json records that CMD made OUT on the library as it is; after a run it records
# OUT's provenance (python results/manifest.py). So a regeneration killed or spread over several
# sittings continues where it stopped. FORCE=1 reruns every OUT; ONLY=GLOB (e.g. ONLY='results/rl2/pearl-*')
# runs only the OUTs it matches.
# Its locals are prefixed: bash's locals are seen by the functions it calls, so a plain `out` would hide the
# regenerate script's own `out` from a function run as CMD.
produce() {
  local produce_out=$1 produce_start
  shift
  # shellcheck disable=SC2053  # ONLY is a glob
  if [ -n "${ONLY:-}" ] && [[ $produce_out != $ONLY ]]; then return 0; fi
  if [ -z "${FORCE:-}" ] && python results/manifest.py current "$produce_out" -- "$@"; then
    echo "current, not rerun: $produce_out"
    return 0
  fi
  produce_start=$(date +%s)
  "$@"
  python results/manifest.py record "$produce_out" $(( $(date +%s) - produce_start )) -- "$@"
}

#!/bin/bash
# The study's finished runs, kept with the repository so that the grid of main.sh can go on over several sittings
# on machines that keep nothing but the repository, and so that every number of docs/results.md can be recomputed
# from the runs that produced it (`python docs/study/summarize.py main ...`).
#
#   docs/study/outputs.sh pack   STUDY [GRID ...]   each STUDY/<grid> (or only those named) into
#                                                   docs/study/outputs/<grid>.tar.xz
#   docs/study/outputs.sh unpack STUDY              the archives back into STUDY (files already there are kept)
#
# OUTPUTS (default docs/study/outputs) names the folder of the archives.
#
# A grid is any folder of runs: a compare output (runs under runs/), sharing.sh's folder of
# <data set>/<model>/s<seed>/<variant> runs or ceiling.py's of <grid>/mr<rate>/s<seed>. An archive holds, per
# finished run (one with metrics.json), what `simlabel compare` needs to reuse it and its report needs to read it:
# config.toml, metrics.json, history.json, predictions.npz, true_class.json (ceiling.py's), and similarity.npz for
# the seed-0 runs at the natural missing rate of a compare output (the heat map's run is among them; a
# 203-annotator similarity.npz is 1.3 MB, too much to keep for every run).
# Checkpoints, model.pt and train.log are left out: a run whose archive lacks them is finished, never resumed.
# Unfinished runs are left out; main.sh retrains them.
set -euo pipefail
cd "$(dirname "$0")/../.."
command=${1:?usage: outputs.sh pack|unpack STUDY}
STUDY=${2:?usage: outputs.sh pack|unpack STUDY}
KEEP=${OUTPUTS:-docs/study/outputs}
case "$command" in
  pack)
    mkdir -p "$KEEP"
    shift 2
    [ $# -gt 0 ] || set -- "$STUDY"/*/
    for grid in "$@"; do
      grid=$(basename "$grid")
      list=$(mktemp)
      (cd "$STUDY/$grid" && find . -name metrics.json | sed 's|^\./||' | sort | while read -r m; do
         d=$(dirname "$m")
         for f in config.toml metrics.json history.json predictions.npz true_class.json; do
           [ -f "$d/$f" ] && echo "$d/$f"
         done
         case "$d" in */mr0.0/seed0) [ -f "$d/similarity.npz" ] && echo "$d/similarity.npz" ;; esac
       done) > "$list"
      if [ ! -s "$list" ]; then rm -f "$list"; continue; fi
      tar -cJf "$KEEP/$grid.tar.xz" -C "$STUDY/$grid" -T "$list"
      echo "outputs.sh: $KEEP/$grid.tar.xz: $(grep -c metrics.json "$list") finished runs" >&2
      rm -f "$list"
    done ;;
  unpack)
    for archive in "$KEEP"/*.tar.xz; do
      [ -f "$archive" ] || continue
      grid=$(basename "$archive" .tar.xz)
      mkdir -p "$STUDY/$grid"
      tar -xJf "$archive" -C "$STUDY/$grid" --skip-old-files
      echo "outputs.sh: $archive unpacked into $STUDY/$grid" >&2
    done ;;
  *) echo "usage: outputs.sh pack|unpack STUDY" >&2; exit 2 ;;
esac

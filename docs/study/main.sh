#!/bin/bash
# The main result (docs/results.md): Skip vs SimLabel vs SimLabel + Confidence with the defaults, on music_genre
# (every built-in model; natural missingness and 0.2 / 0.3 / 0.4 more of the training labels removed) and on the
# two synthetic presets (every built-in model, natural missingness). Run from the repository root; STUDY (default
# runs/study) holds the outputs, DATA the music_genre directory. The cheap models run first; the last music command
# adds qumatl to the same report (`simlabel compare` reuses finished runs, so an interrupted script also continues
# where it stopped).
set -euo pipefail
STUDY=${STUDY:-runs/study}
DATA=${DATA:-../shared/data/music_genre}
export OMP_NUM_THREADS=1
COMMON=(--seeds 0,1,2 --lr 1e-3 --jobs 2)
MUSIC=(--dataset music --data-dir "$DATA" --missing-rates 0,0.2,0.3,0.4 "${COMMON[@]}" --out "$STUDY/music")
simlabel compare "${MUSIC[@]}" --models heads,padl,madl
for preset in amer2-like amer-like; do
    simlabel compare --dataset synthetic --preset $preset --models heads,padl,madl,qumatl "${COMMON[@]}" \
        --out "$STUDY/$preset"
done
simlabel compare "${MUSIC[@]}" --models heads,padl,madl,qumatl
cp "$STUDY/music/similarity_heatmap.png" docs/images/music_similarity_heatmap.png
cp "$STUDY/music/avg_vs_missing_rate.png" docs/images/music_avg_vs_missing_rate.png
python docs/study/summarize.py main "$STUDY/music" "$STUDY/amer2-like" "$STUDY/amer-like"
python docs/study/summarize.py by-annotator "$STUDY/music"

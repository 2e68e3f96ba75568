#!/bin/bash
# The main result (docs/results.md): Skip vs SimLabel vs SimLabel + Confidence with the defaults (fixed on
# validation data by budget.sh, ablation.sh and sharing.sh before any number of this script was computed), every
# built-in backbone, on music_genre (seeds 0-4; natural missingness and 0.2 / 0.4 more of the training labels
# removed), sentiment_polarity (seeds 0-4; natural and 0.4) and the two synthetic presets (seeds 0-2, natural).
# Run from the repository root; STUDY (default runs/study) holds the outputs, SHARED the data folder.
# `simlabel compare` reuses finished runs and resumes interrupted ones, so the script can run over several
# sittings; the cheap backbones run first.
set -euo pipefail
STUDY=${STUDY:-runs/study}
SHARED=${SHARED:-../shared/data}
export OMP_NUM_THREADS=1
MUSIC=(--dataset music --data-dir "$SHARED/music_genre" --seeds 0,1,2,3,4 --missing-rates 0,0.2,0.4)
SENTIMENT=(--dataset sentiment --data-dir "$SHARED/sentiment_polarity" --seeds 0,1,2,3,4 --missing-rates 0,0.4)
for models in heads,padl,madl heads,padl,madl,qumatl; do
    simlabel compare "${MUSIC[@]}" --models $models --jobs 2 --out "$STUDY/music"
    for preset in amer2-like amer-like; do
        simlabel compare --dataset synthetic --preset $preset --seeds 0,1,2 --models $models --jobs 2 \
            --out "$STUDY/$preset"
    done
    simlabel compare "${SENTIMENT[@]}" --models $models --jobs 2 --out "$STUDY/sentiment"
done
DIRS=("$STUDY/music" "$STUDY/sentiment" "$STUDY/amer2-like" "$STUDY/amer-like")
for table in main aim imputation buckets; do
    python docs/study/summarize.py $table "${DIRS[@]}"
done
cp "$STUDY/music/similarity_heatmap.png" docs/images/music_similarity_heatmap.png
cp "$STUDY/sentiment/similarity_heatmap.png" docs/images/sentiment_similarity_heatmap.png
cp "$STUDY/music/gain_vs_skip.png" docs/images/music_gain_vs_skip.png
cp "$STUDY/sentiment/gain_vs_skip.png" docs/images/sentiment_gain_vs_skip.png

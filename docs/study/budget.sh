#!/bin/bash
# The training budget (docs/results.md, "The budget"), on VALIDATION data only: learning rates 1e-3, 3e-4 and the
# paper's 1e-4, every other training option at its default (at most 200 epochs, 20 % warm-up then cosine, early
# stopping with patience 25), Skip and SimLabel, every built-in backbone, seed 0, on music_genre and
# sentiment_polarity (qumatl on sentiment at 1e-3 only: about ten minutes a run on this CPU). Run from the
# repository root; STUDY (default runs/study) holds the outputs, SHARED the data folder. Resumable.
set -euo pipefail
STUDY=${STUDY:-runs/study}
SHARED=${SHARED:-../shared/data}
export OMP_NUM_THREADS=1
COMMON=(--modes skip,simlabel --seeds 0 --jobs 2 --no-plots)
for lr in 1e-3 3e-4 1e-4; do
    simlabel compare --dataset music --data-dir "$SHARED/music_genre" --models heads,padl,madl,qumatl --lr $lr \
        "${COMMON[@]}" --out "$STUDY/budget/music-lr$lr"
    models=heads,padl,madl
    [ $lr = 1e-3 ] && models=$models,qumatl
    simlabel compare --dataset sentiment --data-dir "$SHARED/sentiment_polarity" --models $models --lr $lr \
        "${COMMON[@]}" --out "$STUDY/budget/sentiment-lr$lr"
done
python docs/study/summarize.py budget "$STUDY/budget"

#!/bin/bash
# The dense-similarity lever on TEST (docs/results.md, "The dense similarity, after the grid"): SimLabel with the
# similarity re-estimated after every epoch from the models' predicted labels on every training item, shrunk
# toward the observed kappa with strength M (docs/study/sharing.py --dense; M chosen on validation by sharing.sh).
# Same seeds, missing rates and splits as main.sh's grid, whose runs it is paired with: every built-in backbone on
# music_genre and sentiment_polarity (qumatl there takes about twelve minutes a run, the last jobs of the list).
# Run from the repository root after main.sh; STUDY (default runs/study) holds the outputs, SHARED the data
# folder. Finished runs are skipped.
set -euo pipefail
STUDY=${STUDY:-runs/study}
M=${M:-20}
export OMP_NUM_THREADS=1 SHARED=${SHARED:-../shared/data}
job() {  # DATA SET MODEL SEED RATE: one sharing.py command line
    echo "--dataset $1 --model $2 --seed $3 --missing-rate $4 --dense $M --out $STUDY/dense-$1/runs/$2/mr$4/s$3"
}
jobs() {
    for seed in 0 1 2 3 4; do
        for model in heads padl madl qumatl; do for rate in 0 0.2 0.4; do job music $model $seed $rate; done; done
        for model in heads padl madl; do for rate in 0 0.4; do job sentiment $model $seed $rate; done; done
    done
    for rate in 0 0.4; do for seed in 0 1 2 3 4; do job sentiment qumatl $seed $rate; done; done
}
jobs | xargs -P 2 -L 1 python docs/study/sharing.py
python docs/study/summarize.py dense "$STUDY/music" "$STUDY/dense-music"
python docs/study/summarize.py dense "$STUDY/sentiment" "$STUDY/dense-sentiment"

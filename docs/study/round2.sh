#!/bin/bash
# The second round of the study (docs/results.md, "Second round"): lam = "auto" evaluated on the main grid, from the
# Skip and λ = 3 runs of main.sh plus λ = 1 runs of SimLabel and SimLabel + Confidence (λ = 0 is the Skip run).
# Run after main.sh, from the repository root; STUDY and DATA as there. Resumable like the other scripts.
set -euo pipefail
STUDY=${STUDY:-runs/study}
DATA=${DATA:-../shared/data/music_genre}
export OMP_NUM_THREADS=1
simlabel compare --dataset music --data-dir "$DATA" --missing-rates 0,0.2,0.3,0.4 --seeds 0,1,2 --lr 1e-3 --jobs 2 \
    --lam 1 --modes simlabel,simlabel+confidence --models madl,padl,heads,qumatl --no-plots --out "$STUDY/music-lam1"
python docs/study/summarize.py auto "$STUDY/music" 3:"$STUDY/music" 1:"$STUDY/music-lam1"
python docs/study/summarize.py noise "$STUDY/music" "$STUDY/amer2-like" "$STUDY/amer-like"

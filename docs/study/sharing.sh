#!/bin/bash
# This round's candidates for sharing backbones (docs/results.md), on VALIDATION data: padl, madl and heads on
# music_genre and sentiment_polarity, seeds 0 and 1, one lever per variant (docs/study/sharing.py). Run from the
# repository root; STUDY (default runs/study) holds the outputs, SHARED the data folder. Finished runs are skipped.
# VARIANTS (an extended regular expression, default all) runs only the variants whose name it matches in full,
# e.g. VARIANTS='skip|base|kl-.*'.
set -euo pipefail
STUDY=${STUDY:-runs/study}
VARIANTS=${VARIANTS:-.*}
export OMP_NUM_THREADS=1 SHARED=${SHARED:-../shared/data}
jobs() {
    for ds in sentiment music; do for model in padl madl heads; do for seed in 0 1; do
        local o="$STUDY/sharing/$ds/$model/s$seed" run="--dataset $ds --model $model --seed $seed"
        echo "$run --mode skip --out $o/skip"
        echo "$run --out $o/base"
        for m in 5 20 80; do echo "$run --shrink $m --out $o/shrink$m"; done
        for g in 0.3 0.6; do echo "$run --gate $g --out $o/gate$g"; done
        echo "$run --lam 1 --out $o/lam1"
        echo "$run --soft-source labels --out $o/labels"
        echo "$run --soft-source labels --shrink 20 --out $o/labels-shrink20"
        echo "$run --mode simlabel+confidence --targets --out $o/conf-targets"
        for m in 20 100; do echo "$run --dense $m --out $o/dense$m"; done
        echo "$run --mode simlabel+confidence --dense 20 --out $o/conf-dense20"
        if [ "$model" = madl ]; then
            for part in shared annotator; do echo "$run --kl-into $part --out $o/kl-$part"; done
            echo "$run --kl-into shared --dense 20 --out $o/dense20-kl-shared"
            for t in 0.3 0.45; do echo "$run --mode simlabel+confidence --threshold $t --out $o/conf-t$t"; done
            echo "$run --model-option instance=false --mode skip --out $o/confusion-skip"
            echo "$run --model-option instance=false --out $o/confusion"
        fi
        if [ "$model" = heads ]; then for lam in 6 12; do echo "$run --lam $lam --dense 20 --out $o/dense20-lam$lam"; done; fi
    done; done; done
}
jobs | grep -E -- "/($VARIANTS)\$" | xargs -P 2 -L 1 python docs/study/sharing.py
python docs/study/summarize.py sharing "$STUDY/sharing"

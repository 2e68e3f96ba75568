#!/bin/bash
# A positive control after the grid (docs/results.md, "A crowd built on SimLabel's assumption"): a synthetic crowd
# whose annotators err in groups, the structure SimLabel's soft label is built for, with the group tendency turned
# from none to full. 1,000 items, 4 classes, 300 annotators in 3 groups, 98 % missing (about 20 labels each),
# mean annotator accuracy 0.35; TENDENCY is the share of an annotator's errors that go to its group's class
# (0: errors uniform over the other classes, so the groups are alike; 1: every error goes to the group's class).
# heads, padl and madl with the defaults, seeds 0-2, in the three modes; qumatl is left out (the weakest Skip
# backbone of every grid, and the slowest). Run from the repository root; STUDY (default runs/study) holds the
# outputs. Finished runs are reused. About 10 minutes per tendency on 2 cores to train; with every run kept
# (docs/study/outputs.sh unpack), about 5 minutes for the reports and tables.
set -euo pipefail
STUDY=${STUDY:-runs/study}
export OMP_NUM_THREADS=1
for tendency in ${TENDENCIES:-0 0.5 1}; do
    simlabel compare --dataset synthetic --preset custom --items 1000 --annotators 300 --classes 4 \
        --missing 0.98 --groups 3 --accuracy 0.35 --tendency "$tendency" --seeds 0,1,2 \
        --models heads,padl,madl --jobs 2 --out "$STUDY/grouped-t$tendency"
done
for tendency in ${TENDENCIES:-0 0.5 1}; do
    for table in main aim imputation groups; do
        python docs/study/summarize.py $table "$STUDY/grouped-t$tendency"
    done
done
python docs/study/tendency.py $(for tendency in ${TENDENCIES:-0 0.5 1}; do echo "$STUDY/grouped-t$tendency"; done)

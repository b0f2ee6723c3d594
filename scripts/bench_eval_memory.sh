#!/bin/sh
# Peak RSS of `mpsearch eval` against the number of images: it must not grow
# with the count, since eval streams --data batch by batch.
#
#   scripts/bench_eval_memory.sh [MODEL] [COUNTS] [BINARY]
#
# MODEL defaults to models/resnet18-opset17.onnx (scripts/export_torchvision.py --out models),
# COUNTS to "64 512 2048", BINARY to bin/mpsearch. For each count it writes
# random uint8 images [N,3,224,224] (NumPy, seed 1) to $WORK (default
# /tmp/mpsearch-mem) once, runs `BINARY eval --model MODEL --data x.npy
# --threads 1` under /usr/bin/time -v and prints the count, the peak RSS in
# MiB and the wall time.
set -eu
model=${1:-models/resnet18-opset17.onnx}
counts=${2:-64 512 2048}
bin=${3:-bin/mpsearch}
work=${WORK:-/tmp/mpsearch-mem}
mkdir -p "$work"
echo "images  peak RSS (MiB)  wall"
for n in $counts; do
	x="$work/img$n.npy"
	[ -f "$x" ] || /usr/bin/python3 -c "
import numpy as np
np.save('$x', np.random.default_rng(1).integers(0, 256, size=($n, 3, 224, 224), dtype=np.uint8))"
	/usr/bin/time -v "$bin" eval --model "$model" --data "$x" --threads 1 >"$work/eval$n.out" 2>"$work/eval$n.err"
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/eval$n.err")
	wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/eval$n.err")
	printf '%6d  %14d  %s\n' "$n" $((rss / 1024)) "$wall"
done

#!/usr/bin/env bash
# Outputs of one posecli source tree, to compare with another's (issue 30: byte-identical):
#   scripts/same_outputs.sh SRC OUT   (SRC: a tree's src folder; OUT: a new folder)
# then `diff -r OUT_BEFORE OUT_AFTER`. Runs on ../shared: its photos, the first 60 dev COCO
# photos and videos/pets-vtest.avi; infer (jsonl, csv, the 320 model) and track (± --smooth).
set -euo pipefail
src=$(realpath "$1"); out=$(realpath -m "$2"); here=$(dirname "$(realpath "$0")")
shared=${POSECLI_SHARED:-$(realpath "$here/../../shared")}
coco=${TMPDIR:-/tmp}/posecli-same-coco60  # one path for both trees: records name it
mkdir -p "$out" "$coco"
ls "$shared/coco/val2017" | sort | head -60 | while read -r f; do
    ln -sf "$shared/coco/val2017/$f" "$coco/$f"; done
run() { PYTHONPATH="$src" python3 -m posecli "$@"; }
photos=("$shared/images" "$coco")
run infer "${photos[@]}" -q -f jsonl -o "$out/infer.jsonl"
run infer "${photos[@]}" -q -f csv -o "$out/infer.csv"
run infer "${photos[@]}" -q -f jsonl -m yolov8n-pose-320 -o "$out/infer320.jsonl"
run infer "$shared/videos/pets-vtest.avi" -q -f jsonl -o "$out/pets-infer.jsonl"
run track "$shared/videos/pets-vtest.avi" -q -f jsonl -o "$out/pets-track.jsonl"
run track "$shared/videos/pets-vtest.avi" -q -f jsonl --smooth -o "$out/pets-smooth.jsonl"
sha256sum "$out"/*.jsonl "$out"/*.csv | sed "s#$out/##"

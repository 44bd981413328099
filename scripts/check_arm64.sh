#!/usr/bin/env bash
# Same poses on arm64 as on x86. Builds (once, cached) an arm64 Debian root with mmdebstrap,
# installs posecli in it from wheels as the README says, runs `posecli infer` there under
# qemu-user as a Cortex-A35 (the STM32MP2's core) and here on x86, and compares the JSONL
# byte for byte: the sample photos, COCO photos and a few made to reach every image path
# (1/4 and 1/8 JPEG decode, EXIF rotation, PNG, upscaling), at 192, 256 and 320, letterbox
# and stretch.
#
# usage: scripts/check_arm64.sh [--tflite-runtime]      (as root: it uses chroot and mount)
#   --tflite-runtime  also run what ST's boards ship, tflite-runtime 2.14 with numpy < 2, on
#                     both sides (256, letterbox): report the images that differ (not a
#                     failure: its arm64 kernels round differently).
# Any arm64 run that prints on stderr with -q, or fails, is a failure.
# env: POSECLI_ARM64_ROOT  the cached root (default /var/tmp/posecli-arm64-root); delete it
#                          to rebuild. The x86 tflite-runtime venv sits beside it.
#      POSECLI_SHARED      shared data (default ../shared beside the repository)
#      COCO_PHOTOS         COCO photos besides the samples (default 30)
# exit: 0 identical, 1 some images differ (they are named), 2 setup failed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=$(cd "${POSECLI_SHARED:-$REPO/../shared}" && pwd)
ROOT=${POSECLI_ARM64_ROOT:-/var/tmp/posecli-arm64-root}
COCO_PHOTOS=${COCO_PHOTOS:-30}
SUITE=bookworm  # glibc 2.36 and Python 3.11: what tflite-runtime 2.14's wheels need
X86_VENV=$REPO/.venv
X86_TFLITE_VENV=$ROOT.x86-tflite
TFLITE_PACKAGES=(tflite-runtime==2.14.0 "numpy<2" opencv-python-headless pillow click pycocotools
                 pyyaml scipy "av>=17")
WORK=/check  # inside the root: inputs, models, the posecli wheel and outputs
# (--model, --resize) runs; every image goes through each.
RUNS=("yolov8n-pose-256 letterbox" "yolov8n-pose-192 stretch" "yolov8n-pose-320 letterbox")

die() { echo "check_arm64: $*" >&2; exit 2; }
note() { echo "check_arm64: $*" >&2; }
trap 'die "failed at line $LINENO"' ERR

host_tools() {
    [ "$(id -u)" = 0 ] || die "run as root (chroot, mount)"
    if ! command -v mmdebstrap >/dev/null || [ ! -x /usr/bin/qemu-aarch64-static ]; then
        apt-get update -qq
        apt-get install -y -qq mmdebstrap qemu-user-static binfmt-support >/dev/null
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "cannot register qemu-aarch64 (binfmt_misc)"
}

build_root() {
    [ -f "$ROOT/.posecli-root" ] && return
    local start=$SECONDS
    rm -rf "$ROOT.tmp"
    mmdebstrap --quiet --arch=arm64 --variant=apt --include=python3-venv \
        "$SUITE" "$ROOT.tmp"
    touch "$ROOT.tmp/.posecli-root" && rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT"
    note "built the arm64 root in $((SECONDS - start)) s"
}

# The arm64 cpuinfo LiteRT expects: qemu-user would show arm64 programs the host's x86 one,
# and LiteRT then crashes in allocate_tensors.
cortex_a35_cpuinfo() {
    local cpu
    for cpu in $(seq 0 $(($(nproc) - 1))); do
        printf 'processor\t: %s\nBogoMIPS\t: 48.00\n' "$cpu"
        printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\n'
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n'
        printf 'CPU part\t: 0xd04\nCPU revision\t: 2\n\n'
    done
}

# Run a command in the root as a Cortex-A35, in a private mount namespace that takes its
# mounts (proc, the cpuinfo, dev, sys, the shared data, the host's DNS and CA bundle for pip)
# away with it.
# shellcheck disable=SC2016
in_root() {
    unshare --mount --propagation private -- /bin/sh -euc '
        root=$1 shared=$2; shift 2
        mount -t proc proc "$root/proc"
        mount --bind "$root/check/cpuinfo" "$root/proc/cpuinfo"
        mount --rbind /dev "$root/dev"
        mount --rbind /sys "$root/sys"
        mount --bind "$shared" "$root/check/shared"
        mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
        mount --bind /etc/ssl/certs/ca-certificates.crt "$root/check/ca-certificates.crt"
        exec chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 \
            QEMU_CPU=cortex-a35 PIP_CERT=/check/ca-certificates.crt \
            POSECLI_MODELS=/check/models XDG_CACHE_HOME=/check/cache "$@"
    ' sh "$ROOT" "$SHARED" "$@"
}

# A venv in the root with `pip install ARGS` once (again when they or the project's
# dependencies change), then this checkout's wheel installed over it.
root_venv() {
    local venv=$1 deps_key
    shift
    deps_key=$( (sed -n '/^dependencies = \[/,/^\]/p' "$REPO/pyproject.toml" && echo "$@") |
        sha256sum | cut -c1-16)
    if [ "$(cat "$ROOT$venv/.posecli-deps" 2>/dev/null)" != "$deps_key" ]; then
        local start=$SECONDS
        rm -rf "${ROOT:?}$venv"
        in_root python3 -m venv "$venv"
        in_root "$venv/bin/pip" install -q --only-binary :all: "$@"
        echo "$deps_key" >"$ROOT$venv/.posecli-deps"
        note "installed $venv in the root in $((SECONDS - start)) s"
    fi
    in_root "$venv/bin/pip" install -q --no-deps --force-reinstall "$WHEEL"
}

x86_venvs() {
    if [ ! -x "$X86_VENV/bin/posecli" ]; then
        python3 -m venv "$X86_VENV" && "$X86_VENV/bin/pip" install -q "$REPO"
    fi
    rm -rf "$ROOT$WORK/dist"
    "$X86_VENV/bin/pip" wheel -q --no-deps -w "$ROOT$WORK/dist" "$REPO"
    WHEEL=$WORK/dist/$(cd "$ROOT$WORK/dist" && ls posecli-*.whl)
    if [ "$TFLITE" = 1 ] && [ ! -x "$X86_TFLITE_VENV/bin/posecli" ]; then
        python3 -m venv "$X86_TFLITE_VENV"
        "$X86_TFLITE_VENV/bin/pip" install -q --only-binary :all: "${TFLITE_PACKAGES[@]}"
    fi
    if [ "$TFLITE" = 1 ]; then
        "$X86_TFLITE_VENV/bin/pip" install -q --no-deps --force-reinstall "$ROOT$WHEEL"
    fi
}

# Inputs, identical bytes for both sides: the samples, COCO photos, and made ones.
inputs() {
    local dir=$ROOT$WORK
    rm -rf "$dir/images" "$dir/models" "$dir/out" "$dir/src"
    mkdir -p "$dir/images" "$dir/models" "$dir/out" "$dir/src" "$dir/shared"
    cp -r "$REPO/pyproject.toml" "$REPO/tests" "$dir/src/"
    cp "$SHARED"/images/*.jpg "$dir/images/"
    find "$SHARED/coco/val2017" -name '*.jpg' | sort | head -n "$COCO_PHOTOS" |
        xargs cp -t "$dir/images/"
    cp "$SHARED"/models/*.tflite "$dir/models/"
    cortex_a35_cpuinfo >"$dir/cpuinfo"
    "$X86_VENV/bin/python" - "$dir/images" "$SHARED/images" <<'EOF'
import sys
from pathlib import Path

import cv2
from PIL import Image

out, samples = Path(sys.argv[1]), Path(sys.argv[2])
bus, zidane = cv2.imread(str(samples / "bus.jpg")), cv2.imread(str(samples / "zidane.jpg"))
big = cv2.resize(bus, (3240, 4320), interpolation=cv2.INTER_CUBIC)  # 1/8 decode at 256
cv2.imwrite(str(out / "made_bus_x4.jpg"), big)
wide = cv2.resize(zidane, (3200, 1800), interpolation=cv2.INTER_CUBIC)  # 1/4 decode at 256
cv2.imwrite(str(out / "made_zidane_x2.5.jpg"), wide)
cv2.imwrite(str(out / "made_zidane.png"), zidane)
cv2.imwrite(str(out / "made_bus_small.jpg"), cv2.resize(bus, (150, 200)))  # upscaled
exif = Image.Exif()
exif[0x0112] = 6  # stored sideways, shown turned 90 degrees clockwise
Image.open(samples / "bus.jpg").transpose(Image.Transpose.ROTATE_90).save(
    out / "made_bus_exif6.jpg", exif=exif, quality=92
)
EOF
}

# Name the images whose records differ between two JSONL files, with their people counts.
differences() {
    python3 - "$@" <<'EOF'
import json
import sys

label, a_path, b_path = sys.argv[1:4]
a, b = (open(p, encoding="utf-8").read().splitlines() for p in (a_path, b_path))
differ = [(x, y) for x, y in zip(a, b) if x != y]
people = [(json.loads(x), json.loads(y)) for x, y in differ]
recount = [(x["image"], len(x["poses"]), len(y["poses"])) for x, y in people
           if len(x["poses"]) != len(y["poses"])]
print(f"{label}: {len(differ)} of {len(a)} images differ; {len(recount)} in number of people")
for x, _ in people:
    print(f"  differs: {x['image']}")
for image, nx, ny in recount:
    print(f"  {image}: {nx} people on x86, {ny} on arm64")
sys.exit(len(a) != len(b))
EOF
}

# The test that pins the model input bytes, run on arm64 in a venv of the root.
pinned_inputs() {
    local venv=$1
    if in_root /bin/sh -c "cd $WORK/src && POSECLI_SHARED=$WORK/shared $venv/bin/python -m pytest \
        -q -p no:cacheprovider tests/test_model_input.py >../out/pytest.log 2>&1"; then
        echo "tests/test_model_input.py with $venv: $(tail -1 "$ROOT$WORK/out/pytest.log")"
    else
        note "tests/test_model_input.py failed on arm64 with $venv:"
        tail -20 "$ROOT$WORK/out/pytest.log" >&2
        return 1
    fi
}

# Run one (model, resize) on both sides and compare: status 0 identical, 1 the poses differ,
# 2 a run failed or printed on stderr with -q.
compare_run() {
    local model=$1 resize=$2 label=$3 x86=$4 arm=$5 start=$SECONDS
    local name=$label-$model-$resize
    local out=$ROOT$WORK/out/$name args="infer images --model $model --resize $resize -f jsonl -q"
    # shellcheck disable=SC2086
    if ! (cd "$ROOT$WORK" && POSECLI_MODELS=$ROOT$WORK/models "$x86/bin/posecli" $args \
        >"$out.x86.jsonl"); then
        note "$name: posecli failed on x86" && return 2
    fi
    if ! in_root /bin/sh -c "cd $WORK && $arm/bin/posecli $args \
        >out/$name.arm64.jsonl 2>out/$name.arm64.stderr"; then
        note "$name: posecli failed on arm64:" && cat "$out.arm64.stderr" >&2 && return 2
    fi
    note "$name: $(wc -l <"$out.arm64.jsonl") images on arm64 in $((SECONDS - start)) s"
    if [ -s "$out.arm64.stderr" ]; then
        note "$name: posecli -q printed on stderr on arm64:" && cat "$out.arm64.stderr" >&2
        return 2
    fi
    if cmp -s "$out.x86.jsonl" "$out.arm64.jsonl"; then
        echo "$name: identical ($(wc -l <"$out.x86.jsonl") images)"
        return 0
    fi
    differences "$name" "$out.x86.jsonl" "$out.arm64.jsonl" || true
    return 1
}

main() {
    TFLITE=0
    [ "${1:-}" = --tflite-runtime ] && TFLITE=1
    host_tools
    exec 9>"$ROOT.lock"
    flock -n 9 || die "another check is using $ROOT"
    build_root
    mkdir -p "$ROOT$WORK/cache"
    touch "$ROOT/etc/resolv.conf" "$ROOT$WORK/ca-certificates.crt"
    x86_venvs
    inputs
    root_venv /opt/posecli "$WHEEL" pytest
    [ "$TFLITE" = 1 ] && root_venv /opt/posecli-tflite "${TFLITE_PACKAGES[@]}" pytest
    local failed=0 run
    pinned_inputs /opt/posecli || failed=1
    [ "$TFLITE" = 1 ] && { pinned_inputs /opt/posecli-tflite || failed=1; }
    for run in "${RUNS[@]}"; do
        # shellcheck disable=SC2086
        compare_run $run litert "$X86_VENV" /opt/posecli || failed=1
    done
    if [ "$TFLITE" = 1 ]; then
        # shellcheck disable=SC2086
        compare_run ${RUNS[0]} tflite-runtime "$X86_TFLITE_VENV" /opt/posecli-tflite ||
            [ $? = 1 ] || failed=1
    fi
    exit "$failed"
}

main "$@"

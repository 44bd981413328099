"""The model input is pinned: the same bytes on every CPU and across changes to the image path.

The hashes were computed on x86 and match arm64 (scripts/check_arm64.sh). They cover the
reduced JPEG decode (1/2 for the samples at 192 and 256), letterbox and stretch, a portrait and
a grayscale COCO photo, and the exact 2x downscale that OpenCV does as an area average; and
decoded video frames, through OpenCV's YUV 4:2:0 conversion or swscale's exact one.
"""

from __future__ import annotations

import hashlib
from functools import cache
from itertools import islice

import av
import numpy as np
import pytest

from posecli import PoseEstimator
from posecli.media.video import EXACT_SCALER, VideoSource, frame_bgr
from posecli.pipeline.items import load

from conftest import COCO_IMAGES, IMAGES, SHARED

# file, input size, resize mode, JPEG reduction, sha256 of the (S, S, 3) uint8 RGB model input
MODEL_INPUTS = """
bus.jpg          192 letterbox 2 faa519e8be24e364caedb72ba816365755d3127fef2e155b21e3f9f8df519129
zidane.jpg       192 letterbox 2 a4cb1b224a51921bd38911e2fe99e9b575af382040c19671942e2f5f263f3471
000000000139.jpg 192 letterbox 1 452eceb5e7dd0fc34f7215f99ffa057460d30bb9a473d40b01bdc505b8f4787e
000000000802.jpg 192 letterbox 1 0801a16882517a2b8e9c651f5c3334cc726ef37a64a68dbe4e8238003c066dd0
000000024021.jpg 192 letterbox 1 cb99effe69f34087c68a754184c97b1f1cc1e8d8d7e5e29698a2c9a1f8f64b7b
bus.jpg          192 stretch   2 9115650580f135fc02de2f39faacaa6cb74276b0d351e0d4381be3f75db4061e
zidane.jpg       192 stretch   1 561b7db8a6ab82091c5c23ede69564e3bf4930d7b19a607924a46d3c6d0e074c
000000000139.jpg 192 stretch   1 d2aeb4a5d9117757a3dd4a7b8d828b28ee582a4a2264400a8768b34f542892d8
000000000802.jpg 192 stretch   1 1f8b883b1f5eded8c3e7251c4a28bb05237296488fcdc1c01415442dad9aa5e3
000000024021.jpg 192 stretch   1 ea089a201e9bdf1f502876a28f19c997c549f4615200f20695c91e756cf45b5e
bus.jpg          256 letterbox 2 f7b0227a31e27d16471ee692fec0fc519fc3a67e54bfcd895ed22ef1eb81d4f5
zidane.jpg       256 letterbox 2 26ad488fb8aa0cea7f4f3ff4a2c5352cf4f9d0c54968ff91c9f9e13b9211a865
000000000139.jpg 256 letterbox 1 31d556bc2b06b8dffd3b4fbbf95c2e8ec2fecf81e50e4deae829b2f24e5807e3
000000000802.jpg 256 letterbox 1 0a4f99325297d30ead137f1695315e2127408ca05ba73eb4aa4699e235b39765
000000024021.jpg 256 letterbox 1 f2992da1971fd6f651533eac80dfb014031392d9e7ec9f4e6b02c81a3fb50762
bus.jpg          256 stretch   1 6a165e2063540b0b754a6a6887bca0589c0b1d14d2be0f3643708e8088f3a62a
zidane.jpg       256 stretch   1 4ee4dde8859ef6c0c34c50d3a3aeb38a9b36e371b372ddcc2e45ecf4fa2495cf
000000000139.jpg 256 stretch   1 cac188256fbd225546a84b6ab0c3463f390883e9b053b2f6df88d7e303f0eec0
000000000802.jpg 256 stretch   1 e110d696431eeb5868fa7f6bca435e949276517cad10fa296b13358bddbb7659
000000024021.jpg 256 stretch   1 8adb3321193ac65134fa3d8b18eb8a110dc9eeee87783eb45424f7bc49b03f9d
bus.jpg          320 letterbox 1 3dd15747870bb84dc001a3b7a29197ff3495dabe30338f8d028780e521e2b91d
zidane.jpg       320 letterbox 2 c564eb2498e28a0bba295c6a4c5c5eaeda374f3a997aac1a4a652d41d58ebb98
000000000139.jpg 320 letterbox 1 09cbd8893aa9790e12809c6190a2668a31bf0b51c18a060119a6f2da02510ffd
000000000802.jpg 320 letterbox 1 09d170214540ec610cb20676d7e571b1791f1e9c042133f3ec94f9343ad78a5e
000000024021.jpg 320 letterbox 1 11bd3aa5b0ffd585084f4abe1887b403048027e16f580797291f74fad4a3abbb
bus.jpg          320 stretch   1 c700db64a2a74f408053b0e811ddefb76a275284bbdf2152bcaad1709cb4c0b9
zidane.jpg       320 stretch   1 ddac9b841d2294f6eba03e27f5aa97290ec743bfbec8dbbd4d81bc4a91b0f618
000000000139.jpg 320 stretch   1 f0b0e3d26e8fdbfadff9c20bcf3a98ae690a74bc2290b4130b1f154d7ddc36cf
000000000802.jpg 320 stretch   1 4ce4d6b3199c15eba36c6c40e15f8ad23e5a9593fceb1687e925ed1f91be9bb6
000000024021.jpg 320 stretch   1 dc4912981994c04101645c51a16123524d7c917d5710114e1e8934a8a6164192
"""
CASES = [row.split() for row in MODEL_INPUTS.strip().splitlines()]


@cache
def estimator(size: int, mode: str) -> PoseEstimator:
    """The yolov8n model of this input size, with this resize mode."""
    return PoseEstimator(model=f"yolov8n-pose-{size}", resize=mode, threads=1)


@pytest.mark.parametrize(
    ("name", "size", "mode", "reduction", "digest"), CASES, ids=["-".join(c[:3]) for c in CASES]
)
def test_model_input_bytes_are_pinned(name, size, mode, reduction, digest):
    path = IMAGES / name if (IMAGES / name).is_file() else COCO_IMAGES / name
    est = estimator(int(size), mode)
    loaded = load(est.predictor, path)
    rgb, _ = est.predictor.preprocess(loaded)
    assert loaded.reduction == int(reduction)
    assert rgb.shape == (int(size), int(size), 3)
    assert hashlib.sha256(rgb.tobytes()).hexdigest() == digest


# video, stride, sha256 of its first three frames at that stride as full-size BGR
VIDEO_FRAMES = """
pets-vtest.avi       25 b9571c1370f0d8a00b91fb833e26a8bc165d97b48581e67aec798c16153d5eb2
coco-pan-720p30.mp4  30 80868413ae26f0d83c968688bff0f5cf891260126dbf905a7a01f42b7b1b8f06
coco-pan-1080p30.mp4 45 5e48bfb63812f1dbf0055ab258369c202140d0ff22ad2f04fccd6b488add1556
"""
VIDEO_CASES = [row.split() for row in VIDEO_FRAMES.strip().splitlines()]


@pytest.mark.parametrize(("name", "stride", "digest"), VIDEO_CASES, ids=[c[0] for c in VIDEO_CASES])
def test_decoded_video_frames_are_pinned(name, stride, digest):
    source = VideoSource(str(SHARED / "videos" / name))
    try:
        frames = [f.pixels for f in islice(source.frames(int(stride)), 3)]
    finally:
        source.close()
    assert hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest() == digest


def random_frame(fmt: str, shape: tuple[int, ...]) -> av.VideoFrame:
    """A frame of noise in a pixel format, the same bytes on every machine."""
    rng = np.random.default_rng(7)
    return av.VideoFrame.from_ndarray(rng.integers(0, 256, shape, dtype=np.uint8), format=fmt)


def odd_sized_yuv420p() -> av.VideoFrame:
    """A 63 x 35 YUV 4:2:0 frame (odd sizes), which OpenCV's conversion does not take."""
    return random_frame("rgb24", (35, 63, 3)).reformat(format="yuv420p", interpolation=EXACT_SCALER)


@pytest.mark.parametrize(("make", "digest"), [
    (lambda: random_frame("yuv444p", (3, 36, 64)),
     "e1273a7791cc44f76a7c5d56be8bb324350b8e5a40d96c7f7e74db20df29db56"),
    (lambda: random_frame("yuvj420p", (54, 64)),
     "86596f33eb5abdd7f1302315318115c0ce522f65b20954a6d75f06fc2eacbfc2"),
    (lambda: random_frame("gray", (36, 64)),
     "2a42aee644222e5ae06b38a59d908a0c6381d6cbc948a3fe6f9e43fdfe9ffcca"),
    (odd_sized_yuv420p, "0fa63a69d0b6362274784d810517f377deb3e6ad78fee1470fb72a223ac95c78"),
], ids=["yuv444p", "yuvj420p", "gray", "odd-yuv420p"])  # fmt: skip
def test_other_pixel_formats_convert_to_pinned_pixels(make, digest):
    assert hashlib.sha256(frame_bgr(make()).tobytes()).hexdigest() == digest

"""The model: registry, file layouts and runtimes, preprocessing, decoding, tiles and TTA,
and the predictor (image in, arrays out)."""

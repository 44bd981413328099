"""Evaluation: COCO and the model card's metric, MOT scores, and the speed benchmark."""

"""Tiny random-weight detectors built in code and saved as the real ones are (no downloads): for tests of the
detectors' plumbing and of the public-suite harness. Their detections mean nothing; their files, loading code,
pre- and post-processing are those of the real models.

    from layoutguide.bench.detectors.testing import save_tiny_grounding_dino
    folder = save_tiny_grounding_dino(tmp_path / "gd")
    detector = load_detector("grounding-dino", str(folder), box_threshold=0.0, text_threshold=0.0)
"""

from __future__ import annotations

from pathlib import Path

import torch

# BERT's ids for the tokens Grounding DINO treats as phrase separators ([CLS], [SEP], ".", "?": transformers'
# SPECIAL_TOKENS), so the tiny model builds the same per-phrase attention masks as the real one.
_BERT_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
_CLIP_VOCAB = 1024  # the tiny OWLv2 text model's vocabulary: room for the tiny CLIP tokenizer's tokens
_WORDS = ["a", "an", "the", "cat", "dog", "red", "blue", "green", "car", "apple", "traffic", "light", "teddy", "bear"]


def tiny_bert_vocab() -> dict[str, int]:
    """A 1,100-entry WordPiece vocabulary with BERT's special-token ids and a few words (the rest is filler)."""
    vocab = dict(_BERT_IDS)
    free = (i for i in range(1100) if i not in vocab.values())
    for word in [*_WORDS, "##s"]:
        vocab[word] = next(free)
    for i in free:
        vocab[f"[unused{i}]"] = i
    return vocab


def save_tiny_grounding_dino(folder: str | Path, seed: int = 0) -> Path:
    """A random Grounding DINO (Swin backbone, BERT text encoder, all at tiny widths) and its processor, saved to
    ``folder`` by ``save_pretrained`` (config.json, model.safetensors, tokenizer and processor files)."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
    )

    backbone = {
        "model_type": "swin",
        "embed_dim": 8,
        "depths": [1, 1, 1, 1],
        "num_heads": [1, 1, 1, 1],
        "window_size": 4,
        "image_size": 64,
        "out_features": ["stage2", "stage3", "stage4"],
    }
    text = BertConfig(
        vocab_size=1100,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,  # GroupNorm(32, d_model) needs a multiple of 32
        num_queries=12,
        encoder_layers=1,
        decoder_layers=2,  # the box heads are tied across decoder layers: one layer has nothing to tie
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_feature_levels=3,
        encoder_n_points=1,
        decoder_n_points=1,
        max_text_len=32,
    )
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    tokenizer = BertTokenizer(vocab=tiny_bert_vocab(), do_lower_case=True)
    images = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    folder = Path(folder)
    model.save_pretrained(folder)
    GroundingDinoProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_tiny_owlv2(folder: str | Path, seed: int = 0) -> Path:
    """A random OWLv2 (CLIP-style ViT and text encoder at tiny widths; 64 px images, 8 px patches) and its
    processor (the square-padding image processor, a CLIP BPE tokenizer built in code), saved to ``folder``."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor

    from ...shapes.model import build_tokenizer

    tokenizer = build_tokenizer(_WORDS + ["photo", "of"])
    tokenizer.model_max_length = 16  # OWLv2 pads every query to 16 tokens
    config = Owlv2Config(
        text_config={
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,  # the text model pools at the end-of-text token
            "pad_token_id": tokenizer.pad_token_id,
            "vocab_size": _CLIP_VOCAB,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    if len(tokenizer) > _CLIP_VOCAB:
        raise AssertionError(f"the tiny tokenizer has {len(tokenizer)} tokens, over the text model's vocabulary")
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(config).eval()
    images = Owlv2ImageProcessorPil(size={"height": 64, "width": 64})
    folder = Path(folder)
    model.save_pretrained(folder)
    Owlv2Processor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_tiny_yolo(folder: str | Path, segment: bool = True, seed: int = 0) -> Path:
    """A random YOLOv8 (``segment``: YOLOv8-seg) from ultralytics' own model definition at a tiny width scale,
    with COCO's 80 class names, saved as the yolo detector's safe format: ``model.yaml`` + ``model.safetensors``."""
    import yaml
    from safetensors.torch import save_file

    from .yolo import import_ultralytics

    ultralytics = import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel, SegmentationModel, yaml_model_load

    root = Path(ultralytics.__file__).parent / "cfg"
    names = yaml.safe_load((root / "datasets" / "coco.yaml").read_text())["names"]
    config = yaml_model_load("yolov8-seg.yaml" if segment else "yolov8.yaml")
    config.update(scales={"t": [0.33, 0.0625, 64]}, scale="t", nc=len(names), names=names)
    config.pop("yaml_file", None)
    torch.manual_seed(seed)
    model = (SegmentationModel if segment else DetectionModel)(dict(config), nc=len(names), verbose=False).eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "model.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder

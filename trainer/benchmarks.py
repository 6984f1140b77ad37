"""MMEB and XTD as the paper groups and reports them (the facts only, no code)."""

from __future__ import annotations

MMEB_META_TASKS = {
    "Classification": [
        "ImageNet-1K",
        "N24News",
        "HatefulMemes",
        "VOC2007",
        "SUN397",
        "Place365",
        "ImageNet-A",
        "ImageNet-R",
        "ObjectNet",
        "Country211",
    ],
    "VQA": [
        "OK-VQA",
        "A-OKVQA",
        "DocVQA",
        "InfographicsVQA",
        "ChartQA",
        "Visual7W",
        "ScienceQA",
        "VizWiz",
        "GQA",
        "TextVQA",
    ],
    "Retrieval": [
        "VisDial",
        "CIRR",
        "VisualNews_t2i",
        "VisualNews_i2t",
        "MSCOCO_t2i",
        "MSCOCO_i2t",
        "NIGHTS",
        "WebQA",
        "FashionIQ",
        "Wiki-SS-NQ",
        "OVEN",
        "EDIS",
    ],
    "Grounding": ["MSCOCO", "RefCOCO", "RefCOCO-Matching", "Visual7W-Pointing"],
}
MMEB_IND = [
    "ImageNet-1K",
    "N24News",
    "HatefulMemes",
    "VOC2007",
    "SUN397",
    "OK-VQA",
    "A-OKVQA",
    "DocVQA",
    "InfographicsVQA",
    "ChartQA",
    "Visual7W",
    "VisDial",
    "CIRR",
    "VisualNews_t2i",
    "VisualNews_i2t",
    "MSCOCO_t2i",
    "MSCOCO_i2t",
    "NIGHTS",
    "WebQA",
    "MSCOCO",
]
MMEB_DATASETS = [name for names in MMEB_META_TASKS.values() for name in names]
MMEB_OOD = [name for name in MMEB_DATASETS if name not in MMEB_IND]
XTD_LANGUAGES = ["it", "es", "ru", "zh", "pl", "tr", "ko"]

# Paper Table 2 (MMEB, Precision@1 %) and the XTD table (text->image Recall@10 %).
MME5_MMEB = {
    "mmE5 (paper)": {
        "Classification": 67.6,
        "VQA": 62.6,
        "Retrieval": 71.0,
        "Grounding": 89.6,
        "IND": 72.3,
        "OOD": 66.7,
        "Overall": 69.8,
    },
    "mmE5 zero-shot (paper)": {
        "Classification": 60.6,
        "VQA": 55.7,
        "Retrieval": 54.7,
        "Grounding": 72.4,
        "IND": None,
        "OOD": None,
        "Overall": 58.6,
    },
}
MME5_XTD = {
    "mmE5 (paper)": {"it": 96.1, "es": 96.2, "ru": 93.3, "zh": 96.3, "pl": 95.4, "tr": 93.6, "ko": 96.0, "mean": 95.3}
}

assert len(MMEB_DATASETS) == 36 and len(set(MMEB_DATASETS)) == 36 and len(MMEB_OOD) == 16

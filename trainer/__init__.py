"""Contrastive LoRA fine-tuning of mme5 backbones, and MMEB/XTD evaluation.

Entry points: ``python -m trainer train|eval|merge`` and, in Python,
``trainer.data.load_examples``, ``trainer.train.train``, ``trainer.evaluate.evaluate``.
"""

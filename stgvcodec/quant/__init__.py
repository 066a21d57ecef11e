"""Quantizers and quantization-aware fine-tuning."""

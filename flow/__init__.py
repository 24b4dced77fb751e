"""qflow: small quantized neural networks to verified hardware."""

__version__ = "0.1.0"

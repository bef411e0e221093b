"""ImageNet TOP1/TOP5 accuracy regression suite for ONNX and TFLite classifiers."""

__version__ = "0.1.0"

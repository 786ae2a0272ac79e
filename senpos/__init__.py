"""senpos runtime: the text processing and ONNX predictors shared by training and serving.

Nothing in this package imports torch: the service installs it without the training extra.
"""

__version__ = "0.1.0"

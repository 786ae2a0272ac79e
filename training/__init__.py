"""Training pipelines: they read data, train with PyTorch, and write artifacts into models/."""

"""Text processing owned in one place, imported by both training and serving (no train/serve skew)."""

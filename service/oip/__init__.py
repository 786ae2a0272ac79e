"""The Open Inference Protocol (KServe V2) over REST: the tensors codec (tensors.py) and the /v2 routes (app.py)."""

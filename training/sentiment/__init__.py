"""IMDB sentiment: data.py (loading), split.py (grouped fit/select/report), prepare.py (tokens, vocab, word2vec),
model.py (BiLSTM, wide n-gram branch), train.py, wide.py, combine.py (wide & deep), export.py, report.py,
baseline.py (TF-IDF / NB-LR on the same split), throughput.py."""

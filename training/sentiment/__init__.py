"""IMDB sentiment: data.py (loading), prepare.py (tokens, vocab, word2vec), model.py, train.py, export.py."""

"""Chinese POS: data.py (loaders), prepare.py (vocabularies, word2vec, jieba dictionary), model.py, train.py,
export.py, evaluate.py."""

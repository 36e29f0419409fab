from headstart.tokenize.wordpiece import BatchEncoding, Encoding, WordPieceTokenizer

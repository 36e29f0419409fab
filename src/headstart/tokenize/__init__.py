from headstart.tokenize.bpe import ByteBPETokenizer
from headstart.tokenize.bpe_train import train_bpe, train_bpe_file
from headstart.tokenize.wordpiece import BatchEncoding, Encoding, WordPieceTokenizer

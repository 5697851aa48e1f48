"""A MiniLM-L6-shaped BERT (6 layers, 384 wide, 12 heads) with random weights, and a WordPiece
tokenizer trained on the benchmark texts, saved as a Hugging Face model directory."""
import json, sys, os
import torch
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel

texts = json.load(open(sys.argv[1]))
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
tok = BertWordPieceTokenizer(lowercase=True)
tok.train_from_iterator(texts, vocab_size=30522, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
tok.save(os.path.join(out, "tokenizer.json"))
torch.manual_seed(0)
cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                 intermediate_size=1536, max_position_embeddings=512, hidden_act="gelu")
BertModel(cfg).save_pretrained(out, safe_serialization=True)
print("model written to", out, "tokenizer vocab", tok.get_vocab_size())

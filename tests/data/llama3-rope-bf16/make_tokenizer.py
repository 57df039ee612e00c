#!/usr/bin/env python3
"""Writes tokenizer.json, tokenizer_config.json and tokenizer_examples.json of llama3-rope-bf16: a tiny
Llama 3 style byte-level BPE (512 ids, <|begin_of_text|> = 511)
trained on tests/data/reference/tokenizer_corpus.txt (the repository's README.md and docs/*.md at
commit a931941, concatenated). Deterministic.
Regenerate from the repository root: python3 tests/data/llama3-rope-bf16/make_tokenizer.py"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "reference")
sys.path.insert(0, REF)
import tokenizer_lib as TL  # noqa: E402

with open(os.path.join(REF, "tokenizer_corpus.txt"), encoding="utf-8") as f:
    corpus = f.read()
tok, cfg = TL.train_llama3(corpus, vocab_size=512)
examples = TL.write_tokenizer(HERE, tok, cfg, TL.Llama3Encoder(tok))
print(len(tok["model"]["vocab"]), "model ids,", len(tok["model"]["merges"]), "merges,",
      len(tok["added_tokens"]), "added tokens")
for e in examples[:3]:
    print(repr(e["text"]), e["ids"])

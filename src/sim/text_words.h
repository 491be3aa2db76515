#pragma once
// Word splitting shared by the emulator's Claude and Agents models, which both
// match prompts against keywords.
//
// Thread safety: pure functions.

#include <string>
#include <string_view>
#include <vector>

namespace quarry::sim {

// The lower-case words of `text`, in order, repeats kept. A word is a run of
// ASCII letters and digits or non-ASCII bytes (so UTF-8 words stay whole);
// everything else separates words.
std::vector<std::string> LowerCaseWords(std::string_view text);

// Calls visit(std::string_view word) for each word LowerCaseWords(text) would
// return, in order, without building the vector (the emulator matches every
// request against knowledge-base documents; one buffer serves all words). The
// view is valid only during the call.
template <typename Visit>
void ForEachLowerCaseWord(std::string_view text, Visit&& visit) {
  // ASCII tests written out: the <cctype> functions consult the locale for
  // every byte, and every request's text passes through here.
  std::string word;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool upper = byte >= 'A' && byte <= 'Z';
    if (upper || (byte >= 'a' && byte <= 'z') || (byte >= '0' && byte <= '9') || byte >= 0x80) {
      word.push_back(static_cast<char>(upper ? byte + ('a' - 'A') : byte));
    } else if (!word.empty()) {
      visit(std::string_view(word));
      word.clear();
    }
  }
  if (!word.empty()) visit(std::string_view(word));
}

// The words of `text` on one line, each with a space before and after
// (" vpn drops every 10 minutes "); "" when it has no words. A phrase occurs in
// a text as consecutive whole words exactly when the phrase's WordLine is a
// non-empty substring of the text's, so a text prepared once can be searched
// for many phrases.
std::string WordLine(std::string_view text);

}  // namespace quarry::sim

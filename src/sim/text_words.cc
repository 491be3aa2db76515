#include "sim/text_words.h"

namespace quarry::sim {

std::vector<std::string> LowerCaseWords(std::string_view text) {
  std::vector<std::string> words;
  ForEachLowerCaseWord(text, [&](std::string_view word) { words.emplace_back(word); });
  return words;
}

std::string WordLine(std::string_view text) {
  std::string line;
  line.reserve(text.size() + 2);
  ForEachLowerCaseWord(text, [&](std::string_view word) {
    if (line.empty()) line.push_back(' ');
    line.append(word);
    line.push_back(' ');
  });
  return line;
}

}  // namespace quarry::sim

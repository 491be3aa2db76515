#include "sim/text_words.h"

#include <cctype>

namespace quarry::sim {

std::vector<std::string> LowerCaseWords(std::string_view text) {
  std::vector<std::string> words;
  std::string current;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || byte >= 0x80) {
      current.push_back(static_cast<char>(std::tolower(byte)));
    } else if (!current.empty()) {
      words.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

}  // namespace quarry::sim

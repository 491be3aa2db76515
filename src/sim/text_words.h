#pragma once
// Word splitting shared by the emulator's Claude and Agents models, which both
// match prompts against keywords.
//
// Thread safety: pure function.

#include <string>
#include <string_view>
#include <vector>

namespace quarry::sim {

// The lower-case words of `text`, in order, repeats kept. A word is a run of
// ASCII letters and digits or non-ASCII bytes (so UTF-8 words stay whole);
// everything else separates words.
std::vector<std::string> LowerCaseWords(std::string_view text);

}  // namespace quarry::sim

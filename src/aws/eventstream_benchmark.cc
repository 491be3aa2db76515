// Throughput of the event-stream codec. Target: decoding at >= 1 GB/s for
// 64 KiB payloads, both from 16 KiB slices (what libcurl hands a write
// callback) and from one whole buffer.
//
//   build/<dir>/src/aws/eventstream_benchmark

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "aws/eventstream.h"

namespace quarry::aws {
namespace {

constexpr size_t kStreamTarget = 4 * 1024 * 1024;  // bytes of frames per iteration

// A Bedrock-like `chunk` event with a payload of `payload_size` bytes.
Message ChunkMessage(size_t payload_size) {
  return MakeEventMessage("chunk", std::string(payload_size, 'x'));
}

std::string Stream(size_t payload_size) {
  const Message message = ChunkMessage(payload_size);
  std::string stream;
  while (stream.size() < kStreamTarget) {
    if (!AppendEncodedMessage(message, &stream).ok()) std::abort();
  }
  return stream;
}

void BM_Decode(benchmark::State& state) {
  const size_t payload_size = static_cast<size_t>(state.range(0));
  const size_t slice = static_cast<size_t>(state.range(1));  // 0 = whole buffer
  const std::string stream = Stream(payload_size);
  std::vector<Message> messages;
  for (auto _ : state) {
    EventStreamDecoder decoder;
    messages.clear();
    const std::string_view bytes = stream;
    const size_t step = slice == 0 ? bytes.size() : slice;
    for (size_t pos = 0; pos < bytes.size(); pos += step) {
      if (!decoder.Feed(bytes.substr(pos, step), &messages).ok()) std::abort();
    }
    if (!decoder.Finish().ok()) std::abort();
    benchmark::DoNotOptimize(messages.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(stream.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(messages.size()));
}
// Args: payload bytes, slice bytes (0 = one Feed of the whole buffer).
BENCHMARK(BM_Decode)
    ->ArgNames({"payload", "slice"})
    ->Args({1024, 16 * 1024})
    ->Args({1024, 0})
    ->Args({64 * 1024, 16 * 1024})
    ->Args({64 * 1024, 0});

void BM_Encode(benchmark::State& state) {
  const Message message = ChunkMessage(static_cast<size_t>(state.range(0)));
  std::string out;
  int64_t bytes = 0;
  for (auto _ : state) {
    out.clear();  // keeps its capacity, as a server reusing a buffer would
    if (!AppendEncodedMessage(message, &out).ok()) std::abort();
    bytes += static_cast<int64_t>(out.size());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_Encode)->ArgName("payload")->Arg(1024)->Arg(64 * 1024);

}  // namespace
}  // namespace quarry::aws

BENCHMARK_MAIN();

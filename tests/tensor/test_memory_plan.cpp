// The memory planner (tensor/memory_plan.h): blocks that are live together never share bytes,
// offsets are aligned, the arena is at least the peak of live bytes, and on the patterns a
// training step makes (activations kept for backward, gradients made as they are released) it
// equals the peak, where free lists of exact sizes hold more.
#include <doctest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/check.h"
#include "tensor/memory_plan.h"
#include "tensor/random.h"

using namespace qnn;

namespace {

// The largest sum of sizes of blocks live at one moment: no arena can be smaller. Releases come
// before requests at the same event number ([begin, end) is half open).
size_t peak_live_bytes(const std::vector<BlockLifetime>& blocks) {
  std::vector<std::pair<int64_t, int64_t>> changes;  // (event, +bytes or -bytes)
  for (const BlockLifetime& b : blocks) {
    changes.emplace_back(b.begin, int64_t(b.bytes));
    changes.emplace_back(b.end, -int64_t(b.bytes));
  }
  std::sort(changes.begin(), changes.end());
  int64_t live = 0, peak = 0;
  for (const auto& [event, delta] : changes) {
    live += delta;
    peak = std::max(peak, live);
  }
  return size_t(peak);
}

void check_layout(const std::vector<BlockLifetime>& blocks, const MemoryPlan& plan, size_t alignment) {
  REQUIRE(plan.offsets.size() == blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    CHECK(plan.offsets[i] % alignment == 0);
    CHECK(plan.offsets[i] + blocks[i].bytes <= plan.arena_bytes);
    for (size_t j = i + 1; j < blocks.size(); ++j) {
      const bool together = blocks[i].begin < blocks[j].end && blocks[j].begin < blocks[i].end;
      const bool apart = plan.offsets[i] + blocks[i].bytes <= plan.offsets[j] ||
                         plan.offsets[j] + blocks[j].bytes <= plan.offsets[i];
      if (together) CHECK(apart);
    }
  }
  CHECK(plan.arena_bytes >= peak_live_bytes(blocks));
}

// What free lists of exact sizes hold for the same sequence: a released block serves only a later
// request of its size.
size_t exact_size_lists_bytes(const std::vector<BlockLifetime>& blocks) {
  std::vector<std::pair<int64_t, size_t>> events;  // (event, block), requests and releases
  for (size_t i = 0; i < blocks.size(); ++i) {
    events.emplace_back(blocks[i].begin, i);
    events.emplace_back(blocks[i].end, i);
  }
  std::sort(events.begin(), events.end());
  std::vector<size_t> free_sizes;
  size_t reserved = 0;
  for (const auto& [event, i] : events) {
    if (event == blocks[i].begin) {
      const auto it = std::find(free_sizes.begin(), free_sizes.end(), blocks[i].bytes);
      if (it != free_sizes.end()) free_sizes.erase(it);
      else reserved += blocks[i].bytes;
    } else {
      free_sizes.push_back(blocks[i].bytes);
    }
  }
  return reserved;
}

}  // namespace

TEST_CASE("memory plan: a smaller block takes the bytes of a larger one released before it") {
  // A (4 units) live over [0, 2), then B and C (2 units each) together over [2, 4): both fit in
  // A's bytes. Exact-size free lists would hold 8 units.
  const size_t u = 512;
  const std::vector<BlockLifetime> blocks{{4 * u, 0, 2}, {2 * u, 2, 4}, {2 * u, 3, 5}};
  const MemoryPlan plan = plan_memory(blocks, 512);
  check_layout(blocks, plan, 512);
  CHECK(plan.arena_bytes == 4 * u);
  CHECK(exact_size_lists_bytes(blocks) == 8 * u);
}

TEST_CASE("memory plan: a training step's pattern needs no more than its peak") {
  // Forward: three stages of activations, each stage's blocks half the size of the one before,
  // all kept for backward; backward: a gradient block per activation, made as the activation
  // (and the gradient after it) are released, last stage first.
  const size_t u = 512;
  std::vector<BlockLifetime> blocks;
  int64_t t = 0;
  std::vector<size_t> activations;
  for (size_t stage = 0; stage < 3; ++stage)
    for (int layer = 0; layer < 4; ++layer) {
      activations.push_back(blocks.size());
      blocks.push_back({(16 * u) >> stage, t++, 0});
    }
  int64_t previous_gradient = -1;
  for (size_t k = activations.size(); k-- > 0;) {
    const size_t gradient = blocks.size();
    blocks.push_back({blocks[activations[k]].bytes, t++, 0});
    blocks[activations[k]].end = t++;
    if (previous_gradient >= 0) blocks[size_t(previous_gradient)].end = t++;
    previous_gradient = int64_t(gradient);
  }
  blocks[size_t(previous_gradient)].end = t++;
  const MemoryPlan plan = plan_memory(blocks, 512);
  check_layout(blocks, plan, 512);
  CHECK(plan.arena_bytes == peak_live_bytes(blocks));
  CHECK(exact_size_lists_bytes(blocks) > plan.arena_bytes);
}

TEST_CASE("memory plan: random lifetimes never overlap in memory, and the layout repeats") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::vector<BlockLifetime> blocks;
    for (uint64_t i = 0; i < 60; ++i) {
      const int64_t begin = int64_t(random_uniform(seed, 0, 3 * i) * 100);
      const int64_t length = 1 + int64_t(random_uniform(seed, 0, 3 * i + 1) * 40);
      const size_t units = 1 + size_t(random_uniform(seed, 0, 3 * i + 2) * 16);
      blocks.push_back({units * 256, begin, begin + length});
    }
    const MemoryPlan plan = plan_memory(blocks, 256);
    check_layout(blocks, plan, 256);
    CHECK(plan.arena_bytes <= exact_size_lists_bytes(blocks));
    const MemoryPlan again = plan_memory(blocks, 256);
    CHECK(again.offsets == plan.offsets);
  }
}

TEST_CASE("memory plan: sizes that are not multiples of the alignment are refused") {
  CHECK_THROWS_AS(plan_memory({{100, 0, 1}}, 512), Error);
  CHECK_THROWS_AS(plan_memory({{512, 0, 1}}, 300), Error);
  CHECK_THROWS_AS(plan_memory({{512, 1, 1}}, 512), Error);  // live over no event
  CHECK(plan_memory({}, 512).arena_bytes == 0);
  CHECK(peak_live_bytes({{512, 0, 2}, {1024, 1, 3}, {2048, 2, 4}}) == 3072);
}

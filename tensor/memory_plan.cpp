// Memory planning (see tensor/memory_plan.h).
#include "tensor/memory_plan.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "tensor/check.h"

namespace qnn {

namespace {

bool share_lifetime(const BlockLifetime& a, const BlockLifetime& b) { return a.begin < b.end && b.begin < a.end; }

}  // namespace

MemoryPlan plan_memory(const std::vector<BlockLifetime>& blocks, size_t alignment) {
  QNN_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, "plan_memory: alignment ", alignment,
            " is not a power of two");
  for (const BlockLifetime& b : blocks)
    QNN_CHECK(b.bytes % alignment == 0 && b.begin < b.end, "plan_memory: a block of ", b.bytes, " bytes live over [",
              b.begin, ", ", b.end, ") is not a multiple of ", alignment, " bytes or not live at all");
  // Largest first; among equals, the earlier allocated first (a fixed order, so the same
  // sequence always gets the same layout).
  std::vector<size_t> order(blocks.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return blocks[a].bytes != blocks[b].bytes ? blocks[a].bytes > blocks[b].bytes : blocks[a].begin < blocks[b].begin;
  });
  MemoryPlan plan;
  plan.offsets.assign(blocks.size(), 0);
  std::vector<size_t> placed;
  std::vector<std::pair<size_t, size_t>> taken;  // [offset, offset + bytes) of the placed blocks sharing a lifetime
  for (size_t i : order) {
    const BlockLifetime& b = blocks[i];
    taken.clear();
    for (size_t j : placed)
      if (share_lifetime(b, blocks[j])) taken.emplace_back(plan.offsets[j], plan.offsets[j] + blocks[j].bytes);
    std::sort(taken.begin(), taken.end());
    // The lowest gap that holds it: walk the taken ranges upwards from 0.
    size_t offset = 0;
    for (const auto& [lo, hi] : taken) {
      if (offset + b.bytes <= lo) break;
      offset = std::max(offset, hi);
    }
    plan.offsets[i] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + b.bytes);
    placed.push_back(i);
  }
  return plan;
}

}  // namespace qnn

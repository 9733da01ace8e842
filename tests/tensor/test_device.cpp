// The device runtime and GPU tensors: probing, clear errors without a GPU, copies between
// devices and the caching allocator's stable addresses and its graph pool.
#include <doctest.h>

#include <cmath>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/cuda_graph.h"
#include "tensor/elementwise.h"
#include "tests/gpu.h"

using namespace qnn;

TEST_CASE("device: a GPU that cannot be used says why, and GPU tensors are then a clear error") {
  const CudaStatus& s = cuda_status();
  if (s.usable) {
    CHECK(!s.name.empty());
    CHECK(s.major >= 5);
    CHECK(describe_cuda(s).find("sm_") != std::string::npos);
    CHECK((s.device >= 0 && s.device < s.device_count));
    // Once probed, a preference may only name the GPU in use (modulo the count).
    CHECK_NOTHROW(cuda_prefer_device(s.device + s.device_count));
    if (s.device_count > 1)
      CHECK_THROWS_WITH_AS(cuda_prefer_device(s.device + 1), doctest::Contains("in use already"), Error);
    CHECK_THROWS_AS(cuda_prefer_device(-1), Error);
    return;
  }
  CHECK(!s.reason.empty());
  CHECK(describe_cuda(s).find(s.reason) != std::string::npos);
  // The error gives the reason: a CUDA build found no usable GPU (no GPU, no driver); a CPU-only
  // build has no CUDA backend at all and says how one is built.
  CHECK_THROWS_WITH_AS(Tensor({4}, Device::CUDA), doctest::Contains(s.reason.c_str()), Error);
  if (s.built) {
    CHECK_THROWS_WITH_AS(Tensor({4}, Device::CUDA), doctest::Contains("no usable GPU"), Error);
  } else {
    CHECK(s.reason.find("no CUDA backend") != std::string::npos);
    CHECK(s.reason.find("CUDA=0") != std::string::npos);
  }
}

GPU_TEST_CASE("device: tensors round-trip between CPU and GPU, fill and zero work on the GPU") {
  const Tensor host = Tensor::uniform({3, 5, 7}, -2, 2, 11);
  const Tensor gpu = host.to(Device::CUDA);
  CHECK(gpu.is_cuda());
  CHECK(gpu.shape() == host.shape());
  CHECK(gpu.to_vector() == host.to_vector());
  CHECK(gpu.to(Device::CUDA).shares_storage(gpu));
  Tensor copy = gpu.clone();
  CHECK(!copy.shares_storage(gpu));
  CHECK(copy.to(Device::CPU).to_vector() == host.to_vector());
  Tensor window = copy.slice(5, {2, 3});
  window.fill(7.5f);
  std::vector<float> expected = host.to_vector();
  for (int i = 5; i < 11; ++i) expected[i] = 7.5f;
  CHECK(copy.to_vector() == expected);
  copy.zero();
  CHECK(copy.to_vector() == std::vector<float>(host.numel(), 0.0f));
  CHECK(Tensor::full({1}, 3.25f, Device::CUDA).item() == 3.25f);
  // -0 is filled as -0, as on the CPU (a memset of zero bytes would give +0).
  CHECK(std::signbit(Tensor::full({1}, -0.0f, Device::CUDA).item()));
  CHECK(!std::signbit(Tensor::full({1}, 0.0f, Device::CUDA).item()));
}

GPU_TEST_CASE("device: the caching allocator reuses freed blocks at the same address") {
  const void* first = nullptr;
  {
    Tensor t({1000, 37}, Device::CUDA);
    first = t.data();
  }
  const AllocatorStats before = cuda_allocator_stats();
  Tensor again({1000, 37}, Device::CUDA);
  CHECK(again.data() == first);
  const AllocatorStats after = cuda_allocator_stats();
  CHECK(after.system_allocations == before.system_allocations);
  CHECK(after.reused == before.reused + 1);
  CHECK(after.peak_live_bytes >= after.live_bytes);
}

GPU_TEST_CASE("device: a block freed during a graph capture is never handed out to eager code again") {
  // The graph records the block's use; were it back in the common cache, a tensor allocated after
  // the capture could get it and be overwritten by every replay.
  const Shape shape{777, 13};  // a size no other test allocates
  Tensor before(shape, Device::CUDA);
  before.fill(1.0f);
  const void* used_by_graph = before.raw();
  const int64_t graph_cached = cuda_allocator_stats().graph_cached_bytes;
  CudaGraph graph;
  graph.capture([&] {
    before.fill(2.0f);
    before = Tensor();  // freed inside the capture
  });
  Tensor after(shape, Device::CUDA);
  CHECK(after.raw() != used_by_graph);
  // Its bytes are counted as the graph's temporaries (bench/train_step reports them).
  const int64_t with_block = cuda_allocator_stats().graph_cached_bytes;
  CHECK(with_block >= graph_cached + 777 * 13 * 4);
  // A later capture may take it again: its graph runs on the same stream, never at once.
  CudaGraph second;
  const void* in_second = nullptr;
  second.capture([&] {
    Tensor t(shape, Device::CUDA);
    t.fill(3.0f);
    in_second = t.raw();
  });
  CHECK(in_second == used_by_graph);
  CHECK(cuda_allocator_stats().graph_cached_bytes == with_block);  // taken and freed again inside
}

GPU_TEST_CASE("device: a capture that repeats its rehearsal lays its temporaries out in one arena") {
  // A 64 KiB temporary, a 32 KiB one made from it, then (the first released) another 32 KiB one:
  // free lists of exact sizes cannot give the last the first's bytes, the arena does.
  Tensor out({8192}, Device::CUDA);
  std::vector<const void*> seen;
  const auto work = [&] {
    seen.clear();
    Tensor a({16384}, Device::CUDA);
    a.fill(3.0f);
    Tensor b = a.slice(0, {8192}).clone();
    seen.push_back(a.raw());
    seen.push_back(b.raw());
    a = Tensor();
    Tensor c({8192}, Device::CUDA);
    c.fill(2.0f);
    add_into(c, b);
    seen.push_back(c.raw());
    out.copy_from(c);
  };
  CudaGraph graph;
  graph.rehearse(work);
  CHECK(out.to_vector() == std::vector<float>(8192, 5.0f));
  out.zero();
  graph.capture(work);
  REQUIRE(seen.size() == 3);
  const char* a = static_cast<const char*>(seen[0]);
  const char* c = static_cast<const char*>(seen[2]);
  CHECK((c >= a && c + 8192 * 4 <= a + 16384 * 4));  // c in a's bytes, a released before c
  CHECK(seen[1] != seen[2]);
  graph.replay();
  CHECK(out.to_vector() == std::vector<float>(8192, 5.0f));
  // The arena's bytes are never handed to eager code.
  Tensor later({8192}, Device::CUDA);
  const char* l = static_cast<const char*>(later.raw());
  CHECK((l + 8192 * 4 <= a || l >= a + 16384 * 4));
  // Work that does not repeat the rehearsal is captured from the graph pool, correctly.
  CudaGraph other;
  other.capture([&] {
    Tensor d({4096}, Device::CUDA);
    d.fill(7.0f);
    Tensor window = out.slice(0, {4096});
    window.copy_from(d);
  });
  other.replay();
  graph.replay();  // back to fives: the two graphs share nothing live
  CHECK(out.to_vector() == std::vector<float>(8192, 5.0f));
}

GPU_TEST_CASE("device: a capture whose releases leave the rehearsal's order takes the rest from the graph pool") {
  // The same requests in both runs; the rehearsal releases the 64 KiB temporary a before c is
  // made (the arena gives c a's bytes), the capture releases b instead and keeps a live: from that
  // release on, the capture must not follow the arena's plan, or c would overwrite a.
  Tensor out({8192}, Device::CUDA);
  bool keep_a = false;
  std::vector<const void*> seen;
  const auto work = [&] {
    seen.clear();
    Tensor a({16384}, Device::CUDA), b({8192}, Device::CUDA);
    a.fill(3.0f);
    b.fill(2.0f);
    seen.push_back(a.raw());
    const Tensor kept = keep_a ? a.slice(0, {8192}) : b;
    a = Tensor();
    b = Tensor();
    Tensor c({8192}, Device::CUDA);
    c.fill(1.0f);
    seen.push_back(c.raw());
    add_into(c, kept);
    out.copy_from(c);
  };
  CudaGraph graph;
  graph.rehearse(work);
  CHECK(out.to_vector() == std::vector<float>(8192, 3.0f));
  keep_a = true;
  graph.capture(work);
  REQUIRE(seen.size() == 2);
  const char* a = static_cast<const char*>(seen[0]);
  const char* c = static_cast<const char*>(seen[1]);
  CHECK((c + 8192 * 4 <= a || c >= a + 16384 * 4));  // c apart from a, which is still live
  out.zero();
  graph.replay();
  CHECK(out.to_vector() == std::vector<float>(8192, 4.0f));
}

GPU_TEST_CASE("device: a request beyond the GPU's memory is a clear error, and later work runs") {
  // 1 GiB more than the whole GPU holds: refused at once, eagerly and inside a capture alike.
  const int64_t floats = cuda_status().memory_bytes / 4 + (int64_t(1) << 28);
  CHECK_THROWS_WITH_AS(Tensor({floats}, Device::CUDA), doctest::Contains("out of GPU memory"), Error);
  Tensor small = Tensor::full({1000}, 2.0f, Device::CUDA);  // the failure left no error behind
  CHECK(small.to_vector() == std::vector<float>(1000, 2.0f));
  CudaGraph graph;
  CHECK_THROWS_WITH_AS(graph.capture([&] {
    Tensor t({floats}, Device::CUDA);
    t.fill(1.0f);
  }),
                       doctest::Contains("out of GPU memory while capturing a CUDA graph"), Error);
  // The stream left capture mode: eager work runs, and so does a new capture.
  small.fill(3.0f);
  CHECK(small.to_vector() == std::vector<float>(1000, 3.0f));
  CudaGraph again;
  again.capture([&] { small.fill(4.0f); });
  again.replay();
  CHECK(small.to_vector() == std::vector<float>(1000, 4.0f));
}

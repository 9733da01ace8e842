// libstdc++'s std::sort (GCC 12, bits/stl_algo.h and bits/stl_heap.h) on floats, step for step,
// callable on the host and in a CUDA kernel, so that the GPU's smart quantizer sorts its
// candidates into exactly the order the CPU's std::sort leaves them in (spec 2.5).
//
// Equal finite floats have equal bits except -0 and +0, so any correct sort matches std::sort
// unless a bucket holds both zeros; their relative order is whatever introsort's moves make of
// them. This replica makes the same moves: introsort loop (median of three moved to the front,
// unguarded Hoare partition, recursion on the right part, depth limit 2 floor(log2 n) then heap
// sort), then the final insertion sort with threshold 16. tests/quant/test_smart_device.cpp
// checks it against std::sort bit for bit (arrays full of mixed zeros and ties).
#pragma once
#include <cstdint>

#include "tensor/random.h"  // QNN_HOST_DEVICE

namespace qnn::std_sort_replica {

constexpr int64_t kThreshold = 16;  // _S_threshold

QNN_HOST_DEVICE void swap_at(float* v, int64_t i, int64_t j) {
  const float t = v[i];
  v[i] = v[j];
  v[j] = t;
}

QNN_HOST_DEVICE void push_heap(float* first, int64_t hole, int64_t top, float value) {
  int64_t parent = (hole - 1) / 2;
  while (hole > top && first[parent] < value) {
    first[hole] = first[parent];
    hole = parent;
    parent = (hole - 1) / 2;
  }
  first[hole] = value;
}

QNN_HOST_DEVICE void adjust_heap(float* first, int64_t hole, int64_t len, float value) {
  const int64_t top = hole;
  int64_t child = hole;
  while (child < (len - 1) / 2) {
    child = 2 * (child + 1);
    if (first[child] < first[child - 1]) child--;
    first[hole] = first[child];
    hole = child;
  }
  if ((len & 1) == 0 && child == (len - 2) / 2) {
    child = 2 * (child + 1);
    first[hole] = first[child - 1];
    hole = child - 1;
  }
  push_heap(first, hole, top, value);
}

// std::__partial_sort(first, last, last): make_heap, then sort_heap.
QNN_HOST_DEVICE void heap_sort(float* first, int64_t len) {
  if (len >= 2) {
    for (int64_t parent = (len - 2) / 2;; --parent) {
      adjust_heap(first, parent, len, first[parent]);
      if (parent == 0) break;
    }
  }
  for (int64_t last = len; last > 1;) {
    --last;
    const float value = first[last];
    first[last] = first[0];
    adjust_heap(first, 0, last, value);
  }
}

QNN_HOST_DEVICE void move_median_to_first(float* v, int64_t result, int64_t a, int64_t b, int64_t c) {
  if (v[a] < v[b]) {
    if (v[b] < v[c]) swap_at(v, result, b);
    else if (v[a] < v[c]) swap_at(v, result, c);
    else swap_at(v, result, a);
  } else if (v[a] < v[c]) {
    swap_at(v, result, a);
  } else if (v[b] < v[c]) {
    swap_at(v, result, c);
  } else {
    swap_at(v, result, b);
  }
}

// __unguarded_partition_pivot on [first, last): returns the cut.
QNN_HOST_DEVICE int64_t partition_pivot(float* v, int64_t first, int64_t last) {
  const int64_t mid = first + (last - first) / 2;
  move_median_to_first(v, first, first + 1, mid, last - 1);
  const float* pivot = v + first;
  int64_t lo = first + 1, hi = last;
  while (true) {
    while (v[lo] < *pivot) ++lo;
    --hi;
    while (*pivot < v[hi]) --hi;
    if (!(lo < hi)) return lo;
    swap_at(v, lo, hi);
    ++lo;
  }
}

QNN_HOST_DEVICE void linear_insert(float* v, int64_t last) {
  const float value = v[last];
  int64_t next = last - 1;
  while (value < v[next]) {
    v[last] = v[next];
    last = next;
    --next;
  }
  v[last] = value;
}

QNN_HOST_DEVICE void insertion_sort(float* v, int64_t first, int64_t last) {
  if (first == last) return;
  for (int64_t i = first + 1; i != last; ++i) {
    if (v[i] < v[first]) {
      const float value = v[i];
      for (int64_t k = i; k > first; --k) v[k] = v[k - 1];  // move_backward
      v[first] = value;
    } else {
      linear_insert(v, i);
    }
  }
}

QNN_HOST_DEVICE int64_t floor_log2(int64_t n) {
  int64_t r = 0;
  while (n > 1) n >>= 1, ++r;
  return r;
}

// std::sort(v, v + n) for floats without NaN.
QNN_HOST_DEVICE void sort(float* v, int64_t n) {
  if (n <= 0) return;
  // __introsort_loop, its recursion on the right part as an explicit stack (depth <= 2 log2 n).
  int64_t stack_first[64], stack_last[64], stack_depth[64];
  int top = 0;
  stack_first[0] = 0, stack_last[0] = n, stack_depth[0] = 2 * floor_log2(n);
  // The recursion runs (cut, last) before continuing with (first, cut): a stack popping the
  // right part first visits the ranges in the same order, and the ranges are disjoint, so the
  // order does not matter anyway; each range's own loop is followed exactly.
  while (top >= 0) {
    int64_t first = stack_first[top], last = stack_last[top], depth = stack_depth[top];
    --top;
    while (last - first > kThreshold) {
      if (depth == 0) {
        heap_sort(v + first, last - first);
        break;
      }
      --depth;
      const int64_t cut = partition_pivot(v, first, last);
      ++top;
      stack_first[top] = cut, stack_last[top] = last, stack_depth[top] = depth;
      last = cut;
    }
  }
  // __final_insertion_sort.
  if (n > kThreshold) {
    insertion_sort(v, 0, kThreshold);
    for (int64_t i = kThreshold; i < n; ++i) linear_insert(v, i);
  } else {
    insertion_sort(v, 0, n);
  }
}

}  // namespace qnn::std_sort_replica

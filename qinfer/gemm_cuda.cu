// dp4a integer GEMM with the fused requantization (see qinfer/gemm_cuda.h). One thread per output
// (row m, channel c): 4 bytes of A (u8) and 4 of the weights (s8) per dp4a.u32.s32, exact in s32;
// then the requantization of qinfer/gemm.h in the same float operations as the CPU's
// requantize_value: fmaf, int-to-float and float-to-int conversions rounding to nearest even.
#include <algorithm>
#include <cmath>
#include <vector>

#include "qinfer/gemm_cuda.h"
#include "tensor/cuda_runtime.h"

namespace qnn::qinfer {

namespace {

__device__ __forceinline__ int dp4a_u8s8(unsigned a, int b, int c) {
#if defined(__CUDA_ARCH__)
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
#else  // the same sum where there is no PTX (the CUDA emulator, docs/cuda-emulator.md)
  for (int i = 0; i < 4; ++i) c += int((a >> (8 * i)) & 0xffu) * int(int8_t(unsigned(b) >> (8 * i)));
  return c;
#endif
}

struct DeviceRequant {
  const int32_t* offset;
  const float* multiplier;
  const float* bias;
  int32_t zero_point, lo, hi, residual_zero;
  const uint8_t* residual;
  int64_t residual_ld;
  float residual_multiplier;
};

// a: [rows][kp] u8, w: [n][kp] s8, both with kp a multiple of 4 (32-bit aligned rows).
__global__ void gemm_requant_kernel(const unsigned* a, const int* w, int64_t rows, int64_t n, int64_t groups,
                                    DeviceRequant rq, uint8_t* out, int64_t ldo) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n) return;
  const int* wr = w + c * groups;
  for (int64_t m = blockIdx.y; m < rows; m += gridDim.y) {  // gridDim.y is at most 65535
    const unsigned* ar = a + m * groups;
    int acc = 0;
    for (int64_t g = 0; g < groups; ++g) acc = dp4a_u8s8(ar[g], wr[g], acc);
    float v = fmaf(__int2float_rn(acc - rq.offset[c]), rq.multiplier[c], rq.bias[c]);
    if (rq.residual)
      v = fmaf(__int2float_rn(int(rq.residual[m * rq.residual_ld + c]) - rq.residual_zero), rq.residual_multiplier, v);
    v = fminf(fmaxf(v, -1073741824.0f), 1073741824.0f);
    const int q = __float2int_rn(v) + rq.zero_point;
    out[m * ldo + c] = uint8_t(min(max(q, rq.lo), rq.hi));
  }
}

template <typename T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t count, const T* host = nullptr) {
    QNN_CUDA_CHECK(cudaMalloc(&p, count * sizeof(T) + 1), count, " elements");
    // On qnn's stream, so that the kernel launched on it after this finds the values there.
    if (host)
      QNN_CUDA_CHECK(cudaMemcpyAsync(p, host, count * sizeof(T), cudaMemcpyHostToDevice, cuda::stream()), count,
                     " elements");
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace

bool cuda_gemm_available() { return cuda_status().usable; }

void gemm_u8s8_requant_cuda(const uint8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, const Requant& rq,
                            uint8_t* out, int64_t ldo) {
  QNN_CHECK(cuda_gemm_available(), "[gemm_u8s8_requant_cuda] no usable GPU: ", describe_cuda(cuda_status()));
  QNN_CHECK(lda >= w.kp && ldo >= w.n && rows > 0, "gemm_u8s8_requant_cuda: lda ", lda, " < kp ", w.kp, ", ldo ", ldo,
            " < n ", w.n, " or no rows");
  const int64_t kp = w.kp, n = w.n;
  // A with row stride kp; the weights row-major [n][kp] (the CPU's packing is for vpdpbusd).
  std::vector<uint8_t> a_rows(rows * kp);
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t k = 0; k < kp; ++k) a_rows[m * kp + k] = k < w.k ? a[m * lda + k] : 0;
  std::vector<int8_t> w_rows(n * kp);
  for (int64_t c = 0; c < n; ++c)
    for (int64_t k = 0; k < kp; ++k) w_rows[c * kp + k] = packed_weight(w, c, k);
  DeviceBuffer<uint8_t> da(a_rows.size(), a_rows.data());
  DeviceBuffer<int8_t> dw(w_rows.size(), w_rows.data());
  DeviceBuffer<int32_t> offset(n, rq.offset);
  DeviceBuffer<float> multiplier(n, rq.multiplier), bias(n, rq.bias);
  std::vector<uint8_t> residual_rows;
  if (rq.residual) {
    residual_rows.resize(rows * n);
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t c = 0; c < n; ++c) residual_rows[m * n + c] = rq.residual[m * rq.residual_ld + c];
  }
  DeviceBuffer<uint8_t> residual(rq.residual ? residual_rows.size() : 1, rq.residual ? residual_rows.data() : nullptr);
  DeviceBuffer<uint8_t> dout(rows * n);
  DeviceRequant d{offset.p, multiplier.p, bias.p, rq.zero_point, rq.lo, rq.hi, rq.residual_zero,
                  rq.residual ? residual.p : nullptr, n, rq.residual_multiplier};
  const dim3 grid(unsigned((n + 63) / 64), unsigned(std::min<int64_t>(rows, 65535)));
  gemm_requant_kernel<<<grid, 64, 0, cuda::stream()>>>(reinterpret_cast<const unsigned*>(da.p),
                                                       reinterpret_cast<const int*>(dw.p), rows, n, kp / 4, d, dout.p, n);
  QNN_LAUNCH_CHECK("gemm_u8s8_requant_cuda ", rows, " x ", n, " x ", w.k);
  std::vector<uint8_t> host(rows * n);
  QNN_CUDA_CHECK(cudaMemcpyAsync(host.data(), dout.p, host.size(), cudaMemcpyDeviceToHost, cuda::stream()), rows, " x ", n);
  QNN_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()), "gemm_u8s8_requant_cuda");
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t c = 0; c < n; ++c) out[m * ldo + c] = host[m * n + c];
}

}  // namespace qnn::qinfer

// Convolution on the GPU without cuDNN: im2col lowering + cuBLAS sgemm (tensor/conv_gemm.cu),
// the path of backend_options().cudnn == false (the apps' --no-cudnn), and the bias kernels that
// both CUDA convolution paths share. Internal to the CUDA backend: tensor/conv.cu calls these
// after tensor/conv.cpp has checked the shapes, so they take the checked geometry.
//
// With K = C*KH*KW, P = Ho*Wo and col_n = im2col(x_n) [K x P] (tensor/im2col.h):
//   forward          y_n[O x P]  = w[O x K] * col_n                (strided-batched sgemm)
//   backward data    col_n       = w^T[K x O] * dy_n[O x P];  dx_n = col2im(col_n)
//   backward weight  dw[O x K]  += dy[O x (N*P)] * col[K x (N*P)]^T (one sgemm per chunk of
//                    images, with the images laid side by side along the reduction)
//   bias             y[n, o, :] += bias[o];   db[o] += sum over n, i, j of dy[n, o, i, j]
#pragma once
#include "tensor/im2col.h"
#include "tensor/tensor.h"

namespace qnn::cuda {

Tensor conv2d_forward_gemm(const ConvGeometry& g, const Tensor& x, const Tensor& w);
Tensor conv2d_backward_data_gemm(const ConvGeometry& g, const Tensor& dy, const Tensor& w);
// Adds dL/dw into dw (beta = 1).
void conv2d_backward_weight_gemm(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw);

// y [N, O, Ho, Wo] += bias [O] broadcast over n, i, j.
void conv2d_add_bias(const ConvGeometry& g, Tensor& y, const Tensor& bias);
// db [O] += sum over n, i, j of dy [N, O, Ho, Wo], in a fixed order (deterministic).
void conv2d_bias_grad(const ConvGeometry& g, const Tensor& dy, Tensor& db);

}  // namespace qnn::cuda

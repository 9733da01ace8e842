// The arithmetic of the emulated cuDNN convolutions (emu/cudnn.cpp): NCHW float tensors with KCRS
// filters, NHWC ones with KCRS or KRSC filters, any padding, stride and dilation, cross-correlation or convolution (flipped
// filter). NHWC operands (and KRSC filters) are reordered to NCHW (KCRS), computed as NCHW and
// reordered back, so every format gives the same bits.
// Each output is alpha times its sum, plus beta times its old value (not read when beta is 0).
#pragma once
#include <cudnn.h>

namespace qnn_emu {

struct ConvolutionParams {
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool flip = false;  // CUDNN_CONVOLUTION rather than CUDNN_CROSS_CORRELATION
};

struct Shapes {
  int n, c, h, w, k, r, s, ho, wo;
  const ConvolutionParams* conv;
  bool nhwc = false;  // x and y (dx and dy) are NHWC
  bool krsc = false;  // the filter (or its gradient) is KRSC
  // Row of the input that output row oy reads at filter row i (negative or >= h: padding).
  int input_row(int oy, int i) const {
    return oy * conv->stride_h - conv->pad_h + (conv->flip ? r - 1 - i : i) * conv->dilation_h;
  }
  int input_col(int ox, int j) const {
    return ox * conv->stride_w - conv->pad_w + (conv->flip ? s - 1 - j : j) * conv->dilation_w;
  }
  // The outputs [begin, end) of a row whose input column at filter column j is inside the image.
  void valid_cols(int j, int& begin, int& end) const {
    begin = 0;
    while (begin < wo && input_col(begin, j) < 0) ++begin;
    end = wo;
    while (end > begin && input_col(end - 1, j) >= w) --end;
  }
};

void convolution_forward(const Shapes& g, float alpha, const float* x, const float* w, float beta, float* y);
void convolution_backward_data(const Shapes& g, float alpha, const float* w, const float* dy, float beta, float* dx);
void convolution_backward_filter(const Shapes& g, float alpha, const float* x, const float* dy, float beta, float* dw);

}  // namespace qnn_emu

// ACIQ: analytical clipping for integer quantization (Banner, Nahshan and Soudry, "Post training
// 4-bit quantization of convolutional networks for rapid-deployment", NeurIPS 2019).
//
// A tensor whose values follow a bell-shaped prior is clipped to [mu - alpha, mu + alpha] and
// quantized uniformly with 2^M bins of width Delta = 2 alpha / 2^M. The expected squared error is
// the clipping error of the two tails plus the rounding error Delta^2 / 12 = alpha^2 / (3 4^M) of
// the values inside. For a Laplace(mu, b) prior (the paper's eq. 5):
//
//   MSE(alpha) = 2 b^2 exp(-alpha / b) + alpha^2 / (3 4^M)
//
// and for a Gaussian(mu, sigma) prior:
//
//   MSE(alpha) = (sigma^2 + alpha^2) (1 - erf(alpha / (sigma sqrt 2)))
//                - sqrt(2 / pi) alpha sigma exp(-alpha^2 / (2 sigma^2)) + alpha^2 / (3 4^M)
//
// Both are unimodal in alpha, and alpha scales with b (or sigma), so the optimum is a constant
// per bit width times the tensor's own scale: alpha* = c_M b, e.g. c_4 = 5.03 for Laplace and
// 2.56 for Gaussian. aciq_alpha() finds c_M by golden-section search.
//
// One-sided tensors (a ReLU's output, whose negative half is exactly zero) put all 2^M bins on
// [0, alpha] and keep one tail. For the positive part of a Laplace, y ~ Exp(b), the clipping
// error is integral_alpha^inf (y - alpha)^2 e^(-y/b) / b dy = 2 b^2 e^(-alpha/b) and the rounding
// error alpha^2 / (12 4^M) = alpha^2 / (3 4^(M+1)): the two-sided objective at M + 1 bits, so
// alpha+(M) = alpha(M + 1) (aciq_alpha_one_sided); the paper's code uses the same shifted table
// for ReLU outputs of either prior.
#pragma once

namespace qnn {

enum class AciqPrior { Laplace, Gauss };

const char* aciq_prior_name(AciqPrior prior);

// The two-sided MSE above for unit scale (b = 1 or sigma = 1), 2^bits bins; bits in 1..16.
double aciq_mse(AciqPrior prior, double alpha, int bits);

// The alpha minimising aciq_mse (unit scale), to 1e-9; bits in 1..16.
double aciq_alpha(AciqPrior prior, int bits);

// The one-sided optimum: aciq_alpha(prior, bits + 1); bits in 1..15.
double aciq_alpha_one_sided(AciqPrior prior, int bits);

}  // namespace qnn

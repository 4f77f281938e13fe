// bias_act: the arithmetic of one element, forward and backward.
//
// Plain C++ shared by the CUDA kernels (bias_act_kernel.cu) and the host-only test
// harness (tests/stylegan/test_ops_cuda_build.py); see upfirdn2d_kernel.h for why.
//
// Forward, as in stylegan/ops/bias_act_ref.py:  y = clamp(act(x + b) * gain, -clamp, clamp).
// Backward follows the reference's autograd step by step (clamp, then gain, then the
// activation), so float32 results round exactly like the reference's.
#pragma once

#include "kernel_common.h"

namespace sgm {

enum BiasActKind : int { kLinear = 0, kLrelu = 1 };

struct BiasActParams {
  int act;             // BiasActKind
  double alpha;        // negative slope of lrelu
  double gain;         // scale after the activation
  double clamp;        // clamp to [-clamp, clamp]; negative: no clamp
  int64_t bias_size;   // x.size(dim); 0 when there is no bias
  int64_t bias_stride; // x.stride(dim): bias index of memory offset i is (i / stride) % size
};

SGM_HOST_DEVICE int64_t bias_index(int64_t i, const BiasActParams& p) {
  // Valid for any non-overlapping, dense layout (contiguous, channels_last, ...): the
  // next-outer dimension's stride is stride(dim) * size(dim). A dimension of size 1 may
  // have any stride, 0 included, so it must not be divided by.
  return p.bias_size <= 1 ? 0 : (i / p.bias_stride) % p.bias_size;
}

// v = x + b  ->  y
template <typename Acc>
SGM_HOST_DEVICE Acc bias_act_value(Acc v, const BiasActParams& p) {
  if (p.act == kLrelu) v = v > Acc(0) ? v : v * static_cast<Acc>(p.alpha);
  v = v * static_cast<Acc>(p.gain);
  if (p.clamp >= 0) {
    const Acc c = static_cast<Acc>(p.clamp);
    v = v > c ? c : (v < -c ? -c : v);
  }
  return v;
}

// dy -> dx, given either the pre-activation v = x + b or the output y.
//
// From v the masks are exactly those of the reference's autograd. torch's clamp
// backward passes the gradient only strictly inside (-clamp, clamp): a value exactly on
// a bound gets 0, and so does NaN (a NaN input gets a zero gradient when there is a
// clamp; README, "Ops, CUDA and speed").
//
// The output suffices only when the store kept what the masks need, which the caller
// (bias_act_cuda.backward_mode) guarantees before choosing it: gain >= 1 and
// alpha >= 0, so that y > 0 exactly when v > 0 (no positive y underflows to 0), and,
// with a clamp, a float or double output, so that |y| < clamp exactly when the value
// was inside (half and bfloat16 round: fp16 stores a clamp of 0.1 as 0.09998).
template <typename Acc>
SGM_HOST_DEVICE Acc bias_act_grad_value(Acc dy, Acc saved, bool saved_is_output, const BiasActParams& p) {
  const bool positive = saved > Acc(0);
  bool clamped = false;
  if (p.clamp >= 0) {
    Acc u = saved;
    if (!saved_is_output) {
      if (p.act == kLrelu && !positive) u = u * static_cast<Acc>(p.alpha);
      u = u * static_cast<Acc>(p.gain);
    }
    const Acc c = static_cast<Acc>(p.clamp);
    clamped = !(u > -c && u < c);
  }
  if (clamped) return Acc(0);
  Acc g = dy * static_cast<Acc>(p.gain);
  if (p.act == kLrelu && !positive) g = g * static_cast<Acc>(p.alpha);
  return g;
}

}  // namespace sgm

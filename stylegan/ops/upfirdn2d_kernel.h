// upfirdn2d: the arithmetic of one output sample.
//
// Plain C++ with no CUDA or torch headers, so that the same code runs in the CUDA
// kernel (upfirdn2d_kernel.cu) and in a host-only harness that the test suite compiles
// with g++ to check the index arithmetic against the Python reference on machines
// without a GPU (tests/stylegan/test_ops_cuda_build.py).
//
// Definition (the same as stylegan/ops/upfirdn2d_ref.py): insert up-1 zeros after every
// input sample, pad by (pad0, pad1) (negative crops), convolve with the filter, keep
// every down-th sample. Written per output sample o along one axis:
//
//     y[o] = sum_t u[o*down + t - pad0] * w[t],   t = 0 .. taps-1,
//
// where u is the zero-inserted input (u[j] = x[j/up] if j % up == 0 and 0 <= j < n*up,
// else 0) and w[t] = f[taps-1-t] (a true convolution) or f[t] with flip_filter. Only
// the taps landing on real samples are visited: every up-th tap from the first one.
#pragma once

#include "kernel_common.h"

namespace sgm {

struct Upfirdn2dParams {
  int64_t batch, channels, in_h, in_w, out_h, out_w;
  int64_t in_stride[4];   // x strides in elements: N, C, H, W (any memory format)
  int64_t out_stride[4];  // y strides in elements
  int64_t up_x, up_y, down_x, down_y;
  int64_t pad_x0, pad_y0;  // pad1 only shapes out_h/out_w, which the caller computes
  int64_t filter_h, filter_w;
  bool flip_filter;        // correlate with f instead of convolving
  bool channels_fastest;   // enumerate outputs as N, H, W, C (matches a channels_last y)
};

SGM_HOST_DEVICE int64_t sgm_min(int64_t a, int64_t b) { return a < b ? a : b; }

// a mod m in [0, m) for any sign of a (C++ % truncates toward zero).
SGM_HOST_DEVICE int64_t floor_mod(int64_t a, int64_t m) {
  const int64_t r = a % m;
  return r < 0 ? r + m : r;
}

// Taps [first, end) (stepping by `up`) of one axis that read a real input sample,
// for an output sample whose first tap reads upsampled position `base`.
SGM_HOST_DEVICE void tap_range(int64_t base, int64_t up, int64_t in_size, int64_t taps,
                               int64_t* first, int64_t* end) {
  // Smallest t >= 0 with base + t >= 0 and (base + t) % up == 0. For base < 0 that is
  // t = -base (it reads position 0), otherwise the distance to the next multiple of up.
  *first = base < 0 ? -base : floor_mod(-base, up);
  // Position base + t must stay below in_size * up.
  *end = sgm_min(taps, in_size * up - base);
}

// Output index i -> (n, c, oy, ox), in the order the output is laid out in memory, so
// that consecutive threads write consecutive addresses.
SGM_HOST_DEVICE void upfirdn2d_unravel(int64_t i, const Upfirdn2dParams& p,
                                       int64_t* n, int64_t* c, int64_t* oy, int64_t* ox) {
  if (p.channels_fastest) {
    *c = i % p.channels; i /= p.channels;
    *ox = i % p.out_w;   i /= p.out_w;
    *oy = i % p.out_h;   *n = i / p.out_h;
  } else {
    *ox = i % p.out_w;   i /= p.out_w;
    *oy = i % p.out_h;   i /= p.out_h;
    *c = i % p.channels; *n = i / p.channels;
  }
}

// One output sample y[n, c, oy, ox]. T is the storage type, Acc the accumulation type
// (float for half/bfloat16/float, double for double); f holds filter*gain as Acc.
template <typename T, typename Acc>
SGM_HOST_DEVICE Acc upfirdn2d_sample(const T* x, const Acc* f, const Upfirdn2dParams& p,
                                     int64_t n, int64_t c, int64_t oy, int64_t ox) {
  const int64_t base_y = oy * p.down_y - p.pad_y0;
  const int64_t base_x = ox * p.down_x - p.pad_x0;
  int64_t ty0, ty1, tx0, tx1;
  tap_range(base_y, p.up_y, p.in_h, p.filter_h, &ty0, &ty1);
  tap_range(base_x, p.up_x, p.in_w, p.filter_w, &tx0, &tx1);
  const T* xc = x + n * p.in_stride[0] + c * p.in_stride[1];
  Acc acc = Acc(0);
  for (int64_t ty = ty0; ty < ty1; ty += p.up_y) {
    const int64_t iy = (base_y + ty) / p.up_y;  // exact: base_y + ty is a non-negative multiple of up_y
    const int64_t fy = p.flip_filter ? ty : p.filter_h - 1 - ty;
    for (int64_t tx = tx0; tx < tx1; tx += p.up_x) {
      const int64_t ix = (base_x + tx) / p.up_x;
      const int64_t fx = p.flip_filter ? tx : p.filter_w - 1 - tx;
      acc += static_cast<Acc>(xc[iy * p.in_stride[2] + ix * p.in_stride[3]]) * f[fy * p.filter_w + fx];
    }
  }
  return acc;
}

}  // namespace sgm

// bias_act CUDA kernels: one pass over memory forward, one pass backward.
//
// Elements are visited in memory order (index i is the memory offset), which works for
// any non-overlapping dense layout; the bias index follows from the stride of `dim`
// (see bias_act_kernel.h). The caller (stylegan_ops.cpp) guarantees that x, y, dy, dx
// and the saved tensor share one such layout.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/TensorBase.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "bias_act_kernel.h"

namespace sgm {

namespace {

constexpr int kThreads = 256;

int64_t num_blocks(int64_t total) {
  return std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(1) << 20);
}

template <typename T, typename Acc>
__global__ void bias_act_forward_kernel(const T* __restrict__ x, const T* __restrict__ b, T* __restrict__ y,
                                        BiasActParams p, int64_t total) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    Acc v = static_cast<Acc>(x[i]);
    if (b != nullptr) v += static_cast<Acc>(b[bias_index(i, p)]);
    y[i] = static_cast<T>(bias_act_value<Acc>(v, p));
  }
}

template <typename T, typename Acc>
__global__ void bias_act_grad_kernel(const T* __restrict__ dy, const T* __restrict__ saved,
                                     const T* __restrict__ b, T* __restrict__ dx, BiasActParams p,
                                     bool saved_is_output, int64_t total) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    Acc s = static_cast<Acc>(saved[i]);
    if (!saved_is_output && b != nullptr) s += static_cast<Acc>(b[bias_index(i, p)]);
    dx[i] = static_cast<T>(bias_act_grad_value<Acc>(static_cast<Acc>(dy[i]), s, saved_is_output, p));
  }
}

}  // namespace

// b may be undefined (no bias); otherwise contiguous, x's dtype, x.size(dim) elements.
void bias_act_launch(const at::TensorBase& x, const at::TensorBase& b, const at::TensorBase& y,
                     const BiasActParams& p) {
  const int64_t total = x.numel();
  if (total == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_act_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    bias_act_forward_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(num_blocks(total)), kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), bp, y.mutable_data_ptr<scalar_t>(), p, total);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void bias_act_grad_launch(const at::TensorBase& dy, const at::TensorBase& saved, const at::TensorBase& b,
                          const at::TensorBase& dx, const BiasActParams& p, bool saved_is_output) {
  const int64_t total = dy.numel();
  if (total == 0) return;
  const c10::cuda::CUDAGuard guard(dy.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dy.scalar_type(), "bias_act_grad_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    bias_act_grad_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(num_blocks(total)), kThreads, 0, stream>>>(
        dy.const_data_ptr<scalar_t>(), saved.const_data_ptr<scalar_t>(), bp, dx.mutable_data_ptr<scalar_t>(), p,
        saved_is_output, total);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace sgm

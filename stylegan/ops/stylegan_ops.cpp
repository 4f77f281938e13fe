// Python bindings of the CUDA ops: argument checks, output allocation, kernel launch.
//
// One extension holds both ops so that it compiles once (stylegan/ops/custom_ops.py
// builds it on the first call with a CUDA tensor). The autograd wiring lives in
// upfirdn2d_cuda.py and bias_act_cuda.py; these functions are plain forward kernels.

#include <torch/extension.h>

#include <optional>

#include "bias_act_kernel.h"
#include "upfirdn2d_kernel.h"

namespace sgm {
void upfirdn2d_launch(const at::TensorBase& x, const at::TensorBase& f, const at::TensorBase& y,
                      const Upfirdn2dParams& p);
void bias_act_launch(const at::TensorBase& x, const at::TensorBase& b, const at::TensorBase& y,
                     const BiasActParams& p);
void bias_act_grad_launch(const at::TensorBase& dy, const at::TensorBase& saved, const at::TensorBase& b,
                          const at::TensorBase& dx, const BiasActParams& p, bool saved_is_output);
}  // namespace sgm

namespace {

at::ScalarType opmath_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

void check_float_cuda(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  const auto s = t.scalar_type();
  TORCH_CHECK(s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16, name,
              " must be float, double, half or bfloat16, got ", s);
}

torch::Tensor upfirdn2d(const torch::Tensor& x, const torch::Tensor& f, int64_t up_x, int64_t up_y,
                        int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                        int64_t pad_y1, bool flip_filter) {
  check_float_cuda(x, "x");
  TORCH_CHECK(x.dim() == 4, "x must be [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(f.dim() == 2 && f.device() == x.device(), "f must be a 2-D tensor on x's device");
  TORCH_CHECK(f.scalar_type() == opmath_dtype(x.scalar_type()), "f must be ", opmath_dtype(x.scalar_type()),
              " for ", x.scalar_type(), " inputs, got ", f.scalar_type());
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "up and down must be >= 1");
  const int64_t fh = f.size(0), fw = f.size(1);
  TORCH_CHECK(fh >= 1 && fw >= 1, "the filter must not be empty");
  const int64_t span_y = x.size(2) * up_y + pad_y0 + pad_y1, span_x = x.size(3) * up_x + pad_x0 + pad_x1;
  TORCH_CHECK(span_y >= fh && span_x >= fw, "the padded, upsampled input (", span_y, "x", span_x,
              ") is smaller than the filter (", fh, "x", fw, ")");
  const int64_t out_h = (span_y - fh) / down_y + 1, out_w = (span_x - fw) / down_x + 1;

  const torch::Tensor fc = f.contiguous();
  torch::Tensor y = torch::empty({x.size(0), x.size(1), out_h, out_w},
                                 x.options().memory_format(x.suggest_memory_format()));
  sgm::Upfirdn2dParams p{};
  p.batch = x.size(0); p.channels = x.size(1); p.in_h = x.size(2); p.in_w = x.size(3);
  p.out_h = out_h; p.out_w = out_w;
  for (int d = 0; d < 4; ++d) {
    p.in_stride[d] = x.stride(d);
    p.out_stride[d] = y.stride(d);
  }
  p.up_x = up_x; p.up_y = up_y; p.down_x = down_x; p.down_y = down_y;
  p.pad_x0 = pad_x0; p.pad_y0 = pad_y0; p.filter_h = fh; p.filter_w = fw;
  p.flip_filter = flip_filter;
  p.channels_fastest = !y.is_contiguous() && y.is_contiguous(at::MemoryFormat::ChannelsLast);
  sgm::upfirdn2d_launch(x, fc, y, p);
  return y;
}

sgm::BiasActParams bias_act_params(const torch::Tensor& like, const std::optional<torch::Tensor>& b, int64_t dim,
                                   int64_t act, double alpha, double gain, double clamp) {
  TORCH_CHECK(dim >= 0 && dim < std::max<int64_t>(like.dim(), 1), "dim out of range");
  TORCH_CHECK(act == sgm::kLinear || act == sgm::kLrelu, "unknown activation code ", act);
  sgm::BiasActParams p{};
  p.act = static_cast<int>(act);
  p.alpha = alpha;
  p.gain = gain;
  p.clamp = clamp;
  p.bias_size = 0;
  p.bias_stride = 1;
  if (b.has_value() && b->defined()) {
    TORCH_CHECK(b->dim() == 1 && b->size(0) == like.size(dim), "b must have x.size(dim) elements");
    TORCH_CHECK(b->scalar_type() == like.scalar_type() && b->device() == like.device(),
                "b must have x's dtype and device");
    p.bias_size = b->size(0);
    p.bias_stride = like.stride(dim);
  }
  return p;
}

torch::Tensor bias_act(torch::Tensor x, const std::optional<torch::Tensor>& b, int64_t dim, int64_t act,
                       double alpha, double gain, double clamp) {
  check_float_cuda(x, "x");
  if (!x.is_non_overlapping_and_dense()) x = x.contiguous();
  const sgm::BiasActParams p = bias_act_params(x, b, dim, act, alpha, gain, clamp);
  const torch::Tensor bc = p.bias_size > 0 ? b->contiguous() : torch::Tensor();
  torch::Tensor y = torch::empty_like(x);  // same strides as x, since x is dense
  TORCH_CHECK(y.strides() == x.strides(), "internal: empty_like changed the layout");
  sgm::bias_act_launch(x, bc, y, p);
  return y;
}

// dx for upstream gradient dy. `saved` is the output y (saved_is_output) or the input x,
// in which case b is added back to recover the pre-activation.
torch::Tensor bias_act_grad(torch::Tensor dy, torch::Tensor saved, const std::optional<torch::Tensor>& b,
                            int64_t dim, int64_t act, double alpha, double gain, double clamp,
                            bool saved_is_output) {
  check_float_cuda(dy, "dy");
  TORCH_CHECK(saved.sizes() == dy.sizes() && saved.scalar_type() == dy.scalar_type() &&
              saved.device() == dy.device(), "dy and the saved tensor must match in shape, dtype and device");
  if (!saved.is_non_overlapping_and_dense()) saved = saved.contiguous();
  if (dy.strides() != saved.strides()) {  // e.g. an expanded or permuted upstream gradient
    dy = dy.contiguous();
    saved = saved.contiguous();
  }
  const sgm::BiasActParams p = bias_act_params(saved, b, dim, act, alpha, gain, clamp);
  const torch::Tensor bc = p.bias_size > 0 ? b->contiguous() : torch::Tensor();
  torch::Tensor dx = torch::empty_like(saved);
  TORCH_CHECK(dx.strides() == saved.strides(), "internal: empty_like changed the layout");
  sgm::bias_act_grad_launch(dy, saved, bc, dx, p, saved_is_output);
  return dx;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "stylegan-morph CUDA ops: upfirdn2d and bias_act";
  m.def("upfirdn2d", &upfirdn2d, "upfirdn2d forward (filter already multiplied by the gain)",
        py::arg("x"), py::arg("f"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"), py::arg("down_y"),
        py::arg("pad_x0"), py::arg("pad_x1"), py::arg("pad_y0"), py::arg("pad_y1"), py::arg("flip_filter"));
  m.def("bias_act", &bias_act, "bias + activation forward", py::arg("x"), py::arg("b"), py::arg("dim"),
        py::arg("act"), py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
  m.def("bias_act_grad", &bias_act_grad, "bias + activation: dx from dy", py::arg("dy"), py::arg("saved"),
        py::arg("b"), py::arg("dim"), py::arg("act"), py::arg("alpha"), py::arg("gain"), py::arg("clamp"),
        py::arg("saved_is_output"));
}

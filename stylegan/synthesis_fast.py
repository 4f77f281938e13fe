"""The fast CPU path of the synthesis layers: the same sums as the reference, in fewer passes.

A 1024^2 frame moves about 130 MiB per activation, so on a CPU everything that is not
a convolution is bound by memory traffic. Profiling the earlier fast path
(notes/speed.md) found a fifth of the frame in elementwise passes (noise add, bias
add, activation, each a fresh 128 MiB tensor) and an eighth in preparing weights
(gain, channels_last copy, modulation, demodulation, one pass each over up to
2.4 M weights per layer). Here, for batch 1 on the CPU:

* the gain-scaled channels_last weight and its squared tap sums [O, I] are cached
  (keyed on the weight's storage and version, so an optimiser step or
  ``load_state_dict`` refreshes them), and demodulation is one [O, I] @ [I] product;
  modulation, demodulation and the leaky ReLU's sqrt(2) gain are then one pass over
  the weight (valid because lrelu(g*v) = g*lrelu(v) for g > 0);
* the bias goes into the convolution (oneDNN adds it while writing the output), or,
  after an up-sampling conv, into the FIR filter's depthwise convolution, which is
  exact because the bias is added after filtering in both;
* noise and activation run in place on that fresh output;
* the 1x1 toRGB conv is one matmul over the channels_last pixels.

Mixed precision: under ``torch.autocast`` only the 3x3 convolutions (and the FIR
filter right after an up-sampling one) run in the low precision. Styles, weight
preparation, noise, activation, toRGB and the RGB skip sum stay float32, and
activations are stored float32 between layers (the noise add widens the conv output),
except after an up-sampling layer, whose output feeds only the next conv.
Measured on random official-size weights: rounding only the conv operands costs
about 45 dB at 256^2, while rounding every op's output (plain autocast) gave 40.5 dB
at 256^2 and 38 dB at 1024^2 (notes/speed.md).

Everything is built from differentiable torch ops, so refinement (gradients through
``x`` and the styles) works; the weight cache is bypassed whenever the weight itself
needs a gradient. Parity with ``impl="ref"``: ``tests/stylegan/test_synthesis_fast.py``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, ContextManager

import torch
import torch.nn.functional as F

__all__ = ["fast_path_applies", "synthesis_layer_fast", "torgb_fast", "LRELU_GAIN", "PER_FRAME_MIN_RESOLUTION"]

#: A batch runs frame by frame through the fast path from this output size up. Below it the
#: Python overhead of a frame (about 3 ms) outweighs the passes saved, and the batched
#: reference form is faster (32 px: 14 ms against 6 ms per frame).
PER_FRAME_MIN_RESOLUTION = 128

LRELU_GAIN = math.sqrt(2)  # bias_act's default gain for "lrelu"
LRELU_SLOPE = 0.2


def fast_path_applies(impl: str | None, x: torch.Tensor) -> bool:
    """The fast path runs for impl None/"fast" on the CPU, one sample at a time."""
    return impl in (None, "fast") and x.device.type == "cpu" and x.shape[0] == 1


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the convolutions run in: autocast's, when it is on, else the input's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _full_precision(x: torch.Tensor) -> ContextManager[Any]:
    """Switch autocast off (everything explicit inside), or nothing when it is off already."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def _layout(wf: torch.Tensor, gain: float, up: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """gain * weight in the layout its conv reads, and the squared tap sums [O, I].

    The up-sampling layer's transposed conv reads [I, O, k, k]; handing it that layout in
    channels_last, rather than a transposed view, saves oneDNN a reorder per call (a 512
    -> 512 layer at 32^2: 236 ms against 386 ms, measured under load).
    """
    wg = wf * gain
    wsq = wg.square().sum(dim=[2, 3])  # [O, I]
    if up:
        wg = wg.transpose(0, 1)  # [I, O, k, k]
    return wg.contiguous(memory_format=torch.channels_last), wsq


def _prepared_weight(layer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(gain * weight, channels_last, [O, I, k, k] or for ``up`` [I, O, k, k]; squared tap sums [O, I]), cached."""
    weight = layer.weight
    wf = weight if weight.dtype in (torch.float32, torch.float64) else weight.float()
    if torch.is_grad_enabled() and weight.requires_grad:  # training: the graph needs the real ops
        return _layout(wf, layer.weight_gain, layer.up)
    # Tensors made in inference mode cannot be saved for a backward pass later (refinement),
    # so the mode is part of the key.
    key = (weight.data_ptr(), weight._version, weight.device, weight.dtype, layer.weight_gain,
           torch.is_inference_mode_enabled())
    cache = getattr(layer, "_fast_weight_cache", None)
    if cache is None or cache[0] != key:
        with torch.no_grad():
            cache = (key, *_layout(wf, layer.weight_gain, layer.up))
        layer._fast_weight_cache = cache
    return cache[1], cache[2]


def _fir_with_bias(x: torch.Tensor, f: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """upfirdn2d(x, f, padding=1, gain=4) plus a per-channel bias, as one depthwise conv.

    The same sums as :func:`stylegan.ops.upfirdn2d` with up = down = 1 (its fast path
    is this depthwise conv), with the bias added by the conv's epilogue instead of a
    separate pass over the output.
    """
    c = x.shape[1]
    fh, fw = f.shape
    k = (f * 4).to(x.dtype).flip([0, 1])[None, None].expand(c, 1, fh, fw)  # conv2d correlates: flip to convolve
    return F.conv2d(x, k, bias.to(x.dtype), padding=1, groups=c)


def synthesis_layer_fast(layer: Any, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
    """:class:`stylegan.networks.SynthesisLayer` forward for batch 1 on the CPU.

    Args:
        layer: the SynthesisLayer (its weight, affine, bias, noise and filter are used).
        x: [1, I, H, W] input.
        w: [1, w_dim] the layer's w.
        noise_mode: "const", "random" or "none".

    Returns:
        [1, O, R, R] activations, channels_last, float32 under autocast.
    """
    cdt = _compute_dtype(x)
    with _full_precision(x):
        styles = layer.affine(w.float() if cdt != w.dtype else w)  # [1, I]
        wg, wsq = _prepared_weight(layer)  # [O, I, k, k] ([I, O, k, k] for up), [O, I]
        s = styles.reshape(-1).to(wg.dtype)  # [I]
        # demodulation: sum over (I, k, k) of (w * s)^2 = (sum_k w^2) @ s^2
        d = (wsq @ s.square() + 1e-8).rsqrt() * LRELU_GAIN  # [O]
        o, i = wsq.shape
        scale = d[:, None] * s[None, :]  # [O, I]
        # one pass over the weight; keeps channels_last
        wm = wg * (scale.t().reshape(i, o, 1, 1) if layer.up else scale.reshape(o, i, 1, 1))
        bias = layer.bias.to(wg.dtype) * LRELU_GAIN
        xin = x.to(cdt)
        if layer.up:
            y = F.conv_transpose2d(xin, wm.to(cdt), stride=2)
            # 2H+1 samples -> 2H by the [1,3,3,1] filter (gain 4 after zero insertion)
            # The FIR runs in the conv's dtype: under bf16 that skips a widening pass over the
            # 2H+1 output and costs nothing measurable (44.57 against 44.60 dB at 1024^2).
            y = _fir_with_bias(y, layer.resample_filter, bias)
        else:
            y = F.conv2d(xin, wm.to(cdt), bias.to(cdt), padding=wm.shape[2] // 2)
        noise = None
        if noise_mode == "const":
            noise = layer.noise_const.to(wg.dtype) * (layer.noise_strength.to(wg.dtype) * LRELU_GAIN)
        elif noise_mode == "random":
            noise = torch.randn(1, 1, layer.resolution, layer.resolution, device=y.device, dtype=wg.dtype)
            noise = noise * (layer.noise_strength.to(wg.dtype) * LRELU_GAIN)
        if y.dtype != wg.dtype and layer.up:
            # An up layer's output feeds only the next conv, which reads bf16 anyway: stay bf16
            # (no widening, no cast back; 1024^2 bf16 frame ~15% faster, 44.3 against 44.5 dB).
            if noise is not None:
                y = y.add_(noise.to(y.dtype))
        elif y.dtype != wg.dtype:
            # bf16 conv output: the noise add also widens it to float32, in one pass instead of two
            y = y.to(wg.dtype) if noise is None else torch.add(y, noise)
        elif noise is not None:
            y = y.add_(noise)
        y = F.leaky_relu_(y, LRELU_SLOPE)
        if layer.conv_clamp is not None:
            # Leaky ReLU's backward reads its output, so under autograd keep it intact.
            keep = torch.is_grad_enabled() and y.requires_grad
            y = y.clamp(-layer.conv_clamp, layer.conv_clamp) if keep else y.clamp_(-layer.conv_clamp,
                                                                                     layer.conv_clamp)
    return y


def torgb_fast(layer: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """:class:`stylegan.networks.ToRGBLayer` forward for batch 1 on the CPU, always in float32.

    The 1x1 conv over channels_last pixels is a [H*W, I] @ [I, O] matmul with the bias
    fused (addmm); the result comes back NCHW like every image.
    """
    with _full_precision(x):
        wf = layer.weight.float() if layer.weight.dtype not in (torch.float32, torch.float64) else layer.weight
        styles = layer.affine(w.to(wf.dtype))  # [1, I]
        o, i = wf.shape[:2]
        wm = wf.reshape(o, i) * (styles.reshape(1, i) * layer.weight_gain)  # [O, I]
        _, _, h, wd = x.shape
        pixels = x.to(wf.dtype).permute(0, 2, 3, 1).reshape(h * wd, i)  # a view when x is channels_last
        y = torch.addmm(layer.bias.to(wf.dtype), pixels, wm.t())  # [H*W, O]
        y = y.reshape(1, h, wd, o).permute(0, 3, 1, 2).contiguous()  # [1, O, H, W]
        if layer.conv_clamp is not None:
            y = y.clamp(-layer.conv_clamp, layer.conv_clamp)
    return y

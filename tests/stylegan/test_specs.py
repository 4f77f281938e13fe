"""PathSpec and RenderSpec: frozen, validated when made, one message per bad field, old keywords mapped."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stylegan.errors import UserError
from stylegan.interpolation import SCHEDULES, interpolation_path, num_frames
from stylegan.specs import PathSpec, RenderSpec, specs_from_keywords


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=1), "steps must be at least 2 (both end codes) and at most 1,000,000, got 1"),
    (dict(steps=2_000_000), "steps must be at least 2"),
    (dict(steps=2.5), "steps must be a whole number, got 2.5"),
    (dict(steps=True), "steps must be a whole number, got True"),
    (dict(hold=-1), "hold must be 0 or more frames"),
    (dict(hold=10**12), "hold must be 0 or more frames and at most 1,000,000"),
    (dict(kind="cubic"), "kind must be one of lerp, slerp, got 'cubic'"),
    (dict(easing="wobbly"), "easing must be one of linear, ease-in-out, cosine, got 'wobbly'"),
    (dict(schedule="sideways"), "schedule must be one of uniform, coarse-to-fine, fine-to-coarse"),
    (dict(loop="yes"), "loop must be True or False"),
])
def test_path_spec_refuses_bad_fields_naming_them(kwargs, match):
    with pytest.raises(UserError, match=match.replace("(", r"\(").replace(")", r"\)")) as err:
        PathSpec(**kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, match", [
    (dict(fps=0), "fps must be above 0"),
    (dict(fps=float("nan")), "fps must be a finite number"),
    (dict(crf=52), "crf must be an integer from 0"),
    (dict(size=0), "size must be a positive number of pixels"),
    (dict(size=5000), "at most 4096"),
    (dict(batch_size=0), "batch_size must be at least 1 and at most 256, got 0"),
    (dict(batch_size=10**9), "batch_size must be at least 1 and at most 256"),
    (dict(noise_mode="fixed"), "noise_mode must be one of const, random, none"),
    (dict(precision="int8"), "precision must be one of auto, fp32, bf16, fp16"),
])
def test_render_spec_refuses_bad_fields_naming_them(kwargs, match):
    with pytest.raises(UserError, match=match):
        RenderSpec(**kwargs)


def test_specs_are_frozen_and_spellings_are_canonical():
    spec = PathSpec(easing="ease_in_out", schedule=None)
    assert spec == PathSpec(easing="ease-in-out", schedule="uniform")  # equal paths compare equal
    assert hash(spec) == hash(PathSpec(easing="ease-in-out"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.steps = 3  # type: ignore[misc]
    with pytest.raises(UserError, match="steps must be at least 2"):
        dataclasses.replace(spec, steps=1)  # a replaced spec is validated again
    custom = SCHEDULES["coarse-to-fine"]
    assert PathSpec(schedule=custom).schedule is custom
    assert RenderSpec(precision=torch.bfloat16).precision is torch.bfloat16  # library callers may pass a dtype


def test_path_spec_builds_the_same_path_as_the_interpolation_module():
    keys = torch.randn(3, 4, 8)
    spec = PathSpec(steps=5, hold=2, easing="cosine", kind="slerp", schedule="coarse-to-fine", loop=True)
    expected = interpolation_path(keys, 5, kind="slerp", easing="cosine", hold=2, loop=True,
                                  schedule="coarse-to-fine").tensor()
    assert torch.equal(spec.path(keys).tensor(), expected)
    assert spec.num_frames(3) == num_frames(3, 5, 2, True) == len(expected)


def test_render_spec_options_are_the_render_functions_keywords():
    import inspect

    from stylegan.render import render_frames, render_video

    spec = RenderSpec(fps=25, crf=20, size=64, batch_size=2, noise_mode="none", precision="auto")
    assert spec.video_options() == dict(fps=25, crf=20, size=64, batch_size=2, noise_mode="none", precision="auto")
    assert set(spec.frame_options()) <= set(inspect.signature(render_frames).parameters)
    assert set(spec.video_options()) <= set(inspect.signature(render_video).parameters)


def test_loose_keywords_map_onto_the_specs_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"f\(steps=, hold=\) is deprecated; pass path=PathSpec"):
        with pytest.warns(DeprecationWarning, match=r"pass render=RenderSpec\(fps=...\)"):
            path, render = specs_from_keywords(None, RenderSpec(crf=10), dict(steps=7, hold=1, fps=12), "f")
    assert path == PathSpec(steps=7, hold=1) and render == RenderSpec(fps=12, crf=10)
    with pytest.raises(TypeError, match="unexpected keyword arguments: colour"):
        specs_from_keywords(None, None, dict(colour="red"), "f")
    assert specs_from_keywords(None, None, {}, "f") == (PathSpec(), RenderSpec())

"""Install the toolkit: `pip install -e .` (see README for the full set-up)."""

from setuptools import setup

TOOLS = [
    "generate", "bench", "align", "invert", "download", "interpolate",
    "train_stylegan", "train_encoder", "evaluate", "explore", "learn_directions",
    "edit", "latent_map", "gpu_check", "class_interp", "measure_labels", "export_model",
]

setup(
    name="stylegan-morph",
    version="0.1.0",
    description="StyleGAN2 inversion (e4e) and face morph videos, on CPU or GPU",
    python_requires=">=3.10",
    packages=["stylegan", "stylegan.ops", "stylegan.convert", "stylegan.training",
              "stylegan.editing", "encoders", "pretrained", "tools", "tools.explorer"],
    package_data={
        "stylegan.ops": ["*.cu", "*.cpp", "*.h"],
        "tools.explorer": ["static/*"],
        "pretrained": ["weights/*.pt", "examples/*", "directions/*/*"],
    },
    install_requires=[
        "torch>=2.1", "torchvision", "numpy", "pillow", "dlib-bin", "face_recognition_models",
        "imageio", "imageio-ffmpeg", "ninja", "gdown", "tqdm", "flask", "scikit-learn", "matplotlib",
    ],
    extras_require={"test": ["pytest", "selenium"], "train": ["matplotlib"], "umap": ["umap-learn"]},
    entry_points={
        "console_scripts": [f"sgm-{t.replace('_', '-')}=tools.{t}:main" for t in TOOLS],
    },
)

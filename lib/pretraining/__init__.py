"""pretraining: the shared library of the book "Why does generative pre-training help?".

Modules
-------
device     choose the torch device once (CUDA, else MPS, else CPU)
data       the embedded mnist-10k set, its fixed split, full MNIST download
distort    seeded elastic + affine distortions of digits (InfiniteMNIST-like)
models     RBM, denoising auto-encoder, feed-forward classifier, each with a members dimension
train      CD-k / DAE training, greedy stacks, fine-tuning, evaluation
store      content-addressed artifact cache with atomic writes
params     parameter specs and validation for the chapter notebooks
book       results files, glue and provenance for the chapters
cli        ``python -m pretraining run|build``
"""

__version__ = "0.1.0"

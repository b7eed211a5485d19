"""pretraining: the library of the book "Why does generative pre-training help?".

Layers (imports only go down: chapters -> book -> analysis -> core):

core/       models, training, seeding, data, distortions (PyTorch; a members dimension everywhere)
analysis/   annealed importance sampling, statistics, function space, figures, the papers' numbers
book/       the chapter runtime, parameter specs, profiles, the artifact cache, the CLI, the site
chapters/   one module per chapter notebook (``chNN_name`` tells ``chapters/NN_name.ipynb``)
"""

__version__ = "0.2.0"

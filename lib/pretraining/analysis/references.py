"""The numbers the papers report, once, with their citations (for side-by-side tables in the book).

Test errors are in percent, as printed in the papers; dict keys of ``by_depth`` tables are numbers
of hidden layers. Log-likelihoods are nats per digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reference", "ERHAN2010_FIG1", "ERHAN2010_TABLE1", "ERHAN2010_PROTOCOL",
           "ERHAN2010_FUNCTION_SPACE", "LAROCHELLE2009_TABLE3", "SALAKHUTDINOV2008_TABLE1",
           "HINTON2006_DBN"]


@dataclass(frozen=True)
class Reference:
    """One published result: where it is from, on what data, the numbers, and findings in words."""

    citation: str
    data: str
    numbers: dict[str, Any]
    note: str = ""
    findings: dict[str, str] = field(default_factory=dict)


ERHAN = ("Erhan, Bengio, Courville, Manzagol, Vincent & Bengio, Why does unsupervised pre-training "
         "help deep learning?, JMLR 11 (2010)")

ERHAN2010_FIG1 = Reference(
    citation=f"{ERHAN}, Fig. 1",
    data="full MNIST (50k/10k/10k), 400 seeds per depth; medians read off the box plots, about ±0.01",
    numbers={"median": {"random": {1: 1.82, 2: 1.76, 3: 1.83, 4: 2.16},
                        "pretrained": {1: 1.41, 2: 1.36, 3: 1.33, 4: 1.31, 5: 1.37}}},
    note="without pre-training, 5 layers failed to converge",
)

ERHAN2010_TABLE1 = Reference(
    citation=f"{ERHAN}, Table 1",
    data="full MNIST, mean ± std over seeds, denoising auto-encoder pre-training",
    numbers={"mean": {"random": {1: 1.81, 2: 1.77}, "dae": {1: 1.41, 2: 1.37}},
             "std": {"random": {1: 0.07, 2: 0.10}, "dae": {1: 0.07, 2: 0.09}}},
)

ERHAN2010_PROTOCOL = Reference(
    citation=f"{ERHAN}, Sections 4-6",
    data="full MNIST",
    numbers={"seeds_per_depth": 400, "train_digits": 50_000, "width": 800, "pretrain_epochs_per_layer": 50,
             "finetune_epochs": 50},
    note="equal widths of 400-1200, about 800 in the depth runs; plain SGD, constant rates chosen on "
         "validation; uniform init in ±1/sqrt(fan_in)",
)

ERHAN2010_FUNCTION_SPACE = Reference(
    citation=f"{ERHAN}, Figs. 5 and 6",
    data="full MNIST, 50 + 50 two-layer networks, one point per epoch, all test outputs concatenated",
    numbers={"nets_per_group": 50, "hidden_layers": 2},
    note="t-SNE and ISOMAP of both groups together (the figures carry no numbers)",
    findings={"separation": "the groups never meet",
              "spread": "pre-trained networks occupy a smaller region"},
)

LAROCHELLE2009_TABLE3 = Reference(
    citation="Larochelle, Bengio, Louradour & Lamblin, Exploring strategies for training deep neural "
             "networks, JMLR 10 (2009), Table 3",
    data="MNIST-small: 10k train / 2k valid / 50k test, 500 units per layer, tuned hyper-parameters",
    numbers={"error": {"random": {1: 4.14, 2: 4.03, 3: 4.24, 4: 4.47},
                       "rbm": {1: 3.17, 2: 2.74, 3: 2.71, 4: 2.72},
                       "autoassociator": {1: 3.87, 2: 3.38, 3: 3.37, 4: 3.39}}},
    note="the closest published analogue of mnist-10k; 'autoassociator' = stacked (ordinary, not "
         "denoising) auto-associators",
)

SALAKHUTDINOV2008_TABLE1 = Reference(
    citation="Salakhutdinov & Murray, On the quantitative analysis of deep belief networks, ICML 2008, "
             "Table 1",
    data="full, stochastically binarised MNIST (60k training digits), AIS estimates",
    numbers={"test_loglik": {"RBM 500 hidden, CD-1": -125.53, "RBM 500 hidden, CD-3": -105.50,
                             "RBM 500 hidden, CD-25": -86.34}},
)

HINTON2006_DBN = Reference(
    citation="Hinton & Salakhutdinov, Reducing the dimensionality of data with neural networks, "
             "Science 313 (2006)",
    data="full MNIST, DBN 784-500-500-2000 fine-tuned with backpropagation",
    numbers={"error": {"low": 1.15, "high": 1.2}},
)

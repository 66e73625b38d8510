"""The repair's parameters, defined once: the pipeline reads them, the command line and the
service's ``POST /repair`` schema are derived from them, and the manifest records them."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RepairOptions(BaseModel):
    """How a BadNet is fine-pruned and how its filter is calibrated.

    Every decision these drive (how deep to prune, the filter's threshold) is made on the
    defender's clean data only; poisoned data, when given, is used for evaluation alone.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer: str | None = Field(
        None,
        description="layer whose output channels are pruned; default: found from the graph, "
        "the deepest convolutional feature map that every path to the output crosses",
    )
    max_accuracy_drop: float = Field(
        0.04,
        ge=0,
        le=1,
        description="prune dormant channels until clean accuracy would drop more than this",
    )
    sweep_faces: int = Field(
        3000,
        ge=50,
        description="clean faces (a random sample when there are more) on which the "
        "accuracy at each pruning depth is measured; as many poisoned faces, when given, "
        "for the attack success curve of the plot",
    )
    prune_fraction: float | None = Field(
        None, ge=0, le=1, description="prune exactly this fraction of channels instead"
    )
    holdout_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="share of the clean data kept out of fine-tuning, to calibrate the filter",
    )
    steps: int = Field(
        1200,
        ge=1,
        le=100_000,
        description="fine-tuning length in optimizer steps (the epochs follow from the data size)",
    )
    epochs: int | None = Field(
        None, ge=1, le=1000, description="fine-tune this many epochs instead of --steps"
    )
    batch_size: int = Field(128, ge=1, le=4096, description="fine-tuning batch size")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Adam's initial learning rate")
    frozen_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of the convolutions before the pruned feature map (the first "
        "ones, with their BatchNorms) kept as they are during fine-tuning; 0: the whole net "
        "trains, which a pruning-aware BadNet needs (docs/method.md)",
    )
    frozen_layers: tuple[str, ...] | None = Field(
        None, description="layers kept as they are during fine-tuning, instead of the above"
    )
    reinit_layers: tuple[str, ...] | None = Field(
        None,
        description="layers given fresh weights before fine-tuning; default: every weighted "
        "layer after the pruned feature map that is not a convolution (the dense head)",
    )
    batch_norm: Literal["frozen", "update"] = Field(
        "frozen",
        description="BatchNorm layers during fine-tuning: frozen (B's statistics, inference "
        "mode) or update (statistics and scales follow the clean data's batches)",
    )
    feature_shift: float = Field(
        1.0,
        ge=0,
        le=100,
        description="weight of the penalty on the cosine between each re-initialised layer's "
        "kernel and the BadNet's (feature-shift tuning, Min et al. 2023); 0 turns it off",
    )
    sharpness: float = Field(
        0.0,
        ge=0,
        le=100,
        description="radius of adaptive sharpness-aware minimisation in the fine-tuning "
        "(FT-SAM, Zhu et al. 2023): each step's gradient is taken at weights moved uphill in "
        "proportion to their size; 0 turns it off",
    )
    distill: float = Field(
        0.0,
        ge=0,
        le=1,
        description="weight of the BadNet's own outputs on each clean image in the "
        "fine-tuning targets (the rest is the true label); measured to carry backdoors over",
    )
    temperature: float = Field(
        2.0, gt=0, le=100, description="softening temperature of those outputs"
    )
    sparsity: float = Field(
        0.5, ge=0, lt=1, description="final magnitude sparsity (tfmot) of --sparse-layers"
    )
    sparse_layers: tuple[str, ...] | None = Field(
        None,
        description="layers made sparse during fine-tuning; default: the dense layers after "
        "the pruned feature map",
    )
    augment: bool = Field(True, description="random shifts, roll, scale and lighting")
    occlusion: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of fine-tuning images given a random opaque patch, and half as "
        "many a faint random overlay (their targets unchanged)",
    )
    unlearn: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of fine-tuning images given one of the universal perturbations "
        "the net is most fooled by, found on the clean data (their targets unchanged): "
        "adversarial unlearning of any trigger; 0 turns it off",
    )
    unlearn_radius: float = Field(
        0.03,
        gt=0,
        le=1,
        description="size of those perturbations: root mean square change per pixel",
    )
    unlearn_rounds: int = Field(
        4,
        ge=1,
        le=100,
        description="rounds of fine-tuning, each with perturbations found anew (the first "
        "on the pruned BadNet, then on B' as it trains)",
    )
    unlearn_perturbations: int = Field(4, ge=1, le=64, description="perturbations found per round")
    filter_rule: Literal["calibrated", "strict"] = Field(
        "calibrated",
        description="rule the manifest recommends to the service: calibrated (flag when the "
        "two models' outputs overlap less than on the held-out clean faces) or strict "
        "(flag whenever the top labels differ)",
    )
    overlap_temperature: float = Field(
        3.0,
        gt=0,
        le=100,
        description="both nets' outputs are softened at this temperature before their "
        "overlap is measured (1: as they are)",
    )
    support_check: bool = Field(
        True,
        description="the calibrated rule also flags faces to which B' gives B's label less "
        "probability than to almost any held-out clean face (catches backdoors that are weak "
        "in B); the two checks share the false-flag budget",
    )
    support_ceiling: float = Field(
        1.0,
        gt=0,
        le=1,
        description="the support threshold is at most this (1: no bound; 0.001 keeps the "
        "support check for labels B' rules out)",
    )
    overrule: bool = Field(
        True,
        description="where the two nets disagree on a face the calibrated rule does not "
        "flag, G answers the repaired net's label instead of B's when the repaired net gives "
        "B's label little probability (the threshold calibrated on the held-out clean faces)",
    )
    overrule_budget: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="the repaired net overrules B below the highest support threshold at "
        "which that costs the held-out clean faces at most this much accuracy against "
        "answering B's label",
    )
    false_flag_budget: float = Field(
        0.0125,
        gt=0,
        lt=0.5,
        description="share of held-out clean faces the calibrated rule may flag",
    )
    seed: int = Field(0, description="random seed")

    @property
    def overruling(self) -> float | None:
        """The overrule budget the calibration uses, or None with overruling off."""
        return self.overrule_budget if self.overrule else None

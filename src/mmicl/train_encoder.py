"""Encoder pretraining as tasks (protocol §1.8, §3.4): each task says how to build the model,
draw a training batch and evaluate, so the project's one training loop can run it like any run
(checkpoint and validation curve as cached targets). `pretrain` at the bottom is a minimal
driver for tests and measurements only.

* `GaussianEncoderTask` (main_encoder_{mlp,cnn,transformer}.py): class uniform over the K2 M2
  prototypes of the run's world, exemplar (mu + eps0 eta / sqrt(D2)) / sqrt(1 + eps0^2), target
  the class; validation = 1000 fresh samples drawn once from `val_seed`. Every vector encoder is
  pretrained on the world that its joint-training run uses (same seed, K2, D2). The authors'
  CNN script built its world with D2 = output_dim (32-dimensional Gaussians, other prototypes
  than the joint training sees, §9.15); that is not reproduced: a "pretrained" CNN here has seen
  the M2 classes it is then fused with, like the MLP and the transformer.
* `ImageEncoderTask` (main_encoder_vit_omniglot.py / _miniimagenet.py): classify the first K
  classes; training images drawn with Zipf(alpha0) over the class index and uniformly over the
  training drawings, plus pixel noise eps0; validation = all held-out images, noiseless (the
  authors' generate_val). Omniglot: first n_img_per_class drawings train, last 5 validate.
  Mini-ImageNet: last 20 images validate. Not reproduced: the optional Omniglot augmentation
  (rotation/flips/crop through torchvision, which this project does not use) and the
  Mini-ImageNet recipe (AdamW, warm-up + cosine, label smoothing, mixup/cutmix, crops), which
  belong to the training loop's config, not to the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mmicl.data.sequences import exemplars, zipf_probs
from mmicl.data.worlds import MultimodalWorld
from mmicl.models.encoder_specs import EncoderConfig
from mmicl.models.encoders import Encoder, build_encoder


def _evaluate(model: Encoder, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int,
              scale: float = 1.0) -> dict[str, float]:
    """Mean cross-entropy and accuracy over (inputs, targets) in eval mode, chunked."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(targets), batch_size):
            x = inputs[i:i + batch_size].to(device).float() * scale
            y = targets[i:i + batch_size].to(device)
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
    model.train(was_training)
    return {"loss": loss / len(targets), "accuracy": correct / len(targets)}


@dataclass
class GaussianEncoderTask:
    """Classify Gaussian exemplars of the K2 M2 prototypes (§1.8)."""

    world: MultimodalWorld
    encoder: EncoderConfig  # input_dim = D2, num_classes = K2
    eps0: float = 0.1
    batch_size: int = 128
    n_val: int = 1000
    val_seed: int = 0
    eval_batch_size: int = 1000
    _val: tuple = field(init=False, repr=False)

    def __post_init__(self):
        if self.encoder.item_shape != (self.world.D2,) or self.encoder.num_classes != self.world.K2:
            raise ValueError(f"encoder {self.encoder} must read D2={self.world.D2} vectors and "
                             f"classify K2={self.world.K2} classes")
        self._val = self._draw(self.n_val, torch.Generator().manual_seed(self.val_seed))

    def _draw(self, n: int, generator: torch.Generator):
        means = self.world.m2_class_means
        y = torch.randint(0, self.world.K2, (n,), generator=generator, device=means.device)
        return exemplars(means[y], self.eps0, generator), y

    def build_model(self) -> Encoder:
        return build_encoder(self.encoder)

    def sample(self, generator: torch.Generator):
        return self._draw(self.batch_size, generator)

    def evaluate(self, model: Encoder) -> dict[str, dict[str, float]]:
        return {"val": _evaluate(model, *self._val, self.eval_batch_size)}


@dataclass
class ImageEncoderTask:
    """Classify the images of K classes: train (K, n_train, C, H, W) and val (K, n_val, C, H, W)
    uint8 tensors from the Omniglot / Mini-ImageNet pretraining pools."""

    train_images: torch.Tensor
    val_images: torch.Tensor
    encoder: EncoderConfig  # a ViTEncoderConfig with num_classes = K
    eps0: float = 0.0
    alpha0: float = 0.0
    batch_size: int = 128
    eval_batch_size: int = 512

    def __post_init__(self):
        K = self.train_images.shape[0]
        for name in ("train_images", "val_images"):
            t = getattr(self, name)
            if t.dtype != torch.uint8 or t.dim() != 5 or t.shape[0] != K:
                raise ValueError(f"{name} has shape {tuple(t.shape)} and dtype {t.dtype}; "
                                 f"expected ({K}, images, C, H, W) uint8")
        if tuple(self.train_images.shape[2:]) != tuple(self.encoder.item_shape) \
                or self.encoder.num_classes != K:
            raise ValueError(f"encoder {self.encoder} must take images of shape "
                             f"{tuple(self.train_images.shape[2:])} and classify K={K} classes")
        self.class_probs = zipf_probs(K, self.alpha0)

    def build_model(self) -> Encoder:
        return build_encoder(self.encoder)

    def sample(self, generator: torch.Generator):
        K, n_train = self.train_images.shape[:2]
        y = torch.multinomial(self.class_probs, self.batch_size, replacement=True,
                              generator=generator)
        j = torch.randint(0, n_train, (self.batch_size,), generator=generator)
        x = self.train_images[y, j].float().div_(255.0)
        if self.eps0 > 0:
            x += self.eps0 * torch.randn(x.shape, generator=generator)
        return x, y

    def evaluate(self, model: Encoder) -> dict[str, dict[str, float]]:
        K, n_val = self.val_images.shape[:2]
        x = self.val_images.flatten(0, 1)
        y = torch.arange(K).repeat_interleave(n_val)
        return {"val": _evaluate(model, x, y, self.eval_batch_size, scale=1 / 255.0)}


# ---------------------------------------------------------------------------------------------
# Test/measurement driver ONLY. Runs go through the project's training loop (config: Adam,
# lr 1e-3, weight decay 1e-6 as §3.4), which owns checkpoints, logs and resumption.


def pretrain(task, steps: int, lr: float = 1e-3, weight_decay: float = 1e-6, seed: int = 0,
             eval_every: int | None = None, model: Encoder | None = None):
    """Adam on task.sample batches; returns (model, history [{step, train_loss, <split>_loss,
    <split>_accuracy}]) with an evaluation every `eval_every` steps and after the last."""
    torch.manual_seed(seed)
    model = task.build_model() if model is None else model
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed + 1)
    history = []
    model.train()
    for step in range(1, steps + 1):
        x, y = task.sample(generator)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == steps or (eval_every and step % eval_every == 0):
            row = {"step": step, "train_loss": loss.item()}
            for split, metrics in task.evaluate(model).items():
                row |= {f"{split}_{k}": v for k, v in metrics.items()}
            history.append(row)
    if not math.isfinite(history[-1]["train_loss"]):
        raise FloatingPointError(f"pretraining diverged: {history[-1]}")
    return model, history

"""Encoder pretraining tasks: batches as §1.8 / the authors' image datasets, and they learn."""

import pytest
import torch

from mmicl.data.images.omniglot import omniglot_pretrain_pools
from mmicl.data.worlds import make_multimodal_world
from mmicl.models.encoder_specs import MLPEncoderConfig, ViTEncoderConfig
from mmicl.train_encoder import GaussianEncoderTask, ImageEncoderTask, pretrain


@pytest.fixture(scope="module")
def world():
    return make_multimodal_world(0, K1=32, L1=8, D1=16, K2=16, L2=8, D2=32)


def test_gaussian_task_batches_and_learning(world):
    task = GaussianEncoderTask(world, MLPEncoderConfig(input_dim=32, num_classes=16), eps0=0.1,
                               batch_size=64)
    x, y = task.sample(torch.Generator().manual_seed(0))
    assert x.shape == (64, 32) and y.min() >= 0 and y.max() < 16
    # exemplars of §1.2: close to their prototype, unit norm on average
    cos = torch.nn.functional.cosine_similarity(x, world.m2_class_means[y])
    assert cos.min() > 0.9
    assert task._val[0].shape == (1000, 32)
    torch.manual_seed(0)
    before = task.evaluate(task.build_model())["val"]["accuracy"]
    model, history = pretrain(task, steps=150, lr=3e-3, eval_every=50)
    assert [h["step"] for h in history] == [50, 100, 150]
    assert before < 0.2 and history[-1]["val_accuracy"] > 0.9


def test_gaussian_task_checks_shapes(world):
    with pytest.raises(ValueError, match="must read D2=32 vectors and classify K2=16"):
        GaussianEncoderTask(world, MLPEncoderConfig(input_dim=64, num_classes=16))


def test_image_task_on_omniglot_tree(omniglot_root):
    train, val = omniglot_pretrain_pools(omniglot_root, K=4, n_img_per_class=15)
    cfg = ViTEncoderConfig(image_size=12, patch_size=6, dim=32, num_classes=4)
    task = ImageEncoderTask(train, val, cfg, eps0=0.05, alpha0=0.0, batch_size=32)
    x, y = task.sample(torch.Generator().manual_seed(0))
    assert x.shape == (32, 1, 12, 12) and x.dtype == torch.float32
    assert x.min() < 0  # pixel noise, unclipped
    torch.manual_seed(0)
    before = task.evaluate(task.build_model())["val"]["accuracy"]
    model, history = pretrain(task, steps=300, lr=3e-3)
    assert before <= 0.5 and history[-1]["val_accuracy"] >= 0.9  # row 0 spells the class


def test_zipf_class_sampling(omniglot_root):
    train, val = omniglot_pretrain_pools(omniglot_root, K=4)
    cfg = ViTEncoderConfig(image_size=12, patch_size=6, dim=16, num_classes=4)
    task = ImageEncoderTask(train, val, cfg, alpha0=2.0, batch_size=4000)
    _, y = task.sample(torch.Generator().manual_seed(0))
    freq = torch.bincount(y, minlength=4).float() / 4000
    expected = torch.tensor([1, 1 / 4, 1 / 9, 1 / 16])
    torch.testing.assert_close(freq, expected / expected.sum(), atol=0.02, rtol=0)
    with pytest.raises(ValueError, match=r"classify K=4 classes"):
        ImageEncoderTask(train, val, ViTEncoderConfig(image_size=12, patch_size=6, dim=16))

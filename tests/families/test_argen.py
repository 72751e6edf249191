"""AR-generation family: incremental decoding = full forward, tokenizer cache, adaLN-group size, CFG, training."""

from __future__ import annotations

import argparse
import functools

import pytest
import torch
import yaml

import published_layouts as L
from harness.config.load import load_suite
from harness.errors import ConfigError
from harness.plan.planner import plan
from harness.run.runner import execute_run

from harness.config.sections import MeasureConfig, TrainConfig
from harness.errors import HarnessError
from harness.families import FAMILIES, RunContext
from harness.families.argen.config import ARModelParams, DigitsParams, VQParams
from harness.families.argen.data import load_images
from harness.families.argen.model import ARModel
from harness.families.argen.tokenizer import LLAMAGEN_VQ, VQModel, get_tokenizer, llamagen_checkpoint, load_llamagen_vq, token_grid
from harness.measure import Measurer
from harness.run.train import fit, train
from harness.run.runner import build_experiment

VARIANTS = ("aim", "transformer", "gated_cnn")
TINY_MODEL = dict(d_model=32, depth=2, headdim=8, d_state=8, n_heads=2, samples_per_class=2, decode_batch_sizes=(1, 2))
TINY_DATA = dict(resolution=8, tokenizer=dict(steps=12, batch_size=32, channels=8, z_channels=8, codebook_size=16),
                 classifier=dict(steps=12, width=8))



@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the end-to-end tests, as in a suite: the tokenizer and classifier are trained once."""
    return tmp_path_factory.mktemp("argen_cache")


def model_params(use: str, **over) -> ARModelParams:
    family = FAMILIES.get("argen")()
    return ARModelParams(**{**TINY_MODEL, **family.variant_defaults(use), **over})


def context(use: str, tmp_path, seed: int = 0, data: dict | None = None, **model) -> RunContext:
    return RunContext(
        task="argen_test", variant=use, use=use, dataset="digits",
        data=DigitsParams.model_validate(data or TINY_DATA), model=model_params(use, **model), seed=seed,
        device=torch.device("cpu"), cache_dir=tmp_path, train_batch_size=16, eval_batch_size=64, fit=fit,
    )


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere (zero-initialised adaLN would otherwise hide the conditioning path)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize("use", VARIANTS)
def test_incremental_decoding_matches_full_forward(use):
    torch.manual_seed(0)
    model = randomized(ARModel(use, model_params(use, adaln_groups=2 if use == "aim" else 0), vocab=16,
                               num_classes=3, seq_len=12))
    tokens = torch.randint(16, (3, 12))
    labels = torch.tensor([0, 2, model.null_label])
    with torch.no_grad():
        full = model(tokens, labels)
        state = model.init_state(3, 12, torch.device("cpu"), torch.float32)
        mods = model._modulations(labels)
        steps = []
        for t in range(12):
            logits, state = model.step(t, None if t == 0 else tokens[:, t - 1], labels, mods, state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-4, rtol=1e-4)


def test_adaln_group_count_changes_parameters_as_expected():
    d, depth = 32, 4

    def count(groups: int) -> int:
        return sum(p.numel() for p in ARModel("aim", model_params("aim", depth=depth, adaln_groups=groups),
                                              vocab=16, num_classes=10, seq_len=16).parameters())

    per_group = 3 * d * d + 3 * d  # one SiLU -> Linear(d, 3d) predictor
    for groups in (2, depth):
        assert count(groups) - count(1) == (groups - 1) * per_group
    assert count(1) - count(0) == per_group + depth * 3 * d  # + the per-layer offset tables
    with pytest.raises(ValueError, match="exceeds depth"):
        model_params("aim", depth=depth, adaln_groups=depth + 1)


@pytest.mark.parametrize("use", VARIANTS)
def test_cfg_scale_one_equals_conditional_logits(use):
    torch.manual_seed(0)
    model = randomized(ARModel(use, model_params(use), vocab=16, num_classes=3, seq_len=8))
    tokens, labels = torch.randint(16, (2, 8)), torch.tensor([0, 1])
    with torch.no_grad():
        cond = model(tokens, labels)
        torch.testing.assert_close(model.cfg_logits(tokens, labels, 1.0), cond)
        assert not torch.allclose(model.cfg_logits(tokens, labels, 3.0), cond)
        # guided generation at scale 1 (batch doubled with the null label) samples exactly what plain does
        gen = lambda scale: model.generate(labels, cfg_scale=scale, generator=torch.Generator().manual_seed(1))
        assert torch.equal(gen(1.0), model.generate(labels, generator=torch.Generator().manual_seed(1)))


def test_tokenizer_is_cached_and_shared(tmp_path):
    data = DigitsParams.model_validate(TINY_DATA)
    images = load_images("digits", data)
    first, info1 = get_tokenizer("digits", data, images, tmp_path, torch.device("cpu"), fit)
    second, info2 = get_tokenizer("digits", data, images, tmp_path, torch.device("cpu"), fit)
    assert (info1["vq_cached"], info2["vq_cached"]) == (False, True)
    assert info1["vq_recon_mse"] == info2["vq_recon_mse"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(first.encode(images.test_images[:4]), second.encode(images.test_images[:4]))
    other = data.model_copy(update={"tokenizer": data.tokenizer.model_copy(update={"codebook_size": 8})})
    assert not get_tokenizer("digits", other, images, tmp_path, torch.device("cpu"), fit)[1]["vq_cached"]
    assert len(list((tmp_path / "argen").glob("vq-*.pt"))) == 2  # and no temporary files left behind
    assert not list((tmp_path / "argen").glob("*.tmp"))


@functools.lru_cache(maxsize=4)
def llamagen_state(downsample: int, seed: int = 0, codebook_size: int = 64) -> dict[str, torch.Tensor]:
    """A LlamaGen VQ_8 / VQ_16 state dict (our VQModel holds LlamaGen's keys), random weights, small codebook
    (LlamaGen's codebook_size argument), with LlamaGen's training-time usage buffer."""
    torch.manual_seed(seed)
    model = VQModel(**LLAMAGEN_VQ[downsample], codebook_size=codebook_size, codebook_dim=8)
    return {**model.state_dict(), "quantize.codebook_used": torch.zeros(65536)}


def test_llamagen_checkpoints_released_and_training_vq8_and_vq16(tmp_path):
    """A released {'model': ...} VQ-16 and vq_train.py checkpoints ('model', 'ema', 'optimizer', 'args' as an
    argparse.Namespace) of VQ-8: read without unpickling anything but the Namespace, EMA weights first."""
    released = L.llamagen_checkpoint(tmp_path / "vq_ds16_c2i.pt", llamagen_state(16), training=False)
    loaded = load_llamagen_vq(str(released), VQParams(checkpoint=str(released)))
    assert (loaded.downsample, loaded.codebook_size) == (16, 64) and llamagen_checkpoint(str(released)).weights == "model"
    model_w, ema_w = llamagen_state(8, seed=1), llamagen_state(8, seed=2)
    trained = L.llamagen_checkpoint(tmp_path / "0001000.pt", model_w, ema=ema_w, training=True, vq_model="VQ-8")
    info = llamagen_checkpoint(str(trained))
    assert (info.downsample, info.codebook_size, info.codebook_dim, info.weights) == (8, 64, 8, "ema")
    loaded = load_llamagen_vq(str(trained), VQParams(checkpoint=str(trained)))
    assert torch.equal(loaded.quantize.embedding.weight, ema_w["quantize.embedding.weight"])  # the EMA weights
    no_ema = L.llamagen_checkpoint(tmp_path / "0002000.pt", model_w, training=True, vq_model="VQ-8")
    assert llamagen_checkpoint(str(no_ema)).weights == "model"
    assert token_grid(VQParams(checkpoint=str(trained)), 32) == (16, 64)


def test_llamagen_checkpoint_errors_name_the_path_and_layout(tmp_path):
    p = VQParams(checkpoint=str(tmp_path / "missing.pt"))
    with pytest.raises(HarnessError, match="missing.pt.*does not exist; expected a LlamaGen VQ checkpoint"):
        load_llamagen_vq(p.checkpoint, p)
    evil = tmp_path / "evil.pt"
    torch.save({"model": llamagen_state(8), "args": Unsafe()}, evil)  # any class but argparse.Namespace is refused
    with pytest.raises(HarnessError, match=r"evil.pt' is not a readable torch checkpoint \(it holds a pickled test_argen.Unsafe, "
                       "which is never unpickled"):
        llamagen_checkpoint(str(evil))
    bad = tmp_path / "bad.pt"
    torch.save({"model": {"encoder.wrong.weight": torch.zeros(1)}}, bad)
    with pytest.raises(HarnessError, match="neither LlamaGen's VQ-8 nor VQ-16"):
        load_llamagen_vq(str(bad), VQParams(checkpoint=str(bad)))
    with pytest.raises(HarnessError, match="no weights under 'ema', 'model', 'state_dict'"):
        torch.save({"steps": 3, "args": argparse.Namespace(vq_model="VQ-16")}, bad)
        llamagen_checkpoint(str(bad))


class Unsafe:
    """Stands for any pickled object a checkpoint might carry: loading must never construct it."""


def test_llamagen_resolution_that_does_not_fit_fails_validation(tmp_path):
    ckpt = L.llamagen_checkpoint(tmp_path / "vq.pt", llamagen_state(16), training=True, ema=llamagen_state(16, 1))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"suite": "s", "variants": ["aim"], "tasks": [{
        "name": "gen", "family": "argen", "dataset": "digits", "model": TINY_MODEL,
        "data": {"resolution": 40, "tokenizer": {"checkpoint": str(ckpt)}}}]}, sort_keys=False))
    with pytest.raises(ConfigError, match=r"s.yaml:\d+: gen.data: data.resolution=40 is not a multiple of the checkpoint's VQ-16 "
                       r"downsample factor 16; use a multiple of 16 \(e.g. 32 or 48\)") as err:
        load_suite(suite)
    assert "resolution" in suite.read_text().splitlines()[err.value.line - 1]


def test_a_llamagen_training_checkpoint_runs_end_to_end(tmp_path):
    """VQ-8 vq_train.py checkpoint -> tokenizer of a textures task -> AR model trained a step, evaluated."""
    ckpt = L.llamagen_checkpoint(tmp_path / "vq.pt", llamagen_state(8), ema=llamagen_state(8, 1), training=True, vq_model="VQ-8")
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "suite": "s", "seeds": [0], "variants": ["aim"],
        "train": {"steps": 1, "batch_size": 4, "eval_batch_size": 16, "warmup_steps": 0},
        "measure": {"flops": False, "latency": False, "memory": False, "batch_size": 2},
        "tasks": [{"name": "gen", "family": "argen", "dataset": "textures", "model": {**TINY_MODEL, "samples_per_class": 2},
                   "data": {"resolution": 16, "per_class": 10, "crop": 16, "tokenizer": {"checkpoint": str(ckpt)},
                            "classifier": {"steps": 1, "width": 4}}}]}, sort_keys=False))
    (spec,) = plan(load_suite(suite), device="cpu")
    row = execute_run(spec.run, spec.run_id, tmp_path / "cache")
    assert row["status"] == "ok", row["error"]
    assert (row["vq_model"], row["vq_weights"], row["seq_len"], row["vocab"]) == ("VQ-8", "ema", 4, 64)


@pytest.mark.parametrize("use", VARIANTS)
def test_training_reduces_loss_then_evaluates_and_measures(use, shared_cache):
    family = FAMILIES.get("argen")()
    ctx = context(use, shared_cache)
    cfg = TrainConfig(steps=20, lr=3e-3, warmup_steps=2)
    exp = build_experiment(family, ctx)
    with torch.no_grad():
        before = float(exp.loss(exp.train_batch(0)))
    train(exp, cfg, torch.device("cpu"))
    exp.model.eval()
    with torch.no_grad():
        after = float(exp.loss(exp.train_batch(0)))
        metrics = exp.evaluate()
    assert after < before
    assert set(metrics) == {"nll_bits_per_token", "fid_classifier", "sample_acc"}
    assert 0 < metrics["nll_bits_per_token"] < 4  # log2(16 codes) = 4 bits is the uniform baseline
    assert 0 <= metrics["sample_acc"] <= 1 and metrics["fid_classifier"] >= 0
    extras = exp.row_extras()
    assert (extras["seq_len"], extras["d_model"]) == (4, 32) and extras["vq_source"] == "trained"

    measurer = Measurer(MeasureConfig(warmup_iters=0, warmup_s=0, min_iters=1, min_time_s=0), "cpu")
    costs = exp.extra_measurements(measurer)
    assert costs["decode_len"] == 4
    for b in (1, 2):
        assert costs[f"decode_status_b{b}"] == "ok"
        assert costs[f"decode_tokens_per_s_b{b}"] > 0 and costs[f"prefill_ms_b{b}"] > 0
        assert costs[f"decode_ms_per_token_b{b}"] * costs[f"decode_tokens_per_s_b{b}"] == pytest.approx(b * 1e3)

    # the same seed gives the same result (tokenizer and classifier now come from the cache)
    again = build_experiment(family, ctx)
    train(again, cfg, torch.device("cpu"))
    again.model.eval()
    with torch.no_grad():
        assert again.evaluate()["nll_bits_per_token"] == metrics["nll_bits_per_token"]


def test_decode_longer_than_the_task_uses_an_untrained_copy(shared_cache):
    exp = build_experiment(FAMILIES.get("argen")(), context("aim", shared_cache, decode_len=9, decode_batch_sizes=(2,)))
    measurer = Measurer(MeasureConfig(warmup_iters=0, warmup_s=0, min_iters=1, min_time_s=0), "cpu")
    costs = exp.extra_measurements(measurer)
    assert costs["decode_len"] == 9 and costs["decode_status_b2"] == "ok"
    assert exp.model.pos_emb.shape[0] == 4  # the trained model is untouched


@pytest.mark.gpu
@pytest.mark.parametrize("use", VARIANTS)
def test_gpu_decoding_matches_forward_and_is_measured(use, shared_cache):
    """On CUDA the mixers' own fast steps (mamba_ssm's Mamba2 step, SDPA with a KV cache) decode, and
    the decode measurement runs at AiM-like lengths under the protocol's bf16 autocast."""
    device = torch.device("cuda")
    model = randomized(ARModel(use, model_params(use, adaln_groups=2 if use == "aim" else 0), vocab=16,
                               num_classes=3, seq_len=64)).to(device)
    tokens, labels = torch.randint(16, (2, 64), device=device), torch.tensor([0, 2], device=device)
    with torch.no_grad():
        full = model(tokens, labels)
        state, mods = model.init_state(2, 64, device, torch.float32), model._modulations(labels)
        steps = []
        for t in range(64):
            logits, state = model.step(t, None if t == 0 else tokens[:, t - 1], labels, mods, state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=2e-3, rtol=2e-3)

    exp = build_experiment(FAMILIES.get("argen")(),
        RunContext(**{**context(use, shared_cache, decode_len=256, decode_batch_sizes=(1, 16)).__dict__, "device": device}))
    costs = exp.extra_measurements(Measurer(MeasureConfig(warmup_iters=1, warmup_s=0, min_iters=2, min_time_s=0), device))
    assert costs["decode_status_b16"] == "ok" and costs["decode_tokens_per_s_b16"] > costs["decode_tokens_per_s_b1"]


def test_textures_are_class_balanced_rgb_crops():
    from harness.families.argen.config import TexturesParams
    from harness.families.argen.data import TEXTURE_SOURCES

    images = load_images("textures", TexturesParams(resolution=8, crop=16, per_class=10))
    assert images.train_images.shape[1:] == (3, 8, 8) and images.num_classes == len(TEXTURE_SOURCES)
    assert len(images.train_images) + len(images.test_images) == 10 * len(TEXTURE_SOURCES)
    assert images.test_labels.bincount(minlength=len(TEXTURE_SOURCES)).min() == 2  # stratified 20% split
    assert images.train_images.min() >= -1 and images.train_images.max() <= 1


@pytest.mark.parametrize("headdim", [8, 16, 32, 64])
def test_budget_width_step_keeps_mamba2_heads_whole(headdim):
    family = FAMILIES.get("argen")()
    step = family.width_step("aim", family.ModelParams(headdim=headdim))
    assert step % family.width_multiple == 0
    assert all((2 * k * step) % headdim == 0 for k in range(1, 20))  # expand 2
    # only aim has mamba2 heads: the others keep the fine step, so their budgets can land close
    assert {family.width_step(use, family.ModelParams(headdim=headdim)) for use in ("transformer", "gated_cnn")} == {
        family.width_multiple}


def test_texture_test_crops_share_no_pixels_with_training_crops(monkeypatch):
    """Random crops of one photo split at random overlap; a held-out crop must come from unseen pixels."""
    import numpy as np
    import skimage.data

    from harness.families.argen.config import TexturesParams
    from harness.families.argen.data import TEXTURE_SOURCES

    size, crop = 96, 16  # small sources and many crops: random crops overlap almost surely
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    coords = np.stack([yy, xx, np.zeros_like(yy)], -1).astype(np.uint8)  # each pixel holds its (row, column)
    for name in TEXTURE_SOURCES:
        monkeypatch.setattr(skimage.data, name, lambda: coords)
    images = load_images("textures", TexturesParams(resolution=crop, crop=crop, per_class=40))  # no resize

    def boxes(x: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, int, int]]:
        pix = ((x[:, :2, 0, 0] + 1) / 2 * 255).round().long()  # top-left (row, column) of each crop
        return [(int(c), int(r), int(q)) for c, (r, q) in zip(labels, pix)]

    train = boxes(images.train_images, images.train_labels)
    for c, r, q in boxes(images.test_images, images.test_labels):
        assert not any(c == c2 and abs(r - r2) < crop and abs(q - q2) < crop for c2, r2, q2 in train), (c, r, q)
    assert images.test_labels.bincount(minlength=len(TEXTURE_SOURCES)).min() == 8  # still 20% of each class

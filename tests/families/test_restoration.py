"""Restoration family: SGN permutation, ASE scan, every variant trains, metrics match scikit-image."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config.sections import TrainConfig
from harness.families import FAMILIES
from harness.families.base import RunContext
from harness.families.restoration.assm import ASSM, sgn_order
from harness.families.restoration.config import FolderData, PhotoData
from harness.families.restoration.data import RestorationSet, downsample, skimage_photo
from harness.families.restoration.metrics import psnr_ssim
from harness.kernels.selective_scan import selective_scan_loop
from harness.modules.scan_order import reorder
from harness.errors import HarnessError
from harness.run.train import train
from harness.run.runner import build_experiment

CPU = torch.device("cpu")



def make_ctx(tmp_path: Path, use: str, data: dict | None = None, model: dict | None = None, dataset: str = "skimage_photos", seed: int = 0, batch: int = 4) -> tuple:
    fam = FAMILIES.get("restoration")()
    d = fam.datasets[dataset].params(**{"patch_size": 16, "eval_size": 32, "eval_crops": 1, **(data or {})})
    m = fam.ModelParams(**{"embed_dim": 12, "depths": (1,), "window_size": 4, **fam.variant_defaults(use), **(model or {})})
    ctx = RunContext(task="t", variant=use, use=use, dataset=dataset, data=d, model=m, seed=seed, device=CPU,
                     cache_dir=tmp_path, train_batch_size=batch, eval_batch_size=8)
    return fam, ctx


# ---- SGN and ASE ----------------------------------------------------------------------------------------


def test_sgn_permutation_is_stable_and_exactly_invertible():
    gen = torch.Generator().manual_seed(0)
    classes = torch.randint(0, 5, (3, 200), generator=gen)  # many ties
    x = torch.randn(3, 200, 7, generator=gen)
    order, inverse = sgn_order(classes)
    sorted_classes = classes.gather(1, order)
    assert (sorted_classes.diff(dim=1) >= 0).all()
    same = sorted_classes[:, 1:] == sorted_classes[:, :-1]
    assert (order.diff(dim=1)[same] > 0).all()  # stable: raster order kept inside a class
    assert torch.equal(reorder(reorder(x, order, 1), inverse, 1), x)
    assert torch.equal(reorder(reorder(x, inverse, 1), order, 1), x)


def _scan_inputs(m: ASSM, u: torch.Tensor):
    dt, B, C = torch.split(m.x_proj(u), [m.dt_rank, m.d_state, m.d_state], dim=-1)
    delta = dt @ m.dt_proj.weight.t()
    return delta.transpose(1, 2), -torch.exp(m.A_log), B.transpose(1, 2), C.transpose(1, 2)


def test_ase_is_the_scan_with_prompted_output_matrix():
    torch.manual_seed(0)
    m = ASSM(12, d_state=4, num_prompts=6, prompt_rank=3, sgn=False)
    u, prompt = torch.randn(2, 20, m.hidden), torch.randn(2, 20, 4)
    delta, A, B, C = _scan_inputs(m, u)
    want = selective_scan_loop(u.transpose(1, 2), delta, A, B, C + prompt.transpose(1, 2), m.D, None, m.dt_proj.bias, True)
    torch.testing.assert_close(m.scan(u, prompt), want.transpose(1, 2), rtol=1e-4, atol=1e-5)


def test_ase_off_gives_exactly_the_plain_scan():
    torch.manual_seed(0)
    on = ASSM(12, d_state=4, num_prompts=6, prompt_rank=3, ase=True, sgn=False).eval()
    off = ASSM(12, d_state=4, num_prompts=6, prompt_rank=3, ase=False, sgn=False).eval()
    missing, _ = off.load_state_dict(on.state_dict(), strict=False)
    assert not missing
    x = torch.randn(2, 36, 12)
    u = torch.randn(2, 36, on.hidden)
    delta, A, B, C = _scan_inputs(off, u)
    plain = selective_scan_loop(u.transpose(1, 2), delta, A, B, C, off.D, None, off.dt_proj.bias, True)
    torch.testing.assert_close(off.scan(u), plain.transpose(1, 2), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(on(x, (6, 6)), off(x, (6, 6)))  # the prompt matters ...
    with torch.no_grad():
        on.prompt_basis.weight.zero_()
    assert torch.equal(on(x, (6, 6)), off(x, (6, 6)))  # ... and a zero prompt is exactly the plain scan


@pytest.mark.parametrize("target", ["C", "B", "dt", "y"])
def test_prompt_targets_train(target):
    torch.manual_seed(0)
    m = ASSM(12, d_state=4, num_prompts=6, prompt_rank=3, prompt_into=target)
    x = torch.randn(2, 16, 12, requires_grad=True)
    m(x, (4, 4)).square().mean().backward()
    assert m.prompt_slots.weight.grad.abs().sum() > 0 and m.router[0].weight.grad.abs().sum() > 0
    assert torch.isfinite(x.grad).all()


# ---- variants -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use", ["mambairv2", "mambair", "swinir", "gated_cnn"])
@pytest.mark.parametrize("degradation", ["sr_x2", "denoise"])
def test_variant_forward_backward(tmp_path, use, degradation):
    fam, ctx = make_ctx(tmp_path, use, data={"degradation": degradation})
    torch.manual_seed(0)
    model = fam.build_model(ctx)
    torch.nn.init.normal_(model.reconstruct.weight, std=0.02)  # zero-init would block every upstream gradient
    (x,) = fam.example_inputs(ctx, 2)
    side = 16 // ctx.data.scale
    assert x.shape == (2, 3, side, side)
    y = model(x[:, :, :-1])  # a side that is not a multiple of the window: padded and cropped back
    assert y.shape == (2, 3, (side - 1) * ctx.data.scale, side * ctx.data.scale)
    y.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_variant_defaults_and_width(tmp_path):
    fam, ctx = make_ctx(tmp_path, "mambairv2")
    assert ctx.model.attn_branch and not fam.variant_defaults("swinir")
    small = sum(p.numel() for p in fam.build_model(ctx).parameters())
    large = sum(p.numel() for p in fam.build_model(ctx.with_model(embed_dim=24)).parameters())
    assert large > small


def test_short_training_beats_bicubic_on_held_out_images(tmp_path):
    fam, ctx = make_ctx(tmp_path, "gated_cnn", data={"eval_crops": 4}, model={"embed_dim": 16}, batch=32)
    exp = build_experiment(fam, ctx)
    train(exp, TrainConfig(steps=60, lr=1e-3, warmup_steps=5), CPU)
    m = exp.evaluate()
    assert m["psnr"] > m["psnr_bicubic"] and m["psnr_gain"] > 0
    assert math.isnan(m["psnr_noisy"]) and 0 < m["ssim"] <= 1


def test_denoising_evaluation_reports_the_noisy_baseline(tmp_path):
    fam, ctx = make_ctx(tmp_path, "gated_cnn", data={"degradation": "denoise", "sigma": 50})
    m = build_experiment(fam, ctx).evaluate()  # untrained: the zero-initialised output is the noisy input
    assert math.isnan(m["psnr_bicubic"]) and m["psnr"] == pytest.approx(m["psnr_noisy"])
    assert m["psnr_noisy"] == pytest.approx(20 * math.log10(255 / 50), abs=1.0)


# ---- data -----------------------------------------------------------------------------------------------


def test_crops_are_deterministic_per_seed_and_test_set_is_fixed():
    params = PhotoData(patch_size=16, eval_size=32, eval_crops=2, train_images=("coins", "text"), test_images=("clock",))
    a, b, c = RestorationSet(params, 0), RestorationSet(params, 0), RestorationSet(params, 1)
    assert torch.equal(a.train_batch(3, 4).inputs, b.train_batch(3, 4).inputs)
    assert not torch.equal(a.train_batch(3, 4).inputs, c.train_batch(3, 4).inputs)
    assert torch.equal(next(a.test_batches(8)).inputs, next(c.test_batches(8)).inputs)
    batch = a.train_batch(0, 4)
    assert batch.inputs.shape == (4, 3, 8, 8) and batch.target.shape == (4, 3, 16, 16)


def test_bad_data_params_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="both train and test"):
        PhotoData(train_images=("camera",), test_images=("camera",))
    with pytest.raises(ValueError, match="multiple of the scale"):
        PhotoData(degradation="sr_x4", patch_size=18)
    with pytest.raises(HarnessError, match="LR_bicubic"):
        RestorationSet(FolderData(train_path=str(tmp_path / "nowhere"), test_path=str(tmp_path)), 0)


def test_paired_folders_in_div2k_layout(tmp_path):
    import skimage.io

    for split, names in (("train", ("coins", "text")), ("test", ("clock",))):
        (tmp_path / split / "HR").mkdir(parents=True)
        (tmp_path / split / "LR_bicubic" / "X2").mkdir(parents=True)
        for name in names:
            hr = skimage_photo(name)
            skimage.io.imsave(tmp_path / split / "HR" / f"{name}.png", hr.permute(1, 2, 0).numpy(), check_contrast=False)
            lr = downsample(hr, 2).permute(1, 2, 0).numpy()
            skimage.io.imsave(tmp_path / split / "LR_bicubic" / "X2" / f"{name}x2.png", lr, check_contrast=False)
    folders = RestorationSet(FolderData(train_path=str(tmp_path / "train"), test_path=str(tmp_path / "test"), patch_size=16, eval_size=32), 0)
    photos = RestorationSet(PhotoData(patch_size=16, eval_size=32, train_images=("coins", "text"), test_images=("clock",)), 0)
    assert torch.equal(folders.train_batch(0, 2).inputs, photos.train_batch(0, 2).inputs)
    assert torch.equal(next(folders.test_batches(8)).target, next(photos.test_batches(8)).target)


# ---- metrics --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("y_channel,border", [(True, 2), (False, 0)])
def test_psnr_ssim_match_skimage(y_channel, border):
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    clean = skimage_photo("chelsea")[:, :64, :80].float() / 255
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * 0.05).clamp(0, 1)
    psnr, ssim = psnr_ssim(noisy[None], clean[None], y_channel=y_channel, border=border)

    def prep(img: torch.Tensor) -> np.ndarray:
        arr = (img.permute(1, 2, 0).numpy() * 255).round() / 255  # 8-bit, like a saved PNG
        arr = rgb2ycbcr(arr)[..., :1] if y_channel else arr * 255
        return arr[border:-border, border:-border] if border else arr

    a, b = prep(noisy), prep(clean)
    want_psnr = peak_signal_noise_ratio(b, a, data_range=255)
    want_ssim = structural_similarity(b, a, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert float(psnr) == pytest.approx(want_psnr, abs=1e-4)
    assert float(ssim) == pytest.approx(want_ssim, abs=1e-5)

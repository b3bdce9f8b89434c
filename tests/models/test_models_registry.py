"""The model registry and the df / liae families: shapes, ranges, paths, errors, gradients."""

from __future__ import annotations

import pytest
import torch

from likeness.errors import ModelError
from likeness.models import SUPPORTED_RESOLUTIONS, create_model, list_models, resolve_config


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def test_registry_lists_both_families_and_tiny_variants():
    assert list_models() == ["df", "df_tiny", "liae", "liae_tiny"]
    assert list_models("liae*") == ["liae", "liae_tiny"]


@pytest.mark.parametrize("name, resolution", [("df", 64), ("liae", 64), ("df", 96)])
def test_full_families_give_rgb_and_mask_in_unit_range(name, resolution):
    model = create_model(name, resolution=resolution).eval()
    face = torch.rand(2, 3, resolution, resolution)
    with torch.no_grad():
        for path in (model.swap, model.reconstruct_source, model.reconstruct_target, model.forward):
            rgb, mask = path(face)
            assert rgb.shape == (2, 3, resolution, resolution)
            assert mask.shape == (2, 1, resolution, resolution)
            assert float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0
            assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0


@pytest.mark.parametrize("name", ["df", "liae"])
def test_every_supported_resolution_resolves_and_128_256_are_wider(name):
    configs = {r: resolve_config(name, resolution=r) for r in SUPPORTED_RESOLUTIONS}
    assert set(configs) == {64, 96, 128, 256}
    assert configs[64].e_dims < configs[128].e_dims == configs[256].e_dims


def test_df_swap_is_the_source_decoder_and_liae_target_path_differs():
    df = create_model("df_tiny").eval()
    liae = create_model("liae_tiny").eval()
    face = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(df.swap(face)[0], df.reconstruct_source(face)[0])
        assert not torch.allclose(df.swap(face)[0], df.reconstruct_target(face)[0])
        assert not torch.allclose(liae.swap(face)[0], liae.reconstruct_target(face)[0])


@pytest.mark.parametrize("name", ["df_tiny", "liae_tiny"])
def test_tiny_variants_train_every_parameter(name):
    model = create_model(name, resolution=32)
    face = torch.rand(2, 3, 32, 32)
    a, ma = model.reconstruct_source(face)
    b, mb = model.reconstruct_target(face)
    (a.mean() + b.mean() + ma.mean() + mb.mean()).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
        assert float(param.grad.abs().sum()) > 0, pname


def test_weights_are_reproducible_from_the_seed():
    torch.manual_seed(5)
    a = create_model("df_tiny").state_dict()
    torch.manual_seed(5)
    b = create_model("df_tiny").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "name, cfg, message",
    [
        ("dfx", {}, "unknown model"),
        ("df", {"resolution": 80}, "resolution must be one of"),
        ("df_tiny", {"resolution": 40}, "multiple of 16"),
        ("df", {"width": 3}, "unknown option"),
        ("liae", {"d_dims": 0}, "positive int"),
        ("liae", {"resolution": 64.0}, "positive int"),
    ],
)
def test_bad_model_requests_raise_model_error(name, cfg, message):
    with pytest.raises(ModelError, match=message):
        create_model(name, **cfg)

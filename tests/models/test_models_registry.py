"""The model registry and the df / liae families: shapes, ranges, paths, errors, gradients."""

from __future__ import annotations

import pytest
import torch

from likeness.errors import ModelError
from likeness.models import SUPPORTED_RESOLUTIONS, architecture_options, create_model, list_models, resolve_config


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


def test_cpu_resolutions_default_to_the_double_res_decoder_and_it_is_cheaper():
    assert resolve_config("df", resolution=64).double_res and resolve_config("liae", resolution=96).double_res
    assert not resolve_config("df", resolution=128).double_res
    assert not resolve_config("df_tiny").double_res
    # The -d decoder works at R/2: its largest residual block sees a quarter of the pixels.
    full = create_model("df", resolution=64, double_res=False, d_dims=8, ae_dims=32, e_dims=8)
    half = create_model("df", resolution=64, d_dims=8, ae_dims=32, e_dims=8)
    seen: dict[str, tuple[int, ...]] = {}
    for label, model in (("full", full), ("half", half)):

        def note_shape(module, inputs, output, label=label) -> None:
            seen[label] = tuple(output.shape)

        model.decoder_source.res3.register_forward_hook(note_shape)
        with torch.no_grad():
            rgb, mask = model(torch.rand(1, 3, 64, 64))
        assert rgb.shape == (1, 3, 64, 64) and mask.shape == (1, 1, 64, 64)
    assert seen == {"full": (1, 16, 64, 64), "half": (1, 16, 32, 32)}


@pytest.mark.parametrize("name", ["df_tiny", "liae_tiny"])
def test_double_res_tiny_models_give_unit_range_outputs_and_need_a_multiple_of_32(name):
    model = create_model(name, resolution=32, double_res=True).eval()
    with torch.no_grad():
        rgb, mask = model(torch.rand(2, 3, 32, 32))
    assert rgb.shape == (2, 3, 32, 32) and mask.shape == (2, 1, 32, 32)
    assert float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0
    with pytest.raises(ModelError, match="multiple of 32"):
        create_model(name, resolution=48, double_res=True)
    with pytest.raises(ModelError, match="True or False"):
        create_model(name, double_res=1)


@pytest.mark.parametrize("name", ["df_tiny", "liae_tiny"])
def test_reconstruct_pair_equals_the_two_separate_paths(name):
    model = create_model(name, resolution=32).eval()
    source, target = torch.rand(3, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        (s_rgb, s_mask), (t_rgb, t_mask) = model.reconstruct_pair(source, target)
        want_s, want_t = model.reconstruct_source(source), model.reconstruct_target(target)
    assert torch.allclose(s_rgb, want_s[0], atol=1e-6) and torch.allclose(s_mask, want_s[1], atol=1e-6)
    assert torch.allclose(t_rgb, want_t[0], atol=1e-6) and torch.allclose(t_mask, want_t[1], atol=1e-6)


@pytest.mark.parametrize("resolution, double_res", [(32, False), (64, True), (128, False)])
def test_df_codes_are_what_its_decoders_read_and_the_discriminator_takes_them(resolution, double_res):
    from likeness.models.discriminator import CodeDiscriminator

    model = create_model("df_tiny", resolution=resolution, double_res=double_res).eval()
    source, target = torch.rand(3, 3, resolution, resolution), torch.rand(2, 3, resolution, resolution)
    with torch.no_grad():
        (s_rgb, _), (t_rgb, _), (s_code, t_code) = model.reconstruct_pair_with_codes(source, target)
        assert s_code.shape == (3, *model.code_shape) and t_code.shape == (2, *model.code_shape)
        assert torch.allclose(model.decoder_source(s_code)[0], s_rgb, atol=1e-6)
        assert torch.allclose(model.decoder_target(t_code)[0], t_rgb, atol=1e-6)
        assert torch.allclose(model.swap(target)[0], model.decoder_source(t_code)[0], atol=1e-6)
        assert CodeDiscriminator(model.code_shape, width=16)(s_code).shape == (3, 1)


def test_liae_has_no_shared_code():
    model = create_model("liae_tiny", resolution=32)
    assert model.code_shape is None
    with pytest.raises(ModelError, match="no code shared"):
        model.reconstruct_pair_with_codes(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))


def test_architecture_options_rebuild_a_model_and_read_older_configs():
    model = create_model("df", resolution=64, e_dims=8, ae_dims=32, d_dims=8, d_mask_dims=4)
    options = architecture_options(model.config.to_dict())
    assert options["double_res"] is True
    rebuilt = create_model("df", **options)
    rebuilt.load_state_dict(model.state_dict())  # same layers, same shapes
    # A checkpoint written before double_res existed describes the full-resolution decoder.
    old = {k: v for k, v in model.config.to_dict().items() if k != "double_res"} | {"licence": "x"}
    assert architecture_options(old)["double_res"] is False
    create_model("df", **architecture_options(old))

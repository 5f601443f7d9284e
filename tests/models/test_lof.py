"""LOF: never worse than the start, real costs, unchanged bitstream format — on MSP, a zoo model and MLIC++."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.models import zoo
from bench.models.imageio import to_tensor
from bench.models.lof import LatentOptimizable, LOFOptions, coded_cost, overfit_latent
from bench.models.mlicpp import bitstream as mlicpp_bitstream
from bench.models.mlicpp import untrained_model
from bench.models.mlicpp.lof import MLICLatent
from bench.models.msp import MSPProfile, create_model, read_header
from bench.models.quantizers import SGARound, hard_round, ste_round

TINY = MSPProfile("tiny-lof", levels=2, steps_per_level=2, groups=1, N=16, M=8, context_width=16, feature_channels=8)


def make_image(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=-1) * 200 + 20
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def msp_model():
    return create_model(TINY, seed=3)


@pytest.fixture(scope="module")
def zoo_model(tmp_path_factory):
    """Untrained zoo model (the torch hub cache is pointed at an empty folder)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
        model = zoo.load_model("bmshj2018-hyperprior", 1)
    assert model.trained is False
    return model


@pytest.fixture(scope="module")
def mlicpp_model():
    """Untrained MLIC++ (the mlicpp-untrained weights) behind its LOF interface, rate index 3."""
    torch.set_num_threads(2)
    return MLICLatent(untrained_model(), model_id=3)


@pytest.fixture
def models(request):
    """The model of each parametrised case, built only when that case runs."""
    return lambda which: request.getfixturevalue(f"{which}_model")


WHICH = ["msp", "zoo", "mlicpp"]
# full LOF runs on the 83M-parameter MLIC++ take ~1 min of CPU each: in the slow set
WHICH_LOF = ["msp", "zoo", pytest.param("mlicpp", marks=pytest.mark.slow)]


def _independent_cost(model, data: bytes, image: np.ndarray, lam: float) -> float:
    """Price a bitstream from scratch: real bytes + λ·MSE of the real 8-bit decoded image."""
    decoded = model.decode_image(data).clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    mse = np.mean((decoded.astype(np.float64) - image) ** 2)
    return 8 * len(data) / (image.shape[0] * image.shape[1]) + lam * mse


@pytest.mark.parametrize("which", WHICH)
def test_models_satisfy_the_protocol(which, models) -> None:
    assert isinstance(models(which), LatentOptimizable)


@pytest.mark.parametrize("which", WHICH_LOF)
def test_lof_never_increases_coded_cost_and_keeps_format(which, models) -> None:
    model = models(which)
    image = make_image()
    lam = 0.0130
    result = overfit_latent(model, image, lam, LOFOptions(iterations=6, lr=2e-2, eval_every=2))
    assert result.after.cost <= result.before.cost
    assert result.iterations == 6 and result.evaluations == 4 and result.time_s > 0
    # the reported costs are real: recompute them from the bytes with the unchanged decoder
    assert _independent_cost(model, result.data, image, lam) == pytest.approx(result.after.cost, rel=1e-12)
    assert _independent_cost(model, result.before.data, image, lam) == pytest.approx(result.before.cost, rel=1e-12)
    # the baseline is the ordinary encoder's bitstream
    with torch.no_grad():
        plain = model.encode_latent(model.analysis(to_tensor(image)), image.shape[:2])
    assert result.before.data == plain
    # same container and header (only the strings may differ)
    if which == "msp":
        assert read_header(result.data)[0] == read_header(plain)[0]
    elif which == "zoo":
        assert zoo.read_header(result.data)[0] == zoo.read_header(plain)[0]
    else:
        assert mlicpp_bitstream.peek(result.data) == mlicpp_bitstream.peek(plain)
        assert mlicpp_bitstream.peek(plain).model_id == 3
    decoded = model.decode_image(result.data)
    assert decoded.shape == (1, 3, *image.shape[:2])
    extras = result.extras()
    assert extras["lof_bytes_after"] == len(result.data) and extras["lof_bytes_before"] == len(plain)
    assert extras["lof_cost_after"] <= extras["lof_cost_before"]


@pytest.mark.parametrize("which", WHICH_LOF)
def test_lof_keeps_start_when_every_iterate_is_worse(which, models) -> None:
    """A destructive step size makes every iterate worse: LOF must return the starting bitstream."""
    model = models(which)
    image = make_image(seed=1)
    result = overfit_latent(model, image, 0.0067, LOFOptions(iterations=2, lr=500.0, eval_every=1))
    assert result.best_iteration == 0
    assert result.data == result.before.data
    assert result.after == result.before


def test_lof_sga_runs_and_is_not_worse(msp_model) -> None:
    image = make_image(seed=2)
    result = overfit_latent(msp_model, image, 0.025, LOFOptions(iterations=4, lr=5e-3, eval_every=2, rounding="sga"))
    assert result.after.cost <= result.before.cost


def test_lof_lowers_the_real_cost_with_a_sensible_step(zoo_model) -> None:
    """The optimiser is wired up: on this image a few STE steps lower the real coded cost."""
    image = make_image(seed=4)
    lam = 0.0130
    result = overfit_latent(zoo_model, image, lam, LOFOptions(iterations=10, lr=5e-2, eval_every=5))
    assert result.after.cost < result.before.cost
    assert result.best_iteration in (5, 10)
    # the kept latent reproduces the kept bitstream
    assert coded_cost(zoo_model, result.latent, image, lam).data == result.data


def test_lof_rejects_bad_options(msp_model) -> None:
    with pytest.raises(ValueError, match="rounding"):
        overfit_latent(msp_model, make_image(), 0.01, LOFOptions(iterations=1, rounding="nearest"))
    with pytest.raises(ValueError, match="λ"):
        overfit_latent(msp_model, make_image(), 0.0, LOFOptions(iterations=1))
    with pytest.raises(ValueError, match="uint8"):
        overfit_latent(msp_model, make_image().astype(np.float32), 0.01, LOFOptions(iterations=1))


def test_quantizers() -> None:
    y = torch.tensor([[-1.6, -0.4, 0.2, 0.5001, 2.49]], requires_grad=True)
    mu = torch.tensor([[0.3, 0.3, -0.1, 0.0, 1.0]])
    hard = hard_round(y, mu)
    assert torch.allclose(hard, torch.round(y - mu) + mu)
    ste = ste_round(y, mu)
    assert torch.equal(ste, hard)
    (g,) = torch.autograd.grad(ste.sum(), [y])
    assert torch.equal(g, torch.ones_like(y))  # straight through
    sga = SGARound(tau=0.5)
    torch.manual_seed(0)
    soft = sga(y, mu)
    v = (y - mu).detach()
    assert bool(((soft - mu >= torch.floor(v) - 1e-6) & (soft - mu <= torch.ceil(v) + 1e-6)).all())
    (g,) = torch.autograd.grad(soft.sum(), [y])
    assert bool((g != 0).any())
    sga.tau = 1e-3  # cold: close to nearest rounding
    cold = sga(y, mu)
    assert torch.allclose(cold, hard, atol=0.05)


def test_mlicpp_rate_is_the_coders_rate(mlicpp_model) -> None:
    """LOF's differentiable rate for MLIC++, at hard rounding, is the real coder's estimate:
    the same recursion, contexts and likelihoods as compress() (so LOF optimises the real model)."""
    image = make_image(seed=5)
    x = to_tensor(image)
    with torch.no_grad():
        y = mlicpp_model.analysis(x)
        result = mlicpp_model.model.compress(x)
        bits, y_hat = mlicpp_model.rate_bits(y, hard_round)
    assert float(bits) == pytest.approx(result.estimated_bits, rel=1e-5)
    # and the gradient reaches y through every context (STE)
    y = y.clone().requires_grad_(True)
    bits, _ = mlicpp_model.rate_bits(y, ste_round)
    (grad,) = torch.autograd.grad(bits, [y])
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_a_latent_the_coder_cannot_take_is_refused_not_hung(msp_model) -> None:
    """CompressAI's rANS escape path loops for ever on a value past int32 (NaN, ±inf and 3e9 measured
    to hang it): the MSP encoder refuses such a latent with a CodecError naming it."""
    from bench.errors import CodecError
    from bench.models.entropy import MAX_CODABLE, codable

    assert codable(torch.tensor([0.0, -MAX_CODABLE, MAX_CODABLE])) and codable(torch.empty(0))
    image = make_image()
    with torch.no_grad():
        y = msp_model.analysis(to_tensor(image))
    for bad in (float("nan"), float("inf"), 3e9):
        assert not codable(torch.tensor([bad]))
        y_bad = y.clone()
        y_bad.view(-1)[0] = bad
        with pytest.raises(CodecError, match="cannot be entropy-coded"):
            msp_model.encode_latent(y_bad, image.shape[:2])


@pytest.mark.parametrize("which", ["msp", "zoo"])
def test_lof_that_diverges_stops_and_keeps_the_best_stream(which, models) -> None:
    """A step size that throws ŷ past the coder's range ends LOF early with the best coded stream
    (here the start), instead of handing the coder a latent it cannot code (kodim24 at λ = 0.0932
    hung msp-tiny-lof's coded-cost check that way)."""
    from bench.models.entropy import MAX_CODABLE

    model = models(which)
    image = make_image(seed=2)
    lr = MAX_CODABLE * 4  # Adam moves every element by about lr at the first step
    result = overfit_latent(model, image, 0.0067, LOFOptions(iterations=5, lr=lr, eval_every=5))
    assert result.best_iteration == 0 and result.data == result.before.data
    assert result.evaluations == 1  # the diverged latent was never coded
    assert result.iterations == 0 and "not codable after iteration 1" in result.stopped
    assert result.extras()["lof_stopped"] == result.stopped and result.extras()["lof_iterations"] == 0


@pytest.mark.parametrize("which", ["msp", "zoo"])
def test_float16_weights_keep_the_likelihood_bound_so_lof_rates_stay_finite(which, tmp_path) -> None:
    """A float16 weights file stores CompressAI's likelihood bound 1e-9 as 0: loaded as it is, an
    unlikely ŷ has likelihood 0, an infinite rate and a NaN gradient, and LOF stopped at once (the
    shipped msp-tiny on kodim24 at λ = 0.0932). The loaders put the bound back."""
    from bench.models.entropy import LIKELIHOOD_BOUND

    if which == "msp":
        net = create_model(TINY, seed=3)
        half = tmp_path / "msp-half.pt"
        torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}, half)
        model = create_model(TINY, half, seed=3)
        entropy_models = [model.entropy_bottleneck, model.gaussian_conditional]
    else:
        net = zoo.load_model("bmshj2018-hyperprior", 1, shape=(8, 8)).net
        half = tmp_path / "zoo-half.pt"
        torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}, half)
        assert float(torch.load(half, weights_only=True)["entropy_bottleneck.likelihood_lower_bound.bound"]) == 0
        model = zoo.load_model("bmshj2018-hyperprior", 1, weights=half)
        entropy_models = [model.net.entropy_bottleneck, model.net.gaussian_conditional]
    assert [float(m.likelihood_lower_bound.bound) for m in entropy_models] == pytest.approx([LIKELIHOOD_BOUND] * 2)
    image = make_image(seed=4)
    with torch.no_grad():
        y = model.analysis(to_tensor(image))
    y = y.clone()
    y.view(-1)[0] = 1e4  # far in a tail: its likelihood underflows to 0 without the bound
    y.requires_grad_(True)
    bits, _ = model.rate_bits(y, ste_round)
    (grad,) = torch.autograd.grad(bits, [y])
    assert bool(torch.isfinite(bits)) and bool(torch.isfinite(grad).all())

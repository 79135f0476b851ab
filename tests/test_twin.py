"""The PyTorch twin agrees with the Numba kernels within 1/255, and trains."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

from conftest import random_pair, real_pairs  # noqa: E402
from rtfuse.fusion.initial import analytic_lut  # noqa: E402
from rtfuse.fusion.lut import LutFuser  # noqa: E402
from rtfuse.fusion.twin import LutFusion  # noqa: E402


def _perturbed(kind, seed):
    """The analytic LUT with a noisy table and context net: exercises every cell and slope."""
    rng = np.random.default_rng(seed)
    m = analytic_lut(kind)
    m.table = np.clip(m.table + rng.normal(0, 0.2, m.table.shape), 0, 1).astype(np.float32)
    m.ctx_layers = [
        (
            w + rng.normal(0, 0.5, w.shape).astype(np.float32),
            b + rng.normal(0, 0.5, b.shape).astype(np.float32),
        )
        for w, b in m.ctx_layers
    ]
    return m


def _twin(m, vis, ir):
    with torch.no_grad():
        bgr, _ = LutFusion(m)(torch.from_numpy(vis).permute(2, 0, 1)[None], torch.from_numpy(ir)[None, None])
    return bgr[0].permute(1, 2, 0).numpy()


def _max_err(m, vis, ir):
    """max |numba - torch| in units of the [0, 1] image range."""
    return float(np.abs(LutFuser(m)(vis, ir).astype(np.float32) - _twin(m, vis, ir)).max()) / 255.0


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("h,w", [(64, 80), (97, 131), (240, 320)])
def test_parity_random(kind, seed, h, w):
    vis, ir = random_pair(np.random.default_rng(seed), h, w)
    for m in (analytic_lut(kind), _perturbed(kind, seed)):
        assert _max_err(m, vis, ir) <= 1 / 255


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
@pytest.mark.parametrize("dataset,n", [("roadscene", 3), ("tno", 3), ("msrs", 2)])
def test_parity_real(kind, dataset, n):
    for _, vis, ir in real_pairs(dataset, n):
        for m in (analytic_lut(kind), _perturbed(kind, 7)):
            assert _max_err(m, vis, ir) <= 1 / 255


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
def test_dense_training_path_matches_the_kernel(kind, rng):
    m = _perturbed(kind, 5)
    vis, ir = random_pair(rng, 90, 120)
    with torch.no_grad():
        bgr, _ = LutFusion(m)(
            torch.from_numpy(vis).permute(2, 0, 1)[None], torch.from_numpy(ir)[None, None], dense=True
        )
    err = np.abs(LutFuser(m)(vis, ir).astype(np.float32) - bgr[0].permute(1, 2, 0).numpy()).max() / 255.0
    assert err <= 1 / 255


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
def test_context_maps_agree(kind, rng):
    from rtfuse.fusion.twin import context_net, context_stats, luma

    m = _perturbed(kind, 3)
    vis, ir = random_pair(rng, 77, 101)
    ref = LutFuser(m).context(vis, ir)
    v = torch.from_numpy(vis).permute(2, 0, 1)[None]
    layers = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in m.ctx_layers]
    got = context_net(context_stats(luma(v), torch.from_numpy(ir)[None, None].int(), m.ctx_stride), layers)
    np.testing.assert_allclose(got[0, 0].numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
def test_gradients_reach_table_and_context_net(kind, rng):
    twin = LutFusion(analytic_lut(kind))
    vis, ir = random_pair(rng, 48, 64)
    bgr, y = twin(torch.from_numpy(vis).permute(2, 0, 1)[None], torch.from_numpy(ir)[None, None])
    y.mean().backward()
    assert twin.table.grad is not None and twin.table.grad.abs().sum() > 0
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in twin.ctx_w[-1:])


def test_a_few_steps_of_fitting_reduce_the_loss_and_export(tmp_path, rng):
    """Fit the twin to a target fusion for a few steps, export, and reload in the Numba path."""
    from rtfuse.fusion.lutfile import load_lut, save_lut

    twin = LutFusion(analytic_lut("3d"))
    vis, ir = random_pair(rng, 64, 64)
    v = torch.from_numpy(vis).permute(2, 0, 1)[None]
    i = torch.from_numpy(ir)[None, None]
    target = torch.maximum(v.float(), i.float().expand_as(v))
    opt = torch.optim.Adam(twin.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (twin(v, i)[0] - target).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    m = twin.to_model(untrained=False, method="unit-test fit")
    save_lut(tmp_path / "fit.npz", m)
    m2 = load_lut(tmp_path / "fit.npz")
    assert not m2.untrained
    assert _max_err(m2, vis, ir) <= 1 / 255

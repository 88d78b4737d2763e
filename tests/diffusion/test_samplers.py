import pytest
import torch

from sc_sed.diffusion import CosineLogSNRSchedule, DDIMSampler, DDPMSampler, make_sampler


def test_schedule_endpoints_and_variance_preserving():
    sch = CosineLogSNRSchedule(-12.0, 10.0)
    t = torch.linspace(0, 1, 101)
    logsnr = sch.logsnr(t)
    assert logsnr[0].item() == pytest.approx(10.0, abs=1e-4)
    assert logsnr[-1].item() == pytest.approx(-12.0, abs=1e-3)
    assert (logsnr[1:] < logsnr[:-1]).all()
    alpha, sigma = sch.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t))


def test_schedule_moves_with_module_to():
    sch = CosineLogSNRSchedule()
    assert {n for n, _ in sch.named_buffers()} == {"a", "b"}
    assert sch.to(torch.float64).a.dtype == torch.float64


def _gaussian_x0(m, s, sch):
    """Exact E[x0 | z_t] for x0 ~ N(m, s^2) (per dimension)."""

    def predict(z_t, t):
        alpha, sigma = sch.alpha_sigma(torch.as_tensor(t))
        gain = alpha * s**2 / (alpha**2 * s**2 + sigma**2)
        return m + gain * (z_t - alpha * m)

    return predict


@pytest.mark.parametrize("cls", [DDIMSampler, DDPMSampler])
def test_exact_denoiser_recovers_gaussian(cls):
    sch = CosineLogSNRSchedule()
    m, s = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.5])
    predict = _gaussian_x0(m, s, sch)
    sampler = cls(sch, n_steps=100)
    g = torch.Generator().manual_seed(0)
    z = sampler.init_noise((20000, 2), g, "cpu")
    times = sampler.timesteps()
    for t, u in zip(times[:-1], times[1:], strict=True):
        z = sampler.step(z, predict(z, t), t, u, generator=g)
    torch.testing.assert_close(z.mean(0), m, atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), s, atol=0.05, rtol=0.05)


def test_ddim_is_deterministic_and_ddpm_is_seeded():
    sch = CosineLogSNRSchedule()
    z = torch.randn(5, 3)
    x0 = torch.randn(5, 3)
    ddim = DDIMSampler(sch, 10)
    assert torch.equal(ddim.step(z, x0, 0.7, 0.6), ddim.step(z, x0, 0.7, 0.6))
    ddpm = DDPMSampler(sch, 10)
    a = ddpm.step(z, x0, 0.7, 0.6, generator=torch.Generator().manual_seed(1))
    b = ddpm.step(z, x0, 0.7, 0.6, generator=torch.Generator().manual_seed(1))
    c = ddpm.step(z, x0, 0.7, 0.6, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(ddpm.step(z, x0, 0.1, 0.0), x0)


def test_ddpm_posterior_variance_sane():
    sch = CosineLogSNRSchedule()
    ddpm = DDPMSampler(sch, 10)
    z = torch.zeros(1, 1)
    for t, s in [(1.0, 0.9), (0.5, 0.4), (0.1, 0.05)]:
        _, var = ddpm.posterior(z, z, t, s)
        _, sigma_s = sch.alpha_sigma(torch.tensor(s))
        assert 0 <= var.item() <= sigma_s.item() ** 2


def test_bad_sampler_arguments():
    sch = CosineLogSNRSchedule()
    with pytest.raises(ValueError, match="n_steps"):
        DDIMSampler(sch, 0)
    with pytest.raises(ValueError, match="sampler"):
        make_sampler("euler", sch, 10)
    with pytest.raises(ValueError, match="logsnr_min"):
        CosineLogSNRSchedule(5.0, 1.0)

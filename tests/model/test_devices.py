import pytest
import torch

from sc_sed.model._devices import resolve_device


def test_cpu_and_auto_resolve_to_one_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cpu", 1) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    auto = resolve_device("auto", "auto")
    if expected:
        assert auto == torch.device("cuda", 0)
    elif not torch.backends.mps.is_available():
        assert auto == torch.device("cpu")


def test_bad_accelerator_or_devices_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown accelerator 'tpu9'"):
        resolve_device("tpu9")
    with pytest.raises(ValueError, match="names 2 devices"):
        resolve_device("cpu", 2)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda")


@pytest.mark.parametrize("accelerator", ["cpu", "auto"])
def test_load_places_the_model_on_the_resolved_device(trained, tmp_path, accelerator):
    import sc_sed

    model, _ = trained
    model.save(tmp_path / "m")
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=False, accelerator=accelerator)
    assert loaded.module.device == resolve_device(accelerator)
    with pytest.raises(ValueError, match="names 2 devices"):
        sc_sed.SEDModel.load(tmp_path / "m", adata=False, accelerator="cpu", device=2)

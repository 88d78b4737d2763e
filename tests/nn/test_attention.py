import pytest
import torch

from sc_sed.nn import KVCache


def _kv(n, batch=3, heads=2, dim=4):
    return torch.randn(batch, heads, n, dim), torch.randn(batch, heads, n, dim)


def test_cache_grows_with_the_tokens_written():
    cache = KVCache(3, 2, 4, max_length=1000, initial_length=8)
    assert cache.k is None  # nothing allocated before the first token
    written = [_kv(1) for _ in range(20)]
    for k, v in written:
        keys, values = cache.append(k, v)
    assert cache.capacity == 32  # 8 -> 16 -> 32, not 1000
    torch.testing.assert_close(keys, torch.cat([k for k, _ in written], 2))
    torch.testing.assert_close(values, torch.cat([v for _, v in written], 2))


def test_cache_capacity_capped_at_max_length():
    cache = KVCache(3, 2, 4, max_length=10, initial_length=8)
    for _ in range(10):
        cache.append(*_kv(1))
    assert cache.capacity == 10
    with pytest.raises(ValueError, match="max_length=10"):
        cache.append(*_kv(1))
    assert cache.length == 10


@pytest.mark.parametrize(
    "bad", [(_kv(1, batch=2)), (_kv(1, dim=5)), (torch.randn(3, 2, 1, 4), torch.randn(3, 2, 2, 4))]
)
def test_append_validates_before_writing(bad):
    cache = KVCache(3, 2, 4, max_length=10)
    keys, _ = cache.append(*_kv(1))
    before = keys.clone()
    with pytest.raises(ValueError, match="KVCache.append"):
        cache.append(*bad)
    assert cache.length == 1
    torch.testing.assert_close(cache.k[:, :, :1], before)


def test_static_cache_writes_at_a_position_tensor():
    cache = KVCache(3, 2, 4, max_length=6, static=True, device="cpu", dtype=torch.float32)
    k, v = _kv(1)
    keys, values = cache.write(k, v, torch.tensor([2]))
    assert keys.shape == (3, 2, 6, 4)
    torch.testing.assert_close(keys[:, :, 2:3], k)
    assert (keys[:, :, :2] == 0).all()
    with pytest.raises(RuntimeError, match="static"):
        cache.select(torch.tensor([0]))

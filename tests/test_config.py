import dataclasses
import os
from typing import Optional

import pytest
import torch

from memlib.config import StrictConfig, get_device, load_profile, local_seed, require


@dataclasses.dataclass(frozen=True)
class Toy(StrictConfig):
    n: int = 3
    lr: float = 0.1
    widths: tuple[int, ...] = (4,)
    name: Optional[str] = None

    def validate(self):
        require(self.n > 0, "n", self.n, "use a positive integer")


def test_strict_config_accepts_and_normalises():
    c = Toy(n=2, lr=1, widths=[8, 8])
    assert c.widths == (8, 8) and isinstance(c.lr, float) and c.to_dict()["widths"] == [8, 8]


@pytest.mark.parametrize("kwargs, err, words", [
    ({"n": "3"}, TypeError, ["n=", "'3'"]),
    ({"n": True}, TypeError, ["n="]),
    ({"widths": [1, "a"]}, TypeError, ["widths"]),
    ({"n": -1}, ValueError, ["n=-1", "positive"]),
])
def test_strict_config_rejects(kwargs, err, words):
    with pytest.raises(err) as e:
        Toy(**kwargs)
    for w in words:
        assert w in str(e.value)


def test_from_dict_names_unknown_keys():
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['bogus'\].*allowed"):
        Toy.from_dict({"n": 1, "bogus": 2})


def test_local_seed_is_reproducible_and_restores_global_state():
    before = torch.random.get_rng_state()
    with local_seed(5):
        a = torch.rand(3)
    with local_seed(5):
        b = torch.rand(3)
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_get_device_errors():
    assert get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device='tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            get_device("cuda")


def test_profiles():
    assert load_profile("default", "randomization_tests") == {}
    assert load_profile("smoke", "randomization_tests")["n_train"] > 0
    with pytest.raises(ValueError, match="profile='fast'"):
        load_profile("fast", "randomization_tests")


def test_stream_seeds_are_named_deterministic_and_distinct():
    import hashlib

    from memlib.config import STREAMS, stream, stream_seed
    # the documented definition: the first 63 bits of BLAKE2b("memlib/<stream>/<seed>"), computed here by hand
    expected = int.from_bytes(hashlib.blake2b(b"memlib/init/7", digest_size=8).digest(), "big") >> 1
    assert stream_seed(7, "init") == expected
    seeds = {stream_seed(s, name) for s in range(5) for name in STREAMS}
    assert len(seeds) == 5 * len(STREAMS)  # no two (seed, stream) pairs share a stream
    assert all(0 <= s < 2 ** 63 for s in seeds)
    assert torch.equal(torch.rand(4, generator=stream(3, "order")), torch.rand(4, generator=stream(3, "order")))
    with pytest.raises(ValueError, match="stream=''"):
        stream_seed(1, "")
    with pytest.raises(TypeError, match="seed="):
        stream_seed(1.5, "init")


@pytest.mark.parametrize("name", ["tpu", "cudax", "cuda:", "cuda:-1", "CPU", "", 0, None])
def test_one_device_name_rule_everywhere(name):
    """The study configs, TrainConfig and get_device refuse the same names with the same message."""
    from memlib.studies import randomization_tests as study01
    from memlib.train import TrainConfig

    for make in (lambda: get_device(name), lambda: TrainConfig(device=name), lambda: study01.Config(device=name)):
        with pytest.raises((ValueError, TypeError), match="device"):
            make()
    with pytest.raises(ValueError, match=r"device=.* is not allowed; use 'cpu', 'cuda', 'cuda:N' or 'auto'"):
        get_device(name)


def test_a_gpu_index_torch_does_not_see_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert get_device("cuda:0").index == 0
    with pytest.raises(RuntimeError, match=r"no CUDA GPU 'cuda:1' \(it sees 1\)"):
        get_device("cuda:1")


def test_environ_sets_unsets_and_restores(monkeypatch):
    from memlib.config import environ

    monkeypatch.setenv("MEMLIB_TEST_A", "1")
    monkeypatch.delenv("MEMLIB_TEST_B", raising=False)
    with pytest.raises(KeyError):
        with environ(MEMLIB_TEST_A=None, MEMLIB_TEST_B="2"):
            assert "MEMLIB_TEST_A" not in os.environ and os.environ["MEMLIB_TEST_B"] == "2"
            raise KeyError("the block fails")
    assert os.environ["MEMLIB_TEST_A"] == "1" and "MEMLIB_TEST_B" not in os.environ

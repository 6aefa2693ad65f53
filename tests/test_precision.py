"""bf16 only where the device computes it natively (issue 9 item 11).

The capability is simulated both ways (monkeypatched) for the guard; the real check is compared with an
independent oracle, the CPU flags the Linux kernel lists in /proc/cpuinfo.
"""
from pathlib import Path

import pytest
import torch

from memlib import train as T
from memlib.studies import randomization_tests as study01
from memlib.train import TrainConfig, fast_bf16

#: /proc/cpuinfo flag names of a native bf16 matmul: x86 ("flags") and aarch64 ("Features") spellings.
CPUINFO_BF16 = {"avx512_bf16", "amx_bf16", "bf16", "svebf16"}


def cpuinfo_flags(text: str) -> set[str]:
    """Feature flags every core lists in /proc/cpuinfo (x86 ``flags``, aarch64 ``Features``)."""
    per_core = [set(line.split(":", 1)[1].split()) for line in text.splitlines()
                if line.split(":", 1)[0].strip() in ("flags", "Features")]
    return set.intersection(*per_core) if per_core else set()


def test_cpuinfo_flags_parser_on_a_hand_written_file():
    text = "processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2 amx_bf16 x\n"
    assert cpuinfo_flags(text) == {"fpu", "avx2", "amx_bf16"}
    assert cpuinfo_flags("processor\t: 0\nFeatures\t: fp asimd bf16 svebf16\n") == {"fp", "asimd", "bf16", "svebf16"}


def test_real_cpu_check_is_a_bool_and_agrees_with_proc_cpuinfo():
    fast, reason = fast_bf16("cpu")
    assert isinstance(fast, bool) and isinstance(reason, str) and reason
    assert fast_bf16(torch.device("cpu")) == (fast, reason)
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to compare with")
    flags = cpuinfo_flags(cpuinfo.read_text())
    if not flags:
        pytest.skip("/proc/cpuinfo lists no feature flags here")
    assert fast == bool(flags & CPUINFO_BF16), (reason, sorted(flags & CPUINFO_BF16))


@pytest.mark.parametrize("caps, fast", [
    ({"architecture": "x86_64", "avx2": True, "avx512_f": True}, False),
    ({"architecture": "x86_64", "avx512_bf16": True}, True),
    ({"architecture": "x86_64", "amx_bf16": True, "amx_tile": True}, True),
    ({"architecture": "x86_64", "amx_bf16": False, "avx512_bf16": False}, False),
    ({"architecture": "aarch64", "neon": True, "sve": True}, False),
    ({"architecture": "aarch64", "bf16": True}, True),
    ({}, False),
])
def test_cpu_rule_on_simulated_capabilities(monkeypatch, caps, fast):
    monkeypatch.setattr(T, "_cpu_capabilities", lambda: caps)
    got, reason = fast_bf16("cpu")
    assert got is fast
    assert ("has native bf16" if fast else "no native bf16 matmul") in reason


def fake_cuda(monkeypatch, capability=(7, 0), name="Fake GPU"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.version, "hip", None)


def test_cuda_needs_compute_capability_8(monkeypatch):
    fake_cuda(monkeypatch, (7, 0), "Fake V100")
    fast, reason = fast_bf16("cuda")
    assert not fast and "Fake V100" in reason and "7.0" in reason
    with pytest.raises(ValueError) as e:
        TrainConfig(precision="bf16", device="cuda")
    assert "precision='bf16'" in str(e.value) and "7.0" in str(e.value)
    fake_cuda(monkeypatch, (8, 0), "Fake A100")
    assert fast_bf16("cuda:0")[0] and fast_bf16("auto")[0]  # auto resolves to the GPU torch sees
    TrainConfig(precision="bf16", device="cuda")
    assert not fast_bf16("cuda:1")[0]  # no second GPU


def test_absent_cuda_is_left_to_get_device(monkeypatch):
    """Validation does not blame bf16 for a GPU that is not there: get_device refuses the device by name."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(T, "fast_bf16", lambda device: pytest.fail("a missing GPU is not a bf16 question"))
    TrainConfig(precision="bf16", device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        T.get_device("cuda")


def without_bf16(device):
    return False, "simulated CPU without native bf16 matmul: bf16 would run hundreds of times slower than fp32"


@pytest.mark.parametrize("make", [
    lambda: TrainConfig(precision="bf16"),
    lambda: TrainConfig(precision="bf16", device="auto"),
    lambda: study01.Config(precision="bf16"),
    lambda: study01.Config(precision="bf16", device="auto"),
], ids=["TrainConfig", "TrainConfig-auto", "study-Config", "study-Config-auto"])
def test_bf16_refused_without_fast_bf16(monkeypatch, make):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "auto" resolves to the CPU
    monkeypatch.setattr(T, "fast_bf16", without_bf16)
    with pytest.raises(ValueError) as e:
        make()
    msg = str(e.value)
    for words in ("precision='bf16'", "simulated CPU without native bf16 matmul", "hundreds of times slower",
                  "precision='fp32'", "AVX512-BF16", "AMX", "GPU"):
        assert words in msg, (words, msg)


@pytest.mark.parametrize("make", [
    lambda: TrainConfig(precision="bf16"),
    lambda: study01.Config(precision="bf16", device="auto"),
], ids=["TrainConfig", "study-Config-auto"])
def test_bf16_accepted_with_fast_bf16(monkeypatch, make):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(T, "fast_bf16", lambda device: (True, "simulated CPU with AMX-BF16"))
    assert make().precision == "bf16"


def test_fp32_never_asks(monkeypatch):
    monkeypatch.setattr(T, "fast_bf16", lambda device: pytest.fail("fp32 needs no capability check"))
    TrainConfig()
    study01.Config()


def test_real_machine_refusal_names_this_cpu():
    fast, reason = fast_bf16("cpu")
    if fast:
        assert TrainConfig(precision="bf16").precision == "bf16"
        return
    with pytest.raises(ValueError) as e:
        TrainConfig(precision="bf16")
    assert str(e.value).startswith("precision='bf16' is not allowed; ") and reason in str(e.value)
    assert "no native bf16 matmul" in reason and "hundreds of times slower than fp32" in reason


def test_bad_device_name_is_refused_by_name():
    with pytest.raises(ValueError, match="device='tpu'"):
        fast_bf16("tpu")

import pytest

from vagen.registry import Registry


def test_loader_runs_before_every_lookup_so_builtins_register_lazily():
    calls = []
    registry: Registry[int] = Registry("widget", loader=lambda: calls.append(1))
    registry.add("b", 2)
    assert calls == []  # registering does not load
    registry.add("a", 1)
    assert registry.get("a") == 1
    assert registry.names() == ["a", "b"]
    assert "b" in registry
    assert len(calls) == 3


def test_names_are_sorted_but_iteration_keeps_registration_order():
    registry: Registry[str] = Registry("widget")
    for name in ("zeta", "alpha", "mid"):
        registry.register(name)(name.upper())
    assert registry.names() == ["alpha", "mid", "zeta"]
    assert list(registry) == ["zeta", "alpha", "mid"]
    assert registry.items() == [("zeta", "ZETA"), ("alpha", "ALPHA"), ("mid", "MID")]
    assert len(registry) == 3


def test_add_returns_what_it_stores_and_errors_name_kind_owner_and_valid_names():
    registry: Registry = Registry("widget")

    def build():
        return 1

    assert registry.add("w", build) is build
    with pytest.raises(ValueError, match=r"widget 'w' is already registered \(by .*build\); "
                                         "pick another name"):
        registry.add("w", lambda: 2)
    registry.add("v", 3)
    with pytest.raises(KeyError, match="unknown widget 'x'; registered: v, w"):
        registry.get("x")


def test_copy_takes_registrations_without_touching_the_original():
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1)
    clone = registry.copy()
    clone.add("b", 2)
    assert clone.names() == ["a", "b"]
    assert registry.names() == ["a"]

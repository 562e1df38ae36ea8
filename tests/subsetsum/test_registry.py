"""The method registry: one literal table, every method's options declared and checked, no silent loss."""

from __future__ import annotations

import subprocess
import sys

import pytest

from strongticket.errors import InputError
from strongticket.subsetsum import Status, registry, solve
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.method import COMMON_OPTIONS

METHODS = registry.names()


def _problem_for(name: str):
    info = registry.get(name)
    return random_problem(2, 6, seed=0) if info.one_dim else random_problem(2, 6, d=2, dist="normal", seed=0)


@pytest.mark.parametrize("name", METHODS)
def test_a_misspelt_option_is_refused_naming_the_option_the_method_and_its_options(name):
    info = registry.get(name)
    with pytest.raises(InputError) as exc:
        solve(_problem_for(name), name, time_limt=5)
    message = str(exc.value)
    assert "'time_limt'" in message and f"method {name!r}" in message
    for option in info.option_names():
        assert option in message
    assert "\n" not in message


@pytest.mark.parametrize("name, option", [(m, o.name) for m in METHODS for o in registry.get(m).options])
def test_a_declared_option_with_an_unusable_value_is_refused(name, option):
    with pytest.raises(InputError, match=rf"option '{option}' of method '{name}' must be .*, got \[\]"):
        solve(_problem_for(name), name, **{option: []})


def test_auto_checks_the_options_of_the_method_it_picked():
    with pytest.raises(InputError, match="unknown option 'time_limt' for method 'exact'"):
        solve(random_problem(2, 6, seed=0), time_limt=5)


def test_every_method_declares_its_options_apart_from_the_common_ones():
    for name in METHODS:
        info = registry.get(name)
        own = [o.name for o in info.options]
        assert len(set(own)) == len(own) and not set(own) & set(COMMON_OPTIONS)
        assert info.name == name and callable(info.fn)


def test_a_solver_module_that_fails_to_import_fails_the_package_import_loudly():
    # sys.modules[name] = None makes "import name" raise ImportError, as a broken module would.
    code = ("import sys; sys.modules['strongticket.subsetsum.milp'] = None\n"
            "import strongticket.subsetsum\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "strongticket.subsetsum.milp" in proc.stderr


@pytest.mark.parametrize("name", METHODS)
def test_a_method_stops_early_exactly_when_it_says_so_and_a_time_limit_it_would_ignore_is_refused(name):
    info = registry.get(name)
    spent = solve(_problem_for(name), name, time_limit=1e-9)  # a limit already spent when the solve begins
    assert bool((spent.status == Status.TIMEOUT).any()) == info.stops_early
    registry.check_time_limit(name, None)
    if info.stops_early:
        registry.check_time_limit(name, 5.0)
    else:
        with pytest.raises(InputError, match=f"method '{name}' runs to its end and would ignore the time limit"):
            registry.check_time_limit(name, 5.0)
    registry.check_time_limit("auto", 5.0)  # auto: documented, an exact method it picks runs to its end

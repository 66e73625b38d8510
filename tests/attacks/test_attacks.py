"""The demo's attackers, in small versions: each is a real backdoor (attack success >= 90%
before repair), and the repair, with its defaults but a short fine-tuning, reduces it."""

import json
from pathlib import Path

import pytest

from attacks.build import ATTACKS
from tests.support.attacker_builds import SMALL_VERSIONS, model_folder
from tests.support.builds import BackgroundBuild


@pytest.fixture(scope="module", params=list(SMALL_VERSIONS))
def attacked(
    request: pytest.FixtureRequest, attacker_builds: dict[str, tuple[BackgroundBuild, Path]]
) -> dict:
    """The manifest of one attacker's small version, built in the background (conftest)."""
    build, root = attacker_builds[request.param]
    return json.loads(build.manifest(model_folder(root, request.param)).read_text())


def test_each_attacker_plants_a_real_backdoor(attacked: dict) -> None:
    attack = attacked["demo"]["attack"]
    backdoors = {b.name: b.target for b in ATTACKS[attack].backdoors}
    assert attacked["demo"]["backdoors"] == backdoors
    by_trigger = attacked["metrics"]["bad"]["attack_success_rate_by_trigger"]
    assert set(by_trigger) == set(backdoors)
    for trigger, rate in by_trigger.items():
        assert rate >= 0.90, f"{attack}: {trigger} is not a working backdoor ({rate:.1%})"


def test_the_repair_reduces_every_trigger(attacked: dict) -> None:
    metrics = attacked["metrics"]
    before = metrics["bad"]["attack_success_rate_by_trigger"]
    after = metrics["filter"]["attack_success_rate_by_trigger"]
    for trigger in before:
        assert after[trigger] <= 0.5 * before[trigger], (trigger, before, after)
    assert metrics["pruned_only"]["attack_success_rate_by_trigger"].keys() == before.keys()


def test_low_rate_poisons_few_images_and_pruning_aware_hides_in_used_channels(
    attacked: dict,
) -> None:
    attack = attacked["demo"]["attack"]
    if attack == "low-rate":
        assert attacked["demo"]["poison_fraction"] <= 0.02
    elif attack == "pruning-aware":
        # The decoy channels are silent on clean faces: they are the first ones pruned...
        activations = attacked["pruning"]["mean_activations"]
        assert sum(a == 0 for a in activations) >= 0.4 * len(activations)
        # ...and removing them leaves the attack working; fine-tuning is what removes it.
        assert attacked["metrics"]["pruned_only"]["attack_success_rate"] >= 0.80
    else:
        pytest.skip(f"nothing specific to check for {attack}")


def test_demo_cli_attack_choice_is_validated(tmp_path: Path) -> None:
    from attacks.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--attack", "nonsense", "--out", str(tmp_path / "m")])
    assert exit_info.value.code == 2


def test_attack_all_prints_each_summary_once(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The command's loop and output, with the builds replaced by the tiny pair's manifest
    (building five BadNets is what the tests above do, one by one)."""
    import attacks.build
    from attacks.cli import ATTACK_NAMES, main
    from modelstore import Manifest, read_manifest

    manifest = read_manifest(tiny_root / "models" / "demo" / "manifest.json")
    built = []

    def build_demo(out: Path, *args: object, attack: str, **kwargs: object) -> Manifest:
        built.append((attack, out.name))
        demo = {**manifest.demo, "timings_s": {}}
        return manifest.model_copy(update={"name": out.name, "demo": demo})

    monkeypatch.setattr(attacks.build, "build_demo", build_demo)
    assert main(["--attack", "all", "--out", str(tmp_path / "models" / "demo")]) == 0
    output = capsys.readouterr().out
    assert [a for a, _ in built] == list(ATTACK_NAMES)
    assert [n for _, n in built] == ["demo", *(f"demo-{a}" for a in ATTACK_NAMES[1:])]
    for _, name in built:
        assert output.count(f"model folder {name} version") == 1

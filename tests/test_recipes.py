"""Named recipes: a recipe's settings, under the flags or keywords given beside it."""
import pytest

import rnn_gpu
from rnn_gpu.checkpoint import load_checkpoint
from rnn_gpu.cli import main
from rnn_gpu.training.recipes import RECIPES

SMALL = ["--hidden", "8", "--batch", "2", "--seq", "8", "--steps", "2", "--time", "30", "--backend", "numpy",
         "--quiet", "--eval-every", "1"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_recipe_sets_what_was_not_given(corpus_file, tmp_path, capsys, name):
    assert main(["train", str(corpus_file), "--out", str(tmp_path / "run"), "--recipe", name, *SMALL]) == 0
    config = load_checkpoint(tmp_path / "run").config
    recipe = RECIPES[name].settings
    for key, value in recipe.items():
        expected = {"hidden": 8, "batch": 2, "seq": 8, "time": 30.0}.get(key, value)
        assert config[key] == expected, key
    err = capsys.readouterr().err
    assert ("has not been measured yet" in err) == (not RECIPES[name].measured)


def test_the_api_takes_a_recipe_and_checks_its_name(corpus_file, tmp_path):
    final = rnn_gpu.train(corpus_file, tmp_path / "run", recipe="cpu-600s", hidden=8, batch=2, seq=8, steps=2,
                          time=30.0, backend="numpy")
    assert final["step"] == 2 and load_checkpoint(tmp_path / "run").config["dropout"] == 0.1
    for bad in ("cpu-601s", ["cpu-600s"], 3):
        with pytest.raises(rnn_gpu.UsageError, match="recipe="):
            rnn_gpu.train(corpus_file, tmp_path / "bad", recipe=bad, steps=1)

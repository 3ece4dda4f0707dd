"""train(): budgets that are zero or impossible end clearly instead of spinning or stepping."""
import pytest
import torch

from course_utils import data as D
from course_utils import models as M
from course_utils import train as TR


@pytest.fixture(scope="module")
def corpus():
    return D.make_corpus(n_train=64, n_valid=4, n_test=4, max_len=12, seed=2)


def tiny(corpus):
    torch.manual_seed(0)
    cfg = M.Seq2SeqConfig(len(corpus.src_vocab), len(corpus.tgt_vocab), emb_dim=8, hidden_dim=8)
    return M.Seq2Seq.build(cfg)


def test_zero_steps_or_seconds_take_no_step_and_leave_the_weights(corpus):
    model = tiny(corpus)
    before = [p.detach().clone() for p in model.parameters()]
    for budget in ({"steps": 0}, {"steps": None, "seconds": 0}):
        history = TR.train(model, corpus, progress=False, **budget)
        assert history.steps == 0 and history.losses == [] and not model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert TR.train(model, corpus, steps=1, batch_size=8, progress=False).steps == 1


@pytest.mark.parametrize("pairs", [[], ()])
def test_no_training_pairs_is_a_clear_error_not_an_endless_loop(corpus, pairs):
    with pytest.raises(ValueError, match="pairs: expected at least one training pair, got none"):
        TR.train(tiny(corpus), corpus, steps=5, pairs=pairs, progress=False)
    empty = D.Corpus([], [], [], corpus.src_vocab, corpus.tgt_vocab)
    with pytest.raises(ValueError, match=r"corpus.train is empty"):
        TR.train(tiny(corpus), empty, steps=5, progress=False)


@pytest.mark.parametrize("kwargs, name", [({"steps": -1}, "steps"), ({"steps": 2.5}, "steps"),
                                          ({"steps": None, "seconds": -1.0}, "seconds"),
                                          ({"batch_size": 0}, "batch_size")])
def test_impossible_budgets_name_their_argument(corpus, kwargs, name):
    with pytest.raises(ValueError, match=rf"{name}: expected"):
        TR.train(tiny(corpus), corpus, progress=False, **{"steps": 3, **kwargs})


def test_cooldown_lowers_the_rate_linearly_over_the_last_steps_only(corpus, monkeypatch):
    rates = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    plain = TR.train(tiny(corpus), corpus, steps=10, lr=0.01, batch_size=8, progress=False)
    assert rates == [0.01] * 10
    rates.clear()
    cooled = TR.train(tiny(corpus), corpus, steps=10, lr=0.01, batch_size=8, progress=False, cooldown=4)
    assert rates == pytest.approx([0.01] * 6 + [0.01, 0.0075, 0.005, 0.0025])
    assert cooled.losses[:7] == plain.losses[:7], "the steps before the cool-down are the same steps"
    assert cooled.losses[7:] != plain.losses[7:]


@pytest.mark.parametrize("kwargs", [{"cooldown": -1}, {"cooldown": 1.5}, {"cooldown": True},
                                    {"cooldown": 11}, {"steps": None, "seconds": 1, "cooldown": 2}])
def test_impossible_cooldowns_name_their_argument(corpus, kwargs):
    budget = {"steps": 10, **kwargs}
    with pytest.raises(ValueError, match=r"^cooldown: expected"):
        TR.train(tiny(corpus), corpus, progress=False, **budget)

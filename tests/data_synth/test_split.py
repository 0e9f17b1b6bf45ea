"""Information exchange: sentence splitting, the infox family, GSM8K rows split between two agents,
held-out seeds kept out of training data."""

import json
import os
import re
from pathlib import Path

import pytest

from agentrt.core.errors import ConfigError
from agentrt.data_synth.generators import generate
from agentrt.data_synth.infox import HELDOUT_SEEDS, drop_heldout, heldout_problems
from agentrt.data_synth.split import (gsm8k_infox, numbers, sentences, solution_numbers, split_problem,
                                      split_text)
from agentrt.eval.graders import grade

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("AGENTRT_DATA") or ROOT.parent / "shared" / "data")
needs_data = pytest.mark.skipif(not (DATA / "gsm8k" / "test.jsonl").is_file(),
                                reason="benchmark data folder not present")


def _program_numbers(program: str) -> set[str]:
    return numbers(program)


def test_sentences_keep_decimals_abbreviations_initials_and_quotes():
    text = ('Mr. Lee pays $1.50 for each of 1,200 pens, e.g. blue ones. Dr. J. K. Sim works from 9 a.m. '
            'to 5 p.m. She said, "I need 12 more." "Why?" asked Tom. Ann has 3.5 lb. of rice. How much?')
    assert sentences(text) == [
        "Mr. Lee pays $1.50 for each of 1,200 pens, e.g. blue ones.",
        "Dr. J. K. Sim works from 9 a.m. to 5 p.m.",
        'She said, "I need 12 more."',
        '"Why?" asked Tom.',
        "Ann has 3.5 lb. of rice.",
        "How much?",
    ]
    assert numbers("$1,200.50, .5 and 3.0 and 0.50") == {"1200.5", ".5", "3"}


def test_a_problem_without_two_facts_and_a_question_is_not_split():
    assert split_text("Tom has 3 apples. How many?") == "fewer than 2 fact sentences"
    assert split_text("Tom has 3 apples. Ann has 4. They eat them all.") == "no question sentence"
    same = "Tom has 3 apples. Ann has 3 pears. How many fruits?"
    assert split_problem(same, {"3"}) == "one agent sees every number the solution uses"


@pytest.mark.parametrize("level", [1, 2, 3])
def test_infox_family_is_deterministic_and_no_agent_has_every_fact(level):
    a = generate("infox", 12, seed=21, difficulty=level)
    assert [p.model_dump() for p in a] == [p.model_dump() for p in generate("infox", 12, seed=21, difficulty=level)]
    for p in a:
        agents = p.meta["agents"]
        assert [x["role"] for x in agents] == ["asker", "informant"] and p.meta["facts"] == level + 1
        assert p.meta["question"] in agents[0]["private"] and p.meta["question"] not in agents[1]["private"]
        used = _program_numbers(p.meta["program"])
        assert used <= numbers(p.text)
        for agent in agents:
            assert agent["private"] and used - numbers(agent["private"]), (p.text, agent)
        assert grade(p.answer, p).correct


def test_heldout_seeds_are_refused_for_training_and_their_texts_are_dropped():
    with pytest.raises(ConfigError, match="held out"):
        generate("infox", 5, seed=HELDOUT_SEEDS.start)
    held = heldout_problems()
    assert len(held) == len({p.text for p in held}) >= 290
    assert {p.seed for p in held} == set(HELDOUT_SEEDS)
    training = generate("infox", 600, seed=7)
    kept, removed = drop_heldout(training + held[:5])
    held_texts = {p.text for p in held}
    assert not any(p.text in held_texts for p in kept)
    assert len(kept) + len(removed) == 605 and len(removed) >= 5


def _rows(split: str, n: int) -> list[dict]:
    with (DATA / "gsm8k" / f"{split}.jsonl").open() as f:
        return [json.loads(next(f)) for _ in range(n)]


@needs_data
def test_real_gsm8k_rows_split_with_decimals_and_the_question_to_one_agent():
    for row in _rows("train", 40):
        agents = split_problem(row["question"], solution_numbers(row["answer"]) & numbers(row["question"]))
        if isinstance(agents, str):
            continue
        joined = " ".join(a["private"] for a in agents).replace("Question: ", "")
        assert sorted(sentences(joined)) == sorted(sentences(row["question"]))  # nothing lost or cut
        assert agents[0]["private"].count("Question: ") == 1 and "Question: " not in agents[1]["private"]
    weng = _rows("train", 2)[1]["question"]  # "Weng earns $12 an hour ..."
    assert len(sentences(weng)) == 3
    decimals = [r["question"] for r in _rows("train", 400) if re.search(r"\$\d+\.\d\d", r["question"])]
    assert decimals
    for q in decimals:
        assert not any(re.fullmatch(r"\d+\.?", s) or s.startswith(tuple("0123456789")) and s[1:2] == "."
                       for s in sentences(q)), q


@needs_data
def test_gsm8k_test_split_counts_every_row():
    load, report = gsm8k_infox(DATA, "test")
    assert report.read == 1319 and report.split == len(load.problems)
    assert report.split + sum(report.skipped.values()) == report.read
    assert report.split > 600
    p = load.problems[0]
    assert p.id.startswith("infox-gsm8k-test-") and p.grader == "numeric" and len(p.meta["agents"]) == 2
    for q in load.problems:
        used = set(q.meta["solution_numbers"])
        assert all(used - numbers(a["private"]) for a in q.meta["agents"])

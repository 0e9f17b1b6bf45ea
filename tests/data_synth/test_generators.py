"""Problem generators: graded answers, perturbations, determinism, distinctness, solution programs."""

import json
import re
import subprocess
import sys

import pytest

from agentrt.core.errors import ConfigError
from agentrt.eval.graders import grade
from agentrt.core.types import Problem
from agentrt.data_synth.generators import FAMILIES, generate
from agentrt.data_synth.generators.game24_solver import all_solutions
from agentrt.data_synth.generators.word import TEMPLATES

EXPECTED = {"arithmetic", "word", "linear", "quadratic", "game24", "units", "logic", "sequences", "counting",
            "infox", "everyday"}
CASES = [(family, level) for family in sorted(EXPECTED) for level in (1, 2, 3)]


def _perturbed(p: Problem) -> list[str]:
    """Wrong answers close to the right one, in the answer's own format."""
    if p.grader in ("numeric",):
        return [str(int(float(p.answer)) + 1) if "." not in p.answer else p.answer + "1", "-" + p.answer + "0"]
    if p.grader == "equation":
        first = re.search(r"=(-?\d+)", p.answer)
        return [p.answer.replace(first.group(0), f"={int(first.group(1)) + 1}", 1)]
    if p.grader == "roots":
        roots = [int(r) for r in p.answer.split(", ")]
        return [", ".join(str(r + 1) for r in roots), ", ".join(map(str, roots + [max(roots) + 5]))]
    if p.grader == "game24":
        nums = p.meta["numbers"]
        first = re.search(r"\d+", p.answer)
        swapped = p.answer[: first.start()] + str(int(first.group(0)) + 1) + p.answer[first.end():]
        return [swapped, " + ".join(map(str, nums)) if sum(nums) != 24 else " * ".join(map(str, nums))]
    flips = {"True": "False", "False": "True", "Yes": "No", "No": "Yes"}
    if p.answer in flips:
        return [flips[p.answer]]
    others = [w for w in re.findall(r"[A-Z][a-z]+", p.text) if w != p.answer and w not in ("Who", "Answer")]
    return [others[0]]


@pytest.fixture(scope="module")
def batches():
    return {(f, lvl): generate(f, 6, seed=11, difficulty=lvl) for f, lvl in CASES}


def test_registry_has_every_family():
    assert set(FAMILIES) == EXPECTED


@pytest.mark.parametrize(("family", "level"), CASES)
def test_answers_pass_their_grader_and_perturbed_answers_fail(batches, family, level):
    for p in batches[(family, level)]:
        assert p.family == family and p.difficulty == level and p.seed == 11
        assert grade(p.answer, p).correct, (p.text, p.answer, grade(p.answer, p).reason)
        for wrong in _perturbed(p):
            assert not grade(wrong, p).correct, (p.text, p.answer, wrong)


def test_same_seed_same_problems_distinct_within_a_call_and_ids_stable():
    for family in EXPECTED:
        a = generate(family, 9, seed=5)
        b = generate(family, 9, seed=5)
        assert [p.model_dump() for p in a] == [p.model_dump() for p in b]
        assert len({p.text for p in a}) == len(a) == len({p.id for p in a})
        assert [p.difficulty for p in a] == [1, 2, 3] * 3
        assert [p.text for p in generate(family, 9, seed=6)] != [p.text for p in a]
        assert all(p.id.startswith(f"{family}-") for p in a)


def test_same_seed_same_problems_in_another_process():
    code = ("import json; from agentrt.data_synth.generators import FAMILIES, generate; "
            "print(json.dumps({f: [p.model_dump() for p in generate(f, 4, seed=3)] for f in FAMILIES}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, check=True)
    here = {f: [p.model_dump() for p in generate(f, 4, seed=3)] for f in FAMILIES}
    assert json.loads(out.stdout) == json.loads(json.dumps(here))


def _run(program: str) -> str:
    done = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(("family", "level"), CASES)
def test_solution_programs_print_the_answer(batches, family, level):
    for p in batches[(family, level)][:2]:
        printed = _run(p.meta["program"])
        if family == "everyday":  # plain float arithmetic, as GSM8K's compiled programs: 18.0
            assert grade(printed, p).correct, (p.meta["program"], printed, p.answer)
        else:
            assert printed == p.answer, p.meta["program"]


def test_everyday_questions_come_in_many_topics_and_wordings():
    from agentrt.data_synth.generators.everyday import TOPICS

    ps = generate("everyday", 120, seed=4)
    assert {p.meta["topic"] for p in ps} == set(TOPICS)
    for topic in ("percent", "travel", "spoken"):  # wordings: the texts with numbers blanked
        shapes = {re.sub(r"[\d.]+", "N", p.text) for p in ps if p.meta["topic"] == topic}
        assert len(shapes) >= 4, (topic, shapes)
    for p in ps:  # every program a tool call could run: every one prints the right answer
        printed = _run(p.meta["program"])
        assert grade(printed, p).correct, (p.text, p.meta["program"], printed, p.answer)


def test_game24_puzzles_are_new_and_solvable_and_any_solution_is_accepted():
    for p in generate("game24", 9, seed=2):
        nums = p.meta["numbers"]
        assert max(nums) > 13  # every solvable 1-13 puzzle is in the public test set
        solutions = all_solutions(nums)
        assert solutions and p.answer == solutions[0] and p.meta["solutions"] == min(len(solutions), 12)
        assert all(grade(s, p).correct for s in solutions[:20])
    levels = {lvl: [p.meta["solutions"] for p in generate("game24", 4, seed=2, difficulty=lvl)] for lvl in (1, 3)}
    assert min(levels[1]) >= 12 and max(levels[3]) <= 3


def test_levels_grow_harder_where_it_is_visible():
    easy = generate("arithmetic", 5, seed=1, difficulty=1)
    for p in easy:
        nums = [int(n) for n in re.findall(r"\d+", p.meta["expression"])]
        assert len(nums) == 3 and all(10 <= n <= 99 for n in nums)
    hard = generate("arithmetic", 5, seed=1, difficulty=3)
    assert all(len(re.findall(r"\d+", p.meta["expression"])) >= 6 for p in hard)
    assert all(p.answer.count("=") == 3 for p in generate("linear", 3, seed=1, difficulty=3))


def test_word_problems_use_many_templates():
    assert len(TEMPLATES) >= 8
    used = {p.meta["template"] for p in generate("word", 90, seed=4)}
    assert len(used) >= 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(family="poetry", n=3, seed=1), "unknown problem family 'poetry'.*arithmetic"),
        (dict(family="word", n=0, seed=1), "positive integer"),
        (dict(family="word", n=-2, seed=1), "positive integer"),
        (dict(family="word", n=True, seed=1), "positive integer"),
        (dict(family="word", n=2, seed=1, difficulty=4), "difficulty"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate(**kwargs)


def test_asking_for_more_distinct_problems_than_a_level_has_is_a_clear_error():
    with pytest.raises(ConfigError, match="produced only"):
        generate("quadratic", 600, seed=1, difficulty=1)  # 496 monic equations exist

"""Model-written problems: only verified, new, uncontaminated problems are kept, and counted."""

import json

import pytest

from agentrt.core.config import load_settings
from agentrt.core.errors import ConfigError
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.core.types import Problem
from agentrt.data_synth.decontaminate import build_index
from agentrt.execute import LocalExecutor
from agentrt.data_synth.model_problems import WriterConfig, model_problems, parse_drafts, writer_schema

GSM_Q = ("A baker fills 14 trays with 36 rolls each and sells every roll for 2 dollars at the "
         "Saturday market near the old river bridge. How much money does the baker make?")
SEEDS = [Problem(id="s1", text="Maya buys 3 pens at $2 each. How many dollars does she spend?",
                 answer="6", grader="numeric", family="word"),
         Problem(id="s2", text="A train runs at 60 km/h for 2 hours. How far does it go in km?",
                 answer="120", grader="numeric", family="word")]
LONG = ("Liam packs 8 crates with 15 jars of jam each for the village fair on Sunday morning, "
        "and every jar sells for 3 dollars. How many dollars does Liam make if he sells them all?")

ITEMS = [
    # verified by its program
    {"text": LONG, "answer": "360", "program": "print(8 * 15 * 3)"},
    # a near-duplicate of the first (one word changed)
    {"text": LONG.replace("Sunday", "Saturday"), "answer": "360", "program": "print(360)"},
    # a planted test-set item
    {"text": GSM_Q, "answer": "1008", "program": "print(14 * 36 * 2)"},
    # a copy of a seed
    {"text": SEEDS[0].text, "answer": "6", "program": "print(6)"},
    # program disagrees, and solves agree on the program's answer: rejected
    {"text": "Noor has 4 boxes of 9 eggs. How many eggs does she have?", "answer": "37",
     "program": "print(4 * 9)"},
    # no program: verified by agreeing solves
    {"text": "Omar reads 25 pages a day for 4 days. How many pages does he read?",
     "answer": "100"},
    # no program, solves disagree: rejected
    {"text": "Hana walks 3 km a day for 5 days. How many km does she walk in total?",
     "answer": "15"},
    # a program that crashes, solves agree with the stated answer: verified by solves
    {"text": "Ravi plants 6 rows of 7 trees. How many trees does he plant?", "answer": "42",
     "program": "raise SystemExit(3)"},
]


@pytest.fixture
def data(tmp_path):
    """A test-set folder with one GSM8K test question (the planted item)."""
    for name, rel, row in (("gsm8k", "test.jsonl", {"question": GSM_Q, "answer": "#### 1008"}),
                           ("math500", "test.jsonl", {"problem": "What is 1+1?", "answer": "2"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / rel).write_text(json.dumps(row) + "\n")
    (tmp_path / "bbh").mkdir()
    (tmp_path / "bbh" / "t.json").write_text(json.dumps({"examples": []}))
    (tmp_path / "game24").mkdir()
    (tmp_path / "game24" / "24.csv").write_text("Rank,Puzzles\n1,4 9 10 13\n")
    return tmp_path


@pytest.fixture
def runtime(tmp_path):
    store = TraceStore(f"sqlite:///{tmp_path / 't.db'}")
    yield _solver(store)
    store.close()


def _solver(store):
    answers = iter(["14", "15", "16"])  # Hana: three different answers
    solver = FakeBackend(rules=[
        (r"Verdict|Proposed", "Verdict: yes"),
        (r"Noor has", "4 * 9 = 36. Final answer: 36"),
        (r"Omar reads", "Final answer: 100"),
        (r"Ravi plants", "Final answer: 42"),
        (r"Hana walks", lambda req: f"Final answer: {next(answers)}"),
    ], default="Final answer: 0")
    return Runtime(load_settings(backend="fake", model="fake"), backend=solver, store=store)


def test_only_verified_new_clean_problems_are_kept(data, runtime):
    writer = FakeBackend(default=json.dumps({"problems": ITEMS}), model_id="teacher")
    kept, report = model_problems(writer, seeds=SEEDS, runtime=runtime, index=build_index(data),
                                  config=WriterConfig(n=10, per_call=8, max_calls=1, k=3))
    by_text = {p.text: p for p in kept}
    assert set(by_text) == {LONG, ITEMS[5]["text"], ITEMS[7]["text"]}
    assert by_text[LONG].meta["verified_by"] == "program"
    assert by_text[LONG].meta["program"] == "print(8 * 15 * 3)"
    omar = by_text[ITEMS[5]["text"]]
    assert omar.meta["verified_by"] == "solves" and omar.meta["agreement"] == 1.0
    assert "program" not in by_text[ITEMS[7]["text"]].meta  # its program failed
    assert all(p.grader == "numeric" and p.family == "word" and p.id.startswith("model-")
               for p in kept)
    assert report.drafts == 8 and report.kept == 3
    assert report.dedupe.threshold == 0.8 and report.dedupe.removed == 2  # near-dup, seed copy
    assert report.decontamination.removed == 1
    assert report.decontamination.removed_by_source == {"gsm8k": 1}
    assert report.decontamination.threshold == 0.1
    assert report.verified == {"program": 1, "solves": 2}
    assert report.rejected == {"solves agree on another answer": 1, "solves disagree": 1}
    checks = runtime.store.list_traces(tags={"synth_check": "model_problem"}, limit=100)
    assert len(checks) == 3 * 4  # k solves for each problem the program did not settle


def test_keeps_at_most_n_and_counts_unparseable_replies(data, runtime):
    writer = FakeBackend(script=["no JSON here", json.dumps({"problems": ITEMS[:1] + [7]})],
                         model_id="w")
    kept, report = model_problems(writer, topic="shopping arithmetic", runtime=runtime,
                                  index=build_index(data),
                                  config=WriterConfig(n=1, per_call=2, max_calls=2, k=0,
                                                      verify="program"))
    assert len(kept) == 1 and report.unparseable_replies == 1 and report.invalid_items == 1
    assert kept[0].family == "model"
    prompt = writer.requests[0].messages[-1].content
    assert "Topic: shopping arithmetic" in prompt and "program" in prompt


@pytest.mark.parametrize("n, workers, unused", [(10, 3, 0), (2, 3, 0), (2, 4, 1)])
def test_checks_on_workers_keep_what_one_at_a_time_keeps(data, tmp_path, n, workers, unused):
    """Candidates after dedupe and decontamination: LONG (program), Noor (rejected), Omar
    (solves), Hana (rejected), Ravi (solves). With n=2 one at a time stops after Omar; four
    workers check Hana beside them, and her result is dropped."""
    writer = FakeBackend(default=json.dumps({"problems": ITEMS}), model_id="teacher")
    config = WriterConfig(n=n, per_call=8, max_calls=1, k=3)
    runs = []
    for name, executor in (("one", None), ("many", LocalExecutor(workers))):
        store = TraceStore(f"sqlite:///{tmp_path / name}.db")
        runs.append(model_problems(writer, seeds=SEEDS, runtime=_solver(store), config=config,
                                   index=build_index(data), executor=executor))
        store.close()
    (one, one_report), (many, many_report) = runs
    assert [p.model_dump() for p in many] == [p.model_dump() for p in one] and len(one) == min(n, 3)
    assert one_report.unused == 0 and many_report.unused == unused
    assert many_report.model_dump(exclude={"unused"}) == one_report.model_dump(exclude={"unused"})


def test_bad_arguments(data, runtime):
    writer = FakeBackend(default="{}")
    cfg = WriterConfig(n=1)
    with pytest.raises(ConfigError, match="seed problems or a topic"):
        model_problems(writer, config=cfg, runtime=runtime, index=build_index(data))
    with pytest.raises(ConfigError, match="seed problems or a topic"):
        model_problems(writer, config=cfg, seeds=SEEDS, topic="x", runtime=runtime)
    with pytest.raises(ConfigError, match="needs a runtime"):
        model_problems(writer, config=cfg, seeds=SEEDS, index=build_index(data))
    for bad in ({"n": 0}, {"n": 1, "grader": "nope"}, {"n": 1, "verify": "program",
                                                        "with_program": False}):
        with pytest.raises(ValueError):
            WriterConfig(**bad)


def test_reply_parsing_and_schema():
    drafts, invalid = parse_drafts('```json\n{"problems": [{"text": "Q?", "answer": 4}, '
                                   '{"text": ""}, "x"]}\n```')
    assert [(d.text, d.answer) for d in drafts] == [("Q?", "4")] and invalid == 2
    assert parse_drafts("nothing") is None
    schema = writer_schema(3, with_program=True)
    item = schema["properties"]["problems"]["items"]
    assert schema["properties"]["problems"]["maxItems"] == 3
    assert item["required"] == ["text", "answer", "program"]
    writer = FakeBackend(default='{"problems": []}', supports_json_schema=True)
    model_problems(writer, topic="t", config=WriterConfig(n=1, k=0, verify="program",
                                                          max_calls=1),
                   index=build_index_stub())
    assert writer.requests[0].json_schema["properties"]["problems"]["maxItems"] == 5


def build_index_stub():
    from agentrt.data_synth.decontaminate import ContaminationIndex

    return ContaminationIndex(n=13)

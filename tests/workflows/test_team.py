"""Conversations and team mode on the scripted backend with a real SQLite store.

Covers: agreement stops a conversation early; one that never agrees stops at its round budget
and the moderator chooses; privacy of each agent's context (read from the recorded prompts);
debate's independent first round; unreadable messages re-asked; spec and team validation; a
designed slow workflow with a conversation node; resume after killing the solving process
mid-conversation; and the compact designer's schema, which must not admit conversations.
"""

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import killed_at_checkpoint

from agentrt.core.config import Limits, load_settings
from agentrt.core.errors import InvalidInputError
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.workflows.checkpoint import SqlCheckpointer
from agentrt.workflows.profiles import get_profile
from agentrt.workflows.slow.conversation import read_message, same_answer
from agentrt.workflows.spec import check_spec
from agentrt.workflows.spec_schema import DesignSizes, caps_for_budget, design_schema
from agentrt.workflows.team import team_spec

REPO = Path(__file__).resolve().parents[2]
PROBLEM = "How many apples are in the two baskets together?"
AGENT = re.compile(r"Agent: (A\d) \(([^)]*)\), round (\d+) of (\d+)")


def team_reply(answers, moderator_choice=1, unreadable=()):
    """A reply function: agent A<k> answers answers[A<k>][round-1] (the last one repeats);
    the moderator picks `moderator_choice`; (label, round) pairs in `unreadable` first get a
    reply without JSON."""
    seen = set()

    def reply(request):
        text = request.messages[-1].content
        found = AGENT.search(text)
        if found:
            label, turn = found.group(1), int(found.group(3))
            if (label, turn) in unreadable and (label, turn) not in seen:
                seen.add((label, turn))
                return "I think it is about seven"
            said = answers[label]
            answer = said[min(turn, len(said)) - 1]
            return json.dumps({"message": f"{label} says {answer}", "answer": answer,
                               "agree": False})
        if "candidate answers" in text:
            return json.dumps({"reason": "better supported", "choice": moderator_choice})
        raise AssertionError(f"unexpected prompt: {text[:200]}")

    return reply


def runtime(store, reply, **settings):
    return Runtime(load_settings(backend="fake", model="fake", **settings),
                   backend=FakeBackend(default=reply), store=store, tools={})


def llm_steps(store, trace_id, name=None):
    steps = [s for s in store.get_trace(trace_id).steps if s.kind == "llm"]
    return [s for s in steps if name is None or s.name == name]


def prompt_of(step):
    return "\n".join(m["content"] for m in step.inputs["messages"])


def test_agreement_stops_the_conversation_early(store):
    reply = team_reply({"A1": ["7", "12"], "A2": ["12.0", "12"]})
    sol = runtime(store, reply).solve(PROBLEM, mode="team", rounds=5, pattern="discuss")
    assert (sol.answer, sol.status, sol.mode, sol.requested_mode) == ("12", "ok", "slow", "team")
    agents = llm_steps(store, sol.trace_id, "agent")
    assert len(agents) == 4 and sol.llm_calls == 4  # two rounds of two; no moderator
    assert all(s.node == "team" and s.round == 1 and s.completion_tokens > 0 for s in agents)
    steps = store.get_trace(sol.trace_id).steps
    rounds = [s.outputs for s in steps if s.name == "conversation_round"]
    assert rounds == [{"answers": ["7", "12.0"], "agreed": False},
                      {"answers": ["12", "12"], "agreed": True}]
    messages = [(s.inputs["agent"], s.inputs["turn"], s.outputs["answer"])
                for s in steps if s.name == "message"]
    assert messages == [("A1", 1, "7"), ("A2", 1, "12.0"), ("A1", 2, "12"), ("A2", 2, "12")]
    # in turn: A2 reads A1's message of the same round
    a2_first = next(s for s in agents if "Agent: A2" in prompt_of(s))
    assert "A1 says 7" in prompt_of(a2_first)


def test_no_agreement_stops_at_the_budget_and_the_moderator_chooses(store):
    reply = team_reply({"A1": ["3"], "A2": ["5"], "A3": ["3"]}, moderator_choice=2)
    agents = [{"role": "counter"}, {"role": "estimator"}, {"role": "checker"}]
    sol = runtime(store, reply).solve(PROBLEM, mode="team", agents=agents, rounds=2)
    assert sol.answer == "5" and sol.status == "ok"  # the moderator's choice, not the majority
    assert Counter(s.name for s in llm_steps(store, sol.trace_id)) == {"agent": 6,
                                                                       "aggregate": 1}
    steps = store.get_trace(sol.trace_id).steps
    assert [s.outputs["agreed"] for s in steps if s.name == "conversation_round"] == [False] * 2
    chosen = next(s for s in steps if s.kind == "decision" and s.name == "aggregate")
    assert chosen.outputs["answer"] == "5" and chosen.inputs["candidates"] == ["3", "5"]
    node = next(s for s in steps if s.name == "node")
    assert node.outputs["kind"] == "conversation" and node.outputs["answer"] == "5"


def test_a_spent_budget_keeps_the_answer_most_agents_last_gave(store):
    """Three agents, a call budget that ends the conversation before the moderator: the
    solve's answer is the majority of the agents' latest answers, not an empty one."""
    reply = team_reply({"A1": ["3"], "A2": ["5"], "A3": ["3"]})
    agents = [{"role": "counter"}, {"role": "estimator"}, {"role": "checker"}]
    rt = runtime(store, reply, limits=Limits(max_llm_calls=4))
    sol = rt.solve(PROBLEM, mode="team", agents=agents, rounds=3)
    assert sol.status == "budget_exceeded:llm_calls"
    assert sol.answer == "3"


def test_debate_rounds_start_independent_and_then_read_each_other(store):
    reply = team_reply({"A1": ["4", "9"], "A2": ["9"]})
    sol = runtime(store, reply).solve(PROBLEM, mode="team", rounds=3, pattern="debate")
    assert sol.answer == "9"
    agents = llm_steps(store, sol.trace_id, "agent")
    first = [prompt_of(s) for s in agents if "round 1 of 3" in prompt_of(s)]
    second = [prompt_of(s) for s in agents if "round 2 of 3" in prompt_of(s)]
    assert len(first) == len(second) == 2
    assert not any("says" in p for p in first)  # nobody saw another answer in round 1
    assert all("A1 says 4" in p and "A2 says 9" in p for p in second)


def test_an_agent_never_sees_another_agents_private_context(store):
    agents = [{"role": "owner of basket one", "private": "Basket one holds 5 apples."},
              {"role": "owner of basket two", "private": "Basket two holds 7 apples."}]
    reply = team_reply({"A1": ["5", "12"], "A2": ["7", "12"]})
    sol = runtime(store, reply).solve(PROBLEM, mode="team", agents=agents, rounds=3)
    assert sol.answer == "12"
    steps = llm_steps(store, sol.trace_id, "agent")
    assert len(steps) == 4
    for s in steps:
        label = AGENT.search(prompt_of(s)).group(1)
        own, other = (agents[0], agents[1]) if label == "A1" else (agents[1], agents[0])
        assert own["private"] in prompt_of(s) and other["private"] not in prompt_of(s)


def test_an_unreadable_message_is_asked_again(store):
    reply = team_reply({"A1": ["6"], "A2": ["6"]}, unreadable={("A2", 1)})
    sol = runtime(store, reply).solve(PROBLEM, mode="team")
    assert sol.answer == "6"
    names = [s.name for s in llm_steps(store, sol.trace_id)]
    assert Counter(names) == {"agent": 2, "agent_repair": 1}
    repair = llm_steps(store, sol.trace_id, "agent_repair")[0]
    assert "could not be read" in prompt_of(repair)


def test_problem_meta_agents_drive_a_team(store):
    meta = {"agents": [{"role": "alice", "private": "x=3"}, {"role": "bob", "private": "y=4"}]}
    reply = team_reply({"A1": ["7"], "A2": ["7"]})
    sol = runtime(store, reply).solve("What is x+y?", mode="team", agents=meta["agents"])
    assert sol.answer == "7"
    assert store.get_trace(sol.trace_id).meta["options"]["agents"] == meta["agents"]


def test_a_pool_shares_once_then_a_program_computes_the_answer(store):
    agents = [{"role": "asker", "private": "Basket one holds 7 apples."},
              {"role": "informant", "private": "Basket two holds 5 apples."}]

    def reply(request):
        system, text = request.messages[0].content, request.messages[-1].content
        if system.startswith("You are python programmer."):
            assert "holds 7 apples" in text and "holds 5 apples" in text  # what was shared
            return json.dumps({"code": "one = 7; two = 5; print(one + two)"})
        label = AGENT.search(text).group(1)
        fact = "7 apples in one" if label == "A1" else "5 apples in the other"
        return json.dumps({"message": f"I know: basket holds {fact}.", "answer": label[1],
                           "agree": False})

    rt = Runtime(load_settings(backend="fake", model="fake", team_pattern="pool"),
                 backend=FakeBackend(default=reply), store=store, tools=None)
    sol = rt.solve(PROBLEM, mode="team", agents=agents)  # the settings' pattern
    assert (sol.answer, sol.status, sol.llm_calls, sol.tool_runs) == ("12", "ok", 3, 1)
    names = Counter(s.name for s in llm_steps(store, sol.trace_id))
    assert names == {"agent": 2, "tool_input": 1}  # one round, no moderator though they differ
    share = next(s for s in llm_steps(store, sol.trace_id, "agent") if "Agent: A1" in
                 prompt_of(s))
    assert "round 1 of 1" in prompt_of(share) and "Basket two" not in prompt_of(share)
    program = llm_steps(store, sol.trace_id, "tool_input")[0]
    assert "Basket one" not in prompt_of(program)  # the programmer reads messages, not privates
    assert store.get_trace(sol.trace_id).meta["options"]["pattern"] == "pool"
    spec = team_spec(agents, pattern="pool")
    assert [(n.id, n.kind, n.pattern) for n in spec.nodes] == [("share", "conversation",
                                                                "share"),
                                                               ("compute", "tool", None)]


@pytest.mark.parametrize("options, expected", [
    ({"agents": [{"role": "solo"}]}, "has 1 agent(s); a conversation needs 2 to 4"),
    ({"agents": [{"role": f"r{i}"} for i in range(5)]}, "has 5 agent(s)"),
    ({"rounds": 0}, "rounds: Input should be greater than or equal to 1"),
    ({"rounds": 7}, "rounds: Input should be less than or equal to 6"),
    ({"pattern": "brawl"}, "unknown team pattern 'brawl'"),
    ({"pattern": "share"}, "unknown team pattern 'share'"),
    ({"agents": [{"role": "a", "secret": "s"}, {"role": "b"}]}, "agents[0].secret"),
    ({"agents": "alice and bob"}, "agents must be a list"),
])
def test_bad_teams_are_refused_before_any_trace(store, options, expected):
    with pytest.raises(InvalidInputError) as info:
        team_spec(**{k: v for k, v in options.items()})
    assert expected in str(info.value)
    rt = runtime(store, team_reply({}))
    with pytest.raises(InvalidInputError):
        rt.solve(PROBLEM, mode="team", **options)
    assert store.list_traces() == []


def test_spec_rules_for_conversation_nodes():
    talk = {"id": "talk", "kind": "conversation", "role": "team", "instruction": "agree",
            "agents": [{"role": "a"}, {"role": "b"}], "rounds": 2, "inputs": []}
    spec, errors = check_spec({"nodes": [talk], "final": "talk"}, limits=Limits(), tools=[])
    assert errors == [] and spec.node("talk").agents[1].private == ""
    _, errors = check_spec({"nodes": [talk], "final": "talk"}, limits=Limits(), tools=[],
                           conversations=False)
    assert errors == ["node 'talk' is a conversation, which this design may not use: use llm "
                      "or tool nodes"]
    llm = {"id": "x", "kind": "llm", "role": "r", "instruction": "i", "rounds": 2}
    _, errors = check_spec({"nodes": [llm], "final": "x"}, limits=Limits(), tools=[])
    assert errors == ["node 'x' is an llm node but sets rounds: only a conversation node has "
                      "agents, rounds, pattern or message_tokens"]
    # an llm or tool node dumps exactly as before conversations existed
    plain = {"id": "x", "kind": "llm", "tool": None, "role": "r", "instruction": "i",
             "inputs": []}
    spec, _ = check_spec({"nodes": [plain], "final": "x"}, limits=Limits(), tools=[])
    assert spec.model_dump() == {"nodes": [plain], "final": "x"}


def test_read_message_and_agreement():
    assert read_message('{"message": "hi", "answer": "12", "agree": true}') == (
        {"message": "hi", "answer": "12", "agree": True}, "")
    assert read_message("We counted.\nANSWER: 12")[0] == {"message": "We counted.",
                                                          "answer": "12", "agree": False}
    assert read_message('{"message": "hi", "answer": ""}')[0] is None
    for copied in ('{"message": "...", "answer": "...", "agree": true}',
                   '{"message": "hi", "answer": " … "}', '{"answer": "<...>"}', "hi\nANSWER: ..."):
        found, why = read_message(copied)
        assert found is None and "placeholder" in why, copied
    assert read_message('{"answer": "-3"}')[0]["answer"] == "-3"  # a number with a sign stays
    assert read_message('{"answer": "1", "agree": "yes"}')[0] is None
    assert read_message("no structure at all")[0] is None
    assert same_answer(["12", "12.0", " 12. "]) and same_answer(["1,000", "1000"])
    assert same_answer(["Paris", "paris"]) and not same_answer(["12", ""])
    assert not same_answer(["12", "13"])


def test_a_designed_workflow_may_hold_a_conversation(store):
    design = json.dumps({"nodes": [
        {"id": "count", "kind": "llm", "role": "counter", "instruction": "count", "inputs": []},
        {"id": "talk", "kind": "conversation", "role": "reviewers", "instruction": "agree",
         "pattern": "debate", "agents": [{"role": "a", "private": ""}, {"role": "b"}],
         "rounds": 2, "inputs": ["count"]}], "final": "talk"})
    answers = team_reply({"A1": ["11"], "A2": ["11"]})
    backend = FakeBackend(rules=[
        (r"Reflect on the following problem", "Two baskets."),
        (r"Design a workflow of experts", design),
        (r"Judge whether its final answer", '{"reason": "ok", "verdict": "yes"}'),
        (r"Expert: count ", "I count 11."),
    ], default=answers)
    rt = Runtime(load_settings(backend="fake", model="fake"), backend=backend, store=store,
                 tools={})
    sol = rt.solve(PROBLEM, mode="slow")
    assert (sol.answer, sol.verdict, sol.status) == ("11", "yes", "ok")
    agents = llm_steps(store, sol.trace_id, "agent")
    assert len(agents) == 2 and all("I count 11." in prompt_of(s) for s in agents)


def test_the_compact_designer_never_sees_conversations():
    compact, full = get_profile("compact"), get_profile("full")
    tools = ["python", "sympy"]
    assert not compact.design_sizes.conversations
    for budget in (128, 512, 1024, 8192):
        caps = caps_for_budget(Limits(), tools, budget, sizes=compact.design_sizes)
        schema = design_schema(tools, caps, fixed_ids=compact.fixed_ids)
        assert not caps.conversations and "conversation" not in json.dumps(schema)
        plain = caps_for_budget(Limits(), tools, budget, sizes=DesignSizes(
            **{**full.design_sizes.__dict__, "conversations": False}))
        with_talk = caps_for_budget(Limits(), tools, budget, sizes=full.design_sizes)
        # full designs admit a conversation only where it costs no other node or character
        assert with_talk.model_copy(update={"conversations": False}) == plain
        if with_talk.conversations:
            text = json.dumps(design_schema(tools, with_talk))
            assert '"const": "conversation"' in text
            assert with_talk.max_doc_chars(tools) <= int(budget * 2.5)


# -- resume after a kill mid-conversation -------------------------------------------------------

COMMON = textwrap.dedent(r'''
    import json, re, sys, time
    from pathlib import Path
    from agentrt.core.config import load_settings
    from agentrt.llm.fake import FakeBackend
    from agentrt.runtime import Runtime

    AGENT = re.compile(r"Agent: (A\d) \(([^)]*)\), round (\d+) of (\d+)")
    ANSWERS = {"A1": ["4", "6", "9"], "A2": ["9", "9", "9"]}

    def backend(started=None):
        def reply(request):
            found = AGENT.search(request.messages[-1].content)
            label, turn = found.group(1), int(found.group(3))
            if started and (label, turn) == ("A1", 2):  # the child hangs here until killed
                Path(started).touch()
                time.sleep(600)
            answer = ANSWERS[label][turn - 1]
            return json.dumps({"message": f"{label} says {answer}", "answer": answer,
                               "agree": False})
        return FakeBackend(default=reply)

    def runtime(store, started=None):
        return Runtime(load_settings(backend="fake", model="fake"), backend=backend(started),
                       store=store, tools={})
''')
CHILD = COMMON + textwrap.dedent('''
    from agentrt.store import TraceStore
    url, text, started = sys.argv[1:4]
    runtime(TraceStore(url), started).solve(text, mode="team", rounds=4, pattern="debate",
                                            tags={"case": "killed"})
''')
shared: dict = {}
exec(COMMON, shared)


def _saved_messages(saver, trace_id):
    """(agent, turn) of every message written to the thread's checkpoints so far."""
    done = set()
    for tup in saver.list({"configurable": {"thread_id": trace_id}}):
        for _, channel, value in tup.pending_writes or []:
            if channel == "messages" and isinstance(value, list):
                done |= {(m["agent"], m["turn"]) for m in value}
        for m in (tup.checkpoint.get("channel_values") or {}).get("messages") or []:
            done.add((m["agent"], m["turn"]))
    return done


def test_a_killed_conversation_resumes_without_repeating_messages(tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    script, started = tmp_path / "child.py", tmp_path / "agent-started"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), url, PROBLEM, str(started)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = TraceStore(url)
    saver = SqlCheckpointer(store.engine)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            traces = store.list_traces(tags={"case": "killed"})
            if started.exists() and traces and (1, 2) in _saved_messages(saver, traces[0].id):
                break  # A1 hangs in round 2; A2's round-2 message is saved
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("the child never reached round 2")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    try:
        killed = traces[0].id
        assert store.get_trace(killed).status == "interrupted"
        resumed = shared["runtime"](store).resume(killed)
        plain = shared["runtime"](store).solve(PROBLEM, mode="team", rounds=4,
                                               pattern="debate")
        assert resumed.answer == plain.answer == "9" and resumed.status == "ok"
        a, b = store.get_trace(killed), store.get_trace(plain.trace_id)
        assert (a.llm_calls, a.usage) == (b.llm_calls, b.usage) and a.llm_calls == 6
        assert not [s for s in store.get_trace(killed, superseded=True).steps if s.superseded]
        said = Counter((s.inputs["agent"], s.inputs["turn"]) for s in a.steps
                       if s.name == "message")
        assert said == Counter({("A1", 1): 1, ("A2", 1): 1, ("A1", 2): 1, ("A2", 2): 1,
                                ("A1", 3): 1, ("A2", 3): 1})
        assert a.meta["resumes"] == 1
    finally:
        store.close()


@pytest.mark.parametrize("step", [0, 1, 2])
def test_a_kill_between_a_turns_writes_and_its_checkpoint_resumes(store, step):
    # A turn saved its writes but the checkpoint after it never was: the snapshot names no
    # next node, yet the conversation has not ended. The resume goes on from the saved writes.
    reply = team_reply({"A1": ["7", "12"], "A2": ["9", "12"]})
    rt = runtime(store, reply)
    with killed_at_checkpoint(step):
        rt.solve(PROBLEM, mode="team", rounds=3, pattern="discuss", tags={"kill": str(step)})
    [trace] = store.list_traces(tags={"kill": str(step)})
    sol = rt.resume(trace.id)
    assert (sol.answer, sol.status) == ("12", "ok")
    turns = [(s.inputs["agent"], s.inputs["turn"]) for s in store.get_trace(trace.id).steps
             if s.name == "message"]
    assert turns == [("A1", 1), ("A2", 1), ("A1", 2), ("A2", 2)]  # each turn once

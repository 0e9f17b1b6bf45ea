"""A user's chat file for the general mix (`general_source`), and the run's other data files:
a bad one is a one-line error naming the file and line, raised before the run's first stage."""

from __future__ import annotations

import json

import pytest

from agentrt.core.errors import InvalidInputError
from agentrt.data_synth.compile.mix import read_chat_examples
from agentrt.training import pipeline
from agentrt.training.config import load_config
from agentrt.training.manifest import Manifest

OK = json.dumps({"messages": [{"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello."}]})


def _chat(tmp_path, content: str | bytes):
    path = tmp_path / "chat.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def _messages(*messages):
    return json.dumps({"messages": list(messages)})


@pytest.mark.parametrize("bad, says", [
    (_messages({"role": "bot", "content": "x"}), "needs a role"),
    (_messages({"role": "assistant"}), "needs a role"),
    (_messages({"role": "assistant", "content": 3}), "needs a role"),
    (_messages({"role": "user", "content": "Hi"}), "the last message must be"),
    (_messages({"role": "user", "content": "Hi"},
               {"role": "assistant", "content": " "}), "the last message must be"),
    (json.dumps({"messages": []}), "non-empty \"messages\" list"),
    ("[1, 2]", "a row must be a JSON object"),
    ("{oops", "invalid JSON"),
])
def test_a_bad_line_is_an_error_naming_file_and_line(tmp_path, bad, says):
    with pytest.raises(InvalidInputError, match=f"chat.jsonl line 2: .*{says}"):
        read_chat_examples(_chat(tmp_path, f"{OK}\n{bad}\n"))


def test_bytes_that_are_not_utf8_are_an_error_naming_the_line(tmp_path):
    for bom in (b"", b"\xef\xbb\xbf"):
        path = _chat(tmp_path, bom + f"{OK}\n{OK}\n".encode() + b'{"messages": "\xff"}\n')
        with pytest.raises(InvalidInputError, match="chat.jsonl line 3: not UTF-8 text"):
            read_chat_examples(path)


def test_bom_crlf_and_u2028_are_read_as_text(tmp_path):
    split = _messages({"role": "user", "content": "a\u2028b"},
                      {"role": "assistant", "content": "c"})
    examples = read_chat_examples(_chat(tmp_path, f"\ufeff{OK}\r\n{split}\r\n\r\n"))
    assert len(examples) == 2 and examples[1][0]["content"] == "a\u2028b"


def _context(tmp_path, cfg):
    manifest = Manifest(tmp_path / "run", cfg.model_dump(mode="json"))
    return pipeline.RunContext(cfg=cfg, dir=tmp_path / "run", home=tmp_path, db_url="",
                               store=None, registry=None, manifest=manifest, tools=None,
                               progress=None)


def test_a_bad_chat_file_stops_the_run_before_its_first_stage(tmp_path):
    chat = _chat(tmp_path, f"{OK}\n" + _messages({"role": "user", "content": "x"}))
    ctx = _context(tmp_path, load_config("tiny", general_mix=0.2, general_source=str(chat)))
    with pytest.raises(InvalidInputError, match="chat.jsonl line 2"):
        pipeline.run_iterate(ctx)
    assert ctx.manifest.data.stages == {}


def test_a_missing_real_source_stops_the_run_before_its_first_stage(tmp_path):
    cfg = load_config("tiny", real_problems=2, real_sources=[f"mine={tmp_path / 'no.jsonl'}"])
    ctx = _context(tmp_path, cfg)
    with pytest.raises(InvalidInputError, match="real source mine: no worked-solution file"):
        pipeline.run_iterate(ctx)
    assert ctx.manifest.data.stages == {}


def test_a_resumed_run_checks_only_files_that_stages_left_to_run_read(tmp_path):
    chat = _chat(tmp_path, "{oops\n")
    cfg = load_config("tiny", iterations=1, general_mix=0.2, general_source=str(chat),
                      real_problems=2, real_sources=[f"mine={tmp_path / 'no.jsonl'}"])
    ctx = _context(tmp_path, cfg)
    for stage in ("it1/problems", "it1/datasets"):
        ctx.manifest.run_stage(stage, lambda: {})
    pipeline._check_inputs(ctx)  # both files were read by stages already done

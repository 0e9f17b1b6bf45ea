"""General chat data with no dataset download: everyday requests answered by the base model.

Agent-only tuning erodes what a model could do before (AgentTuning mixes general chat into its
agent data for this reason). With no chat corpus at hand, the base model's own replies are the
general data (self-distillation, as in Yang et al., 2024, "Self-Distillation Bridges
Distribution Gap in Language Model Fine-Tuning"): training on them pulls the tuned model back
towards what the base says to ordinary requests, the behaviour a plain chat endpoint must keep.

`everyday_requests` composes requests from templates and topic lists, seeded, all distinct;
requests whose text is one of `HELDOUT_REQUESTS` (the requests the forgetting benchmark
measures on, `benchmarks/bench_forgetting.py`) are never produced, so that benchmark stays
held out. `base_replies` has the base model answer each one greedily through its own chat
template, in batches; a reply cut at the token limit keeps its complete sentences, and one
with no complete sentence is dropped. `general_examples` caches the result under
`<cache_dir>/<model>-<hash>.jsonl` (rows `{"messages": [...]}`, the format
`agentrt.data_synth.compile.mix` reads), keyed by the model's weights, the requests and the settings.
This module knows chat models and text; nothing about traces or the runtime's prompts.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from agentrt.core.errors import InvalidInputError

__all__ = ["HELDOUT_REQUESTS", "everyday_requests", "base_replies", "general_examples"]

# Written for the forgetting benchmark; never generated as training requests.
HELDOUT_REQUESTS = [
    "Write a short, friendly message inviting a neighbour to a barbecue on Saturday.",
    "What are three tips for sleeping better?",
    "Explain what a rainbow is to a seven-year-old.",
    "Suggest a name for a small bakery that sells bread and cakes.",
    "How do I politely decline a meeting invitation?",
    "Give me a simple recipe for scrambled eggs.",
    "What is the capital of France, and what is it famous for?",
    "Write a haiku about autumn leaves.",
    "Summarize the plot of Little Red Riding Hood in two sentences.",
    "What should I pack for a weekend hiking trip?",
    "Translate 'good morning, how are you?' into Spanish.",
    "Why do cats purr?",
    "Write a thank-you note to a teacher.",
    "What is the difference between weather and climate?",
    "Give me three ideas for a rainy-day activity with kids.",
    "How do plants make their food?",
    "Describe the smell of fresh coffee in one sentence.",
    "What are some good habits for learning a new language?",
    "Write a two-line poem about the sea.",
    "How can I keep my houseplants healthy?",
    "Explain what the internet is in simple words.",
    "What is a good way to start a conversation at a party?",
    "List three fruits that are high in vitamin C.",
    "Why is exercise good for you?",
    "Write a short product description for a blue water bottle.",
    "What does a librarian do?",
    "Give me advice for my first day at a new job.",
    "How do bees make honey?",
    "Tell me a fun fact about the moon.",
    "What should I consider when adopting a dog?",
    "Write a one-sentence story about a lost key.",
    "How do I make a cup of tea?",
]

_CONCEPTS = ["gravity", "photosynthesis", "a volcano", "the water cycle", "electricity",
             "a vaccine", "recycling", "a rainbow", "the seasons", "an eclipse", "friction",
             "a budget", "interest on savings", "a democracy", "an echo", "a magnet",
             "the tides", "a calendar", "a map", "compost", "a thunderstorm", "a fossil",
             "the immune system", "sound", "a bridge", "a password", "a library card",
             "a time zone", "the stock market", "a battery"]
_GOALS = ["saving money", "staying focused", "drinking more water", "reading more books",
          "keeping a tidy desk", "waking up early", "making new friends", "eating healthier",
          "studying for an exam", "reducing stress", "planning a trip", "cooking at home",
          "learning to draw", "running a first 5k", "writing a diary", "managing time",
          "speaking in public", "keeping a garden", "taking care of a bicycle",
          "working from home"]
_THINGS = ["the moon", "a winter morning", "a city at night", "a cup of cocoa",
           "a mountain lake", "a summer storm", "a lighthouse", "a library", "a garden",
           "an old tree", "the first snow", "a train journey", "a busy market", "the stars",
           "a sleeping cat", "a river", "spring flowers", "a kite", "the ocean at dawn",
           "a quiet forest"]
_PEOPLE = [("a friend", "to wish them a happy birthday"),
           ("a colleague", "to thank them for their help"),
           ("a landlord", "to report a broken heater"),
           ("a coach", "to say that I will miss practice"),
           ("my grandmother", "to tell her about my week"),
           ("a new neighbour", "to welcome them to the street"),
           ("a customer", "to apologise for a late delivery"),
           ("a teammate", "to congratulate them on a win"),
           ("a doctor's office", "to move an appointment"),
           ("a friend", "to invite them to a movie night")]
_DISHES = ["pancakes", "tomato soup", "a fruit salad", "pasta with garlic", "fried rice",
           "a cheese sandwich", "lemonade", "oatmeal", "guacamole", "banana bread",
           "a vegetable stir-fry", "hot chocolate", "baked potatoes", "a green salad",
           "french toast"]
_PAIRS = [("a virus", "bacteria"), ("a lake", "a pond"), ("a frog", "a toad"),
          ("a crocodile", "an alligator"), ("a hurricane", "a tornado"),
          ("a planet", "a star"), ("a fruit", "a vegetable"), ("a city", "a town"),
          ("a loan", "a gift"), ("speed", "velocity"), ("a poem", "a song"),
          ("a dolphin", "a shark"), ("rain", "snow"), ("a map", "a globe"),
          ("a museum", "a gallery")]
_SUBJECTS = ["octopuses", "the Sahara desert", "honeybees", "the Great Wall of China",
             "penguins", "the human heart", "Mount Everest", "elephants", "the Amazon river",
             "volcanoes", "owls", "the Pacific Ocean", "butterflies", "Jupiter", "chess"]
_TASKS = ["tie a tie", "plant tomatoes", "write a good email subject", "clean a laptop screen",
          "fold a shirt", "start a small vegetable garden", "prepare for a job interview",
          "keep bread fresh", "learn to juggle", "organise a closet", "make a paper airplane",
          "train a puppy to sit", "change a light bulb safely", "pack a suitcase",
          "take better photos with a phone"]
_BUSINESSES = ["a coffee shop by the sea", "a bicycle repair shop", "a pet grooming salon",
               "a children's bookshop", "a flower stall", "a yoga studio",
               "a vegetarian food truck", "a board game cafe", "a tailor's shop",
               "a music school"]
_JOBS = ["a pharmacist", "an architect", "a beekeeper", "a pilot", "a veterinarian",
         "a translator", "an electrician", "a park ranger", "a baker", "a journalist",
         "a firefighter", "a gardener", "a nurse", "a carpenter", "a museum guide"]
_WHYS = ["do leaves change colour in autumn", "is the sky blue", "do dogs wag their tails",
         "do we yawn", "does bread go stale", "does ice float on water",
         "do onions make people cry", "do birds migrate", "is the sea salty",
         "do we have fingerprints", "do stars twinkle", "do cats like boxes", "do we dream",
         "does metal feel cold", "does popcorn pop"]
_AUDIENCES = ["a five-year-old", "a teenager", "a grandparent", "a busy adult",
              "someone new to the topic"]
_PRODUCTS = ["a red umbrella", "a wooden chair", "a pair of running shoes", "a desk lamp",
             "a travel mug", "a wool scarf", "a notebook", "a backpack", "a kitchen timer",
             "a houseplant pot"]

_TEMPLATES: list[tuple[str, dict[str, list]]] = [
    ("Explain {concept} in simple words.", {"concept": _CONCEPTS}),
    ("Explain {concept} to {audience}.", {"concept": _CONCEPTS, "audience": _AUDIENCES}),
    ("What are three tips for {goal}?", {"goal": _GOALS}),
    ("Give me some advice on {goal}.", {"goal": _GOALS}),
    ("Write a short poem about {thing}.", {"thing": _THINGS}),
    ("Write a haiku about {thing}.", {"thing": _THINGS}),
    ("Describe {thing} in two sentences.", {"thing": _THINGS}),
    ("Write a short message to {person}.", {"person": _PEOPLE}),
    ("Give me a simple recipe for {dish}.", {"dish": _DISHES}),
    ("What do I need to make {dish}?", {"dish": _DISHES}),
    ("What is the difference between {pair}?", {"pair": _PAIRS}),
    ("Tell me a fun fact about {subject}.", {"subject": _SUBJECTS}),
    ("Write a short paragraph about {subject}.", {"subject": _SUBJECTS}),
    ("How do I {task}?", {"task": _TASKS}),
    ("What is the easiest way to {task}?", {"task": _TASKS}),
    ("Suggest a name for {business}.", {"business": _BUSINESSES}),
    ("Write a one-sentence slogan for {business}.", {"business": _BUSINESSES}),
    ("What does {job} do?", {"job": _JOBS}),
    ("What skills does {job} need?", {"job": _JOBS}),
    ("Why {why}?", {"why": _WHYS}),
    ("In a few sentences: why {why}?", {"why": _WHYS}),
    ("Write a short product description for {product}.", {"product": _PRODUCTS}),
    ("Write a one-sentence story about {thing}.", {"thing": _THINGS}),
    ("Describe {thing} to {audience}.", {"thing": _THINGS, "audience": _AUDIENCES}),
    ("Write a short message to {person}, in a {tone} tone.",
     {"person": _PEOPLE, "tone": ["warm", "formal", "cheerful", "brief"]}),
    ("Tell {audience} about {subject}.", {"audience": _AUDIENCES, "subject": _SUBJECTS}),
]


def _fill(template: str, slots: dict[str, list], rng: random.Random) -> str:
    values = {}
    for name, choices in slots.items():
        value = rng.choice(choices)
        if name == "person":
            values[name] = f"{value[0]} {value[1]}"
        elif name == "pair":
            values[name] = f"{value[0]} and {value[1]}"
        else:
            values[name] = value
    return template.format(**values)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def everyday_requests(n: int, seed: int = 0) -> list[str]:
    """`n` distinct everyday chat requests, templates taken in turn, none held out.

    Raises:
        InvalidInputError: fewer than `n` distinct requests can be composed.
    """
    rng = random.Random(seed)
    banned = {_norm(r) for r in HELDOUT_REQUESTS}
    seen: set[str] = set()
    out: list[str] = []
    order = list(range(len(_TEMPLATES)))
    attempts = 0
    while len(out) < n:
        if attempts > 50 * max(n, 1):
            raise InvalidInputError(f"only {len(out)} distinct everyday requests for {n} asked")
        rng.shuffle(order)
        for i in order:
            attempts += 1
            text = _fill(*_TEMPLATES[i], rng)
            key = _norm(text)
            if key in banned or key in seen:
                continue
            seen.add(key)
            out.append(text)
            if len(out) == n:
                break
    return out


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def _complete_sentences(text: str) -> str | None:
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[:ends[-1]].rstrip() if ends else None


def base_replies(model_path: str | Path, requests: list[str], *, max_new_tokens: int = 112,
                 batch_size: int = 32,
                 progress: Callable[[int, int], None] | None = None) -> list[str | None]:
    """The model's greedy reply to each request (None: no complete sentence within the limit).

    Batches are formed from requests of similar length (left padding); fp32, so the replies
    are the ones the base model gives through the runtime's own fp32 CPU path.
    """
    import torch  # heavy: torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers

    tok = AutoTokenizer.from_pretrained(str(model_path))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32).eval()
    prompts = [tok.apply_chat_template([{"role": "user", "content": r}], tokenize=False,
                                       add_generation_prompt=True) for r in requests]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    replies: list[str | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        enc = tok([prompts[i] for i in batch], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        for row, i in zip(out[:, enc["input_ids"].shape[1]:], batch):
            ids = row.tolist()
            finished = tok.eos_token_id in ids
            text = tok.decode(ids, skip_special_tokens=True).strip()
            replies[i] = text if finished and text else _complete_sentences(text)
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    return replies


def _weights_digest(model_path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(model_path.glob("*.safetensors")) or sorted(model_path.glob("*.bin")):
        h.update(f.name.encode())
        h.update(str(f.stat().st_size).encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def general_examples(model_path: str | Path, n: int, *, cache_dir: str | Path, seed: int = 0,
                     max_new_tokens: int = 112, batch_size: int = 32,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """A chat JSONL file of up to `n` everyday requests with the model's own replies, cached.

    Requests whose reply has no complete sentence are dropped, so the file may hold fewer
    than `n` rows (the count is in the file). Returns the file's path.
    """
    model_path = Path(model_path)
    requests = everyday_requests(n, seed)
    key = hashlib.sha256(json.dumps([_weights_digest(model_path), requests, max_new_tokens])
                         .encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"{model_path.name}-{key}.jsonl"
    if out.is_file():
        return out
    replies = base_replies(model_path, requests, max_new_tokens=max_new_tokens,
                           batch_size=batch_size, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for request, reply in zip(requests, replies):
            if reply:
                f.write(json.dumps({"messages": [{"role": "user", "content": request},
                                                 {"role": "assistant", "content": reply}]},
                                   ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out

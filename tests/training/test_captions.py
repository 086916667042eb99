"""Caption mode's pure logic (hn_core.training.captions): templates, tag shuffling and dropout,
seeded per image and step. No ComfyUI needed."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hn_core.training.captions import CAPTION_ONLY, CaptionError, CaptionPlan, parse_template

TAGS = "red, square, small, plain background, centred, flat colours"
PACK_TEMPLATES = Path(__file__).resolve().parents[2] / "caption_templates"


def _tags(prompt: str) -> list[str]:
    return [tag.strip() for tag in prompt.split(",") if tag.strip()]


def test_template_lines_are_stripped_and_blank_lines_dropped():
    assert parse_template("  a [name]\n\n[filewords], by [name]  \r\n\n") == ("a [name]", "[filewords], by [name]")
    with pytest.raises(CaptionError, match="no prompt lines"):
        parse_template("\n  \n")


def test_placeholders_are_filled_with_the_name_and_the_caption():
    plan = CaptionPlan(template=("a picture of [filewords], [name] style",), name="sepia")
    assert plan.prompt("a red square", seed=0, item=0, step=0) == "a picture of a red square, sepia style"


def test_without_a_template_the_caption_is_the_prompt_unchanged():
    plan = CaptionPlan()
    assert plan.template == CAPTION_ONLY and not plan.varies
    caption = "a dog, running,on grass"  # commas and spacing kept: a caption need not be a tag list
    assert {plan.prompt(caption, seed=5, item=1, step=s) for s in range(20)} == {caption}


def test_each_image_and_step_draws_its_own_line_and_the_draw_is_reproducible():
    lines = tuple(f"line {n} [filewords]" for n in range(4))
    plan = CaptionPlan(template=lines)
    draws = {(item, step): plan.prompt("x", 7, item, step) for item in range(3) for step in range(200)}
    assert draws == {(item, step): plan.prompt("x", 7, item, step) for item in range(3) for step in range(200)}
    counts = Counter(draws.values())
    assert set(counts) == {f"line {n} x" for n in range(4)}
    assert min(counts.values()) > 100  # 600 draws over 4 lines: roughly uniform
    per_image = [[draws[(item, step)] for step in range(200)] for item in range(3)]
    assert per_image[0] != per_image[1] != per_image[2]  # images draw independently
    other_seed = [CaptionPlan(template=lines).prompt("x", 8, 0, step) for step in range(200)]
    assert other_seed != per_image[0]


def test_shuffling_keeps_every_tag_and_varies_the_order():
    plan = CaptionPlan(shuffle_tags=True)
    prompts = [plan.prompt(TAGS, 3, 0, step) for step in range(50)]
    for prompt in prompts:
        assert sorted(_tags(prompt)) == sorted(_tags(TAGS))
    assert len(set(prompts)) > 20
    assert prompts == [plan.prompt(TAGS, 3, 0, step) for step in range(50)]


def test_dropout_removes_tags_at_its_rate_and_never_invents_any():
    plan = CaptionPlan(tag_dropout=0.25)
    kept = []
    for step in range(400):
        tags = _tags(plan.prompt(TAGS, 11, 2, step))
        assert set(tags) <= set(_tags(TAGS))
        assert tags == [tag for tag in _tags(TAGS) if tag in tags]  # dropout alone keeps the order
        kept.append(len(tags))
    rate = 1 - sum(kept) / (400 * len(_tags(TAGS)))
    assert 0.2 < rate < 0.3
    assert CaptionPlan(tag_dropout=1.0).prompt(TAGS, 0, 0, 0) == ""


def test_dropout_then_shuffle_with_a_template():
    plan = CaptionPlan(template=("[name]: [filewords]",), name="hn", shuffle_tags=True, tag_dropout=0.5)
    prompt = plan.prompt(TAGS, 1, 4, 9)
    assert prompt.startswith("hn: ") and set(_tags(prompt[4:])) <= set(_tags(TAGS))
    assert prompt == plan.prompt(TAGS, 1, 4, 9)


def test_bad_options_are_refused():
    with pytest.raises(CaptionError, match="between 0 and 1"):
        CaptionPlan(tag_dropout=1.5)
    with pytest.raises(CaptionError, match="at least one"):
        CaptionPlan(template=())


def test_the_packs_templates_parse_and_use_the_placeholders():
    files = sorted(PACK_TEMPLATES.glob("*.txt"))
    assert len(files) >= 4
    for path in files:
        lines = parse_template(path.read_text(encoding="utf-8"), str(path))
        assert all("[name]" in line or "[filewords]" in line for line in lines), path.name

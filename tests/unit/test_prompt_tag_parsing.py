"""A1111 prompt tags, parsing only (hn_core/prompt): the text left, the arguments, the refusals.

The text left is checked against A1111's own rule written out here (modules/extra_networks.py:
``re.sub(r"<(\\w+):([^>]+)>", "", prompt)``), on written and on generated prompts.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hn_core import StrengthProfile
from hn_core.prompt.a1111_tags import PromptTagError, find_tags, split_prompt, strip_tags
from hn_core.prompt.tag_requests import hypernet_request, lora_request


def a1111_text_left(prompt: str) -> str:
    return re.sub(r"<(\w+):([^>]+)>", "", prompt)


def one_tag(text: str):
    (tag,) = find_tags(text)
    return tag


WRITTEN = [
    "1girl, <hypernet:agm:1.1> <extrasupernet:master:12:13:14> <hypernet:ray>",
    "a castle<lora:detail:0.5:1>, (masterpiece:1.2), <lyco:x:1>",
    "<hypernet:a:1><hypernet:b:2>",
    "no tags at all",
    "<hypernet:>",  # not a tag: [^>]+ needs one character
    "<hypernet::1>",  # a tag with an empty name (refused when applied, removed all the same)
    "<hyper net:x:1> <:x> <x:> <<hypernet:x>> <hypernet:x:1",
    "line one <hypernet:x:1>\nline two <lora:y:1>\n",
    "<hypernet:a<b:1>",
    "ünïcode <hypernet:stylé:0.5> 日本語",
]


@pytest.mark.parametrize("prompt", WRITTEN)
def test_the_text_left_is_a1111s_on_written_prompts(prompt):
    text, tags = split_prompt(prompt)
    assert text == strip_tags(prompt) == a1111_text_left(prompt)
    assert [t.text for t in tags] == [m.group(0) for m in re.finditer(r"<(\w+):([^>]+)>", prompt)]


_pieces = st.one_of(
    st.text(alphabet="ab <>:=_1.,\n", max_size=8),
    st.builds(lambda kind, args: f"<{kind}:{args}>",
              st.sampled_from(["hypernet", "lora", "lyco", "x_1", "", "a b"]),
              st.text(alphabet="ab:=1.<> ", max_size=10)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_pieces, max_size=8).map("".join))
def test_the_text_left_is_a1111s_on_generated_prompts(prompt):
    text, tags = split_prompt(prompt)
    assert text == a1111_text_left(prompt)
    for tag in tags:  # each tag's arguments are A1111's split of what is between the first ':' and '>'
        assert tag.text == f"<{tag.kind}:{':'.join(tag.args)}>"


def test_tags_come_in_prompt_order_with_a1111s_positional_and_named_split():
    tags = find_tags("x <hypernet:agm:1.1> y <extrasupernet:master:12:13:14> <hypernet:ray:a=b:c=d=e>")
    assert [(t.kind, t.args) for t in tags] == [
        ("hypernet", ("agm", "1.1")), ("extrasupernet", ("master", "12", "13", "14")),
        ("hypernet", ("ray", "a=b", "c=d=e"))]
    # A1111 (ExtraNetworkParams): an item is named only when it splits on '=' into exactly two parts.
    assert tags[2].positional == ("ray", "c=d=e") and tags[2].named == (("a", "b"),)


def test_hypernet_multiplier_defaults_to_one_and_is_read_as_a_float():
    plain = hypernet_request(one_tag("<hypernet:style>"))
    assert (plain.name, plain.multiplier, plain.profile) == ("style", 1.0, StrengthProfile())
    assert hypernet_request(one_tag("<hypernet:style:-0.25>")).multiplier == -0.25
    assert hypernet_request(one_tag("<hypernet: sub/style :2>")).name == "sub/style"


def test_lora_first_number_is_the_text_encoder_and_the_second_the_unet():
    # A1111's extra_networks_lora.py: te = positional[1] (default 1), unet = positional[2] (default te),
    # then named te= / unet= override.
    cases = {
        "<lora:d>": (1.0, 1.0),
        "<lora:d:0.5>": (0.5, 0.5),
        "<lora:d:0.5:0.25>": (0.5, 0.25),
        "<lora:d:0.5:unet=2>": (0.5, 2.0),
        "<lora:d:te=0.3>": (0.3, 0.3),  # te= is read before unet takes te as its default
        "<lora:d:2:te=0.3>": (0.3, 0.3),
        "<lora:d:0.5:0.25:te=0:unet=3>": (0.0, 3.0),
    }
    for text, (te, unet) in cases.items():
        request = lora_request(one_tag(text))
        assert (request.name, request.te_multiplier, request.unet_multiplier) == ("d", te, unet), text


def test_named_arguments_build_the_strength_profile():
    request = hypernet_request(one_tag(
        "<hypernet:style:0.8:start=0.1:end=0.5:self=0.3:cross=2:in=0.5:mid=0:output=1.5:input4=0.25:middle0=3>"))
    assert request.multiplier == 0.8
    assert request.profile == StrengthProfile(
        attn1=0.3, attn2=2.0, input=0.5, middle=0.0, output=1.5, start_percent=0.1, end_percent=0.5,
        block_weights=((("input", 4), 0.25), (("middle", 0), 3.0)))
    aliases = hypernet_request(one_tag("<hypernet:s:attn1=0.3:attn2=2:input=0.5:middle=0:out=1.5>")).profile
    assert aliases == StrengthProfile(attn1=0.3, attn2=2.0, input=0.5, middle=0.0, output=1.5)


@pytest.mark.parametrize("text, says", [
    ("<hypernet:style:strong>", "multiplier 'strong' is not a number"),
    ("<hypernet:style:nan>", "finite"),
    ("<hypernet:style:1:2>", "too many arguments"),
    ("<hypernet::1>", "name is empty"),
    ("<hypernet: :1>", "name is empty"),
    ("<hypernet:=x:1>", "first argument must be the name"),
    ("<lora:te=1:d>", "first argument must be the name"),
    ("<hypernet:style:bogus=1>", "unknown argument 'bogus'"),
    ("<hypernet:style:te=1>", "unknown argument 'te'"),
    ("<hypernet:style:start=x>", "start 'x' is not a number"),
    ("<hypernet:style:start=0.6:end=0.5>", "start_percent <= end_percent"),
    ("<hypernet:style:end=2>", "end_percent <= 1"),
    ("<hypernet:style:self=1:attn1=2>", "already set"),
    ("<hypernet:style:start=0:start=1>", "given twice"),
    ("<lora:d:x>", "text-encoder multiplier 'x' is not a number"),
    ("<lora:d:1:y>", "UNet multiplier 'y' is not a number"),
    ("<lora:d:1:1:8>", "dyn"),
    ("<lora:d:dyn=8>", "dyn"),
    ("<lora:d:start=0>", "unknown argument"),
    ("<lora::1>", "name is empty"),
])
def test_each_refusal_names_the_tag_and_the_problem(text, says):
    tag = one_tag(f"prompt {text} more")
    parse = lora_request if tag.kind == "lora" else hypernet_request
    with pytest.raises(PromptTagError) as caught:
        parse(tag)
    message = str(caught.value)
    assert message.startswith(text + ":") and says in message, message

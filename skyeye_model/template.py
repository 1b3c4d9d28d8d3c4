"""The Llama-2 chat template of SkyEyeGPT / MiniGPT-v2, rendered per segment.

A dialog of turns ``(instruction, answer)`` over ``n`` images becomes::

    <s>[INST] <Img><ImageHere></Img> {instruction} [/INST] {answer}</s>     (first turn)
    <s>[INST] {instruction} [/INST] {answer}</s>                            (later turns)

Each piece — BOS, prompt text, the image placeholder, answer text, EOS — is tokenized on its own and
the ids are concatenated. The label of a token is decided by the segment it came from, so the labels
cover exactly each answer and its ``</s>`` (``-100`` elsewhere) whatever the tokenizer does at the
text boundaries; a rendered string is never split after the fact. Text segments are tokenized
without special tokens, stripped, and the tokenizer's own word-start marker (SentencePiece ``▁``)
stands for the space between segments, as in MiniGPT-v2.

``<ImageHere>`` expands to ``tokens_per_image`` placeholder ids, one per projected image token, and
``image_mask`` marks them: the model writes the image embeddings there.

Video samples carry several frames: the first turn holds one ``<Img><ImageHere></Img>`` per frame,
in frame order, separated by spaces (``[INST] <Img>..</Img> <Img>..</Img> {instruction} [/INST]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

IGNORE_INDEX = -100
IMAGE_SLOT = "<Img><ImageHere></Img>"
_IMAGE_SLOT_TEXT = re.compile(r"\s*<Img>\s*<ImageHere>\s*</Img>\s*")


@dataclass
class Encoded:
    """One tokenized sample: ids, labels (``-100`` = no loss) and the positions of image tokens."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    image_mask: list[bool] = field(default_factory=list)

    def add(self, ids: list[int], supervised: bool = False, image: bool = False) -> None:
        self.input_ids += ids
        self.labels += ids if supervised else [IGNORE_INDEX] * len(ids)
        self.image_mask += [image] * len(ids)

    def truncated(self, max_length: int) -> "Encoded":
        """The first ``max_length`` tokens, backed off so that no image is cut in part."""
        cut = min(max_length, len(self.input_ids))
        while 0 < cut < len(self.input_ids) and self.image_mask[cut - 1] and self.image_mask[cut]:
            cut -= 1
        return Encoded(self.input_ids[:cut], self.labels[:cut], self.image_mask[:cut])


def conversation_turns(conversation: list[dict]) -> list[tuple[str, str]]:
    """``[{role, content}, ...]`` → ``[(instruction, answer), ...]``; a trailing question is dropped."""
    turns: list[tuple[str, str]] = []
    pending: str | None = None
    for message in conversation:
        role, content = message["role"], message["content"]
        if role == "user":
            if pending is not None:
                raise ValueError("two user messages in a row")
            pending = content
        elif role == "assistant":
            if pending is None:
                raise ValueError("an assistant message without a question before it")
            turns.append((pending, content))
            pending = None
        else:
            raise ValueError(f"unknown role {role!r}")
    return turns


def clean_instruction(text: str) -> str:
    # Shards hold the bare instruction; a copy that already carries the image slot must not get two.
    return _IMAGE_SLOT_TEXT.sub(" ", text).strip()


class ChatTemplate:
    """Encodes dialogs for training and prompts for generation with one tokenizer."""

    def __init__(self, tokenizer, tokens_per_image: int, max_length: int = 1024):
        self.tokenizer = tokenizer
        self.tokens_per_image = tokens_per_image
        self.max_length = max_length
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        if self.bos_id is None or self.eos_id is None:
            raise ValueError("the tokenizer needs BOS and EOS tokens (<s>, </s>) for the Llama-2 chat template")
        self.placeholder_id = self._placeholder_id()

    def _placeholder_id(self) -> int:
        # Any id works (its embedding is overwritten); prefer the tokenizer's own <ImageHere> if it has one.
        ids = self.tokenizer.convert_tokens_to_ids(["<ImageHere>"])
        unk = self.tokenizer.unk_token_id
        if ids and ids[0] is not None and ids[0] != unk:
            return ids[0]
        return unk if unk is not None else self.eos_id

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text.strip(), add_special_tokens=False)["input_ids"] if text.strip() else []

    def _add_prompt(self, encoded: Encoded, instruction: str, num_images: int) -> None:
        encoded.add([self.bos_id])
        if num_images:
            for frame in range(num_images):
                encoded.add(self.text_ids("[INST] <Img>" if frame == 0 else "<Img>"))
                encoded.add([self.placeholder_id] * self.tokens_per_image, image=True)
                encoded.add(self.text_ids("</Img>"))
            encoded.add(self.text_ids(f"{clean_instruction(instruction)} [/INST]"))
        else:
            encoded.add(self.text_ids(f"[INST] {clean_instruction(instruction)} [/INST]"))

    def _add_answer(self, encoded: Encoded, answer: str) -> None:
        encoded.add(self.text_ids(answer), supervised=True)
        encoded.add([self.eos_id], supervised=True)

    def encode_dialog(self, turns: list[tuple[str, str]], num_images: int) -> Encoded:
        """Training: every answer (and its ``</s>``) supervised; images in the first turn only."""
        if not turns:
            raise ValueError("a dialog needs at least one (instruction, answer) turn")
        encoded = Encoded()
        for index, (instruction, answer) in enumerate(turns):
            self._add_prompt(encoded, instruction, num_images if index == 0 else 0)
            self._add_answer(encoded, answer)
        return encoded.truncated(self.max_length)

    def encode_prompt(self, history: list[tuple[str, str]], instruction: str, num_images: int) -> Encoded:
        """Generation: the finished turns, then ``<s>[INST] {instruction} [/INST]`` awaiting the answer."""
        encoded = Encoded()
        for index, (past_instruction, answer) in enumerate(history):
            self._add_prompt(encoded, past_instruction, num_images if index == 0 else 0)
            self._add_answer(encoded, answer)
        self._add_prompt(encoded, instruction, 0 if history else num_images)
        return encoded

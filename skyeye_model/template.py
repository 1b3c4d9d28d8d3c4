"""The Llama-2 chat template of SkyEyeGPT / MiniGPT-v2, rendered per segment, and the length policy.

Two styles (``model.prompt_style``; ``auto`` picks ``minigptv2`` for imported MiniGPT-v2 / SkyEyeGPT weights):

``skyeye`` — text segments stripped, one space before ``[/INST]``::

    <s>[INST] <Img><ImageHere></Img> {instruction} [/INST] {answer}</s>     (first turn)
    <s>[INST] {instruction} [/INST] {answer}</s>                            (later turns)

``minigptv2`` — MiniGPT-v2's own strings, token for token (Vision-CAIR/MiniGPT-4):

- training, first turn: the stage-3 datasets wrap the instruction as ``"<Img><ImageHere></Img> {} "``
  (``minigpt4/datasets/datasets/coco_vqa_datasets.py``, ``caption_datasets.py``, ``coco_dataset.py``,
  ``multitask_conversation.py``: note the trailing space) and ``minigpt_base.py`` formats it with
  ``prompt_template`` ``"[INST] {} [/INST]"`` (``chat_template: True`` in ``train_configs/minigptv2_finetune.yaml``):
  ``[INST] <Img><ImageHere></Img> {instruction}  [/INST]``, two spaces. ``prompt_wrap`` splits it at
  ``<ImageHere>`` and tokenizes each piece with ``add_special_tokens=False``; ``forward`` prepends the BOS
  embedding; the answer is ``answer + end_sym`` (``end_sym: "</s>"``), truncated to ``max_txt_len``.
- training, later turns (``multitask_conversation.py``: ``item["value"] + " "``; ``minigpt_base.py``
  ``tokenize_conversation``: ``bos_token + q``): ``<s>[INST] {instruction}  [/INST]`` unsupervised, then
  ``{answer}</s>`` supervised; answers and later questions together are capped at ``max_txt_len``.
- inference (``minigpt4/conversation/conversation.py`` ``CONV_VISION_minigptv2``: roles ``"<s>[INST] "``,
  ``" [/INST]"``, sep ``""``; ``minigpt4/common/eval_utils.py`` ``prepare_texts``): one space before
  ``[/INST]``, past answers appended without ``</s>`` (``Chat.answer`` stores the text). ``get_context_emb``
  tokenizes the first piece with ``add_special_tokens=True``: the tokenizer's BOS *and* the ``<s>`` of the
  text, two BOS ids (transformers 4.30's ``LlamaTokenizer``, pinned in ``environment.yml``, parses ``<s>``
  in text as the special token).

MiniGPT-v2's tokenizer is transformers 4.30's slow ``LlamaTokenizer``: special tokens are split out of
the text, every other chunk is ``SentencePieceProcessor.encode``d on its own (a leading ``▁`` each). Here
text chunks never contain special tokens; each goes through ``tokenizer(chunk, add_special_tokens=False)``,
or, when given (``sp_model``), the SentencePiece model itself, which is exact even for chunks that start
with a space. Video frames (not in MiniGPT-v2) get one ``<Img><ImageHere></Img>`` each, space-separated.

**Length policy** (never silent): every frame's image tokens are kept. As in ``minigpt_base.py``, the
part after the first prompt (answers, later questions) is capped at ``max_txt_len`` and the context
(BOS, first prompt, images) at ``max_context_len``, here by cutting instruction text only. ``max_length``
(optional) caps the whole sequence by cutting the end. A sample left without a supervised token, or whose
images alone do not fit, is ``skipped``; a cut sample is ``truncated``; the dataset counts both per source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Optional

IGNORE_INDEX = -100
IMAGE_SLOT = "<Img><ImageHere></Img>"
_IMAGE_SLOT_TEXT = re.compile(r"\s*<Img>\s*<ImageHere>\s*</Img>\s*")
_SPECIAL_TEXT = re.compile(r"(<s>|</s>)")
Style = Literal["skyeye", "minigptv2"]
Status = Literal["ok", "truncated", "skipped"]
MEMO_LIMIT = 100_000  # tokenized chunks kept per template (per process)


@dataclass
class Encoded:
    """One tokenized sample: ids, labels (``-100`` = no loss), image positions, and what the length policy did."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    image_mask: list[bool] = field(default_factory=list)
    context_length: int = 0  # tokens of the first prompt (BOS, images, first instruction)
    status: Status = "ok"
    reason: str = ""

    def add(self, ids: list[int], supervised: bool = False, image: bool = False) -> None:
        self.input_ids += ids
        self.labels += ids if supervised else [IGNORE_INDEX] * len(ids)
        self.image_mask += [image] * len(ids)

    def cut(self, start: int, stop: int) -> None:
        """Remove tokens ``[start, stop)``."""
        for name in ("input_ids", "labels", "image_mask"):
            values = getattr(self, name)
            setattr(self, name, values[:start] + values[stop:])

    @property
    def supervised(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


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
    """Encodes dialogs for training and prompts for generation with one tokenizer and one style."""

    def __init__(
        self,
        tokenizer,
        tokens_per_image: int,
        max_length: Optional[int] = None,
        style: Style = "skyeye",
        max_txt_len: Optional[int] = None,
        max_context_len: Optional[int] = None,
        sp_model=None,
    ):
        self.tokenizer, self.tokens_per_image, self.style = tokenizer, tokens_per_image, style
        self.max_length, self.max_txt_len, self.max_context_len = max_length, max_txt_len, max_context_len
        self.sp_model = sp_model  # a sentencepiece.SentencePieceProcessor: MiniGPT-v2's exact chunk tokenizer
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        if self.bos_id is None or self.eos_id is None:
            raise ValueError("the tokenizer needs BOS and EOS tokens (<s>, </s>) for the Llama-2 chat template")
        self.placeholder_id = self._placeholder_id()
        self._memo: dict[str, list[int]] = {}

    def _placeholder_id(self) -> int:
        # Any id works (its embedding is overwritten); prefer the tokenizer's own <ImageHere> if it has one.
        ids = self.tokenizer.convert_tokens_to_ids(["<ImageHere>"])
        unk = self.tokenizer.unk_token_id
        if ids and ids[0] is not None and ids[0] != unk:
            return ids[0]
        return unk if unk is not None else self.eos_id

    # -- tokenizing text chunks ----------------------------------------------------------------

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        if self.sp_model is not None:
            return [list(ids) for ids in self.sp_model.encode(texts)]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def chunk_ids(self, text: str) -> list[int]:
        """A text chunk without special tokens → ids (the ``skyeye`` style strips it first)."""
        if self.style == "skyeye":
            text = text.strip()
        if not text:
            return []
        if text not in self._memo:
            if len(self._memo) >= MEMO_LIMIT:  # bounded: a worker tokenizing a whole epoch must not grow it forever
                self._memo.clear()
            self._memo[text] = self._tokenize([text])[0]
        return self._memo[text]

    def prefetch(self, texts: set[str]) -> None:
        """Tokenize many chunks in one call (the dataset's length scan), kept for ``chunk_ids``."""
        todo = sorted(t for t in texts if t and t not in self._memo)
        if len(self._memo) + len(todo) > MEMO_LIMIT:
            self._memo.clear()
        for text, ids in zip(todo, self._tokenize(todo) if todo else []):
            self._memo[text] = ids

    def special_ids(self, text: str) -> list[int]:
        """transformers 4.30 ``LlamaTokenizer.tokenize``: ``<s>``/``</s>`` in text are the special ids."""
        ids: list[int] = []
        for piece in _SPECIAL_TEXT.split(text):
            ids += [self.bos_id] if piece == "<s>" else [self.eos_id] if piece == "</s>" else self.chunk_ids(piece)
        return ids

    # -- the pieces of a prompt ----------------------------------------------------------------

    def first_prompt_pieces(self, instruction: str, num_images: int) -> list[str | None]:
        """Text pieces of the first prompt, ``None`` where an image goes (BOS not included)."""
        instruction = clean_instruction(instruction)
        if self.style == "minigptv2":
            close = f"{instruction}  [/INST]"  # the dataset's trailing space + the template's space
            if not num_images:
                return [f"[INST] {close}"]
            return ["[INST] <Img>"] + [None, "</Img> <Img>"] * (num_images - 1) + [None, f"</Img> {close}"]
        if not num_images:
            return [f"[INST] {instruction} [/INST]"]
        return ["[INST] <Img>"] + [None, "</Img>", "<Img>"] * (num_images - 1) + [None, "</Img>", f"{instruction} [/INST]"]

    def later_prompt(self, instruction: str) -> str:
        spacing = "  " if self.style == "minigptv2" else " "
        return f"[INST] {clean_instruction(instruction)}{spacing}[/INST]"

    def texts_of(self, turns: list[tuple[str, str]], num_images: int) -> set[str]:
        """Every text chunk ``encode_dialog`` will tokenize (for ``prefetch``)."""
        texts = {p for p in self.first_prompt_pieces(turns[0][0], num_images) if p} if turns else set()
        texts |= {self.later_prompt(q) for q, _ in turns[1:]} | {a for _, a in turns}
        return {t.strip() for t in texts} if self.style == "skyeye" else texts

    def _add_pieces(self, encoded: Encoded, pieces: list[str | None]) -> None:
        for piece in pieces:
            if piece is None:
                encoded.add([self.placeholder_id] * self.tokens_per_image, image=True)
            else:
                encoded.add(self.chunk_ids(piece))

    # -- training ------------------------------------------------------------------------------

    def encode_dialog(self, turns: list[tuple[str, str]], num_images: int) -> Encoded:
        """Training: every answer (and its ``</s>``) supervised; images in the first turn; the length policy applied."""
        if not turns:
            raise ValueError("a dialog needs at least one (instruction, answer) turn")
        encoded = Encoded()
        encoded.add([self.bos_id])
        self._add_pieces(encoded, self.first_prompt_pieces(turns[0][0], num_images))
        encoded.context_length = len(encoded.input_ids)
        for index, (instruction, answer) in enumerate(turns):
            if index:
                encoded.add([self.bos_id])
                encoded.add(self.chunk_ids(self.later_prompt(instruction)))
            encoded.add(self.chunk_ids(answer), supervised=True)
            encoded.add([self.eos_id], supervised=True)
        return self.apply_length_policy(encoded)

    def apply_length_policy(self, encoded: Encoded) -> Encoded:
        context = encoded.context_length
        notes = []
        if self.max_context_len is not None and context > self.max_context_len:
            last_image = max((i for i, m in enumerate(encoded.image_mask[:context]) if m), default=0)
            if last_image >= self.max_context_len:
                return self._skip(encoded, f"image tokens end at {last_image + 1} > max_context_len {self.max_context_len}")
            encoded.cut(self.max_context_len, context)  # instruction text after the images, as MiniGPT-v2 cuts the end
            notes.append(f"context {context} → {self.max_context_len}")
            context = encoded.context_length = self.max_context_len
        regress = len(encoded.input_ids) - context
        if self.max_txt_len is not None and regress > self.max_txt_len:
            encoded.cut(context + self.max_txt_len, len(encoded.input_ids))
            notes.append(f"answer text {regress} → {self.max_txt_len}")
        if self.max_length is not None and len(encoded.input_ids) > self.max_length:
            if context >= self.max_length:
                return self._skip(encoded, f"first prompt with its images is {context} tokens, max_length {self.max_length}")
            notes.append(f"{len(encoded.input_ids)} tokens → max_length {self.max_length}")
            encoded.cut(self.max_length, len(encoded.input_ids))
        if not encoded.supervised:
            return self._skip(encoded, "no supervised token left")
        if notes:
            encoded.status, encoded.reason = "truncated", "; ".join(notes)
        return encoded

    @staticmethod
    def _skip(encoded: Encoded, reason: str) -> Encoded:
        encoded.status, encoded.reason = "skipped", reason
        return encoded

    # -- generation ----------------------------------------------------------------------------

    def encode_prompt(self, history: list[tuple[str, str]], instruction: str, num_images: int) -> Encoded:
        """Generation: the finished turns, then the prompt awaiting the answer."""
        if self.style == "minigptv2":
            return self._minigptv2_prompt(history, instruction, num_images)
        encoded = Encoded()
        for index, (past_instruction, answer) in enumerate(history):
            encoded.add([self.bos_id])
            self._add_pieces(encoded, self.first_prompt_pieces(past_instruction, num_images) if index == 0 else [self.later_prompt(past_instruction)])
            encoded.add(self.chunk_ids(answer))
            encoded.add([self.eos_id])
        encoded.add([self.bos_id])
        self._add_pieces(encoded, [self.later_prompt(instruction)] if history else self.first_prompt_pieces(instruction, num_images))
        return encoded

    def _minigptv2_prompt(self, history: list[tuple[str, str]], instruction: str, num_images: int) -> Encoded:
        # conversation.py get_prompt (SINGLE, sep ""): "<s>[INST] " + message + " [/INST]" + answer ...
        questions = [q for q, _ in history] + [instruction]
        slots = " ".join([IMAGE_SLOT] * num_images)
        text = ""
        for index, question in enumerate(questions):
            message = clean_instruction(question)
            if index == 0 and num_images:
                message = f"{slots} {message}"  # Chat.ask joins the image message and the text with ' '
            text += f"<s>[INST] {message} [/INST]"
            if index < len(history):
                text += history[index][1]
        encoded = Encoded()
        for number, piece in enumerate(text.split("<ImageHere>")):
            if number:
                encoded.add([self.placeholder_id] * self.tokens_per_image, image=True)
            # get_context_emb: add_special_tokens only for the first piece (the tokenizer's own BOS)
            encoded.add(([self.bos_id] if number == 0 else []) + self.special_ids(piece))
        return encoded


def resolve_style(prompt_style: str, vision_kind: str) -> Style:
    """``auto``: MiniGPT-v2's strings for MiniGPT-v2 / SkyEyeGPT weights (their EVA tower), else ours."""
    if prompt_style != "auto":
        return prompt_style  # type: ignore[return-value]
    return "minigptv2" if vision_kind == "minigptv2" else "skyeye"


def sentencepiece_model(llm_path, style: Style):
    """The LLM folder's ``tokenizer.model`` as a SentencePiece processor, for the ``minigptv2`` style."""
    from pathlib import Path

    path = Path(llm_path) / "tokenizer.model"
    if style != "minigptv2" or not path.exists():
        return None
    try:
        import sentencepiece
    except ImportError:
        return None  # the HF tokenizer gives the same ids for every chunk this template produces
    return sentencepiece.SentencePieceProcessor(model_file=str(path))

"""A local ``transformers`` causal LM as a chat backend (optional dependency, imported on first use)."""

from __future__ import annotations

from typing import Any

from .result import PlannerError


class TransformersBackend:
    """A local ``transformers`` causal LM, greedy decoding (deterministic). Uses the tokenizer's chat template when
    it has one, else a plain ``System: ... / User: ... / Assistant:`` transcript."""

    def __init__(self, model_name_or_path: str, max_new_tokens: int = 256, device: str = "cpu"):
        if not model_name_or_path:
            raise PlannerError(
                "a transformers model name or folder is required: set llm_model (e.g. 'Qwen/Qwen2.5-0.5B-Instruct')"
            )
        self.model_name_or_path = str(model_name_or_path)
        self.max_new_tokens, self.device = max_new_tokens, device
        self.model_id = f"transformers:{self.model_name_or_path}"
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_name_or_path)
                model: Any = AutoModelForCausalLM.from_pretrained(self.model_name_or_path)
                model = model.to(self.device).eval()
            except (OSError, ValueError) as e:
                raise PlannerError(f"cannot load transformers model {self.model_name_or_path!r}: {e}") from None
            self._loaded = (tokenizer, model)
        return self._loaded

    def render(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """The model input text, and whether it came from the chat template (which adds its own special tokens)."""
        tokenizer, _ = self._load()
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), True
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join(turns) + "\n\nAssistant:", False

    def chat(self, messages: list[dict[str, str]]) -> str:
        import torch

        tokenizer, model = self._load()
        text, templated = self.render(messages)
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=not templated)
        n_in = enc["input_ids"].shape[1]
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        if limit and n_in + self.max_new_tokens > limit:
            raise PlannerError(
                f"the prompt is {n_in} tokens and max_new_tokens {self.max_new_tokens}, more than the model's "
                f"context of {limit}; use fewer in-context examples (examples_path)"
            )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with torch.no_grad():
            out = model.generate(
                **{k: v.to(self.device) for k, v in enc.items()},
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        return tokenizer.decode(out[0, n_in:], skip_special_tokens=True)

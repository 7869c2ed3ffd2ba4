"""Real Hugging Face checkpoint directories, built offline for the tests.

Random-init LLaMA (with grouped-query attention), Qwen2 and Mistral models saved with
``save_pretrained`` (safetensors), each with a real fast tokenizer trained by the
``tokenizers`` library on local text (the stdlib's train split) and saved with
``save_pretrained``: BOS set, added by the tokenizer's own post-processor. Nothing is
downloaded. A small ``max_position_embeddings`` makes the chapters' default lengths
(multiples of the pretrained length read from the config) small enough for CPU tests.
"""

from __future__ import annotations

from pathlib import Path

PRETRAINED_LENGTH = 64
ARCHITECTURES = ("llama", "qwen2", "mistral")


def train_tokenizer(directory: Path, vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from ropelib.text.corpus import stdlib_documents

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator((d.text for d in stdlib_documents("train")[:60]), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(directory)
    return fast


def build(architecture: str, directory: Path, tokenizer=None) -> Path:
    """A random-init checkpoint of ``architecture`` in ``directory`` (config.json, model.safetensors, tokenizer)."""
    import torch
    from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                              Qwen2ForCausalLM)

    tokenizer = tokenizer or train_tokenizer(directory)
    common = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=PRETRAINED_LENGTH,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM),
                                 "mistral": (MistralConfig, MistralForCausalLM)}[architecture]
    extra = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
    if architecture == "mistral":
        extra["sliding_window"] = None
    torch.manual_seed(0)
    model = model_class(config_class(**common, **extra))
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return Path(directory)

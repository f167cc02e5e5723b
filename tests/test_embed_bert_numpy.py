"""The numpy BERT query encoder gives sentence-transformers' vectors without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuronatlas.embed import bert_numpy

WORDS = ["the", "cat", "sat", "on", "mat", "water", "river", "legal", "court", "##s", "dog"]
TEXTS = ["The cat sat on the mat", "water river", "legal courts", "dogs", "unknownword x"]


def _tiny_sentence_bert(folder: Path, pooling: str = "mean") -> Path:
    """A random 2-layer BERT (hidden 32, 4 heads) saved as a sentence-transformers folder:
    weights, a WordPiece tokenizer.json, modules.json, pooling and sentence-bert configs."""
    import torch
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.enable_padding(length=16)  # as shipped files may be: the encoder must undo it
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(folder, safe_serialization=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 64, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_cls_token": pooling == "cls",
            }
        )
    )
    return folder


def _torch_mean_pooled(folder: Path, texts: list[str]) -> np.ndarray:
    """What sentence-transformers computes: BertModel's last hidden states, mean over the
    tokens, unit length."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    model = BertModel.from_pretrained(folder).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tok.encode(text).ids])
            rows.append(model(input_ids=ids).last_hidden_state[0].mean(0).numpy())
    out = np.stack(rows)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_numpy_bert_equals_the_torch_model(tmp_path, one_torch_thread):
    folder = _tiny_sentence_bert(tmp_path / "bert")
    model = bert_numpy.load(folder)
    assert model is not None and model.dim == 32
    got = model.encode(TEXTS)
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    want = _torch_mean_pooled(folder, TEXTS)
    assert np.abs(got - want).max() < 1e-5
    assert ((got * want).sum(1) > 0.99999).all()


def test_a_model_that_is_not_a_mean_pooled_bert_is_left_to_sentence_transformers(tmp_path):
    assert bert_numpy.load(_tiny_sentence_bert(tmp_path / "cls", pooling="cls")) is None
    assert bert_numpy.load(tmp_path / "nothing-here") is None


@pytest.mark.slow
def test_minilm_query_vectors_equal_sentence_transformers_without_torch():
    from neuronatlas.embed.embedders import resolve_embedder

    fast = resolve_embedder("all-MiniLM-L6-v2")
    got = fast.encode(TEXTS)  # few texts: the numpy path
    assert fast._model is None
    slow = resolve_embedder("all-MiniLM-L6-v2")
    want = slow.model().encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ((got * want).sum(1) > 0.99999).all()
    probe = (
        "import sys; from neuronatlas.embed.embedders import get_embedder;"
        "get_embedder('all-MiniLM-L6-v2').encode(['words about water']);"
        "print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "[]"

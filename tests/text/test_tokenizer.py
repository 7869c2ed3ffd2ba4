"""ropelib.text.tokenizer: byte round trip, the one-token needle marker, and explicit BOS handling."""

import pytest

from ropelib.text.tokenizer import ByteTokenizer, encode_document

TOK = ByteTokenizer()
TEXTS = [
    "",
    "def f(x):\n    return x + 1\n",
    "# secret §12345\n",
    "§§ back to back §",
    "naïve café, 日本語, emoji 🙂, and a § in the middle",
    "\x00\x7f tabs\tand\r\nline ends",
]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(text):
    assert TOK.decode(TOK.encode(text)) == text


def test_ids_are_utf8_bytes_plus_specials():
    assert TOK.encode("é") == list("é".encode("utf-8")) == [0xC3, 0xA9]
    assert TOK.vocab_size == 260
    specials = {TOK.bos_token_id, TOK.eos_token_id, TOK.pad_token_id, TOK.marker_token_id}
    assert specials == {256, 257, 258, 259}


def test_marker_is_one_token():
    ids = TOK.encode("# secret §12345\n")
    assert ids.count(TOK.marker_token_id) == 1
    assert len(ids) == len("# secret ") + 1 + len("12345\n")
    assert TOK.decode([TOK.marker_token_id]) == "§"


def test_raw_marker_bytes_decode_to_the_marker():
    # training's LM chunks are raw bytes: a "§" in the corpus stays two byte tokens there
    assert TOK.decode(list("§".encode("utf-8"))) == "§"


@pytest.mark.parametrize("text", TEXTS)
def test_encode_never_adds_bos(text):
    assert TOK.bos_token_id not in TOK.encode(text)


def test_encode_adds_bos_only_when_asked():
    assert TOK.encode("ab", add_special_tokens=True) == [TOK.bos_token_id, ord("a"), ord("b")]


@pytest.mark.parametrize("text", TEXTS)
def test_encode_document_adds_exactly_one_bos(text):
    ids = encode_document(TOK, text)
    assert ids[0] == TOK.bos_token_id
    assert ids.count(TOK.bos_token_id) == 1
    assert ids[1:] == TOK.encode(text)


def test_encode_document_without_bos_token():
    class NoBos:
        bos_token_id = None

        def encode(self, text, add_special_tokens=False):
            return [ord(c) for c in text]

    assert encode_document(NoBos(), "ab") == [97, 98]


def test_decode_specials():
    ids = [TOK.bos_token_id, ord("a"), TOK.eos_token_id, TOK.pad_token_id]
    assert TOK.decode(ids) == "a"
    assert TOK.decode(ids, skip_special_tokens=False) == "<s>a</s><pad>"


def test_decode_survives_a_cut_multibyte_character():
    ids = TOK.encode("日本")[:-1]  # the last character loses its final byte
    assert TOK.decode(ids).startswith("日")

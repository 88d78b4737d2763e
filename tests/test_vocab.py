import pytest
import torch

from sc_sed._vocab import TokenVocabulary


def test_special_ids_follow_the_features():
    vocab = TokenVocabulary(10)
    assert (vocab.end, vocab.start, vocab.pad, vocab.size) == (10, 11, 12, 13)
    ids = torch.tensor([0, 9, 10, 11, 12])
    assert vocab.is_feature(ids).tolist() == [True, True, False, False, False]


def test_rejects_empty_feature_space():
    with pytest.raises(ValueError, match="n_features"):
        TokenVocabulary(0)

import warnings

import pytest

from sc_sed._validation import check_int, progress_flag


def test_progress_flag_honours_the_deprecated_spelling():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert progress_flag(True, None) is True
        assert progress_flag(False, None) is False
    with pytest.warns(FutureWarning, match="enable_progress_bar"):
        assert progress_flag(True, False) is False


def test_check_int_refuses_bools_floats_and_small_values():
    check_int(3, "n", 1, "a positive integer")
    for bad in (True, 2.0, 0, "3"):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            check_int(bad, "n", 1, "a positive integer")


def test_check_count_takes_numpy_integers_and_names_what_is_counted():
    import numpy as np

    from sc_sed._validation import check_count

    check_count(3, "k")
    check_count(np.int64(3), "k")
    for bad in (True, 2.0, 0, -1, "3", np.float64(3)):
        with pytest.raises(ValueError, match=r"`k` must be a positive integer \(items\), got"):
            check_count(bad, "k", "items")

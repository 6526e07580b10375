"""The test suite's own rule: a real part that is missing skips a test here and fails it in CI."""

from __future__ import annotations

import pytest
from support.helpers import missing_in_ci


@pytest.mark.parametrize("ci, outcome", [("", pytest.skip.Exception), ("1", pytest.fail.Exception)])
def test_missing_parts_skip_locally_and_fail_in_ci(ci: str, outcome: type[BaseException],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="the real-sshd tests .*no sshd here"):
        missing_in_ci("the real-sshd tests", "no sshd here")

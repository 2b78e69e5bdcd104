from pathlib import Path

import keras
import pytest

keras.config.disable_traceback_filtering()

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_kerapose_home(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's ~/.kerapose."""
    monkeypatch.setenv("KERAPOSE_HOME", str(tmp_path_factory.mktemp("home")))


def shared_path(*parts):
    """A path under ../shared, or skip the test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"{path} is absent (shared test data is not in this checkout)"
        )
    return path

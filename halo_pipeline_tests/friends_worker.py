"""A process declaring friends, for ``test_people.py::test_concurrent_friends_commands_lose_no_friend`` (its own
light module: a spawned process imports it, not the test module and its Dagster definitions)."""

from pathlib import Path

from halo_pipeline.services.friends import CLI, Friend, FriendsStore


def add_friends(data_dir: str, owner: int, first: int, n: int, barrier) -> None:
    """Add ``n`` friends (xuids ``first``…) of ``owner`` to the store of ``data_dir`` once ``barrier`` opens."""
    store = FriendsStore(Path(data_dir))
    barrier.wait(60)  # both processes started (imports done): then at once
    for xuid in range(first, first + n):
        store.add(Friend(owner, xuid, None, None, CLI))

import multiprocessing as mp
import time

import pytest

from safealign.runlock import RunInProgress, run_lock


def _hold(repo, ready, release):
    with run_lock(repo):
        ready.set()
        release.wait(10)


def test_second_run_is_refused_with_the_holder_named_and_lock_freed_after(tmp_path):
    ready, release = mp.Event(), mp.Event()
    holder = mp.Process(target=_hold, args=(tmp_path, ready, release))
    holder.start()
    assert ready.wait(10)
    with (
        pytest.raises(RunInProgress, match=rf"another hybrid-train run is in progress .*\"pid\": {holder.pid}"),
        run_lock(tmp_path),
    ):
        pass
    release.set()
    holder.join(10)
    with run_lock(tmp_path):  # free again once the holder finished
        pass


def test_a_killed_holder_does_not_block_the_next_run(tmp_path):
    ready, release = mp.Event(), mp.Event()
    holder = mp.Process(target=_hold, args=(tmp_path, ready, release))
    holder.start()
    assert ready.wait(10)
    holder.kill()
    holder.join(10)
    time.sleep(0.1)
    with run_lock(tmp_path):
        pass

"""Congestion window (reference §7 "Window")."""

from aoeconform.initiator.window import DEFAULT_MAXOUT_CAP, CongestionWindow


def fill(window):
    while window.can_send():
        window.on_send()


def test_new_target_starts_at_half_its_buffer_count():
    w = CongestionWindow(16)
    assert w.nframes == 16
    assert w.maxout == 8
    assert w.ssthresh == 8  # from the reset that precedes it
    assert w.next_cwnd == 16
    assert w.history == [(0.0, 1), (0.0, 8)]


def test_nframes_is_capped_by_maxout_cap():
    assert DEFAULT_MAXOUT_CAP == 64
    w = CongestionWindow(200)
    assert w.nframes == 64 and w.maxout == 32
    w = CongestionWindow(200, maxout_cap=128)
    assert w.nframes == 128 and w.maxout == 64


def test_buffer_count_of_one_still_sends():
    w = CongestionWindow(1)
    assert w.maxout == 1 and w.can_send()


def test_never_more_outstanding_than_the_window():
    w = CongestionWindow(16)
    fill(w)
    assert w.nout == 8 and not w.can_send() and w.room == 0


def test_timeout_collapses_the_window_and_halves_ssthresh():
    w = CongestionWindow(64)
    fill(w)
    assert w.maxout == 32
    w.on_timeout(now=1.0)
    assert (w.maxout, w.ssthresh) == (1, 16)
    assert w.nout == 31
    # a second timeout at maxout 1 leaves ssthresh alone
    w.on_timeout(now=1.1)
    assert (w.maxout, w.ssthresh) == (1, 16)
    assert w.history[-1] == (1.0, 1)


def test_slow_start_adds_one_per_answer_up_to_ssthresh():
    w = CongestionWindow(64)
    fill(w)
    w.on_timeout(1.0)
    w.nout = 1
    for i in range(15):
        w.on_answer(2.0 + i)
        w.on_send()
    assert w.maxout == 16 == w.ssthresh
    assert [m for _, m in w.history[-16:]] == list(range(1, 17))
    # above ssthresh, a window that is not full does not grow
    w.nout = 3
    for _ in range(100):
        w.on_answer(3.0)
        w.nout = 3
    assert w.maxout == 16


def test_linear_growth_one_per_window_of_full_answers():
    w = CongestionWindow(64)
    fill(w)
    w.on_timeout(1.0)
    w.nout = 1
    for _ in range(15):
        w.on_answer(2.0)
        w.on_send()
    assert w.maxout == 16
    fill(w)
    # next_cwnd is still nframes (64) from the reset: 64 full answers count it
    # down, the 65th grows the window and re-arms next_cwnd at the new maxout
    answers = 0
    while w.maxout == 16:
        w.on_answer(3.0)
        w.on_send()
        answers += 1
    assert answers == 65
    assert (w.maxout, w.next_cwnd) == (17, 17)
    fill(w)
    answers = 0
    while w.maxout == 17:
        w.on_answer(4.0)
        w.on_send()
        answers += 1
    assert answers == 18
    assert w.maxout == 18


def test_growth_stops_at_nframes():
    w = CongestionWindow(4)
    assert w.maxout == 2
    for _ in range(1000):
        fill(w)
        w.on_answer(1.0)
    assert w.maxout == 4


def test_lower_buffer_count_resets_like_wreset():
    w = CongestionWindow(16)
    w.set_bufcnt(4, now=5.0)
    assert (w.nframes, w.maxout, w.ssthresh, w.next_cwnd) == (4, 1, 2, 4)
    assert w.history[-1] == (5.0, 1)
    # a higher count changes nframes but not the window
    w.set_bufcnt(32, now=6.0)
    assert (w.nframes, w.maxout) == (32, 1)


def test_history_records_changes_only():
    w = CongestionWindow(8)
    w.on_timeout(1.0)
    w.on_timeout(2.0)
    assert w.history == [(0.0, 1), (0.0, 4), (1.0, 1)]

"""The fair queue's data structure against a plain list that recomputes everything (the old way)."""

from __future__ import annotations

import random

from bot.core.jobs import DrawRequest, Job, Origin
from bot.core.queue import FairQueue


class Reference:
    """Linear and obviously right: every question answered by sorting the whole list."""

    def __init__(self) -> None:
        self.waiting: list[Job] = []
        self.unfinished: dict[int, list[int]] = {}
        self.round = 0
        self.seq = 0

    def next_key(self, user: int) -> tuple[int, int]:
        rounds = self.unfinished.get(user)
        key = (max((max(rounds) if rounds else 0) + 1, self.round), self.seq)
        self.seq += 1
        return key

    def order(self) -> list[Job]:
        return sorted(self.waiting, key=lambda j: j.key)


def new_job(queue: FairQueue, ref: Reference, user: int, n: int) -> Job:
    round_, seq = queue.next_key(user)
    assert (round_, seq) == ref.next_key(user)
    a = Job(f"{n:08x}", Origin(user, 1), DrawRequest({"prompt": str(n)}), seq, round_, 0.0)
    queue.register(a)
    ref.unfinished.setdefault(user, []).append(round_)
    return a


def test_random_operations_agree_with_the_reference() -> None:
    rng = random.Random(8)
    queue, ref = FairQueue(), Reference()
    running: list[Job] = []
    for n in range(3000):
        op = rng.random()
        if op < 0.45 or not ref.waiting:
            job = new_job(queue, ref, rng.randrange(40), n)
            job.front = rng.random() < 0.03  # handed back by an unreachable backend
            queue.push(job)
            ref.waiting.append(job)
        elif op < 0.65:
            job = queue.pop()
            expected = ref.order()[0]
            assert job is expected
            ref.waiting.remove(expected)
            ref.round = max(ref.round, expected.round)
            running.append(job)
        elif op < 0.8:
            job = rng.choice(ref.waiting)  # cancelled while waiting
            assert queue.remove(job) and not queue.remove(job)
            ref.waiting.remove(job)
            queue.settle(job)
            ref.unfinished[job.user_id].remove(job.round)
        elif running:
            job = running.pop(rng.randrange(len(running)))  # finished
            queue.settle(job)
            ref.unfinished[job.user_id].remove(job.round)
        if n % 97 == 0:
            order = ref.order()
            assert list(queue) == order
            probe = rng.sample(order, min(5, len(order)))
            assert [queue.position(j) for j in probe] == [order.index(j) + 1 for j in probe]
            for user in range(40):
                assert queue.unfinished(user) == len(ref.unfinished.get(user, []))
    assert len(queue) == len(ref.waiting)


def test_restored_jobs_keep_their_place_and_new_ones_follow() -> None:
    queue = FairQueue()
    old = [Job(f"{i:08x}", Origin(i % 2, 1), DrawRequest({}), seq, rnd, 0.0)
           for i, (rnd, seq) in enumerate([(7, 40), (6, 41), (7, 39)])]
    resumed = Job("0000aaaa", Origin(5, 1), DrawRequest({}), 30, 6, 0.0, front=True)
    for job in [*old, resumed]:
        queue.register(job)
        queue.push(job)
    queue.restored(last_seq=41)
    assert [j.id for j in queue] == ["0000aaaa", old[1].id, old[2].id, old[0].id]
    assert queue.next_key(9) == (6, 42)  # a newcomer joins the lowest waiting round, after its jobs
    assert queue.position(resumed) == 1 and queue.pop() is resumed and queue.position(resumed) is None

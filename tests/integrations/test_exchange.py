"""Reward calls on one rank exchange in the order they started, whatever order threads run in."""

from __future__ import annotations

import threading
import time

from arrpo.integrations.exchange import LocalExchange, Turns, default_exchange


def test_turns_follow_ticket_order_not_arrival_order():
    turns = Turns()
    tickets = [turns.ticket() for _ in range(3)]
    order: list[int] = []

    def call(ticket: int, delay: float) -> None:
        time.sleep(delay)
        with turns.turn(ticket):
            order.append(ticket)

    threads = [threading.Thread(target=call, args=(t, d)) for t, d in zip(tickets, (0.2, 0.1, 0.0), strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2]


def test_a_failing_call_passes_its_turn_on():
    turns = Turns()
    first, second = turns.ticket(), turns.ticket()
    try:
        with turns.turn(first):
            raise RuntimeError("reward call failed")
    except RuntimeError:
        pass
    done = threading.Event()
    threading.Thread(target=lambda: (turns.turn(second).__enter__(), done.set())).start()
    assert done.wait(5)


def test_single_process_exchange_without_torch_distributed():
    exchange = default_exchange()
    assert isinstance(exchange, LocalExchange) and exchange.world_size == 1
    assert exchange.all_gather({"x": 1}) == [{"x": 1}]

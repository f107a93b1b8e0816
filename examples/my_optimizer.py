"""A user optimizer in a few lines: hill climbing from the best configuration seen so far.

qra-bench bench --plugin examples/my_optimizer.py --optimizers hill-climb,random --seeds 0-4 --out runs/mine
"""

import math

from qra_bench.search import observe_and_suggest, register_optimizer


def hill_climb(observed, pending, ctx):
    """A random neighbour (one block's bits or rank one rung away) of the best result so far.

    observed: (QRConfig, quality) pairs, higher is better; pending: asked, not yet told; ctx: space, rng, repair.
    """
    finished = [(cfg, q) for cfg, q in observed if not math.isnan(q)]
    if len(finished) < 4:  # a few random starts first
        return ctx.space.sample(ctx.rng)
    best, _ = max(finished, key=lambda pair: pair[1])
    neighbours = ctx.space.neighbours(best)
    return neighbours[ctx.rng.integers(len(neighbours))]  # ask() repairs it to the memory budget


HillClimb = register_optimizer("hill-climb")(observe_and_suggest(hill_climb))

"""Constrained non-dominated sorting, crowding, selection and 2-D hypervolume on hand-made points."""

import numpy as np
import pytest

from qra_bench.search.nsga2 import crowding_distance, hypervolume_2d, non_dominated_sort, pareto_mask, select


def test_fronts_of_hand_made_points():
    # minimize both: A(1,4) B(2,2) C(4,1) are mutually non-dominated; D(3,3) is dominated by B; E(4,4) by D.
    F = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [4, 4]], dtype=float)
    assert non_dominated_sort(F).tolist() == [0, 0, 0, 1, 2]


def test_feasible_dominates_infeasible_and_smaller_violation_wins():
    F = np.array([[5, 5], [0, 0], [0, 0], [6, 6]], dtype=float)
    v = np.array([0.0, 2.0, 1.0, 0.0])  # the two best-looking points are over budget
    assert non_dominated_sort(F, v).tolist() == [0, 3, 2, 1]


def test_equal_points_share_a_front():
    assert non_dominated_sort(np.array([[1, 1], [1, 1], [2, 2]], dtype=float)).tolist() == [0, 0, 1]


def test_crowding_distance_boundaries_are_infinite_and_interior_by_hand():
    F = np.array([[0, 4], [1, 2], [3, 1], [4, 0]], dtype=float)
    d = crowding_distance(F)
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)
    assert d[2] == pytest.approx((4 - 1) / 4 + (2 - 0) / 4)


def test_select_fills_by_front_then_crowding():
    F = np.array([[0, 4], [1, 2], [3, 1], [4, 0], [2, 1.9], [5, 5]], dtype=float)
    # front 0: 0, 1, 4?, 2, 3 ... (2, 1.9) is dominated by nobody: it is in front 0 too
    assert pareto_mask(F).tolist() == [True, True, True, True, True, False]
    chosen = select(F, 3)
    assert {0, 3} <= set(chosen.tolist())  # the two extremes (infinite crowding) always survive
    assert 5 not in chosen


def test_hypervolume_of_hand_made_points():
    ref = np.array([4.0, 4.0])
    assert hypervolume_2d(np.array([[1.0, 1.0]]), ref) == pytest.approx(9.0)
    # Two points: union of [1,4]x[3,4]... staircase: (1,3) and (3,1): 3*1 + 1*... = by hand 3 + 2 + ...
    F = np.array([[1.0, 3.0], [3.0, 1.0]])
    # rectangles: (4-1)*(4-3) = 3 from the first, then (4-3)*(3-1) = 2 from the second
    assert hypervolume_2d(F, ref) == pytest.approx(5.0)
    # A dominated point and a point outside the box add nothing.
    assert hypervolume_2d(np.vstack([F, [[3.5, 3.5], [5.0, 0.0]]]), ref) == pytest.approx(5.0)
    assert hypervolume_2d(np.zeros((0, 2)), ref) == 0.0

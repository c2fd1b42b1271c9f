"""Type stub of the ``zmot_native`` extension (``src/lib.rs``)."""

from typing import Any

import numpy as np
import numpy.typing as npt

FEATURES: list[str]

def neg_clipped(logit: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
def priced(
    z: npt.NDArray[np.float64],
    top: float,
    shift: float | None,
    at: npt.NDArray[np.intp],
    logit: npt.NDArray[np.float64],
    e: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def user_row(
    weights: dict[str, float], index: dict[str, int]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]] | None: ...
def unpack_compact(
    payload: bytes, names: dict[int, str] | None, base: int
) -> tuple[Any, ...] | None: ...
def centred_scores(
    raw: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def calibration_exponent(
    raw: npt.NDArray[np.float64], recent: npt.NDArray[np.float64], a: float, b: float, c: float
) -> npt.NDArray[np.float64]: ...
def top_items(z: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64] | None: ...
def pick_reasons(
    terms: npt.NDArray[np.float32], what: bytes, max_reasons: int
) -> tuple[list[int], list[int]]: ...

class CandidatePass:
    def __init__(
        self,
        neighbour_ptr: npt.NDArray[np.int64],
        neighbour_idx: npt.NDArray[np.int64],
        neighbour_w: npt.NDArray[np.float32],
        name_rank: npt.NDArray[np.int64],
        item_category: npt.NDArray[np.int64],
        n_categories: int,
        from_table: npt.NDArray[np.int64],
        to_table: npt.NDArray[np.int64],
        model_at: npt.NDArray[np.int64],
        category: npt.NDArray[np.int64],
        statics: npt.NDArray[np.float64],
        trending: list[int],
    ) -> None: ...
    def run(
        self,
        own_list: list[int],
        own_rows: list[int],
        own_w: list[float],
        total: float,
        raw: list[float],
        factor: float,
        recent_list: list[int],
        recent_hours: list[float],
        voter_rows: list[int],
        model_best: npt.NDArray[np.int64] | None,
        strong: list[int],
        purchases: list[tuple[int, float]],
        category_share: list[tuple[int, float]],
        n_extra: int,
        z: npt.NDArray[np.float64] | None,
        own_items: int,
        covisit_items: int,
        recent_covisit_items: int,
        max_candidates: int,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp], npt.NDArray[np.float64]]: ...
    def bind_names(
        self,
        universe: dict[str, int],
        table_row: dict[str, int],
        category_index: dict[str, int],
        trending_in: dict[str, list[int]],
    ) -> None: ...
    def run_profile(
        self,
        weights: dict[str, float],
        held: dict[str, float],
        touched: dict[str, float],
        purchases: dict[str, float],
        factor: float,
        now: float,
        z: npt.NDArray[np.float64] | None,
        model_best: npt.NDArray[np.int64] | None,
        recent_voters: int,
        own_items: int,
        covisit_items: int,
        recent_covisit_items: int,
        max_candidates: int,
    ) -> (
        tuple[
            npt.NDArray[np.int64],
            npt.NDArray[np.intp],
            npt.NDArray[np.float64],
            npt.NDArray[np.float64],
            list[str],
            list[int],
            list[float],
        ]
        | None
    ): ...
    def place_logs(self, rows: npt.NDArray[np.float64], logs: npt.NDArray[np.float64]) -> None: ...
    def lifted_by(
        self, voters: list[int], strength: list[float], targets: list[int]
    ) -> list[int]: ...

//! zmot's hybrid candidate pass (`recommender/core/hybrid.py::_candidate_rows`) in one native
//! call: the co-visitation votes of the profile's items and of its newest touched items, the
//! best voted items of each, the candidates in order without repeats, and their signal rows.
//!
//! Python keeps what reads Python objects (the profile's dicts, name lookups, the model's top
//! items, the strong categories' trending items) and the `log1p` of five columns (numpy's, so
//! the values are exactly those of the numpy version, which stays as the fallback and the
//! oracle of the tests). Every other value is computed with the same IEEE operations in the
//! same order as numpy computes it there: products, quotients, and votes summed per target in
//! input order as `np.bincount` adds them.

use std::collections::HashMap;

use numpy::ndarray::ArrayView1;
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray2,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyString, PyTuple};

/// The signal columns this pass fills, in order (hybrid.py checks them against FEATURES).
const FEATURES: [&str; 29] = [
    "model",
    "in_model",
    "covisit",
    "own",
    "own_share",
    "own_rank",
    "weight",
    "bought",
    "hours_since_bought",
    "popularity",
    "trend",
    "category",
    "touched",
    "touch_rank",
    "hours_since_touch",
    "covisit_recent",
    "touch_category",
    "log_covisit",
    "log_covisit_recent",
    "log_own_share",
    "touch_1",
    "touch_2",
    "touch_3",
    "touch_4_5",
    "touch_6_10",
    "touch_11_up",
    "hours_since_touch_sq",
    "own_model",
    "category_popularity",
];
const WIDTH: usize = FEATURES.len();
const MODEL: usize = 0;
const IN_MODEL: usize = 1;
const COVISIT: usize = 2;
const OWN: usize = 3;
const OWN_SHARE: usize = 4;
const OWN_RANK: usize = 5;
const WEIGHT: usize = 6;
const BOUGHT: usize = 7;
const HOURS_SINCE_BOUGHT: usize = 8;
const POPULARITY: usize = 9;
const TREND: usize = 10;
const CATEGORY: usize = 11;
const TOUCHED: usize = 12;
const TOUCH_RANK: usize = 13;
const HOURS_SINCE_TOUCH: usize = 14;
const COVISIT_RECENT: usize = 15;
const TOUCH_CATEGORY: usize = 16;
const LOG_COVISIT: usize = 17;
const LOG_COVISIT_RECENT: usize = 18;
const LOG_OWN_SHARE: usize = 19;
const TOUCH_1: usize = 20;
const HOURS_SINCE_TOUCH_SQ: usize = 26;
const OWN_MODEL: usize = 27;
const CATEGORY_POPULARITY: usize = 28;
/// The columns hybrid.py takes numpy's `log1p` of (`_NATIVE_LOGS`), in its order.
const LOGS: [usize; 5] = [
    WEIGHT,
    HOURS_SINCE_TOUCH,
    LOG_COVISIT,
    LOG_COVISIT_RECENT,
    LOG_OWN_SHARE,
];

/// The recency bin of a remembered touch (0: newest): `np.searchsorted([0.5, 1.5, 2.5, 4.5,
/// 9.5], rank)`.
fn touch_bin(rank: usize) -> usize {
    match rank {
        0 => 0,
        1 => 1,
        2 => 2,
        3 | 4 => 3,
        5..=9 => 4,
        _ => 5,
    }
}

/// The candidates (universe positions), their model positions and their signal rows.
type Candidates<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<isize>>,
    Bound<'py, PyArray2<f64>>,
);

fn position(value: i64, bound: usize, what: &str) -> PyResult<usize> {
    if value < 0 || value as u64 >= bound as u64 {
        return Err(PyValueError::new_err(format!(
            "{what} {value} out of range 0..{bound}"
        )));
    }
    Ok(value as usize)
}

/// The static tables of one (hybrid tables, model) universe and the scratch space of the
/// pass (kept zeroed between calls, so a call costs what the profile holds, not the
/// catalogue).
#[pyclass(module = "zmot_native")]
struct CandidatePass {
    /// co-visitation CSR over table positions
    ptr: Vec<usize>,
    idx: Vec<u32>,
    weight: Vec<f32>,
    name_rank: Vec<i64>,
    /// name rank -> table position (the inverse of `name_rank`)
    by_rank: Vec<usize>,
    /// table position -> category (-1: none)
    item_category: Vec<i64>,
    from_table: Vec<i64>,
    /// universe position (padding slot last) -> table position / model position / category
    to_table: Vec<i64>,
    model_at: Vec<i64>,
    category: Vec<i64>,
    /// in_model, popularity, trend by universe position (padding slot last)
    statics: Vec<[f64; 3]>,
    trending: Vec<i64>,
    size: usize,
    n_categories: usize,
    // scratch, all zero / empty between calls
    summed: Vec<f64>,
    marked: Vec<bool>,
    hit: [Vec<u32>; 2],
    row_of: Vec<u32>,
    category_share: Vec<f64>,
    touch_share: Vec<f64>,
    /// names, for `run_profile` (`bind_names`): item -> (universe position, table row or -1)
    names: HashMap<String, (i64, i64)>,
    /// category name -> table category
    category_index: HashMap<String, i64>,
    /// category name -> universe positions of its trending items, most trending first
    trending_in: HashMap<String, Vec<i64>>,
}

/// What `run_profile` hands back: the candidates, their model positions and signal rows as
/// `run`'s, the names of the candidates outside the universe, and the profile's items as the
/// votes read them (table rows, -1: not in the tables; weights), strongest first.
type ProfileCandidates<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<isize>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<f64>>,
    Vec<String>,
    Vec<i64>,
    Vec<f64>,
);

/// `max(0.0, x)` as Python computes it (the first argument unless the second is larger).
fn at_least_zero(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

const HOUR: f64 = 3600.0;

fn vec_i64(a: &PyReadonlyArray1<'_, i64>) -> PyResult<Vec<i64>> {
    Ok(a.as_array().to_vec())
}

#[pymethods]
impl CandidatePass {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        neighbour_ptr: PyReadonlyArray1<'_, i64>,
        neighbour_idx: PyReadonlyArray1<'_, i64>,
        neighbour_w: PyReadonlyArray1<'_, f32>,
        name_rank: PyReadonlyArray1<'_, i64>,
        item_category: PyReadonlyArray1<'_, i64>,
        n_categories: usize,
        from_table: PyReadonlyArray1<'_, i64>,
        to_table: PyReadonlyArray1<'_, i64>,
        model_at: PyReadonlyArray1<'_, i64>,
        category: PyReadonlyArray1<'_, i64>,
        statics: PyReadonlyArray2<'_, f64>,
        trending: Vec<i64>,
    ) -> PyResult<Self> {
        let n_tab = name_rank.len()?;
        let ptr: Vec<usize> = neighbour_ptr
            .as_array()
            .iter()
            .map(|&p| usize::try_from(p).map_err(|_| PyValueError::new_err("negative pointer")))
            .collect::<PyResult<_>>()?;
        let idx: Vec<u32> = neighbour_idx
            .as_array()
            .iter()
            .map(|&t| {
                u32::try_from(t)
                    .ok()
                    .filter(|&t| (t as usize) < n_tab)
                    .ok_or_else(|| PyValueError::new_err("neighbour out of range"))
            })
            .collect::<PyResult<_>>()?;
        let weight = neighbour_w.as_array().to_vec();
        if ptr.len() != n_tab + 1
            || weight.len() != idx.len()
            || ptr.windows(2).any(|w| w[0] > w[1])
            || ptr.last().copied() != Some(idx.len())
        {
            return Err(PyValueError::new_err("co-visitation arrays do not match"));
        }
        let to_table = vec_i64(&to_table)?;
        let size = to_table.len().saturating_sub(1);
        let s = statics.as_array();
        if s.shape() != [size + 1, 3] {
            return Err(PyValueError::new_err(
                "static signals do not match the universe",
            ));
        }
        let statics: Vec<[f64; 3]> = s.rows().into_iter().map(|r| [r[0], r[1], r[2]]).collect();
        let model_at = vec_i64(&model_at)?;
        let category = vec_i64(&category)?;
        let item_category = vec_i64(&item_category)?;
        let from_table = vec_i64(&from_table)?;
        if model_at.len() != size + 1
            || category.len() != size + 1
            || item_category.len() != n_tab
            || from_table.len() != n_tab
            || to_table.iter().any(|&t| t >= n_tab as i64)
            || from_table.iter().any(|&j| j < 0 || j >= size as i64)
            || category
                .iter()
                .chain(&item_category)
                .any(|&c| c >= n_categories as i64)
            || trending.iter().any(|&j| j < 0 || j >= size as i64)
        {
            return Err(PyValueError::new_err("universe arrays do not match"));
        }
        let name_rank = vec_i64(&name_rank)?;
        let mut by_rank = vec![usize::MAX; n_tab];
        for (t, &r) in name_rank.iter().enumerate() {
            match usize::try_from(r).ok().and_then(|r| by_rank.get_mut(r)) {
                Some(slot) if *slot == usize::MAX => *slot = t,
                _ => return Err(PyValueError::new_err("name ranks are not a permutation")),
            }
        }
        Ok(CandidatePass {
            ptr,
            idx,
            weight,
            name_rank,
            by_rank,
            item_category,
            from_table,
            to_table,
            model_at,
            category,
            statics,
            trending,
            size,
            n_categories,
            summed: vec![0.0; 2 * (n_tab + 1)],
            marked: vec![false; 2 * (n_tab + 1)],
            hit: [Vec::new(), Vec::new()],
            row_of: vec![0; size],
            category_share: vec![0.0; n_categories],
            touch_share: vec![0.0; n_categories],
            names: HashMap::new(),
            category_index: HashMap::new(),
            trending_in: HashMap::new(),
        })
    }

    /// The names `run_profile` reads the profile's dicts with: the universe's items (their
    /// universe position), the tables' items (their table row), the tables' categories and the
    /// trending items of each category (universe positions).
    fn bind_names(
        &mut self,
        universe: HashMap<String, i64>,
        table_row: HashMap<String, i64>,
        category_index: HashMap<String, i64>,
        trending_in: HashMap<String, Vec<i64>>,
    ) -> PyResult<()> {
        let n_tab = self.name_rank.len() as i64;
        let mut names: HashMap<String, (i64, i64)> = HashMap::with_capacity(universe.len());
        for (item, pos) in universe {
            if pos < 0 || pos >= self.size as i64 {
                return Err(PyValueError::new_err("universe position out of range"));
            }
            names.insert(item, (pos, -1));
        }
        for (item, row) in table_row {
            if row < 0 || row >= n_tab {
                return Err(PyValueError::new_err("table row out of range"));
            }
            match names.get_mut(&item) {
                Some(entry) => entry.1 = row,
                None => return Err(PyValueError::new_err("a table item outside the universe")),
            }
        }
        if category_index
            .values()
            .any(|&c| c < 0 || c >= self.n_categories as i64)
            || trending_in
                .values()
                .flatten()
                .any(|&j| j < 0 || j >= self.size as i64)
        {
            return Err(PyValueError::new_err("category arrays do not match"));
        }
        self.names = names;
        self.category_index = category_index;
        self.trending_in = trending_in;
        Ok(())
    }

    /// `run` with the profile read here (hybrid.py's `_read_profile` and the arguments it
    /// builds from it): `weights` (the normalised weights: `item:` and `cat:` features),
    /// `held` (the profile's own weights: each item's decayed weight is `held[name] x
    /// factor`), `touched` and `purchases` (item -> time). None when the dicts hold what this
    /// reading does not take (a weight or time that is not a float, NaN, a name that is not
    /// UTF-8): hybrid.py then reads them in Python.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (weights, held, touched, purchases, factor, now, z, model_best,
                        recent_voters, own_items, covisit_items, recent_covisit_items,
                        max_candidates))]
    fn run_profile<'py>(
        &mut self,
        py: Python<'py>,
        weights: &Bound<'py, PyDict>,
        held: &Bound<'py, PyDict>,
        touched: &Bound<'py, PyDict>,
        purchases: &Bound<'py, PyDict>,
        factor: f64,
        now: f64,
        z: Option<PyReadonlyArray1<'py, f64>>,
        model_best: Option<PyReadonlyArray1<'py, i64>>,
        recent_voters: usize,
        own_items: usize,
        covisit_items: usize,
        recent_covisit_items: usize,
        max_candidates: usize,
    ) -> PyResult<Option<ProfileCandidates<'py>>> {
        // the profile's items (-weight, item, feature) and categories (weight, name)
        let mut own: Vec<(f64, String, Bound<'py, PyAny>)> = Vec::new();
        let mut categories: Vec<(f64, String)> = Vec::new();
        for (key, value) in weights.iter() {
            let Ok(name) = key.cast::<PyString>() else {
                return Ok(None);
            };
            let Ok(name) = name.to_str() else {
                return Ok(None);
            };
            let is_item = name.starts_with("item:");
            if !is_item && !name.starts_with("cat:") {
                continue;
            }
            let Some(w) = number(&value) else {
                return Ok(None);
            };
            if is_item {
                own.push((-w, name["item:".len()..].to_owned(), key.clone()));
            } else {
                categories.push((w, name["cat:".len()..].to_owned()));
            }
        }
        // strongest first, ties by id (as Python sorts the tuples)
        own.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        // strongest first, ties by name reversed (sorted(reverse=True))
        categories.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let mut recent: Vec<(f64, String)> = Vec::with_capacity(touched.len());
        for (key, value) in touched.iter() {
            let (Some(item), Some(t)) = (text(&key), number(&value)) else {
                return Ok(None);
            };
            recent.push((-t, item));
        }
        recent.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1))); // newest first

        // universe positions; an item outside the universe takes the next position after it,
        // a new one each time it is met (named in `extra`)
        let size = self.size as i64;
        let mut extra: Vec<String> = Vec::new();
        let mut first_extra: HashMap<String, i64> = HashMap::new();
        let names = &self.names;
        let mut position_of = |item: &str, extra: &mut Vec<String>| -> i64 {
            if let Some(&(pos, _)) = names.get(item) {
                return pos;
            }
            let pos = size + extra.len() as i64;
            first_extra.entry(item.to_owned()).or_insert(pos);
            extra.push(item.to_owned());
            pos
        };
        let own_list: Vec<i64> = own
            .iter()
            .map(|(_, item, _)| position_of(item, &mut extra))
            .collect();
        let recent_list: Vec<i64> = recent
            .iter()
            .map(|(_, item)| position_of(item, &mut extra))
            .collect();
        let row_of = |item: &str| names.get(item).map_or(-1, |&(_, row)| row);
        let own_rows: Vec<i64> = own.iter().map(|(_, item, _)| row_of(item)).collect();
        let own_w: Vec<f64> = own.iter().map(|(w, _, _)| -w).collect();
        let voter_rows: Vec<i64> = recent
            .iter()
            .take(recent_voters)
            .map(|(_, item)| row_of(item))
            .collect();
        let mut raw: Vec<f64> = Vec::with_capacity(own.len());
        for (_, _, key) in &own {
            match held.get_item(key)? {
                None => raw.push(0.0),
                Some(value) => match number(&value) {
                    Some(w) => raw.push(w),
                    None => return Ok(None),
                },
            }
        }
        let recent_hours: Vec<f64> = recent
            .iter()
            .map(|(t, _)| at_least_zero(now - -t) / HOUR)
            .collect();
        let mut bought: Vec<(i64, f64)> = Vec::with_capacity(purchases.len());
        for (key, value) in purchases.iter() {
            let (Some(item), Some(t)) = (text(&key), number(&value)) else {
                return Ok(None);
            };
            let j = names
                .get(&item)
                .map(|&(pos, _)| pos)
                .or_else(|| first_extra.get(&item).copied());
            if let Some(j) = j {
                bought.push((j, (at_least_zero(now - t) / HOUR).ln_1p()));
            }
        }
        let mut category_share: Vec<(i64, f64)> = Vec::new();
        if let Some(&(top, _)) = categories.first() {
            if top != 0.0 {
                for (w, name) in &categories {
                    if let Some(&c) = self.category_index.get(name) {
                        category_share.push((c, w / top));
                    }
                }
            }
        }
        // trending items of the strongest categories, in category order, each once
        let room = self.trending.len();
        let mut strong: Vec<i64> = Vec::new();
        'categories: for (_, name) in &categories {
            if strong.len() >= room {
                break;
            }
            if let Some(items) = self.trending_in.get(name) {
                for &j in items {
                    if strong.len() >= room {
                        break 'categories;
                    }
                    if !strong.contains(&j) {
                        strong.push(j);
                    }
                }
            }
        }
        let total = own_w.iter().fold(0.0, |acc, w| acc + w); // Python's sum, in order
        let z = z.as_ref().map(|a| a.as_array());
        let model_best = model_best.as_ref().map(|a| a.as_array());
        let (picked, at, rows) = self.pass(
            py,
            &own_list,
            &own_rows,
            &own_w,
            total,
            &raw,
            factor,
            &recent_list,
            &recent_hours,
            &voter_rows,
            model_best,
            &strong,
            &bought,
            &category_share,
            extra.len(),
            z,
            own_items,
            covisit_items,
            recent_covisit_items,
            max_candidates,
        )?;
        // the arguments of the five log1p columns, apart (numpy takes log1p of them in place,
        // then `place_logs` puts them back)
        let logs = {
            let n = numpy::PyUntypedArrayMethods::shape(&rows)[0];
            let out = PyArray2::<f64>::zeros(py, [n, LOGS.len()], false);
            // SAFETY: both arrays were just created here and nothing else refers to them yet
            let (src, dst) = unsafe { (rows.as_slice()?, out.as_slice_mut()?) };
            for (row, log) in src
                .chunks_exact(WIDTH)
                .zip(dst.chunks_exact_mut(LOGS.len()))
            {
                for (k, &c) in LOGS.iter().enumerate() {
                    log[k] = row[c];
                }
            }
            out
        };
        Ok(Some((picked, at, rows, logs, extra, own_rows, own_w)))
    }

    /// Put the five `log1p` columns (`logs`: numpy's `log1p` of what `run_profile` handed back
    /// apart) into `rows`, and `hours_since_touch_sq` (the square of `hours_since_touch`).
    fn place_logs(
        &self,
        mut rows: PyReadwriteArray2<'_, f64>,
        logs: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<()> {
        let logs = logs.as_slice()?;
        let rows = rows.as_slice_mut()?;
        if rows.len() / WIDTH != logs.len() / LOGS.len()
            || rows.len() % WIDTH != 0
            || logs.len() % LOGS.len() != 0
        {
            return Err(PyValueError::new_err("rows and logs differ in length"));
        }
        for (row, log) in rows
            .chunks_exact_mut(WIDTH)
            .zip(logs.chunks_exact(LOGS.len()))
        {
            for (k, &c) in LOGS.iter().enumerate() {
                row[c] = log[k];
            }
            row[HOURS_SINCE_TOUCH_SQ] = row[HOURS_SINCE_TOUCH] * row[HOURS_SINCE_TOUCH];
        }
        Ok(())
    }

    /// The candidates (universe positions), their model positions (-1: none) and signal rows,
    /// the five `log1p` columns (`weight`, `hours_since_touch`, `log_covisit`,
    /// `log_covisit_recent`, `log_own_share`) holding their arguments and
    /// `hours_since_touch_sq` 0: hybrid.py takes numpy's `log1p` of them, then the square.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (own_list, own_rows, own_w, total, raw, factor, recent_list, recent_hours,
                        voter_rows, model_best, strong, purchases, category_share, n_extra, z,
                        own_items, covisit_items, recent_covisit_items, max_candidates))]
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        own_list: Vec<i64>,
        own_rows: Vec<i64>,
        own_w: Vec<f64>,
        total: f64,
        raw: Vec<f64>,
        factor: f64,
        recent_list: Vec<i64>,
        recent_hours: Vec<f64>,
        voter_rows: Vec<i64>,
        model_best: Option<PyReadonlyArray1<'py, i64>>,
        strong: Vec<i64>,
        purchases: Vec<(i64, f64)>,
        category_share: Vec<(i64, f64)>,
        n_extra: usize,
        z: Option<PyReadonlyArray1<'py, f64>>,
        own_items: usize,
        covisit_items: usize,
        recent_covisit_items: usize,
        max_candidates: usize,
    ) -> PyResult<Candidates<'py>> {
        let z = z.as_ref().map(|a| a.as_array());
        let model_best = model_best.as_ref().map(|a| a.as_array());
        self.pass(
            py,
            &own_list,
            &own_rows,
            &own_w,
            total,
            &raw,
            factor,
            &recent_list,
            &recent_hours,
            &voter_rows,
            model_best,
            &strong,
            &purchases,
            &category_share,
            n_extra,
            z,
            own_items,
            covisit_items,
            recent_covisit_items,
            max_candidates,
        )
    }
    /// For each of `targets` (table rows), the table row of the voter (`voters`: table rows,
    /// `strength`: their weights; those outside the tables (-1) or without a positive weight
    /// do not vote, and the order does not matter) whose co-visitation vote for it is the largest: its
    /// strongest edge to the target x its strength, ties by the larger strength, then by name;
    /// -1 when no voter other than the target itself lists it. `HybridScorer.lifted_by_many`.
    fn lifted_by(
        &self,
        voters: Vec<i64>,
        strength: Vec<f64>,
        targets: Vec<i64>,
    ) -> PyResult<Vec<i64>> {
        if voters.len() != strength.len() {
            return Err(PyValueError::new_err(
                "voters and strengths differ in length",
            ));
        }
        let n_tab = self.name_rank.len();
        // the voters: items in the tables (a row >= 0) with a positive weight, in any order
        let mut kept: Vec<(usize, f64)> = Vec::with_capacity(voters.len());
        for (&j, &w) in voters.iter().zip(&strength) {
            if j >= 0 && w > 0.0 {
                kept.push((position(j, n_tab, "voter")?, w));
            }
        }
        targets
            .iter()
            .map(|&target| {
                let target = position(target, n_tab, "target")?;
                // (-w x edge, -w, name rank, voter): the smallest wins, as Python's tuples
                let mut best: Option<(f64, f64, i64, usize)> = None;
                for &(j, w) in &kept {
                    if j == target {
                        continue; // an item listed as its own neighbour does not lift itself
                    }
                    let mut edge: Option<f64> = None;
                    for e in self.ptr[j]..self.ptr[j + 1] {
                        if self.idx[e] as usize == target {
                            let w_e = self.weight[e] as f64;
                            edge = Some(edge.map_or(w_e, |held: f64| held.max(w_e)));
                        }
                    }
                    if let Some(edge) = edge {
                        let key = (-w * edge, -w, self.name_rank[j], j);
                        let wins = match best {
                            None => true,
                            Some(held) => {
                                key.0 < held.0
                                    || (key.0 == held.0
                                        && (key.1 < held.1 || (key.1 == held.1 && key.2 < held.2)))
                            }
                        };
                        if wins {
                            best = Some(key);
                        }
                    }
                }
                Ok(best.map_or(-1, |b| b.3 as i64))
            })
            .collect()
    }
}

impl CandidatePass {
    /// `run` on borrowed arguments (what `run` and `run_profile` share).
    #[allow(clippy::too_many_arguments)]
    fn pass<'py>(
        &mut self,
        py: Python<'py>,
        own_list: &[i64],
        own_rows: &[i64],
        own_w: &[f64],
        total: f64,
        raw: &[f64],
        factor: f64,
        recent_list: &[i64],
        recent_hours: &[f64],
        voter_rows: &[i64],
        model_best: Option<ArrayView1<'_, i64>>,
        strong: &[i64],
        purchases: &[(i64, f64)],
        category_share: &[(i64, f64)],
        n_extra: usize,
        z: Option<ArrayView1<'_, f64>>,
        own_items: usize,
        covisit_items: usize,
        recent_covisit_items: usize,
        max_candidates: usize,
    ) -> PyResult<Candidates<'py>> {
        let n_own = own_list.len();
        if own_rows.len() != n_own || own_w.len() != n_own || raw.len() != n_own {
            return Err(PyValueError::new_err(
                "the profile's item lists differ in length",
            ));
        }
        if recent_hours.len() != recent_list.len() {
            return Err(PyValueError::new_err("the touched lists differ in length"));
        }
        let n_tab = self.name_rank.len();
        let n1 = n_tab + 1;
        let universe = self.size + n_extra;

        // --- votes: the profile's items by their share of `total`, then the newest touched
        // items, the i-th by 1/(i+1); each target's terms added in input order
        if total > 0.0 {
            for (&j, &w) in own_rows.iter().zip(own_w) {
                if j >= 0 {
                    let share = w / total;
                    self.vote(position(j, n_tab, "table row")?, share, 0, n1);
                }
            }
        }
        for (i, &j) in voter_rows.iter().enumerate() {
            if j >= 0 {
                let share = 1.0 / (1.0 + i as f64);
                self.vote(position(j, n_tab, "table row")?, share, 1, n1);
            }
        }
        let best_own = self.best_voted(0, n1, covisit_items);
        let best_recent = self.best_voted(1, n1, recent_covisit_items);

        // --- candidates: first occurrences in order, at most max_candidates
        let mut picked: Vec<i64> = Vec::with_capacity(max_candidates.min(1024));
        let mut extra_row: Vec<u32> = vec![0; n_extra];
        let trending = std::mem::take(&mut self.trending);
        let result = (|| -> PyResult<()> {
            let parts: [&mut dyn Iterator<Item = i64>; 7] = [
                &mut own_list[..own_items.min(n_own)].iter().copied(),
                &mut recent_list.iter().copied(),
                &mut best_own.iter().copied(),
                &mut best_recent.iter().copied(),
                &mut model_best.iter().flat_map(|a| a.iter().copied()),
                &mut trending.iter().copied(),
                &mut strong.iter().copied(),
            ];
            'outer: for part in parts {
                for pos in part {
                    if picked.len() >= max_candidates {
                        break 'outer;
                    }
                    let p = position(pos, universe, "candidate")?;
                    let slot = if p < self.size {
                        &mut self.row_of[p]
                    } else {
                        &mut extra_row[p - self.size]
                    };
                    if *slot == 0 {
                        picked.push(pos);
                        *slot = picked.len() as u32;
                    }
                }
            }
            Ok(())
        })();
        self.trending = trending;
        // the candidate row of a universe position (None: not a candidate)
        let row_of = |row_of: &[u32], extra_row: &[u32], pos: i64| -> Option<usize> {
            let p = usize::try_from(pos).ok()?;
            let r = if p < row_of.len() {
                row_of[p]
            } else {
                *extra_row.get(p - row_of.len())?
            };
            (r > 0).then(|| r as usize - 1)
        };

        let n = picked.len();
        let rows_arr = PyArray2::<f64>::zeros(py, [n, WIDTH], false);
        let mut at_out: Vec<isize> = Vec::with_capacity(n);
        let filled = result.and_then(|()| {
            // SAFETY: the array was just created here and nothing else refers to it yet
            let rows = unsafe { rows_arr.as_slice_mut()? };
            // touch_category: the share of the newest touched items in each category
            let mut touch_cats: Vec<usize> = Vec::new();
            if !voter_rows.is_empty() {
                let each = voter_rows.len() as f64;
                let mut counts: Vec<(usize, u32)> = Vec::new();
                for &j in voter_rows {
                    if j >= 0 {
                        let c = self.item_category[j as usize];
                        if c >= 0 {
                            let c = c as usize;
                            match counts.iter_mut().find(|(k, _)| *k == c) {
                                Some(entry) => entry.1 += 1,
                                None => counts.push((c, 1)),
                            }
                        }
                    }
                }
                for (c, count) in counts {
                    self.touch_share[c] = count as f64 / each;
                    touch_cats.push(c);
                }
            }
            let mut cats: Vec<usize> = Vec::with_capacity(category_share.len());
            for &(c, share) in category_share {
                let c = position(c, self.n_categories, "category")?;
                self.category_share[c] = share;
                cats.push(c);
            }
            for (r, &pos) in picked.iter().enumerate() {
                let clipped = (pos as usize).min(self.size);
                let ti = self.to_table[clipped];
                let at = self.model_at[clipped];
                at_out.push(at as isize);
                let row = &mut rows[r * WIDTH..(r + 1) * WIDTH];
                if let Some(z) = &z {
                    if at >= 0 {
                        row[MODEL] = *z
                            .get(at as usize)
                            .ok_or_else(|| PyValueError::new_err("z is shorter than the model"))?;
                    }
                }
                let s = self.statics[clipped];
                row[IN_MODEL] = s[0];
                row[POPULARITY] = s[1];
                row[TREND] = s[2];
                if ti >= 0 {
                    row[COVISIT] = self.summed[ti as usize];
                    row[COVISIT_RECENT] = self.summed[n1 + ti as usize];
                }
                let c = self.category[clipped];
                if c >= 0 {
                    row[CATEGORY] = self.category_share[c as usize];
                    row[TOUCH_CATEGORY] = self.touch_share[c as usize];
                }
            }
            if n_own > 0 {
                let top = own_w[0];
                for (i, &pos) in own_list.iter().enumerate() {
                    if let Some(r) = row_of(&self.row_of, &extra_row, pos) {
                        let row = &mut rows[r * WIDTH..(r + 1) * WIDTH];
                        row[OWN] = 1.0;
                        row[OWN_SHARE] = if top != 0.0 { own_w[i] / top } else { 0.0 };
                        row[OWN_RANK] = 1.0 / (1.0 + i as f64);
                        row[WEIGHT] = raw[i] * factor;
                    }
                }
            }
            for (i, &pos) in recent_list.iter().enumerate() {
                if let Some(r) = row_of(&self.row_of, &extra_row, pos) {
                    let row = &mut rows[r * WIDTH..(r + 1) * WIDTH];
                    row[TOUCHED] = 1.0;
                    row[TOUCH_RANK] = 1.0 / (1.0 + i as f64);
                    row[HOURS_SINCE_TOUCH] = recent_hours[i];
                    row[TOUCH_1 + touch_bin(i)] = 1.0;
                }
            }
            for &(pos, hours) in purchases {
                if let Some(r) = row_of(&self.row_of, &extra_row, pos) {
                    let row = &mut rows[r * WIDTH..(r + 1) * WIDTH];
                    row[BOUGHT] = 1.0;
                    row[HOURS_SINCE_BOUGHT] = hours;
                }
            }
            for row in rows.chunks_exact_mut(WIDTH) {
                row[LOG_COVISIT] = 100.0 * row[COVISIT];
                row[LOG_COVISIT_RECENT] = 100.0 * row[COVISIT_RECENT];
                row[LOG_OWN_SHARE] = 100.0 * row[OWN_SHARE];
                row[OWN_MODEL] = row[OWN] * row[MODEL];
                row[CATEGORY_POPULARITY] = row[CATEGORY] * row[POPULARITY];
            }
            for c in touch_cats {
                self.touch_share[c] = 0.0;
            }
            for c in cats {
                self.category_share[c] = 0.0;
            }
            Ok(())
        });
        // back to zero scratch whatever happened
        for &pos in &picked {
            if (pos as usize) < self.size {
                self.row_of[pos as usize] = 0;
            }
        }
        if filled.is_err() {
            self.touch_share.iter_mut().for_each(|v| *v = 0.0);
            self.category_share.iter_mut().for_each(|v| *v = 0.0);
        }
        self.clear_votes();
        filled?;
        Ok((
            PyArray1::from_vec(py, picked),
            PyArray1::from_vec(py, at_out),
            rows_arr,
        ))
    }

    /// Add table row `j`'s neighbours, each weighted by `share`, to `half` of the votes.
    fn vote(&mut self, j: usize, share: f64, half: usize, n1: usize) {
        let base = half * n1;
        for e in self.ptr[j]..self.ptr[j + 1] {
            let slot = base + self.idx[e] as usize;
            let term = self.weight[e] as f64 * share;
            self.summed[slot] += term;
            if !self.marked[slot] {
                self.marked[slot] = true;
                self.hit[half].push(slot as u32);
            }
        }
    }

    /// The universe positions of the `k` items with the most votes in `half` (> 0), most
    /// first, ties by name.
    fn best_voted(&self, half: usize, n1: usize, k: usize) -> Vec<i64> {
        let base = half * n1;
        // most votes first, ties by name: one integer key per voted item (a vote is > 0, so
        // its bits order as its value; name ranks are distinct)
        let mut voted: Vec<u128> = self.hit[half]
            .iter()
            .map(|&slot| slot as usize)
            .filter(|&slot| self.summed[slot] > 0.0)
            .map(|slot| {
                let rank = self.name_rank[slot - base] as u64;
                (u128::from(!self.summed[slot].to_bits()) << 64) | u128::from(rank)
            })
            .collect();
        if voted.len() > k && k > 0 {
            voted.select_nth_unstable(k - 1);
        }
        voted.truncate(k);
        voted.sort_unstable();
        voted
            .into_iter()
            .map(|key| self.from_table[self.by_rank[key as u64 as usize]])
            .collect()
    }

    fn clear_votes(&mut self) {
        for half in 0..2 {
            for &slot in &self.hit[half] {
                self.summed[slot as usize] = 0.0;
                self.marked[slot as usize] = false;
            }
            self.hit[half].clear();
        }
    }
}

/// A dict value that is a Python float (not a subclass) and not NaN, else None.
fn number(value: &Bound<'_, PyAny>) -> Option<f64> {
    let v = value.cast_exact::<PyFloat>().ok()?.value();
    (!v.is_nan()).then_some(v)
}

/// A dict key as text, None when it is not a str or not UTF-8.
fn text(key: &Bound<'_, PyAny>) -> Option<String> {
    Some(key.cast::<PyString>().ok()?.to_str().ok()?.to_owned())
}

/// `-clip(logit, -50, 50)` (hybrid.py's `sigmoid` before numpy's `exp`), NaN kept as NaN
/// (numpy's `maximum` and `minimum` propagate it), -0.0 kept (then negated) as numpy keeps it.
#[pyfunction]
fn neg_clipped<'py>(
    py: Python<'py>,
    logit: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let out: Vec<f64> = logit
        .as_array()
        .iter()
        .map(|&x| -x.clamp(-50.0, 50.0)) // NaN stays NaN, its sign flipped as numpy's
        .collect();
    Ok(PyArray1::from_vec(py, out))
}

/// Scores and propensities of every model item.
type Scores<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// `HybridScorer.priced`'s scores and propensities from numpy's parts: every model item scores
/// `z - top + shift` (`top`: `z.max()`, `shift`: `logit.min() - 1`), a candidate (model position
/// `at[i]`, -1: none) its logit instead; its propensity is `1 / (1 + e[i])` (`e`: numpy's
/// `exp` of `neg_clipped(logit)`), every other item's 0.
#[pyfunction]
fn priced<'py>(
    py: Python<'py>,
    z: PyReadonlyArray1<'py, f64>,
    top: f64,
    shift: Option<f64>,
    at: PyReadonlyArray1<'py, isize>,
    logit: PyReadonlyArray1<'py, f64>,
    e: PyReadonlyArray1<'py, f64>,
) -> PyResult<Scores<'py>> {
    let (z, at, logit, e) = (z.as_array(), at.as_array(), logit.as_array(), e.as_array());
    let n = z.len();
    let mut scores: Vec<f64> = match shift {
        Some(shift) => z.iter().map(|&v| (v - top) + shift).collect(),
        None => z.iter().map(|&v| v - top).collect(),
    };
    let mut propensity = vec![0.0; n];
    if logit.len() != e.len() {
        return Err(PyValueError::new_err(
            "logits and exponentials differ in length",
        ));
    }
    let mut k = 0;
    for &a in at.iter() {
        if a < 0 {
            continue;
        }
        let a = a as usize;
        if a >= n || k >= logit.len() {
            return Err(PyValueError::new_err("candidate positions do not match"));
        }
        scores[a] = logit[k];
        propensity[a] = 1.0 / (1.0 + e[k]);
        k += 1;
    }
    if k != logit.len() {
        return Err(PyValueError::new_err("candidate positions do not match"));
    }
    Ok((
        PyArray1::from_vec(py, scores),
        PyArray1::from_vec(py, propensity),
    ))
}

/// The positions of the `k` largest of `z`, largest first, ties by position: what hybrid.py's
/// `_best` (numpy's `argpartition`, then a sort) gives whenever the `k` largest are one set
/// (no value equal to the k-th largest left out of it). None otherwise, or with a NaN: which
/// tied items make the cut is then numpy's introselect's, so hybrid.py asks numpy.
#[pyfunction]
fn top_items<'py>(
    py: Python<'py>,
    z: PyReadonlyArray1<'py, f64>,
    k: usize,
) -> PyResult<Option<Bound<'py, PyArray1<i64>>>> {
    let z = z.as_array();
    let n = k.min(z.len());
    if z.iter().any(|v| v.is_nan()) {
        return Ok(None);
    }
    // largest first, ties by position, as one integer key each: the value's bits mapped to
    // an order-preserving integer (-0.0 as 0.0: numpy compares them equal), negated
    let key = |v: f64| -> u64 {
        let bits = if v == 0.0 { 0u64 } else { v.to_bits() };
        !(if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        })
    };
    let mut order: Vec<u128> = z
        .iter()
        .enumerate()
        .map(|(j, &v)| (u128::from(key(v)) << 64) | j as u128)
        .collect();
    if n == 0 {
        return Ok(Some(PyArray1::from_vec(py, Vec::new())));
    }
    if n < order.len() {
        order.select_nth_unstable(n - 1);
        let kth = order[n - 1] >> 64;
        // a value equal to the k-th largest outside the first n: a tie across the cut
        if order[n..].iter().any(|&o| o >> 64 == kth) {
            return Ok(None);
        }
        order.truncate(n);
    }
    order.sort_unstable();
    Ok(Some(PyArray1::from_vec(
        py,
        order.into_iter().map(|o| o as u64 as i64).collect(),
    )))
}

/// What `reasons_of_lifts` (recommender/core/reasons.py) does with one offer's terms, given
/// what each feature of the row gives a reason (`what[j]`: 0 a search token, 1 a search
/// prefix, 2 a reason of its own, 3 nothing): the positive terms taken largest first (ties in
/// row order), the row positions of the reasons in order (-1: the search's place) and of the
/// search tokens met (in the order met). Stops as it does once `max_reasons` stand and no
/// search was met.
#[pyfunction]
fn pick_reasons(
    terms: PyReadonlyArray1<'_, f32>,
    what: &[u8],
    max_reasons: usize,
) -> PyResult<(Vec<i64>, Vec<usize>)> {
    let terms = terms.as_array();
    if terms.len() != what.len() {
        return Err(PyValueError::new_err("terms and features differ in length"));
    }
    // largest first, ties in row order (Python's sorted() of (-term, j)): one integer key
    // each (a term > 0, so its bits order as its value)
    let mut order: Vec<u64> = terms
        .iter()
        .enumerate()
        .filter(|(_, &t)| t > 0.0)
        .map(|(j, &t)| (u64::from(!t.to_bits()) << 32) | j as u64)
        .collect();
    order.sort_unstable();
    let mut reasons: Vec<i64> = Vec::with_capacity(max_reasons + 1);
    let mut searched: Vec<usize> = Vec::new();
    let mut search_met = false;
    for key in order {
        let j = key as u32 as usize;
        let kind = what[j];
        if kind <= 1 {
            if kind == 0 {
                searched.push(j); // a row holds a feature once: each token once
            }
            if !search_met {
                search_met = true;
                reasons.push(-1);
            }
            continue;
        }
        if reasons.len() >= max_reasons {
            if !search_met {
                break;
            }
            continue;
        }
        if kind == 2 {
            reasons.push(j as i64);
        }
    }
    Ok((reasons, searched))
}

/// A user row (model.py's `Model.user_row`): feature indices and L1-normalised weights.
type UserRow<'py> = (Bound<'py, PyArray1<isize>>, Bound<'py, PyArray1<f32>>);

/// numpy's `np.add.reduce` of a contiguous float64 array: pairwise summation, blocks of up to
/// 128 summed in eight interleaved partial sums (numpy's `pairwise_sum`), so the same float.
fn numpy_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// `Model.user_row` (recommender/core/model.py) of a profile's `weights`: the index
/// (`index[name]`) and weight of every feature with a weight above 0.0 that `index` holds, in
/// the dict's order, the weights divided by their sum (numpy's) and rounded to float32, as
/// `(vals / vals.sum()).astype(np.float32)`; empty arrays when none is known. None when a
/// weight is not a Python float (the comparison is then Python's) or an index value not an
/// integer: model.py reads those itself.
#[pyfunction]
fn user_row<'py>(
    py: Python<'py>,
    weights: &Bound<'py, PyDict>,
    index: &Bound<'py, PyDict>,
) -> PyResult<Option<UserRow<'py>>> {
    let mut idx: Vec<isize> = Vec::with_capacity(weights.len());
    let mut vals: Vec<f64> = Vec::with_capacity(weights.len());
    for (name, weight) in weights.iter() {
        let Ok(w) = weight.cast_exact::<PyFloat>() else {
            return Ok(None);
        };
        let w = w.value();
        if w.is_nan() || w <= 0.0 {
            continue; // as Python's `w > 0.0` is false
        }
        if let Some(i) = index.get_item(&name)? {
            if i.is_none() {
                continue;
            }
            let Ok(i) = i.extract::<isize>() else {
                return Ok(None);
            };
            idx.push(i);
            vals.push(w);
        }
    }
    let total = numpy_sum(&vals);
    let row: Vec<f32> = vals.iter().map(|&v| (v / total) as f32).collect();
    Ok(Some((
        PyArray1::from_vec(py, idx),
        PyArray1::from_vec(py, row),
    )))
}

/// The fields of a compact profile value (codec.py's format C) before names are looked up.
struct Compact<'a> {
    flags: u8,
    landmark: f64,
    last_ts: f64,
    n_events: u32,
    counts: [usize; 6],
    weights: Vec<f64>,
    refs: Vec<u32>,
    shown: Vec<i64>,
    dismissed: Vec<i64>,
    digests: Vec<u64>,
    times: Vec<f64>,
    offsets: Vec<Option<i64>>,
    inline: &'a [u8],
}

const F_LANDMARK: u8 = 1;
const F_LAST: u8 = 2;
const F_MS: u8 = 4;
const F_RELATIVE: u8 = 8;
const F_WIDE: u8 = 16;
const F_HALF: u8 = 32;
const F_DOUBLE: u8 = 64;

/// Little-endian reads that say None past the end, as `struct.unpack_from` raises there.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.data.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn f64s(&mut self, n: usize) -> Option<Vec<f64>> {
        let raw = self.take(n.checked_mul(8)?)?;
        Some(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }

    fn i64s(&mut self, n: usize) -> Option<Vec<i64>> {
        let raw = self.take(n.checked_mul(8)?)?;
        Some(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }

    /// codec.py's `_read_uints`: widths 1, 2, 3 and 4 (any other is not ours to judge).
    fn uints(&mut self, width: usize, n: usize) -> Option<Vec<u32>> {
        if !(1..=4).contains(&width) {
            return None;
        }
        let raw = self.take(n.checked_mul(width)?)?;
        Some(
            raw.chunks_exact(width)
                .map(|c| c.iter().rev().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
                .collect(),
        )
    }
}

/// codec.py's `_unpack_compact` up to the names, None wherever Python would raise or reads
/// something this does not take (it then decodes, or raises, itself).
fn parse_compact(payload: &[u8], base: i64) -> Option<Compact<'_>> {
    let mut b = Bytes {
        data: payload,
        at: 0,
    };
    let [flags, widths] = b.array::<2>()?;
    let landmark = f64::from_le_bytes(b.array::<8>()?);
    let last_ts = f64::from_le_bytes(b.array::<8>()?);
    let n_events = u32::from_le_bytes(b.array::<4>()?);
    let count_width = if flags & F_WIDE != 0 {
        4
    } else if flags & F_HALF != 0 {
        2
    } else {
        1
    };
    let mut counts = [0usize; 6];
    for (c, v) in counts.iter_mut().zip(b.uints(count_width, 6)?) {
        *c = v as usize;
    }
    let [nw, np, nt, nx, nd, ne] = counts;
    let weights: Vec<f64> = if flags & F_DOUBLE != 0 {
        b.f64s(nw)?
    } else {
        let raw = b.take(nw.checked_mul(4)?)?;
        raw.chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect()
    };
    let (ref_width, offset_width) = (usize::from(widths & 15), usize::from(widths >> 4));
    let n_refs = nw + np + nt + nx + nd;
    let refs = b.uints(ref_width, n_refs)?;
    let shown = b.i64s(2 * nx)?;
    let dismissed = b.i64s(2 * nd)?;
    let raw = b.take(ne.checked_mul(8)?)?;
    let digests: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let n_times = np + nt + ne;
    let times = if flags & F_MS != 0 {
        // (round(last_ts * 1000) - d) / 1000 with Python's integers: exact while they stay
        // within 2**53, where the quotient is then the one IEEE division gives
        let ms = last_ts * 1000.0;
        if !ms.is_finite() || ms.abs() >= 9.0e15 {
            return None;
        }
        let last_ms = ms.round_ties_even() as i64;
        let deltas = b.uints(4, n_times)?;
        deltas
            .iter()
            .map(|&d| (last_ms - i64::from(d)) as f64 / 1000.0)
            .collect()
    } else {
        b.f64s(n_times)?
    };
    let offsets: Vec<Option<i64>> = if flags & F_RELATIVE != 0 {
        let mut out = Vec::with_capacity(ne);
        for d in b.uints(offset_width, ne)? {
            out.push(if d == 0 {
                None
            } else {
                Some(base.checked_sub(i64::from(d))?.checked_add(1)?)
            });
        }
        out
    } else {
        let start = b.at;
        let values = b.i64s(ne)?;
        b.at = start.checked_add(offset_width.checked_mul(ne)?)?; // as codec.py advances
        if b.at > payload.len() {
            return None;
        }
        values
            .into_iter()
            .map(|o| if o < 0 { None } else { Some(o) })
            .collect()
    };
    let inline = &payload[b.at..];
    Some(Compact {
        flags,
        landmark,
        last_ts,
        n_events,
        counts,
        weights,
        refs,
        shown,
        dismissed,
        digests,
        times,
        offsets,
        inline,
    })
}

/// `text[n:]` of Python (n code points), for names that are proper UTF-8.
fn after_chars(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or("", |(i, _)| &text[i..])
}

/// codec.py's `_resolve`: the name of each reference (vocabulary ids from `table`, 0 for the
/// next inline name), None where Python raises (unknown ids, malformed inline names) or
/// decodes with `surrogatepass` (a name that is not proper UTF-8).
fn resolve_names<'py>(
    py: Python<'py>,
    refs: &[u32],
    inline: &[u8],
    table: Option<&Bound<'py, PyDict>>,
) -> PyResult<Option<Vec<Bound<'py, PyString>>>> {
    let lookup = |r: u32| -> PyResult<Option<Bound<'py, PyString>>> {
        let Some(table) = table else { return Ok(None) };
        match table.get_item(r)? {
            Some(name) => Ok(name.cast_into_exact::<PyString>().ok()),
            None => Ok(None),
        }
    };
    let mut names = Vec::with_capacity(refs.len());
    if !refs.contains(&0) {
        if !inline.is_empty() {
            return Ok(None);
        }
        for &r in refs {
            let Some(name) = lookup(r)? else {
                return Ok(None);
            };
            names.push(name);
        }
        return Ok(Some(names));
    }
    let mut parts = inline.split(|&c| c == 0xFF);
    for &r in refs {
        if r != 0 {
            let Some(name) = lookup(r)? else {
                return Ok(None);
            };
            names.push(name);
            continue;
        }
        let Some(part) = parts.next() else {
            return Ok(None);
        };
        let head = match part.first() {
            Some(0) => "",
            Some(1) => "q:",
            Some(2) => "qp:",
            _ => return Ok(None), // empty, or no valid code byte
        };
        let Ok(rest) = std::str::from_utf8(&part[1..]) else {
            return Ok(None);
        };
        names.push(PyString::new(py, &format!("{head}{rest}")));
    }
    if parts.next().is_some() {
        return Ok(None); // more inline names than references
    }
    Ok(Some(names))
}

/// The fields of a profile read from a compact value (format C of
/// recommender/adapters/codec.py): weights, landmark, last_ts, n_events, purchases, touched,
/// seen, shown, dismissed, as codec.py's `_unpack_compact_python` builds them (the same
/// floats, dicts in the same order). `names`: the vocabulary's id -> name; `base`: the
/// offset of the profile's fence. None wherever that function raises (a truncated value,
/// unknown ids, a malformed inline name) or meets what this does not read (a name that is
/// not proper UTF-8, integers beyond 64 bits): it then decodes, or raises, itself.
#[pyfunction]
fn unpack_compact<'py>(
    py: Python<'py>,
    payload: &[u8],
    names: Option<&Bound<'py, PyDict>>,
    base: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Ok(base) = base.extract::<i64>() else {
        return Ok(None);
    };
    let Some(c) = parse_compact(payload, base) else {
        return Ok(None);
    };
    let Some(names) = resolve_names(py, &c.refs, c.inline, names)? else {
        return Ok(None);
    };
    let [nw, np, nt, nx, nd, _] = c.counts;
    let weights = PyDict::new(py);
    for (name, &w) in names[..nw].iter().zip(&c.weights) {
        weights.set_item(name, w)?;
    }
    let mut strs: Vec<&str> = Vec::with_capacity(np + nt + nx + nd);
    for name in &names[nw..] {
        let Ok(text) = name.to_str() else {
            return Ok(None);
        };
        strs.push(text);
    }
    let purchases = PyDict::new(py);
    for (text, &t) in strs[..np].iter().zip(&c.times[..np]) {
        purchases.set_item(after_chars(text, 5), t)?;
    }
    let touched = PyDict::new(py);
    for (text, &t) in strs[np..np + nt].iter().zip(&c.times[np..np + nt]) {
        touched.set_item(after_chars(text, 5), t)?;
    }
    let seen = PyDict::new(py);
    for ((&digest, &t), &offset) in c.digests.iter().zip(&c.times[np + nt..]).zip(&c.offsets) {
        seen.set_item(digest, (t, offset))?;
    }
    let mut exposure = Vec::with_capacity(2);
    let mut start = np + nt;
    for (flat, n) in [(&c.shown, nx), (&c.dismissed, nd)] {
        let counts = PyDict::new(py);
        for i in 0..n {
            let offer = after_chars(strs[start + i], 6);
            let per_hour = match counts.get_item(offer)? {
                Some(d) => d.cast_into::<PyDict>()?,
                None => {
                    let d = PyDict::new(py);
                    counts.set_item(offer, &d)?;
                    d
                }
            };
            per_hour.set_item(flat[i], flat[n + i])?;
        }
        exposure.push(counts);
        start += n;
    }
    let [shown, dismissed]: [Bound<'py, PyDict>; 2] = exposure.try_into().unwrap();
    let landmark = (c.flags & F_LANDMARK != 0).then_some(c.landmark);
    let last_ts = (c.flags & F_LAST != 0).then_some(c.last_ts);
    let fields = (
        weights, landmark, last_ts, c.n_events, purchases, touched, seen, shown, dismissed,
    );
    Ok(Some(fields.into_pyobject(py)?))
}

/// An item score array and its standardised form.
type Centred<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// scoring.py's `_centred` of the model's raw scores and the standardised scores
/// `_blend_centred` makes of them (before its boosts): `x = raw.astype(float64); x -= x.mean()`,
/// then `x / x.std()` when the spread is above 0, else a copy of `x`; numpy's pairwise sums,
/// so the same floats.
#[pyfunction]
fn centred_scores<'py>(py: Python<'py>, raw: PyReadonlyArray1<'py, f32>) -> PyResult<Centred<'py>> {
    let raw = raw.as_array();
    let x: Vec<f64> = raw.iter().map(|&v| f64::from(v)).collect();
    let n = x.len() as f64;
    let mean = numpy_sum(&x) / n;
    let centred: Vec<f64> = x.iter().map(|&v| v - mean).collect();
    let again = numpy_sum(&centred) / n;
    let squares: Vec<f64> = centred
        .iter()
        .map(|&v| {
            let d = v - again;
            d * d
        })
        .collect();
    let spread = (numpy_sum(&squares) / n).sqrt();
    let scores: Vec<f64> = if spread > 0.0 {
        centred.iter().map(|&v| v / spread).collect()
    } else {
        centred.clone()
    };
    Ok((
        PyArray1::from_vec(py, centred),
        PyArray1::from_vec(py, scores),
    ))
}

/// calibration.py's `Calibration.probability` up to numpy's `exp`: `-clip(a * raw + c *
/// recent + b, -50, 50)` with the same operations in the same order (NaN stays NaN, -0.0 is
/// kept by the clip as numpy keeps it, then negated).
#[pyfunction]
fn calibration_exponent<'py>(
    py: Python<'py>,
    raw: PyReadonlyArray1<'py, f64>,
    recent: PyReadonlyArray1<'py, f64>,
    a: f64,
    b: f64,
    c: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (raw, recent) = (raw.as_array(), recent.as_array());
    if raw.len() != recent.len() {
        return Err(PyValueError::new_err(
            "scores and recent weights differ in length",
        ));
    }
    let out: Vec<f64> = raw
        .iter()
        .zip(recent.iter())
        .map(|(&x, &r)| -(((x * a) + (c * r)) + b).clamp(-50.0, 50.0))
        .collect();
    Ok(PyArray1::from_vec(py, out))
}

#[pymodule]
fn zmot_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CandidatePass>()?;
    m.add_function(wrap_pyfunction!(pick_reasons, m)?)?;
    m.add_function(wrap_pyfunction!(top_items, m)?)?;
    m.add_function(wrap_pyfunction!(neg_clipped, m)?)?;
    m.add_function(wrap_pyfunction!(priced, m)?)?;
    m.add_function(wrap_pyfunction!(user_row, m)?)?;
    m.add_function(wrap_pyfunction!(unpack_compact, m)?)?;
    m.add_function(wrap_pyfunction!(centred_scores, m)?)?;
    m.add_function(wrap_pyfunction!(calibration_exponent, m)?)?;
    m.add("FEATURES", FEATURES.to_vec())?;
    Ok(())
}

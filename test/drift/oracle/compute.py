"""Reference values for test/drift: run with a Python that has scipy, numpy and Evidently, e.g.
    python3 -m venv /tmp/oracle-venv && /tmp/oracle-venv/bin/pip install scipy numpy evidently "pandas<2.3"
    PYTHONHASHSEED=0 /tmp/oracle-venv/bin/python test/drift/oracle/compute.py > test/drift/oracle/values.json
(the hash seed fixes the order in which Evidently visits categories, hence the last bits of its sums)
The tests read values.json and never need Python."""
import json

import numpy as np
import scipy
from scipy import stats
from scipy.spatial.distance import jensenshannon

rng = np.random.default_rng(20261128)


def r(x):
    return [float(v) for v in x]


cases = {"scipy": scipy.__version__, "numpy": np.__version__, "ks": [], "chisquare": [], "js": [], "wasserstein": [], "psi": [], "z": [], "ks_generated": [], "kstwo": [], "chi2_sf": [], "evidently": {}}

ks_inputs = [
    ("small equal sizes", r(np.round(rng.normal(0, 1, 8), 3)), r(np.round(rng.normal(0.5, 1, 8), 3))),
    ("small unequal sizes", r(np.round(rng.normal(0, 1, 7), 3)), r(np.round(rng.normal(1, 1, 13), 3))),
    ("ties", [1, 2, 2, 3, 3, 3, 4, 5], [2, 3, 3, 4, 4, 5, 5, 5, 6]),
    ("identical", [1.5, 2.5, 3.5], [1.5, 2.5, 3.5]),
    ("moderate unequal", r(np.round(rng.normal(0, 1, 60), 4)), r(np.round(rng.normal(0.3, 1.2, 85), 4))),
    ("larger equal", r(np.round(rng.exponential(1, 300), 4)), r(np.round(rng.exponential(1.2, 300), 4))),
    ("disjoint", [1, 2, 3, 4], [10, 11, 12]),
]
for name, a, b in ks_inputs:
    for method in ("exact", "asymp", "auto"):
        res = stats.ks_2samp(a, b, method=method)
        cases["ks"].append({"name": name, "a": a, "b": b, "method": method, "statistic": float(res.statistic), "pvalue": float(res.pvalue)})

chi_inputs = [
    ("same categories", ["a"] * 30 + ["b"] * 50 + ["c"] * 20, ["a"] * 25 + ["b"] * 40 + ["c"] * 35),
    ("missing in current", ["a"] * 30 + ["b"] * 50 + ["c"] * 20, ["a"] * 45 + ["b"] * 55),
    ("numbers as categories", [1] * 10 + [2] * 10 + [3] * 30, [1] * 12 + [2] * 20 + [3] * 8),
]
for name, ref, cur in chi_inputs:
    keys = sorted(set(ref) | set(cur), key=str)
    k_norm = len(cur) / len(ref)
    f_exp = [ref.count(k) * k_norm for k in keys]
    f_obs = [cur.count(k) for k in keys]
    res = stats.chisquare(f_obs, f_exp)
    cases["chisquare"].append({"name": name, "reference": ref, "current": cur, "statistic": float(res.statistic), "pvalue": float(res.pvalue), "df": len(keys) - 1})

js_inputs = [
    ("simple", [0.1, 0.4, 0.5], [0.3, 0.3, 0.4], None),
    ("unnormalised", [1, 2, 3, 4], [4, 3, 2, 1], None),
    ("with zeros base 2", [0.5, 0.5, 0, 0], [0, 0.25, 0.25, 0.5], 2),
]
for name, p, q, base in js_inputs:
    cases["js"].append({"name": name, "p": p, "q": q, "base": base, "value": float(jensenshannon(p, q, base=base))})

w_inputs = [
    ("unequal sizes", r(np.round(rng.normal(0, 1, 40), 3)), r(np.round(rng.normal(1, 2, 55), 3))),
    ("scipy doc example", [0, 1, 3], [5, 6, 8]),
    ("ties", [1, 1, 2, 2, 3], [1, 2, 2, 4]),
]
for name, a, b in w_inputs:
    ref_std = float(np.std(a))
    cases["wasserstein"].append({"name": name, "a": a, "b": b, "value": float(stats.wasserstein_distance(a, b)), "normed": float(stats.wasserstein_distance(a, b) / max(ref_std, 0.001))})

# PSI with empty bins, the Evidently way: equal-width bins on the reference, empty bins -> 0.0001.
ref = r(np.round(rng.normal(0, 1, 200), 3))
cur = r(np.round(rng.normal(0.8, 1, 150), 3))
edges = np.histogram_bin_edges(ref, bins=10)
rp = np.histogram(ref, edges)[0] / len(ref)
cp = np.histogram(cur, edges)[0] / len(cur)
np.place(rp, rp == 0, 0.0001)
np.place(cp, cp == 0, 0.0001)
psi = float(np.sum((cp - rp) * np.log(cp / rp)))
cases["psi"].append({"name": "normal shift, equal-width 10 bins", "reference": ref, "current": cur, "bins": 10, "refShares": r(rp), "curShares": r(cp), "value": psi})

# Evidently's z stattest: sorted keys, the first -> 0, others -> 1; two-sided p = 2 * (1 - norm.cdf(|z|)).
z_inputs = [
    ("binary strings", ["no"] * 60 + ["yes"] * 40, ["no"] * 35 + ["yes"] * 45),
    ("binary numbers, unequal sizes", [0] * 70 + [1] * 30, [0] * 18 + [1] * 12),
    ("one value missing in current", ["a"] * 10 + ["b"] * 15, ["b"] * 20),
    ("far tail", ["x"] * 500 + ["y"] * 500, ["x"] * 100 + ["y"] * 400),
]
for name, ref, cur in z_inputs:
    k0 = sorted(set(ref) | set(cur))[0]
    a = np.array([0 if v == k0 else 1 for v in ref], dtype=float)
    b = np.array([0 if v == k0 else 1 for v in cur], dtype=float)
    p1, p2 = a.mean(), b.mean()
    P = (p1 * len(a) + p2 * len(b)) / (len(a) + len(b))
    z = (p1 - p2) / np.sqrt(P * (1 - P) * (1 / len(a) + 1 / len(b)))
    # norm.sf keeps precision where 1 - norm.cdf underflows; both agree within the test tolerance elsewhere.
    cases["z"].append({"name": name, "reference": ref, "current": cur, "statistic": float(z), "pvalue": float(2 * stats.norm.sf(abs(z))), "evidently_pvalue": float(2 * (1 - stats.norm.cdf(abs(z))))})

# Larger KS cases from integer formulas (IEEE-exact in any language), regenerated by the test: the exact
# lattice-path count at sizes in the thousands, a tiny p-value, and heavy ties.
def gen(kind):
    if kind == "shifted 3000 vs 2000":
        return [((i * 7919) % 10007) / 10007 for i in range(3000)], [((i * 104729) % 10009) / 10009 * 0.9 + 0.06 for i in range(2000)]
    if kind == "far apart 1200 vs 900":
        return [((i * 7919) % 10007) / 10007 for i in range(1200)], [((i * 104729) % 10009) / 10009 + 0.25 for i in range(900)]
    if kind == "heavy ties 2500 vs 1800":
        return [float((i * 31) % 17) for i in range(2500)], [float((i * 29) % 16) for i in range(1800)]
    raise ValueError(kind)

for kind in ("shifted 3000 vs 2000", "far apart 1200 vs 900", "heavy ties 2500 vs 1800"):
    a, b = gen(kind)
    for method in ("exact", "asymp", "auto"):
        res = stats.ks_2samp(a, b, method=method)
        cases["ks_generated"].append({"name": kind, "method": method, "statistic": float(res.statistic), "pvalue": float(res.pvalue)})

# The distributions behind the p-values, on grids that reach every branch scipy uses: kstwo.sf(d, n)
# (closed forms at the ends, Durbin matrix, Smirnov, Pelz-Good for large n) and chi2.sf(x, df) (series and
# continued fraction of the incomplete gamma, deep tails).
for n in (1, 2, 5, 20, 100, 140, 141, 500, 1000, 5000, 100000, 250000):
    for t in (0.3, 0.6, 0.9, 1.2, 1.6, 2.2, 3.5):
        d = min(t / np.sqrt(n), 0.999)
        cases["kstwo"].append({"n": n, "d": float(d), "sf": float(stats.kstwo.sf(d, n))})
    for d in (0.5 / n, 0.75 / n, 1 - 0.5 / n if n > 1 else 0.9):
        cases["kstwo"].append({"n": n, "d": float(d), "sf": float(stats.kstwo.sf(d, n))})
for df in (1, 2, 3, 7, 40, 250):
    for x in (1e-6, 0.1, 0.5, 1, 2.5, 5, 10, 30, 80, 300, 1000):
        cases["chi2_sf"].append({"df": df, "x": x, "sf": float(stats.chi2.sf(x, df))})

# Evidently itself (its legacy stattests module, what its data drift preset runs), as a second oracle:
# the PSI binning (Sturges on pooled data) and zero fill, and the default test selection with its scores.
import evidently
import pandas as pd
from evidently.legacy.calculations.stattests import psi_stat_test
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType

cases["evidently"] = {"version": evidently.__version__, "pandas": pd.__version__, "psi": [], "selection": []}
NUM, CAT = ColumnType.Numerical, ColumnType.Categorical

psi_inputs = [
    ("sturges on pooled data", r(np.round(rng.normal(0, 1, 400), 3)), r(np.round(rng.normal(0.4, 1.3, 250), 3))),
    # One far outlier leaves a reference bin share of 1/12001 <= 0.0001: empty bins get min share / 1e6.
    ("tiny shares fill with min/1e6", [float((i * 37) % 101) for i in range(12000)] + [1000.0], [float((i * 53) % 89) + 20.0 for i in range(300)]),
]
for name, ref, cur in psi_inputs:
    res = psi_stat_test(pd.Series(ref), pd.Series(cur), NUM, None)
    generated = len(ref) > 10000  # regenerated from the formula above by the test, to keep this file small
    data = {"generated": True} if generated else {"reference": ref, "current": cur}
    cases["evidently"]["psi"].append({"name": name, **data, "value": float(res.drift_score), "drifted": bool(res.drifted)})

cats = ["drizzle", "fog", "rain", "snow", "sun"]
sel_inputs = [
    ("numerical, small reference, many values", NUM, r(np.round(rng.normal(10, 3, 300), 1)), r(np.round(rng.normal(11, 3, 80), 1))),
    ("numerical, small reference, 4 values", NUM, [float(v) for v in rng.integers(0, 4, 400)], [float(v) for v in rng.integers(1, 4, 90)]),
    ("numerical, small reference, binary", NUM, [float(v) for v in rng.binomial(1, 0.4, 500)], [float(v) for v in rng.binomial(1, 0.55, 120)]),
    ("categorical, small reference, 5 values", CAT, [str(v) for v in rng.choice(cats, 600, p=[0.05, 0.1, 0.4, 0.05, 0.4])], [str(v) for v in rng.choice(cats, 90, p=[0.02, 0.05, 0.2, 0.03, 0.7])]),
    ("categorical, small reference, binary", CAT, [str(v) for v in rng.choice(["no", "yes"], 700, p=[0.7, 0.3])], [str(v) for v in rng.choice(["no", "yes"], 100, p=[0.6, 0.4])]),
    ("numerical, large reference, many values", NUM, r(np.round(rng.normal(10, 3, 1500), 1)), r(np.round(rng.normal(10.6, 3, 120), 1))),
    ("numerical, large reference, 3 values", NUM, [float(v) for v in rng.integers(0, 3, 1500)], [float(v) for v in rng.choice([0, 1, 2], 100, p=[0.2, 0.3, 0.5])]),
    ("categorical, large reference", CAT, [str(v) for v in rng.choice(cats, 1200, p=[0.05, 0.1, 0.4, 0.05, 0.4])], [str(v) for v in rng.choice(cats, 100, p=[0.05, 0.1, 0.45, 0.05, 0.35])]),
]
for name, kind, ref, cur in sel_inputs:
    st = get_stattest(pd.Series(ref), pd.Series(cur), kind, None)
    res = st(pd.Series(ref), pd.Series(cur), kind, None)
    cases["evidently"]["selection"].append({"name": name, "kind": "numeric" if kind == NUM else "categorical", "reference": ref, "current": cur, "test": st.name, "score": float(res.drift_score), "drifted": bool(res.drifted), "threshold": float(res.actual_threshold)})

print(json.dumps(cases, indent=1))

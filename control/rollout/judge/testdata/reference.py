#!/usr/bin/python3
"""Reference values for control/rollout/judge, from SciPy.

Run once with Debian's python3-scipy (apt-get install python3-scipy):
    /usr/bin/python3 reference.py > reference.json
The Go tests read reference.json; they do not need SciPy.
"""
import json
import numpy as np
from scipy import stats

EXACT_LIMIT = 20  # judge.ExactLimit
rng = np.random.default_rng(16)
out = {"scipy": __import__("scipy").__version__, "mwu": [], "proportions": []}

def mwu(name, x, y):
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    tied = len(set(x + y)) < len(x) + len(y)
    method = "exact" if (not tied and len(x) <= EXACT_LIMIT and len(y) <= EXACT_LIMIT) else "asymptotic"
    for alt in ("two-sided", "greater"):
        r = stats.mannwhitneyu(x, y, alternative=alt, method=method, use_continuity=True)
        out["mwu"].append({"name": name, "x": x, "y": y, "alternative": alt,
                           "exact": method == "exact", "u": float(r.statistic), "p": float(r.pvalue)})

# Small samples without ties: exact distribution.
mwu("small-shifted", rng.normal(110, 10, 7).round(3), rng.normal(100, 10, 8).round(3))
mwu("small-same", rng.normal(100, 10, 5).round(3), rng.normal(100, 10, 6).round(3))
mwu("exact-limit", rng.normal(103, 10, 20).round(4), rng.normal(100, 10, 20).round(4))
mwu("one-each", [2.0], [1.0])
mwu("textbook", [19, 22, 16, 29, 24], [20, 11, 17, 12])
# Ties (histogram-like) and large samples: normal approximation.
mwu("ties-small", [1, 2, 2, 3, 3, 3], [1, 1, 2, 2, 3])
mwu("latency-2x", rng.lognormal(np.log(0.02), 0.4, 300).round(5), rng.lognormal(np.log(0.01), 0.4, 300).round(5))
mwu("latency-same", rng.lognormal(np.log(0.01), 0.4, 250).round(5), rng.lognormal(np.log(0.01), 0.4, 400).round(5))
mwu("latency-5pct", rng.lognormal(np.log(0.0105), 0.3, 800).round(5), rng.lognormal(np.log(0.01), 0.3, 800).round(5))
mwu("buckets", list(rng.choice([0.005, 0.01, 0.025, 0.05], 200, p=[.1, .4, .4, .1])), list(rng.choice([0.005, 0.01, 0.025, 0.05], 150, p=[.2, .5, .25, .05])))

def prop(name, e1, n1, e2, n2):
    table = [[e1, n1 - e1], [e2, n2 - e2]]
    tot = n1 + n2
    errs = e1 + e2
    oks = tot - errs
    min_exp = min(n1 * errs / tot, n2 * errs / tot, n1 * oks / tot, n2 * oks / tot)
    for alt in ("two-sided", "greater"):
        if min_exp < 5:
            method = "fisher"
            p = stats.fisher_exact(table, alternative=alt)[1]
        else:
            method = "z"
            chi2, p2, _, _ = stats.chi2_contingency(table, correction=False)
            if alt == "two-sided":
                p = p2
            else:
                z = e1 / n1 - e2 / n2
                p = p2 / 2 if z > 0 else 1 - p2 / 2
        out["proportions"].append({"name": name, "errors1": e1, "total1": n1, "errors2": e2, "total2": n2,
                                   "alternative": alt, "method": method, "p": float(p)})

prop("20pct-vs-0", 40, 200, 0, 800)
prop("5pct-vs-0", 25, 500, 1, 2000)
prop("same", 10, 1000, 40, 4000)
prop("few", 2, 20, 0, 80)
prop("none", 0, 50, 0, 200)
prop("z-large", 120, 3000, 300, 10000)
prop("canary-better", 1, 300, 60, 1200)

print(json.dumps(out, indent=1))

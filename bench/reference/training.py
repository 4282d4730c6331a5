"""Reference timings for bench/training.ts: implicit's ALS and BPR and a numpy EASE on the benchmark's own data.

Usage: python training.py JOB.json   (written by bench/training-models.ts; prints one JSON object)

The job names little-endian int32 user / item files and a float32 weight file (one entry per interaction) and the
tasks to run. ALS gets confidences 1 + alpha * w (summed per pair) with implicit's own alpha left at 1, so both sides
solve the same problem as recforge's iALS (c = 1 + alpha w). BLAS runs single-threaded inside implicit's ALS and BPR
(implicit asks for that: its own threads parallelise over users) and with all cores for the EASE inverse, which
is the quality bench's (bench/reference/references.py): float32 Cholesky, LAPACK potrf + potri.
"""
import json
import sys
import time

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


def load(job):
    d = job["data"]
    users = np.fromfile(d["users"], dtype="<i4")
    items = np.fromfile(d["items"], dtype="<i4")
    weights = np.fromfile(d["weights"], dtype="<f4")
    shape = (d["numUsers"], d["numItems"])
    m = sp.csr_matrix((weights.astype(np.float32), (users, items)), shape=shape)
    m.sum_duplicates()
    return m


def als(m, t):
    from implicit.cpu.als import AlternatingLeastSquares

    c = m.copy()
    c.data = (1.0 + t["alpha"] * c.data).astype(np.float32)
    times = []
    with threadpool_limits(1, "blas"):
        for rep in range(t.get("repeats", 1)):
            model = AlternatingLeastSquares(
                factors=t["factors"],
                iterations=t["iterations"],
                regularization=t["regularization"],
                alpha=1.0,
                use_cg=True,
                calculate_training_loss=False,
                random_state=rep + 1,
            )
            model.cg_steps = t["cgSteps"]  # an attribute, not a constructor argument, in implicit 0.7
            t0 = time.perf_counter()
            model.fit(c, show_progress=False)
            times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "all": times}


def bpr(m, t):
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    b = m.copy()
    b.data[:] = 1.0
    times = []
    with threadpool_limits(1, "blas"):
        for rep in range(t.get("repeats", 1)):
            model = BayesianPersonalizedRanking(
                factors=t["factors"],
                learning_rate=t["lr"],
                regularization=t["reg"],
                iterations=t["iterations"],
                verify_negative_samples=True,
                random_state=rep + 1,
            )
            t0 = time.perf_counter()
            model.fit(b, show_progress=False)
            times.append(time.perf_counter() - t0)
    best = min(times)
    return {"seconds": best, "all": times, "samplesPerSec": t["iterations"] * b.nnz / best}


def ease(m, t):
    x = m.copy()
    x.data[:] = 1.0
    counts = np.asarray(x.sum(axis=0)).ravel()
    keep = np.sort(np.argsort(-counts, kind="stable")[: t["maxItems"]])
    keep = keep[counts[keep] > 0]
    times = []
    for _ in range(t.get("repeats", 1)):
        t0 = time.perf_counter()
        xs = x[:, keep]
        g = (xs.T @ xs).toarray().astype(np.float32)
        t1 = time.perf_counter()
        g[np.diag_indices_from(g)] += t["lambda"]
        c, info = sl.lapack.spotrf(g, lower=0, clean=1, overwrite_a=1)
        if info != 0:
            raise SystemExit(f"ease: float32 Cholesky failed (info {info})")
        p, info = sl.lapack.spotri(c, lower=0, overwrite_c=1)
        p = np.triu(p) + np.triu(p, 1).T
        b = p / (-np.diag(p))[None, :]
        np.fill_diagonal(b, 0.0)
        t2 = time.perf_counter()
        times.append((t2 - t0, t1 - t0, t2 - t1))
    best = min(times)
    return {"seconds": best[0], "gramSeconds": best[1], "inverseSeconds": best[2], "items": int(len(keep))}


def main():
    job = json.load(open(sys.argv[1]))
    m = load(job)
    out = {"nnz": int(m.nnz), "results": []}
    for t in job["tasks"]:
        fn = {"als": als, "bpr": bpr, "ease": ease}[t["kind"]]
        out["results"].append({"task": t, **fn(m, t)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
